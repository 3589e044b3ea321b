/* pool.c — mp_pool: the pool's state, its shared region, task bookkeeping and
 * dispatch, and its lifecycle. pool_submit.c turns calls into tasks,
 * pool_handler.c runs the handler thread, pool_worker.c the workers.
 *
 * Protocol. Each worker has a private stream socket to the pool's process. The
 * parent sends task frames (struct mp__task_hdr + payload, pool/pool.h) and
 * the worker answers each with one result frame, in the order of the tasks. A
 * task's payload travels inline, or, when large, in the pool's shared region:
 * MAP_SHARED memory mapped before any worker was forked, so its addresses are
 * valid in every worker (and in replacements, forked from the same parent). Only
 * the parent allocates from the region (under pool->mu); a block is freed once its
 * task completed.
 *
 * Shared words, per worker (struct mp__wslot in the region): `running`, written
 * only by the worker: the id of the task it is running, 0 between tasks,
 * MP__RUNNING_INIT during the initializer. The parent reads it only after the
 * worker has ended (waitpid orders the two), so it needs no lock.
 *
 * Submitting threads append tasks to pool->inbox under inbox_mu (a few
 * instructions) and wake the handler only if it announced a sleep (`asleep`,
 * set before it last checked the inbox, so no wake-up is lost). The handler moves
 * them to pool->pend and from there to workers: a worker takes a task when it has
 * none outstanding, or up to MP__POOL_MAX_OUT when the backlog is long, and the
 * handler writes many frames with one sendmsg.
 *
 * The parent keeps, per worker, the tasks sent and not yet answered
 * ("outstanding", in send order; wcur marks the first one not completely written).
 * Workers batch small results and write them before they would block, so results
 * of finished tasks may wait in the batch for the duration of the worker's next
 * task. A process worker's batch lives in the region (pool->batches, one
 * MP__BATCH_CAP slice per slot) and the worker publishes its length in
 * slots[i].batch_len after each whole frame, clearing it once the batch is in the
 * socket. When a worker ends, the handler reads what is left in its socket, then
 * delivers the outstanding results found whole in the batch (skipping those the
 * socket already brought: the batch is in task order); the task named by
 * `running` (if any) is the one it was running and fails with MP_EWORKERDIED and a
 * message naming the signal or exit status; every other outstanding task (not
 * started; or finished with its result neither read nor in a shared batch: a
 * thread pool, or a region too small to hold the batches) goes back to the front
 * of the pending queue and runs again. The worker is replaced. So every task gets
 * exactly one result and no call waits for a dead worker.
 *
 * Zero-copy maps (MP__UNIT_JOB): the job lives in the region; the parent sends a
 * JOB frame to every worker ("participants"). Workers claim chunks with an atomic
 * fetch_add on next_chunk, store the chunk in current[slot] while running it, then
 * chunk_state, then bump finished_chunks; the one that finishes the last chunk of a
 * job without callbacks or failures sets job->state and wakes the waiter directly
 * (fast path). A participant answers its JOB frame when no chunk is left. A
 * participant that dies leaves its chunk open: that chunk fails. Replacements join
 * jobs that still have chunks. Once every participant is out and no chunk is left
 * to claim (or a participant died, or every chunk finished), the handler completes
 * the job: a chunk still open was claimed by a worker that died (possibly between
 * fetch_add and current[slot]). A job that no worker could join (each had been
 * given its last task under maxtasksperchild) waits for the replacements.
 *
 * Callbacks run on the handler thread, after the result's fields are final and
 * before it is marked ready, so get() returns only after the callback ran.
 *
 * Workers are forked by the handler thread only, with pool->mu held, so the child
 * sees the pool's fd lists whole; the child touches no lock (see pool_worker.c).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "linux/futex.h"
#include "linux/pidfd.h"
#include "linux/sys.h"
#include "mproc/process.h"
#include "pool/pool_parent.h"

void mp__pool_lock(mp_pool *p)
{
    pthread_mutex_lock(&p->mu);
}
void mp__pool_unlock(mp_pool *p)
{
    pthread_mutex_unlock(&p->mu);
}

static void wake_handler(mp_pool *p)
{
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static bool on_handler(mp_pool *p)
{
    return pthread_equal(pthread_self(), p->handler);
}

/* Wakes the handler if it sleeps in poll (pool lock held). While it is awake it
 * looks at everything before sleeping again, so one wake per sleep is enough. */
void mp__pool_wake_if_asleep(mp_pool *p)
{
    if (atomic_exchange(&p->asleep, 0) == 1)
        wake_handler(p);
}

void mp__pool_kick(mp_pool *p)
{
    p->kicked = true;
    if (!on_handler(p))
        mp__pool_wake_if_asleep(p);
}

/* Pool lock held. Submitters read the state under inbox_mu only. */
void mp__pool_set_state(mp_pool *p, enum mp__pstate st)
{
    pthread_mutex_lock(&p->inbox_mu);
    p->state = st;
    pthread_mutex_unlock(&p->inbox_mu);
}

/* ---- the region: a first-fit allocator over parent-private extents ---- */

#define RHEAD 64 /* each block starts with its length, one cache line before it */

void *mp__pool_region_alloc(mp_pool *p, size_t size)
{
    if (size == 0 || size > p->region_size)
        return NULL;
    size_t need = RHEAD + ((size + 63) & ~(size_t)63);
    for (size_t i = 0; i < p->n_free; i++) {
        struct mp__extent *e = &p->free_ext[i];
        if (e->len < need)
            continue;
        char *block = p->region + e->off;
        e->off += need;
        e->len -= need;
        if (e->len == 0) {
            memmove(e, e + 1, (p->n_free - i - 1) * sizeof *e);
            p->n_free--;
        }
        *(size_t *)block = need;
        return block + RHEAD;
    }
    return NULL;
}

void mp__pool_region_free(mp_pool *p, void *ptr)
{
    if (ptr == NULL)
        return;
    char *block = (char *)ptr - RHEAD;
    size_t off = (size_t)(block - p->region), len = *(size_t *)block;
    if (len >= ((size_t)64 << 20))
        mp__release_pages(block, len); /* give large blocks' pages back */
    size_t i = 0;
    while (i < p->n_free && p->free_ext[i].off < off)
        i++;
    bool join_prev = i > 0 && p->free_ext[i - 1].off + p->free_ext[i - 1].len == off;
    bool join_next = i < p->n_free && off + len == p->free_ext[i].off;
    if (join_prev && join_next) {
        p->free_ext[i - 1].len += len + p->free_ext[i].len;
        memmove(&p->free_ext[i], &p->free_ext[i + 1], (p->n_free - i - 1) * sizeof *p->free_ext);
        p->n_free--;
    } else if (join_prev) {
        p->free_ext[i - 1].len += len;
    } else if (join_next) {
        p->free_ext[i].off = off;
        p->free_ext[i].len += len;
    } else {
        if (p->n_free == p->cap_free) {
            size_t cap = p->cap_free * 2;
            struct mp__extent *e = realloc(p->free_ext, cap * sizeof *e);
            if (e == NULL)
                return; /* leak the block rather than corrupt the list */
            p->free_ext = e;
            p->cap_free = cap;
        }
        memmove(&p->free_ext[i + 1], &p->free_ext[i], (p->n_free - i) * sizeof *p->free_ext);
        p->free_ext[i] = (struct mp__extent){off, len};
        p->n_free++;
    }
}

bool mp__pool_in_region(const mp_pool *p, const void *ptr, size_t len)
{
    const char *c = ptr;
    return c >= p->region && len <= p->region_size &&
           c - p->region <= (ptrdiff_t)(p->region_size - len);
}

void *mp_pool_shared_alloc(mp_pool *pool, size_t size)
{
    if (pool == NULL || pool->owner != mp__self_pid())
        return NULL;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    void *ptr = mp__pool_region_alloc(pool, size);
    mp__pool_unlock(pool);
    mp__pool_leave(pool);
    if (ptr != NULL)
        memset(ptr, 0, size);
    return ptr;
}

void mp_pool_shared_free(mp_pool *pool, void *ptr)
{
    if (pool == NULL || ptr == NULL || pool->owner != mp__self_pid())
        return;
    mp__pool_enter(pool);
    if (mp__pool_in_region(pool, ptr, 1)) {
        mp__pool_lock(pool);
        mp__pool_region_free(pool, ptr);
        mp__pool_unlock(pool);
    }
    mp__pool_leave(pool);
}

/* ---- results: completion ---- */

/* r's fields are final: queue it for its callback (handler thread), which then
 * marks it ready. Pool lock held. */
void mp__pool_complete(mp_pool *p, mp_async_result *r)
{
    r->completed = true;
    r->cb_next = NULL;
    if (p->cbq_tail)
        p->cbq_tail->cb_next = r;
    else
        p->cbq = r;
    p->cbq_tail = r;
    mp__pool_kick(p);
}

void mp__pool_free_unit(mp_pool *p, struct mp__unit *u)
{
    mp__pool_region_free(p, u->region);
    free(u->frame);
    free(u);
}

static char *dup_msg(const char *m)
{
    return m ? strdup(m) : NULL;
}

void mp__pool_map_finish(mp_pool *p, mp_async_result *r)
{
    for (size_t c = 0; c < r->n_chunks; c++) {
        if (r->chunks[c].status != 0) {
            r->status = r->chunks[c].status;
            r->task_code = r->chunks[c].task_code;
            r->msg = dup_msg(r->chunks[c].msg);
            break;
        }
    }
    mp__pool_complete(p, r);
}

/* Records chunk c of map r. payload (not owned) holds its results on success. */
void mp__pool_chunk_done(mp_pool *p, mp_async_result *r, size_t c, int status, int code,
                         const char *msg, const char *payload, size_t payload_len)
{
    struct mp__chunk_res *ch = &r->chunks[c];
    size_t first = c * r->chunksize;
    size_t count = r->n - first < r->chunksize ? r->n - first : r->chunksize;
    if (status == 0 && !r->var && payload_len != count * r->out_size)
        status = MP_EPROTO;
    if (status == 0 && r->var) {
        ch->buf = malloc(payload_len ? payload_len : 1);
        ch->offs = malloc(count * sizeof *ch->offs);
        if (ch->buf == NULL || ch->offs == NULL || payload_len < 8 * count) {
            status = ch->buf == NULL || ch->offs == NULL ? MP_ENOMEM : MP_EPROTO;
        } else {
            memcpy(ch->buf, payload, payload_len);
            size_t off = 8 * count;
            for (size_t k = 0; k < count && status == 0; k++) {
                uint64_t l;
                memcpy(&l, ch->buf + 8 * k, 8);
                ch->offs[k] = off;
                if (l > payload_len - off) /* lengths past the payload: not from our worker */
                    status = MP_EPROTO;
                off += l;
            }
        }
    } else if (status == 0 && count > 0) {
        memcpy(r->out + first * r->out_size, payload, payload_len);
    }
    ch->status = status;
    ch->task_code = code;
    ch->msg = dup_msg(msg);
    r->order[atomic_load(&r->n_order)] = c;
    atomic_store_explicit(&ch->done, 1, memory_order_release);
    atomic_store_explicit(&r->n_order, atomic_load(&r->n_order) + 1, memory_order_release);
    atomic_fetch_add(&r->items_done, count);
    atomic_fetch_add(&r->seq, 1);
    mp__futex_wake(&r->seq, INT32_MAX);
    if (--r->chunks_left == 0)
        mp__pool_map_finish(p, r);
}

/* Ends unit u (not a job) with an error; its result no longer waits for it. */
void mp__pool_fail_unit(mp_pool *p, struct mp__unit *u, int status, const char *msg)
{
    mp_async_result *r = u->r;
    if (r == NULL)
        return;
    u->r = NULL;
    if (r->kind == MP__R_APPLY) {
        r->status = status;
        r->msg = dup_msg(msg);
        mp__pool_complete(p, r);
    } else {
        mp__pool_chunk_done(p, r, u->chunk, status, 0, msg, NULL, 0);
    }
}

/* ---- zero-copy jobs ---- */

void mp__pool_job_finish(mp_pool *p, mp_async_result *r, int forced_status, const char *forced_msg)
{
    struct mp__job *j = r->job;
    if (atomic_load(&j->state) == 1) { /* the fast path completed it: status 0 */
        mp__pool_complete(p, r);
        return;
    }
    if (forced_status != 0) {
        r->status = forced_status;
        r->msg = dup_msg(forced_msg);
    } else {
        for (size_t c = 0; c < j->n_chunks; c++) {
            int st = atomic_load(&j->chunk_state[c]);
            if (st == MP__CHUNK_DONE)
                continue;
            size_t a = c * j->chunksize, b = a + j->chunksize < j->n ? a + j->chunksize : j->n;
            char buf[512];
            if (st == MP__CHUNK_FAILED) {
                r->status = MP_ETASKFAILED;
                r->task_code = j->chunk_code[c];
                snprintf(buf, sizeof buf, "kernel returned %d on items [%zu, %zu)", r->task_code, a,
                         b);
            } else {
                r->status = MP_EWORKERDIED;
                snprintf(buf, sizeof buf, "%s while running items [%zu, %zu)",
                         r->death_msg ? r->death_msg : "a worker died", a, b);
            }
            r->msg = strdup(buf);
            break;
        }
    }
    mp__pool_complete(p, r);
}

/* Worker slot leaves job r; died: its current chunk (if any) failed. */
void mp__pool_job_leave(mp_async_result *r, int slot, const char *death)
{
    struct mp__job *j = r->job;
    if (death != NULL) { /* its chunk (if it had claimed one) stays open: it failed */
        atomic_store(&j->current[slot], -1); /* the slot's replacement starts clean */
        r->died = true;
        if (r->death_msg == NULL)
            r->death_msg = strdup(death);
    }
    r->parts--;
}

static bool job_open_to(const mp_pool *p, const struct mp__worker *w)
{
    return w->up && !w->shut && !w->eof && !(p->maxtasks && w->sent >= p->maxtasks);
}

/* Sends job r to every worker that can still take it (pool lock held): at
 * submission, and when r has chunks nobody claimed and no participant left. */
void mp__pool_job_offer(mp_pool *p, mp_async_result *r)
{
    for (int i = 0; i < p->n; i++)
        if (job_open_to(p, &p->w[i]))
            mp__pool_job_send(p, r, i); /* out of memory: fewer participants */
}

/* A job is over once every chunk finished, or once no participant is left and
 * either no chunk is left to claim (an open one was claimed by a worker that died)
 * or a participant died (the job fails: it need not wait for a replacement). With
 * chunks unclaimed and no participant only because no worker could take the job
 * (each had its last task under maxtasksperchild, or was ending), it waits for the
 * replacements, which join it when they start. */
void mp__pool_check_jobs(mp_pool *p)
{
    for (mp_async_result **pp = &p->jobs, *r; (r = *pp) != NULL;) {
        struct mp__job *j = r->job;
        if (!r->completed && r->parts == 0 && !r->died && atomic_load(&j->next_chunk) < j->n_chunks)
            mp__pool_job_offer(p, r);
        if (!r->completed &&
            (atomic_load(&j->finished_chunks) == j->n_chunks ||
             (r->parts == 0 && (atomic_load(&j->next_chunk) >= j->n_chunks || r->died))))
            mp__pool_job_finish(p, r, 0, NULL);
        if (r->orphan && r->parts == 0 && atomic_load(&r->ready) == 1) {
            *pp = r->job_next;
            mp__pool_job_free(p, r);
            mp__result_release(r);
            continue;
        }
        pp = &r->job_next;
    }
}

void mp__pool_job_free(mp_pool *p, mp_async_result *r)
{
    mp__pool_region_free(p, r->job);
    r->job = NULL;
    r->pool = NULL;
    r->ready_word = &r->ready;
}

void mp__pool_job_orphan(mp_async_result *r)
{
    mp_pool *p = r->pool;
    mp__pool_lock(p);
    r->orphan = true; /* check_jobs frees it once the workers are out of it */
    mp__pool_kick(p);
    mp__pool_unlock(p);
}

/* ---- sending tasks ---- */

void mp__pool_out_push(struct mp__worker *w, struct mp__unit *u)
{
    u->next = NULL;
    if (w->tail)
        w->tail->next = u;
    else
        w->head = u;
    w->tail = u;
    w->n_out++;
    if (w->wcur == NULL) {
        w->wcur = u;
        w->woff = 0;
    }
}

/* Writes as much of w's unsent frames as the socket takes, without blocking. */
void mp__pool_write_units(struct mp__worker *w)
{
    while (w->wcur != NULL && !w->eof) {
        struct iovec iov[64];
        int cnt = 0;
        for (struct mp__unit *u = w->wcur; u != NULL && cnt < 64; u = u->next, cnt++) {
            size_t off = u == w->wcur ? w->woff : 0;
            iov[cnt] = (struct iovec){u->frame + off, u->frame_len - off};
        }
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(w->sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN: wait for POLLOUT; EPIPE: the worker is ending */
        }
        size_t left = (size_t)n;
        while (w->wcur != NULL && left >= w->wcur->frame_len - w->woff) {
            left -= w->wcur->frame_len - w->woff;
            w->wcur = w->wcur->next;
            w->woff = 0;
        }
        if (w->wcur != NULL)
            w->woff += left;
    }
}

static bool can_take(const mp_pool *p, const struct mp__worker *w)
{
    if (!w->up || w->shut || w->eof || (p->maxtasks && w->sent >= p->maxtasks))
        return false;
    return w->n_out == 0 || (p->n_pending >= 2 * (size_t)p->n && w->n_out < MP__POOL_MAX_OUT);
}

/* Moves pending tasks to workers with room and writes them. Pool lock held. Only
 * the handler writes to sockets; other threads queue and kick it. */
void mp__pool_dispatch(mp_pool *p)
{
    if (!on_handler(p)) {
        if (p->pend != NULL)
            mp__pool_kick(p);
        return;
    }
    while (p->pend != NULL) {
        struct mp__worker *best = NULL;
        for (int i = 0; i < p->n; i++)
            if (can_take(p, &p->w[i]) && (best == NULL || p->w[i].n_out < best->n_out))
                best = &p->w[i];
        if (best == NULL)
            break;
        struct mp__unit *u = p->pend;
        p->pend = u->next;
        if (p->pend == NULL)
            p->pend_tail = NULL;
        p->n_pending--;
        best->sent++;
        mp__pool_out_push(best, u);
    }
    for (int i = 0; i < p->n; i++)
        if (p->w[i].up && p->w[i].wcur != NULL)
            mp__pool_write_units(&p->w[i]);
}

struct mp__unit *mp__pool_make_unit(uint32_t kind, uint32_t flags, uint64_t fn, size_t count,
                                    size_t in_size, size_t out_size, size_t payload_len)
{
    if (payload_len > SIZE_MAX - sizeof(struct mp__task_hdr))
        return NULL;
    struct mp__unit *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->kind = kind;
    struct mp__task_hdr h = {.kind = kind,
                             .flags = flags,
                             .fn = fn,
                             .count = count,
                             .in_size = in_size,
                             .out_size = out_size,
                             .payload_len = payload_len};
    u->frame_len = sizeof h + payload_len;
    u->frame = malloc(u->frame_len);
    if (u->frame == NULL) {
        free(u);
        return NULL;
    }
    memcpy(u->frame, &h, sizeof h);
    return u;
}

void mp__pool_pend_push(mp_pool *p, struct mp__unit *u)
{
    ((struct mp__task_hdr *)u->frame)->id = u->id = ++p->next_id;
    u->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = u;
    else
        p->pend = u;
    p->pend_tail = u;
    p->n_pending++;
}

int mp__pool_check_pool(const mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    return p->owner == mp__self_pid() ? 0 : MP_ECHILD;
}

/* ---- the pool's lifecycle ---- */

void mp__pool_free(mp_pool *p)
{
    while (p->jobs != NULL) { /* detach: results outlive the region */
        mp_async_result *r = p->jobs;
        p->jobs = r->job_next;
        atomic_store(&r->items_done, atomic_load(&r->job->done_items));
        r->completed = true;
        mp__pool_job_free(p, r);
        atomic_store(&r->ready, 1);
        mp__result_release(r);
    }
    if (p->region != NULL)
        munmap(p->region, p->region_size);
    free(p->free_ext);
    free(p->w);
    mp__close_fd(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->inbox_mu);
    free(p);
}

int mp_pool_new(mp_pool **out, const mp_pool_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    mp_pool_options o = opt ? *opt : (mp_pool_options){0};
    if (o.processes < 0 || o.processes > MP__POOL_MAX_WORKERS)
        return MP_EINVAL;
    if (!o.threads && !mp__have_pidfd())
        return MP_ENOSYS;
    mp_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->inbox_mu, NULL);
    p->owner = mp__self_pid();
    p->n = o.processes ? o.processes : mp_cpu_count();
    p->threads = o.threads;
    p->maxtasks = o.maxtasksperchild;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->efd = mp__eventfd_new();
    p->w = calloc((size_t)p->n, sizeof *p->w);
    p->region_size =
        o.shared_size ? (o.shared_size + 4095) & ~(size_t)4095 : MP__POOL_REGION_DEFAULT;
    p->region = mmap(NULL, p->region_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    p->cap_free = 16;
    p->free_ext = malloc(p->cap_free * sizeof *p->free_ext);
    int rc = 0;
    if (p->efd < 0 || p->region == MAP_FAILED) {
        rc = p->efd < 0 ? -errno : MP_ENOMEM;
        if (p->region == MAP_FAILED)
            p->region = NULL;
        goto out_free;
    }
    if (p->w == NULL || p->free_ext == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    p->free_ext[0] = (struct mp__extent){0, p->region_size};
    p->n_free = 1;
    p->slots = mp__pool_region_alloc(p, (size_t)p->n * sizeof *p->slots);
    if (p->slots == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    /* Result batches in shared memory survive their worker; a small region keeps
     * its room for the caller and the workers batch in private memory. */
    if (!p->threads && (size_t)p->n * MP__BATCH_CAP <= p->region_size / 8)
        p->batches = mp__pool_region_alloc(p, (size_t)p->n * MP__BATCH_CAP);
    for (int i = 0; i < p->n; i++)
        p->w[i] = (struct mp__worker){.sock = -1, .pidfd = -1};
    fflush(NULL);
    /* The handler runs with every signal blocked, so signals reach the caller's
     * threads; workers get back the creator's mask. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &p->child_mask);
    int e = pthread_create(&p->handler, NULL, mp__pool_handler_main, p);
    pthread_sigmask(SIG_SETMASK, &p->child_mask, NULL);
    if (e != 0) {
        rc = -e;
        goto out_free;
    }
    mp__deadline d;
    mp__deadline_init(&d, -1);
    while (atomic_load(&p->started) == 0)
        mp__futex_wait(&p->started, 0, &d);
    if (p->start_rc != 0) {
        rc = p->start_rc;
        pthread_join(p->handler, NULL);
        goto out_free;
    }
    *out = p;
    return 0;

out_free:
    mp__pool_free(p);
    return rc;
}

int mp_pool_processes(const mp_pool *pool)
{
    return pool ? pool->n : 0; /* fixed at creation */
}

int mp_pool_worker_pids(mp_pool *pool, int *pids, int max)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    if (max < 0 || (pids == NULL && max > 0))
        return MP_EINVAL;
    int k = 0;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    for (int i = 0; i < pool->n && k < max; i++)
        if (pool->w[i].up && !pool->threads)
            pids[k++] = pool->w[i].pid;
    mp__pool_unlock(pool);
    mp__pool_leave(pool);
    return k;
}

int mp_pool_close(mp_pool *pool)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    if (pool->state == MP__RUN)
        mp__pool_set_state(pool, MP__CLOSE);
    mp__pool_kick(pool);
    mp__pool_unlock(pool);
    mp__pool_leave(pool);
    return 0;
}

static int wait_finished(mp_pool *p, const mp__deadline *d)
{
    while (atomic_load(&p->finished) == 0) {
        int rc = mp__futex_wait(&p->finished, 0, d);
        if (rc == MP_ETIMEDOUT)
            return atomic_load(&p->finished) ? 0 : rc;
    }
    mp__pool_lock(p);
    bool do_join = !p->joined && !p->free_at_end; /* free_at_end: the handler detached */
    p->joined = true;
    mp__pool_unlock(p);
    if (do_join)
        pthread_join(p->handler, NULL);
    return 0;
}

int mp_pool_terminate(mp_pool *pool)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    mp__pool_set_state(pool, MP__TERMINATE);
    mp__pool_kick(pool);
    mp__pool_unlock(pool);
    if (!on_handler(pool)) { /* from a callback: the handler finishes after it returns */
        mp__deadline d;
        mp__deadline_init(&d, -1);
        rc = wait_finished(pool, &d);
    }
    mp__pool_leave(pool);
    return rc;
}

int mp_pool_join(mp_pool *pool, int timeout_ms)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return MP_EINVAL;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    bool running = pool->state == MP__RUN;
    mp__pool_unlock(pool);
    if (running)
        rc = MP_EBUSY;
    else if (on_handler(pool))
        rc = MP_EBUSY; /* a callback cannot wait for its own thread */
    else
        rc = wait_finished(pool, &d);
    mp__pool_leave(pool);
    return rc;
}

void mp_pool_destroy(mp_pool *pool)
{
    if (pool == NULL || pool->owner != mp__self_pid())
        return;
    if (on_handler(pool)) { /* from a callback: the handler frees the pool as it ends */
        mp__pool_lock(pool);
        pool->free_at_end = true;
        mp__pool_unlock(pool);
        mp_pool_terminate(pool);
        return;
    }
    mp_pool_terminate(pool);
    mp__deadline d;
    mp__deadline_init(&d, -1);
    wait_finished(pool, &d);
    mp__pool_free(pool);
}
