/* pool.c — mp_pool: workers, dispatch and the result handler thread.
 *
 * Protocol. Each worker has a private stream socket to the pool's process. The
 * parent sends task frames (struct mp__task_hdr + payload, internal/pool.h) and
 * the worker answers each with one result frame, in order, written before it reads
 * the next task (pool_worker.c). A task's payload travels inline, or, when large,
 * in the pool's shared region: MAP_SHARED memory mapped before any worker was
 * forked, so its addresses are valid in every worker. Only the parent allocates
 * from the region (under pool->mu); a block is freed once its task completed.
 *
 * The parent keeps, per worker, the list of tasks sent and not yet answered
 * ("outstanding", in send order; wcur marks the first one not completely written).
 * Pending tasks wait in pool->pend until a worker has room: a worker takes a task
 * when it has none outstanding, or up to MAX_OUT when the backlog is long.
 *
 * The handler thread (the only one that forks, reaps or reads sockets) polls an
 * eventfd, every worker's socket and every worker's pidfd. When a worker ends,
 * the handler first reads what is left in its socket; then the first outstanding
 * task (if it was completely sent) is the one the worker was running, since every
 * earlier one was answered: it fails with MP_EWORKERDIED and a message naming the
 * signal or exit status. The others go back to the front of the pending queue. The
 * worker is replaced. So no result is lost and no call waits for a dead worker.
 *
 * Zero-copy maps (MP__UNIT_JOB): the job lives in the region; the parent sends a
 * JOB frame to every worker ("participants"). Workers claim chunks with an atomic
 * fetch_add on next_chunk, store the chunk in current[slot] while running it, then
 * chunk_state, then bump finished_chunks; the one that finishes the last chunk of a
 * job without callbacks or failures sets job->state and wakes the waiter directly
 * (fast path). A participant answers its JOB frame when no chunk is left. A
 * participant that dies leaves current[slot] naming the chunk it ran: that chunk
 * fails. Replacements join jobs that still have chunks. Once every participant is
 * out (or every chunk finished), the handler completes the job: any chunk still
 * open was claimed by a worker that died between fetch_add and current[slot].
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "internal/futex.h"
#include "internal/pidfd.h"
#include "internal/pool_parent.h"
#include "mproc/process.h"

#define MAX_OUT 32                 /* tasks in flight per worker with a long backlog */
#define REGION_MIN (64u << 10)     /* payloads this large go through the region */
#define REGION_DEFAULT ((size_t)1 << 30)
#define STAGE_CAP (64u << 10)
#define MAX_WORKERS 4096

enum pstate { RUN, CLOSE, TERMINATE };

struct unit {
    struct unit *next;
    uint64_t id;
    uint32_t kind;
    mp_async_result *r; /* NULL once the result no longer wants this task's answer */
    size_t chunk;
    char *frame; /* header + inline payload */
    size_t frame_len;
    void *region; /* region block holding the payload, or NULL */
};

struct worker {
    bool up;
    bool eof;       /* socket at EOF: stop reading, wait for the end */
    bool shut;      /* SHUT_WR sent: no more tasks */
    pid_t pid;
    int pidfd, sock;
    pthread_t thread;
    struct mp__worker_ctx *tctx; /* thread workers: their context */
    unsigned sent;  /* non-job tasks sent, for maxtasksperchild */
    struct unit *head, *tail, *wcur;
    size_t woff, n_out;
    char *st;       /* staging buffer for reads */
    size_t st_len;
    struct mp__result_hdr bh; /* a large frame being read into body */
    char *body;
    size_t body_len, body_got;
    bool big;
};

struct extent {
    size_t off, len;
};

struct mp_pool {
    pthread_mutex_t mu;
    pid_t owner;
    int n;
    bool threads;
    unsigned maxtasks;
    void (*initializer)(void *);
    void *initarg;
    struct worker *w;
    int efd;
    pthread_t handler;
    sigset_t child_mask;
    enum pstate state;             /* under mu */
    struct unit *pend, *pend_tail; /* under mu */
    size_t n_pending;
    uint64_t next_id;
    mp_async_result *jobs;         /* zero-copy results with their job attached; under mu */
    mp_async_result *cbq, *cbq_tail; /* completed, waiting for callbacks; under mu */
    char *region;
    size_t region_size;
    struct mp__wslot *slots;       /* n, in the region */
    struct extent *free_ext;       /* free extents of the region, by offset; under mu */
    size_t n_free, cap_free;
    _Atomic uint32_t started;      /* futex word: the handler started the workers */
    int start_rc;
    _Atomic uint32_t finished;     /* futex word: the handler has ended */
    bool joined;
    bool spawn_failed;
    bool sleeping; /* the handler is in (or about to enter) poll; under mu */
    bool kicked;   /* something happened since the handler last looked; under mu */
};

static _Thread_local char last_message[512];

const char *mp_pool_last_message(void) { return last_message; }

static void set_last_message(const char *m)
{
    snprintf(last_message, sizeof last_message, "%s", m ? m : "");
}

static void lock(mp_pool *p) { pthread_mutex_lock(&p->mu); }
static void unlock(mp_pool *p) { pthread_mutex_unlock(&p->mu); }

static void wake_handler(mp_pool *p)
{
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static bool on_handler(mp_pool *p) { return pthread_equal(pthread_self(), p->handler); }

/* Wakes the handler if it sleeps in poll (pool lock held). While it is awake it
 * looks at everything before sleeping again, so one wake per sleep is enough. */
static void kick(mp_pool *p)
{
    p->kicked = true;
    if (p->sleeping && !on_handler(p)) {
        p->sleeping = false;
        wake_handler(p);
    }
}

/* ---- the region: a first-fit allocator over parent-private extents ---- */

#define RHEAD 64 /* each block starts with its length, one cache line before it */

static void *region_alloc(mp_pool *p, size_t size)
{
    if (size == 0 || size > p->region_size)
        return NULL;
    size_t need = RHEAD + ((size + 63) & ~(size_t)63);
    for (size_t i = 0; i < p->n_free; i++) {
        struct extent *e = &p->free_ext[i];
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

static void region_free(mp_pool *p, void *ptr)
{
    if (ptr == NULL)
        return;
    char *block = (char *)ptr - RHEAD;
    size_t off = (size_t)(block - p->region), len = *(size_t *)block;
    if (len >= ((size_t)64 << 20))
        madvise(block, len, MADV_REMOVE); /* give large blocks' pages back */
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
            struct extent *e = realloc(p->free_ext, cap * sizeof *e);
            if (e == NULL)
                return; /* leak the block rather than corrupt the list */
            p->free_ext = e;
            p->cap_free = cap;
        }
        memmove(&p->free_ext[i + 1], &p->free_ext[i], (p->n_free - i) * sizeof *p->free_ext);
        p->free_ext[i] = (struct extent){off, len};
        p->n_free++;
    }
}

static bool in_region(const mp_pool *p, const void *ptr, size_t len)
{
    const char *c = ptr;
    return c >= p->region && len <= p->region_size && c - p->region <= (ptrdiff_t)(p->region_size - len);
}

void *mp_pool_shared_alloc(mp_pool *pool, size_t size)
{
    if (pool == NULL || pool->owner != getpid())
        return NULL;
    lock(pool);
    void *ptr = region_alloc(pool, size);
    unlock(pool);
    if (ptr != NULL)
        memset(ptr, 0, size);
    return ptr;
}

void mp_pool_shared_free(mp_pool *pool, void *ptr)
{
    if (pool == NULL || ptr == NULL || pool->owner != getpid() || !in_region(pool, ptr, 1))
        return;
    lock(pool);
    region_free(pool, ptr);
    unlock(pool);
}

/* ---- results: completion ---- */

/* r's fields are final: queue it for its callback (handler thread), which then
 * marks it ready. Pool lock held. */
static void complete(mp_pool *p, mp_async_result *r)
{
    r->completed = true;
    r->cb_next = NULL;
    if (p->cbq_tail)
        p->cbq_tail->cb_next = r;
    else
        p->cbq = r;
    p->cbq_tail = r;
    kick(p);
}

static void free_unit(mp_pool *p, struct unit *u)
{
    region_free(p, u->region);
    free(u->frame);
    free(u);
}

static char *dup_msg(const char *m) { return m ? strdup(m) : NULL; }

static void map_finish(mp_pool *p, mp_async_result *r)
{
    for (size_t c = 0; c < r->n_chunks; c++) {
        if (r->chunks[c].status != 0) {
            r->status = r->chunks[c].status;
            r->task_code = r->chunks[c].task_code;
            r->msg = dup_msg(r->chunks[c].msg);
            break;
        }
    }
    complete(p, r);
}

/* Records chunk c of map r. payload (not owned) holds its results on success. */
static void chunk_done(mp_pool *p, mp_async_result *r, size_t c, int status, int code, const char *msg,
                       const char *payload, size_t payload_len)
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
            for (size_t k = 0; k < count; k++) {
                uint64_t l;
                memcpy(&l, ch->buf + 8 * k, 8);
                ch->offs[k] = off;
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
        map_finish(p, r);
}

/* Ends unit u (not a job) with an error; its result no longer waits for it. */
static void fail_unit(mp_pool *p, struct unit *u, int status, const char *msg)
{
    mp_async_result *r = u->r;
    if (r == NULL)
        return;
    u->r = NULL;
    if (r->kind == MP__R_APPLY) {
        r->status = status;
        r->msg = dup_msg(msg);
        complete(p, r);
    } else {
        chunk_done(p, r, u->chunk, status, 0, msg, NULL, 0);
    }
}

/* ---- zero-copy jobs ---- */

static void job_finish(mp_pool *p, mp_async_result *r, int forced_status, const char *forced_msg)
{
    struct mp__job *j = r->job;
    if (atomic_load(&j->state) == 1) { /* the fast path completed it: status 0 */
        complete(p, r);
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
                snprintf(buf, sizeof buf, "kernel returned %d on items [%zu, %zu)", r->task_code, a, b);
            } else {
                r->status = MP_EWORKERDIED;
                snprintf(buf, sizeof buf, "%s while running items [%zu, %zu)",
                         r->death_msg ? r->death_msg : "a worker died", a, b);
            }
            r->msg = strdup(buf);
            break;
        }
    }
    complete(p, r);
}

/* Worker slot leaves job r; died: its current chunk (if any) failed. */
static void job_leave(mp_async_result *r, int slot, const char *death)
{
    struct mp__job *j = r->job;
    if (death != NULL) {
        int64_t c = atomic_load(&j->current[slot]);
        if (c >= 0) {
            atomic_store(&j->current[slot], -1);
            if (r->death_msg == NULL)
                r->death_msg = strdup(death);
        }
    }
    r->parts--;
}

static void check_jobs(mp_pool *p)
{
    for (mp_async_result **pp = &p->jobs, *r; (r = *pp) != NULL;) {
        struct mp__job *j = r->job;
        if (!r->completed && (r->parts == 0 || atomic_load(&j->finished_chunks) == j->n_chunks))
            job_finish(p, r, 0, NULL);
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
    region_free(p, r->job);
    r->job = NULL;
    r->pool = NULL;
    r->ready_word = &r->ready;
}

void mp__pool_job_orphan(mp_async_result *r)
{
    mp_pool *p = r->pool;
    lock(p);
    r->orphan = true; /* check_jobs frees it once the workers are out of it */
    kick(p);
    unlock(p);
}

/* ---- sending tasks ---- */

static void out_push(struct worker *w, struct unit *u)
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
static void write_units(struct worker *w)
{
    while (w->wcur != NULL && !w->eof) {
        struct iovec iov[64];
        int cnt = 0;
        for (struct unit *u = w->wcur; u != NULL && cnt < 64; u = u->next, cnt++) {
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

static bool can_take(const mp_pool *p, const struct worker *w)
{
    if (!w->up || w->shut || w->eof || (p->maxtasks && w->sent >= p->maxtasks))
        return false;
    return w->n_out == 0 || (p->n_pending >= 2 * (size_t)p->n && w->n_out < MAX_OUT);
}

/* Moves pending tasks to workers with room and writes them. Pool lock held. Only
 * the handler writes to sockets; other threads queue and kick it. */
static void dispatch(mp_pool *p)
{
    if (!on_handler(p)) {
        if (p->pend != NULL)
            kick(p);
        return;
    }
    while (p->pend != NULL) {
        struct worker *best = NULL;
        for (int i = 0; i < p->n; i++)
            if (can_take(p, &p->w[i]) && (best == NULL || p->w[i].n_out < best->n_out))
                best = &p->w[i];
        if (best == NULL)
            break;
        struct unit *u = p->pend;
        p->pend = u->next;
        if (p->pend == NULL)
            p->pend_tail = NULL;
        p->n_pending--;
        best->sent++;
        out_push(best, u);
    }
    for (int i = 0; i < p->n; i++)
        if (p->w[i].up && p->w[i].wcur != NULL)
            write_units(&p->w[i]);
}

static struct unit *make_unit(uint32_t kind, uint32_t flags, uint64_t fn, size_t count, size_t in_size,
                              size_t out_size, size_t payload_len)
{
    struct unit *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->kind = kind;
    struct mp__task_hdr h = {.kind = kind, .flags = flags, .fn = fn, .count = count,
                             .in_size = in_size, .out_size = out_size, .payload_len = payload_len};
    u->frame_len = sizeof h + payload_len;
    u->frame = malloc(u->frame_len);
    if (u->frame == NULL) {
        free(u);
        return NULL;
    }
    memcpy(u->frame, &h, sizeof h);
    return u;
}

static void pend_push(mp_pool *p, struct unit *u)
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

/* getpid() is a system call; the pool's calls compare with a cached copy that a
 * fork handler refreshes in the child. */
static pid_t my_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void refresh_pid(void) { my_pid = getpid(); }

static void init_pid(void)
{
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid);
}

static pid_t self_pid(void)
{
    pthread_once(&pid_once, init_pid);
    return my_pid;
}

static int check_pool(const mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    return p->owner == self_pid() ? 0 : MP_ECHILD;
}


/* A unit whose payload_len bytes go to *dst: a region block when large and the
 * region has room, else inline in the frame. Takes the pool lock briefly. */
static struct unit *new_unit(mp_pool *p, uint32_t kind, uint32_t flags, uint64_t fn, size_t count,
                             size_t in_size, size_t out_size, size_t payload_len, char **dst)
{
    void *block = NULL;
    if (payload_len >= REGION_MIN) {
        lock(p);
        block = region_alloc(p, payload_len);
        unlock(p);
    }
    struct unit *u = make_unit(kind, flags | (block ? MP__UNIT_REGION : 0), fn, count, in_size, out_size,
                               block ? 0 : payload_len);
    if (u == NULL) {
        if (block) {
            lock(p);
            region_free(p, block);
            unlock(p);
        }
        return NULL;
    }
    struct mp__task_hdr *h = (struct mp__task_hdr *)u->frame;
    h->payload_len = payload_len;
    if (block) {
        u->region = block;
        h->region_off = (uint64_t)(uintptr_t)block;
    }
    *dst = block ? block : u->frame + sizeof *h;
    return u;
}

static void free_units(mp_pool *p, struct unit *list)
{
    lock(p);
    while (list) {
        struct unit *next = list->next;
        free_unit(p, list);
        list = next;
    }
    unlock(p);
}

/* Queues a list of units (in order) for result r; MP_ECLOSED frees them. */
static int submit(mp_pool *p, struct unit *list)
{
    lock(p);
    if (p->state != RUN) {
        unlock(p);
        free_units(p, list);
        return MP_ECLOSED;
    }
    while (list) {
        struct unit *next = list->next;
        pend_push(p, list);
        list = next;
    }
    dispatch(p);
    unlock(p);
    return 0;
}

int mp_pool_apply_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *arg,
                        size_t len, const mp_async_options *opt)
{
    if (out != NULL)
        *out = NULL;
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    if (fn == NULL || (arg == NULL && len > 0))
        return MP_EINVAL;
    mp_async_result *r = mp__result_new(MP__R_APPLY, out != NULL ? 2 : 1);
    if (r == NULL)
        return MP_ENOMEM;
    char *dst;
    struct unit *u = new_unit(pool, MP__UNIT_APPLY, 0, (uint64_t)(uintptr_t)fn, 1, 0, 0, len, &dst);
    if (u == NULL) {
        mp__result_release(r);
        if (out)
            mp__result_release(r);
        return MP_ENOMEM;
    }
    if (len > 0)
        memcpy(dst, arg, len);
    r->handler = pool->handler;
    r->n = 1;
    if (opt != NULL)
        r->cb = *opt;
    u->r = r;
    rc = submit(pool, u);
    if (rc != 0) {
        mp__result_release(r);
        if (out)
            mp__result_release(r);
        return rc;
    }
    if (out != NULL)
        *out = r;
    return 0;
}

int mp_pool_apply(mp_pool *pool, mp_task_fn fn, const void *arg, size_t len, void **result,
                  size_t *result_len)
{
    if (result)
        *result = NULL;
    if (result_len)
        *result_len = 0;
    mp_async_result *r;
    int rc = mp_pool_apply_async(pool, &r, fn, arg, len, NULL);
    if (rc != 0)
        return rc;
    rc = mp_async_result_get(r, -1, NULL, NULL);
    set_last_message(r->msg);
    if (rc == 0) {
        if (result_len)
            *result_len = r->len;
        if (result) {
            *result = r->data;
            r->data = NULL;
        }
    }
    mp_async_result_destroy(r);
    return rc;
}

/* Size of item i's payload for the map forms. */
static size_t item_len(const void *in, size_t in_size, const mp_args *tuples, size_t i)
{
    if (tuples != NULL) {
        size_t l = 8 + 8 * tuples[i].argc;
        for (size_t a = 0; a < tuples[i].argc; a++)
            l += tuples[i].argv[a].len;
        return l;
    }
    return in_size ? in_size : ((const mp_buf *)in)[i].len;
}

static void write_item(char *dst, const void *in, size_t in_size, const mp_args *tuples, size_t i)
{
    if (tuples != NULL) {
        uint64_t argc = tuples[i].argc;
        memcpy(dst, &argc, 8);
        char *data = dst + 8 + 8 * argc;
        for (size_t a = 0; a < argc; a++) {
            uint64_t l = tuples[i].argv[a].len;
            memcpy(dst + 8 + 8 * a, &l, 8);
            if (l)
                memcpy(data, tuples[i].argv[a].data, l);
            data += l;
        }
    } else if (in_size) {
        memcpy(dst, (const char *)in + i * in_size, in_size);
    } else if (((const mp_buf *)in)[i].len) {
        memcpy(dst, ((const mp_buf *)in)[i].data, ((const mp_buf *)in)[i].len);
    }
}

static size_t default_chunksize(const mp_pool *p, size_t n)
{
    size_t d = 4 * (size_t)p->n;
    return n == 0 ? 1 : (n + d - 1) / d;
}

static int check_items(const void *in, size_t in_size, const mp_args *tuples, size_t n)
{
    if (n > 0 && in == NULL && tuples == NULL)
        return MP_EINVAL;
    if (in_size && n > SIZE_MAX / in_size)
        return MP_EOVERFLOW;
    for (size_t i = 0; i < n && !in_size; i++) {
        if (tuples) {
            if (tuples[i].argc > 0 && tuples[i].argv == NULL)
                return MP_EINVAL;
            for (size_t a = 0; a < tuples[i].argc; a++)
                if (tuples[i].argv[a].data == NULL && tuples[i].argv[a].len > 0)
                    return MP_EINVAL;
        } else if (((const mp_buf *)in)[i].data == NULL && ((const mp_buf *)in)[i].len > 0) {
            return MP_EINVAL;
        }
    }
    return 0;
}

static int map_common(mp_pool *pool, mp_async_result **out, uint64_t fn, const void *in, size_t in_size,
                      const mp_args *tuples, size_t n, void *out_array, size_t out_size,
                      const mp_async_options *opt, bool unordered)
{
    if (out != NULL)
        *out = NULL;
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    if (out == NULL || fn == 0)
        return MP_EINVAL;
    if ((rc = check_items(in, in_size, tuples, n)) != 0)
        return rc;
    if (out_size && n > SIZE_MAX / out_size)
        return MP_EOVERFLOW;
    mp_async_result *r = mp__result_new(MP__R_MAP, 2);
    if (r == NULL)
        return MP_ENOMEM;
    r->handler = pool->handler;
    if (opt != NULL)
        r->cb = *opt;
    r->n = n;
    r->chunksize = opt && opt->chunksize ? opt->chunksize : default_chunksize(pool, n);
    r->n_chunks = n == 0 ? 0 : (n - 1) / r->chunksize + 1;
    r->chunks_left = r->n_chunks;
    r->out_size = out_size;
    r->var = out_size == 0;
    r->unordered = unordered;
    r->out = out_array;
    if (!r->var && r->out == NULL && n > 0) {
        r->out = malloc(n * out_size);
        r->out_owned = true;
    }
    r->chunks = calloc(r->n_chunks ? r->n_chunks : 1, sizeof *r->chunks);
    r->order = malloc((r->n_chunks ? r->n_chunks : 1) * sizeof *r->order);
    if ((!r->var && n > 0 && r->out == NULL) || r->chunks == NULL || r->order == NULL) {
        rc = MP_ENOMEM;
        goto out_release;
    }
    uint32_t kind = in_size && !tuples ? MP__UNIT_MAP_FIXED : MP__UNIT_MAP_VAR;
    uint32_t flags = tuples ? MP__UNIT_STAR : 0;
    struct unit *list = NULL, **tail = &list;
    for (size_t c = 0; c < r->n_chunks; c++) {
        size_t first = c * r->chunksize;
        size_t count = n - first < r->chunksize ? n - first : r->chunksize;
        size_t payload = kind == MP__UNIT_MAP_VAR ? 8 * count : 0;
        for (size_t i = first; i < first + count; i++)
            payload += item_len(in, in_size, tuples, i);
        char *dst;
        struct unit *u = new_unit(pool, kind, flags, fn, count, kind == MP__UNIT_MAP_FIXED ? in_size : 0,
                                  out_size, payload, &dst);
        if (u == NULL) {
            free_units(pool, list);
            rc = MP_ENOMEM;
            goto out_release;
        }
        if (kind == MP__UNIT_MAP_VAR) {
            char *data = dst + 8 * count;
            for (size_t i = first; i < first + count; i++) {
                uint64_t l = item_len(in, in_size, tuples, i);
                memcpy(dst + 8 * (i - first), &l, 8);
                write_item(data, in, in_size, tuples, i);
                data += l;
            }
        } else if (count > 0) {
            memcpy(dst, (const char *)in + first * in_size, count * in_size);
        }
        u->r = r;
        u->chunk = c;
        *tail = u;
        tail = &u->next;
    }
    if (n == 0) {
        lock(pool);
        rc = pool->state == RUN ? 0 : MP_ECLOSED;
        if (rc == 0)
            map_finish(pool, r);
        unlock(pool);
    } else {
        rc = submit(pool, list);
    }
    if (rc != 0)
        goto out_release;
    *out = r;
    return 0;

out_release:
    mp__result_release(r);
    mp__result_release(r);
    return rc;
}

int mp_pool_map_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in, size_t in_size,
                      size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt, false);
}

int mp_pool_imap(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in, size_t in_size,
                 size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt, false);
}

int mp_pool_imap_unordered(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                           size_t in_size, size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt, true);
}

int mp_pool_starmap_async(mp_pool *pool, mp_async_result **out, mp_star_fn fn, const mp_args *tuples,
                          size_t n, size_t out_size, const mp_async_options *opt)
{
    if (tuples == NULL && n > 0)
        return MP_EINVAL;
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, NULL, 0, tuples ? tuples : (const mp_args *)"",
                      n, NULL, out_size, opt, false);
}

static int sync_map(mp_pool *pool, uint64_t fn, const void *in, size_t in_size, const mp_args *tuples,
                    size_t n, void *out, size_t out_size, const mp_async_options *opt)
{
    if (out_size == 0 || (out == NULL && n > 0))
        return MP_EINVAL;
    mp_async_result *r;
    int rc = map_common(pool, &r, fn, in, in_size, tuples, n, out, out_size, opt, false);
    if (rc != 0)
        return rc;
    rc = mp_async_result_get(r, -1, NULL, NULL);
    set_last_message(r->msg);
    mp_async_result_destroy(r);
    return rc;
}

int mp_pool_map(mp_pool *pool, mp_task_fn fn, const void *in, size_t in_size, size_t n, void *out,
                size_t out_size, const mp_async_options *opt)
{
    return sync_map(pool, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, out, out_size, opt);
}

int mp_pool_starmap(mp_pool *pool, mp_star_fn fn, const mp_args *tuples, size_t n, void *out,
                    size_t out_size, const mp_async_options *opt)
{
    if (tuples == NULL && n > 0)
        return MP_EINVAL;
    return sync_map(pool, (uint64_t)(uintptr_t)fn, NULL, 0, tuples ? tuples : (const mp_args *)"", n, out,
                    out_size, opt);
}

/* Sends job r to worker i (pool lock held). */
static int job_send(mp_pool *p, mp_async_result *r, int i)
{
    struct unit *u = make_unit(MP__UNIT_JOB, 0, 0, 0, 0, 0, 0);
    if (u == NULL)
        return MP_ENOMEM;
    struct mp__task_hdr *h = (struct mp__task_hdr *)u->frame;
    h->id = u->id = ++p->next_id;
    h->region_off = (uint64_t)(uintptr_t)r->job;
    u->r = r;
    out_push(&p->w[i], u);
    r->parts++;
    return 0;
}

static bool job_open_to(const mp_pool *p, const struct worker *w)
{
    return w->up && !w->shut && !w->eof && !(p->maxtasks && w->sent >= p->maxtasks);
}

int mp_pool_map_shared_async(mp_pool *pool, mp_async_result **out, mp_kernel_fn kernel, const void *in,
                             size_t in_size, void *out_array, size_t out_size, size_t n, void *ctx,
                             const mp_async_options *opt)
{
    if (out != NULL)
        *out = NULL;
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    if (out == NULL || kernel == NULL || (in_size && in == NULL) || (out_size && out_array == NULL))
        return MP_EINVAL;
    if ((in_size && n > SIZE_MAX / in_size) || (out_size && n > SIZE_MAX / out_size))
        return MP_EOVERFLOW;
    if (!pool->threads && n > 0 && ((in_size && !in_region(pool, in, n * in_size)) ||
                                    (out_size && !in_region(pool, out_array, n * out_size))))
        return MP_EINVAL;
    mp_async_result *r = mp__result_new(MP__R_JOB, 3); /* caller, ready, jobs list */
    if (r == NULL)
        return MP_ENOMEM;
    r->handler = pool->handler;
    if (opt != NULL)
        r->cb = *opt;
    r->n = n;
    r->chunksize = opt && opt->chunksize ? opt->chunksize : default_chunksize(pool, n);
    r->n_chunks = n == 0 ? 0 : (n - 1) / r->chunksize + 1;
    size_t slots = (size_t)pool->n;
    size_t size = sizeof(struct mp__job) + slots * sizeof(int64_t) + r->n_chunks * (sizeof(int32_t) + 1);
    lock(pool);
    if (pool->state != RUN) {
        unlock(pool);
        rc = MP_ECLOSED;
        goto out_release;
    }
    struct mp__job *j = region_alloc(pool, size);
    if (j == NULL) {
        unlock(pool);
        rc = MP_ENOMEM;
        goto out_release;
    }
    memset(j, 0, size);
    j->kernel = (uint64_t)(uintptr_t)kernel;
    j->ctx = ctx;
    j->in = in_size ? in : NULL;
    j->out = out_size ? out_array : NULL;
    j->in_size = in_size;
    j->out_size = out_size;
    j->n = n;
    j->chunksize = r->chunksize;
    j->n_chunks = r->n_chunks;
    j->n_slots = pool->n;
    j->current = (_Atomic int64_t *)(j + 1);
    j->chunk_code = (int32_t *)(j->current + slots);
    j->chunk_state = (_Atomic uint8_t *)(j->chunk_code + r->n_chunks);
    for (size_t i = 0; i < slots; i++)
        atomic_store(&j->current[i], -1);
    atomic_store(&j->fast, r->cb.callback == NULL && r->cb.error_callback == NULL);
    r->job = j;
    r->pool = pool;
    r->ready_word = &j->state;
    r->job_next = pool->jobs;
    pool->jobs = r;
    for (int i = 0; i < pool->n && n > 0; i++)
        if (job_open_to(pool, &pool->w[i]))
            job_send(pool, r, i); /* out of memory: fewer participants */
    kick(pool); /* it writes the job frames, or completes a job nobody could join */
    unlock(pool);
    *out = r;
    return 0;

out_release:
    for (int k = 0; k < 3; k++)
        mp__result_release(r);
    return rc;
}

int mp_pool_map_shared(mp_pool *pool, mp_kernel_fn kernel, const void *in, size_t in_size, void *out,
                       size_t out_size, size_t n, void *ctx, const mp_async_options *opt)
{
    mp_async_result *r;
    int rc = mp_pool_map_shared_async(pool, &r, kernel, in, in_size, out, out_size, n, ctx, opt);
    if (rc != 0)
        return rc;
    rc = mp_async_result_get(r, -1, NULL, NULL);
    set_last_message(r->msg);
    mp_async_result_destroy(r);
    return rc;
}

/* ---- workers ---- */

static void *thread_main(void *arg)
{
    struct mp__worker_ctx *c = arg;
    mp__pool_worker_main(c);
    mp__close_fd(c->fd);
    return NULL;
}

/* In the child just after fork (pool lock held by the forking thread in the
 * parent; the child never takes it). Never returns. */
static _Noreturn void child_main(mp_pool *p, int i, int fd, int parent_end, pid_t ppid)
{
    sigprocmask(SIG_SETMASK, &p->child_mask, NULL);
    __fpurge(stdout); /* the parent's unflushed output is the parent's to print */
    __fpurge(stderr);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* tied to the handler thread, which outlives us */
    if (getppid() != ppid)
        _exit(1);
    mp__close_fd(p->efd);
    mp__close_fd(parent_end);
    for (int k = 0; k < p->n; k++) {
        if (k != i && p->w[k].up) {
            mp__close_fd(p->w[k].sock);
            mp__close_fd(p->w[k].pidfd);
        }
    }
    struct mp__worker_ctx c = {.fd = fd, .slot = i, .running = &p->slots[i].running, .maxtasks = p->maxtasks,
                               .initializer = p->initializer, .initarg = p->initarg};
    mp__pool_worker_main(&c);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* Starts worker i (handler thread, pool lock held). */
static int spawn(mp_pool *p, int i)
{
    struct worker *w = &p->w[i];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int rc = 0;
    char *st = malloc(STAGE_CAP);
    if (st == NULL || fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
        rc = st == NULL ? MP_ENOMEM : -errno;
        goto out_close;
    }
    struct worker nw = {.up = true, .sock = sv[0], .pidfd = -1, .st = st};
    atomic_store(&p->slots[i].running, 0);
    if (p->threads) {
        nw.tctx = malloc(sizeof *nw.tctx);
        if (nw.tctx == NULL) {
            rc = MP_ENOMEM;
            goto out_close;
        }
        *nw.tctx = (struct mp__worker_ctx){.fd = sv[1], .slot = i, .running = &p->slots[i].running,
                                           .maxtasks = p->maxtasks,
                                           .initializer = p->initializer, .initarg = p->initarg};
        int e = pthread_create(&nw.thread, NULL, thread_main, nw.tctx);
        if (e != 0) {
            free(nw.tctx);
            rc = -e;
            goto out_close;
        }
    } else {
        pid_t ppid = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            goto out_close;
        }
        if (pid == 0)
            child_main(p, i, sv[1], sv[0], ppid);
        mp__close_fd(sv[1]);
        nw.pid = pid;
        nw.pidfd = mp__pidfd_open(pid);
        if (nw.pidfd < 0) {
            rc = nw.pidfd;
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            mp__close_fd(sv[0]);
            free(st);
            return rc;
        }
    }
    *w = nw;
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed && atomic_load(&r->job->next_chunk) < r->n_chunks)
            job_send(p, r, i);
    return 0;

out_close:
    free(st);
    mp__close_fd(sv[0]);
    mp__close_fd(sv[1]);
    return rc;
}

/* Hands one result frame of worker i to its task. body holds the message then the
 * payload; owned: body is malloc'd and may be kept. False: protocol violation. */
static bool deliver(mp_pool *p, int i, const struct mp__result_hdr *h, char *body, bool owned)
{
    struct worker *w = &p->w[i];
    struct unit *u = w->head;
    if (u == NULL || u->id != h->id || u == w->wcur) {
        if (owned)
            free(body);
        return false;
    }
    w->head = u->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->n_out--;
    char *msg = h->msg_len ? strndup(body, h->msg_len) : NULL;
    const char *payload = body + h->msg_len;
    mp_async_result *r = u->r;
    if (r != NULL && u->kind == MP__UNIT_APPLY) {
        r->status = h->status;
        r->task_code = h->task_code;
        r->msg = msg;
        msg = NULL;
        if (h->status == 0 && h->payload_len > 0) {
            if (owned && h->msg_len == 0) {
                r->data = body;
                body = NULL;
            } else if ((r->data = malloc(h->payload_len)) != NULL) {
                memcpy(r->data, payload, h->payload_len);
            } else {
                r->status = MP_ENOMEM;
            }
            r->len = h->payload_len;
        }
        complete(p, r);
    } else if (r != NULL && u->kind == MP__UNIT_JOB) {
        job_leave(r, i, NULL);
    } else if (r != NULL) {
        chunk_done(p, r, u->chunk, h->status, h->task_code, msg, payload, h->payload_len);
    }
    free(msg);
    if (owned)
        free(body);
    free_unit(p, u);
    return true;
}

static void kill_worker(mp_pool *p, struct worker *w)
{
    if (p->threads)
        shutdown(w->sock, SHUT_RDWR);
    else
        mp__pidfd_signal(w->pidfd, SIGKILL);
}

/* Reads and delivers whatever worker i has sent, without blocking. */
static void read_results(mp_pool *p, int i)
{
    struct worker *w = &p->w[i];
    const size_t hs = sizeof(struct mp__result_hdr);
    while (!w->eof) {
        ssize_t n;
        if (w->big) {
            n = read(w->sock, w->body + w->body_got, w->body_len - w->body_got);
            if (n > 0 && (w->body_got += (size_t)n) == w->body_len) {
                w->big = false;
                char *b = w->body;
                w->body = NULL;
                if (!deliver(p, i, &w->bh, b, true))
                    goto broken;
            }
        } else {
            size_t off = 0;
            while (w->st_len - off >= hs) {
                struct mp__result_hdr h;
                memcpy(&h, w->st + off, hs);
                if (h.msg_len > SIZE_MAX / 4 || h.payload_len > SIZE_MAX / 4)
                    goto broken;
                size_t total = h.msg_len + h.payload_len;
                if (w->st_len - off - hs >= total) {
                    if (!deliver(p, i, &h, w->st + off + hs, false))
                        goto broken;
                    off += hs + total;
                } else if (total > STAGE_CAP - hs) {
                    w->body = malloc(total);
                    if (w->body == NULL)
                        goto broken;
                    w->bh = h;
                    w->body_len = total;
                    w->body_got = w->st_len - off - hs;
                    memcpy(w->body, w->st + off + hs, w->body_got);
                    w->big = true;
                    off = w->st_len;
                } else {
                    break;
                }
            }
            memmove(w->st, w->st + off, w->st_len - off);
            w->st_len -= off;
            if (w->big)
                continue;
            n = read(w->sock, w->st + w->st_len, STAGE_CAP - w->st_len);
            if (n > 0)
                w->st_len += (size_t)n;
        }
        if (n == 0) {
            w->eof = true;
        } else if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                w->eof = true;
            return;
        }
    }
    return;
broken: /* a worker that breaks the protocol is not trusted further */
    w->eof = true;
    kill_worker(p, w);
}

static void describe_end(char *buf, size_t size, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "worker %d was killed by signal %d (%s)", (int)pid, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "worker %d exited with status %d", (int)pid, WEXITSTATUS(status));
}

/* Worker i has ended (or is ending: thread at EOF): settle its tasks. */
static void worker_down(mp_pool *p, int i)
{
    struct worker *w = &p->w[i];
    read_results(p, i);
    char msg[256];
    if (p->threads) {
        pthread_join(w->thread, NULL);
        free(w->tctx);
        snprintf(msg, sizeof msg, "worker thread %d ended", i);
    } else {
        int status = 0;
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
        describe_end(msg, sizeof msg, w->pid, status);
    }
    /* The task the worker was running fails; the others it had (not started, or
     * finished with their results unsent) run again elsewhere. */
    uint64_t running = atomic_load(&p->slots[i].running);
    struct unit *requeue = NULL, *last = NULL;
    size_t n_requeue = 0;
    for (struct unit *u = w->head, *next; u != NULL; u = next) {
        next = u->next;
        if (u->kind == MP__UNIT_JOB) {
            if (u->r != NULL)
                job_leave(u->r, i, u->id == running ? msg : NULL);
            free_unit(p, u);
        } else if (u->r == NULL) {
            free_unit(p, u);
        } else if (u->id == running) {
            fail_unit(p, u, MP_EWORKERDIED, msg);
            free_unit(p, u);
        } else {
            u->next = NULL;
            if (last)
                last->next = u;
            else
                requeue = u;
            last = u;
            n_requeue++;
        }
    }
    if (requeue != NULL) { /* back to the front of the queue, in their order */
        last->next = p->pend;
        if (p->pend == NULL)
            p->pend_tail = last;
        p->pend = requeue;
        p->n_pending += n_requeue;
    }
    mp__close_fd(w->sock);
    mp__close_fd(w->pidfd);
    free(w->st);
    free(w->body);
    *w = (struct worker){.sock = -1, .pidfd = -1};
}

static bool has_work(const mp_pool *p)
{
    if (p->pend != NULL)
        return true;
    for (int i = 0; i < p->n; i++)
        if (p->w[i].up && p->w[i].n_out > 0)
            return true;
    for (const mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed)
            return true;
    return false;
}

static void do_terminate(mp_pool *p)
{
    for (int i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (!w->up)
            continue;
        kill_worker(p, w);
        for (struct unit *u = w->head; u != NULL; u = u->next)
            if (u->kind != MP__UNIT_JOB)
                fail_unit(p, u, MP_ETERMINATED, "the pool was terminated");
    }
    while (p->pend != NULL) {
        struct unit *u = p->pend;
        p->pend = u->next;
        fail_unit(p, u, MP_ETERMINATED, "the pool was terminated");
        free_unit(p, u);
    }
    p->pend_tail = NULL;
    p->n_pending = 0;
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed)
            job_finish(p, r, MP_ETERMINATED, "the pool was terminated");
}

/* Runs callbacks, then marks each result ready. Handler thread, no lock held. */
static void run_callbacks(mp_async_result *list)
{
    while (list != NULL) {
        mp_async_result *r = list;
        list = r->cb_next;
        mp_result_callback cb = r->status == 0 ? r->cb.callback : r->cb.error_callback;
        if (cb != NULL)
            cb(r, r->cb.cb_arg);
        _Atomic uint32_t *word = r->ready_word;
        /* 2 means a waiter sleeps on the word: only then is a wake needed. */
        if (atomic_exchange(&r->ready, 1) == 2)
            mp__futex_wake(&r->ready, INT32_MAX);
        if (word != &r->ready && atomic_exchange(word, 1) == 2)
            mp__futex_wake(word, INT32_MAX);
        mp__result_release(r);
    }
}

static void *handler_main(void *arg)
{
    mp_pool *p = arg;
    struct pollfd *pfd = calloc(1 + 2 * (size_t)p->n, sizeof *pfd);
    lock(p);
    int rc = pfd == NULL ? MP_ENOMEM : 0;
    for (int i = 0; i < p->n && rc == 0; i++)
        rc = spawn(p, i);
    p->start_rc = rc;
    if (rc != 0) {
        for (int i = 0; i < p->n; i++) {
            if (p->w[i].up) {
                kill_worker(p, &p->w[i]);
                worker_down(p, i);
            }
        }
    }
    unlock(p);
    atomic_store(&p->started, 1);
    mp__futex_wake(&p->started, INT32_MAX);
    if (rc != 0) {
        free(pfd);
        return NULL;
    }
    bool terminated = false;
    for (;;) {
        lock(p);
        int nfd = 1;
        pfd[0] = (struct pollfd){.fd = p->efd, .events = POLLIN};
        for (int i = 0; i < p->n; i++) {
            struct worker *w = &p->w[i];
            pfd[nfd++] = (struct pollfd){.fd = w->up && !w->eof ? w->sock : -1,
                                         .events = (short)(POLLIN | (w->wcur ? POLLOUT : 0))};
            pfd[nfd++] = (struct pollfd){.fd = w->up && !p->threads ? w->pidfd : -1, .events = POLLIN};
        }
        int timeout = p->kicked ? 0 : p->spawn_failed ? 100 : -1;
        p->kicked = false;
        p->sleeping = timeout != 0;
        unlock(p);
        if (poll(pfd, (nfds_t)nfd, timeout) < 0) {
            for (int i = 0; i < nfd; i++)
                pfd[i].revents = 0;
        }
        lock(p);
        p->sleeping = false;
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            while (read(p->efd, &v, sizeof v) < 0 && errno == EINTR)
                ;
        }
        if (p->state == TERMINATE && !terminated) {
            terminated = true;
            do_terminate(p);
        }
        for (int i = 0; i < p->n; i++) {
            struct worker *w = &p->w[i];
            if (!w->up)
                continue;
            short sre = pfd[1 + 2 * i].revents, pre = pfd[2 + 2 * i].revents;
            if (sre & POLLOUT)
                write_units(w);
            if (sre & (POLLIN | POLLHUP | POLLERR))
                read_results(p, i);
            if ((pre & POLLIN) || (p->threads && w->eof))
                worker_down(p, i);
        }
        bool work = has_work(p);
        p->spawn_failed = false;
        int up = 0;
        for (int i = 0; i < p->n; i++) {
            if (!p->w[i].up && (p->state == RUN || (p->state == CLOSE && work))) {
                int src = spawn(p, i);
                if (src != 0)
                    p->spawn_failed = true;
            }
            up += p->w[i].up;
        }
        if (up == 0 && p->spawn_failed) { /* no worker can run them: fail, never hang */
            while (p->pend != NULL) {
                struct unit *u = p->pend;
                p->pend = u->next;
                fail_unit(p, u, MP_EAGAIN, "no worker could be started");
                free_unit(p, u);
            }
            p->pend_tail = NULL;
            p->n_pending = 0;
        }
        dispatch(p);
        check_jobs(p);
        if (p->state == CLOSE && !has_work(p)) {
            for (int i = 0; i < p->n; i++) {
                if (p->w[i].up && !p->w[i].shut) {
                    p->w[i].shut = true;
                    shutdown(p->w[i].sock, SHUT_WR);
                }
            }
        }
        mp_async_result *cbs = p->cbq;
        p->cbq = p->cbq_tail = NULL;
        bool done = p->state != RUN && up == 0 && cbs == NULL && p->pend == NULL;
        for (int i = 0; i < p->n && done; i++)
            done = !p->w[i].up;
        unlock(p);
        run_callbacks(cbs);
        if (done)
            break;
        if (cbs != NULL) { /* callbacks may have changed things: look again before sleeping */
            lock(p);
            p->kicked = true;
            unlock(p);
        }
    }
    free(pfd);
    atomic_store(&p->finished, 1);
    mp__futex_wake(&p->finished, INT32_MAX);
    return NULL;
}

/* ---- the pool's lifecycle ---- */

static void free_pool(mp_pool *p)
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
    free(p);
}

int mp_pool_new(mp_pool **out, const mp_pool_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    mp_pool_options o = opt ? *opt : (mp_pool_options){0};
    if (o.processes < 0 || o.processes > MAX_WORKERS)
        return MP_EINVAL;
    if (!o.threads && !mp__have_pidfd())
        return MP_ENOSYS;
    mp_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->owner = self_pid();
    p->n = o.processes ? o.processes : mp_cpu_count();
    p->threads = o.threads;
    p->maxtasks = o.maxtasksperchild;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->w = calloc((size_t)p->n, sizeof *p->w);
    p->region_size = o.shared_size ? (o.shared_size + 4095) & ~(size_t)4095 : REGION_DEFAULT;
    p->region = mmap(NULL, p->region_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
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
    p->free_ext[0] = (struct extent){0, p->region_size};
    p->n_free = 1;
    p->slots = region_alloc(p, (size_t)p->n * sizeof *p->slots);
    if (p->slots == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    for (int i = 0; i < p->n; i++)
        p->w[i] = (struct worker){.sock = -1, .pidfd = -1};
    fflush(NULL);
    /* The handler runs with every signal blocked, so signals reach the caller's
     * threads; workers get back the creator's mask. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &p->child_mask);
    int e = pthread_create(&p->handler, NULL, handler_main, p);
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
    free_pool(p);
    return rc;
}

int mp_pool_processes(const mp_pool *pool) { return pool ? pool->n : 0; }

int mp_pool_worker_pids(mp_pool *pool, int *pids, int max)
{
    if (check_pool(pool) != 0 || (pids == NULL && max > 0))
        return MP_EINVAL;
    int k = 0;
    lock(pool);
    for (int i = 0; i < pool->n && k < max; i++)
        if (pool->w[i].up && !pool->threads)
            pids[k++] = pool->w[i].pid;
    unlock(pool);
    return k;
}

int mp_pool_close(mp_pool *pool)
{
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    lock(pool);
    if (pool->state == RUN)
        pool->state = CLOSE;
    kick(pool);
    unlock(pool);
    return 0;
}

static int wait_finished(mp_pool *p, const mp__deadline *d)
{
    while (atomic_load(&p->finished) == 0) {
        int rc = mp__futex_wait(&p->finished, 0, d);
        if (rc == MP_ETIMEDOUT)
            return atomic_load(&p->finished) ? 0 : rc;
    }
    lock(p);
    bool do_join = !p->joined;
    p->joined = true;
    unlock(p);
    if (do_join)
        pthread_join(p->handler, NULL);
    return 0;
}

int mp_pool_terminate(mp_pool *pool)
{
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    lock(pool);
    pool->state = TERMINATE;
    kick(pool);
    unlock(pool);
    if (on_handler(pool)) /* from a callback: the handler finishes after it returns */
        return 0;
    mp__deadline d;
    mp__deadline_init(&d, -1);
    return wait_finished(pool, &d);
}

int mp_pool_join(mp_pool *pool, int timeout_ms)
{
    int rc = check_pool(pool);
    if (rc != 0)
        return rc;
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return MP_EINVAL;
    lock(pool);
    bool running = pool->state == RUN;
    unlock(pool);
    if (running)
        return MP_EBUSY;
    if (on_handler(pool))
        return MP_EBUSY; /* a callback cannot wait for its own thread */
    return wait_finished(pool, &d);
}

void mp_pool_destroy(mp_pool *pool)
{
    if (pool == NULL || pool->owner != getpid())
        return;
    mp_pool_terminate(pool);
    mp__deadline d;
    mp__deadline_init(&d, -1);
    wait_finished(pool, &d);
    free_pool(pool);
}
