/* pool_dispatch.c — getting tasks to workers: waking the handler, the task units
 * and the frames they carry, and writing those frames to the workers' sockets.
 *
 * Waking. The handler sleeps in poll on its eventfd and the workers' sockets.
 * Before it sleeps it sets `asleep` and only then looks at the inbox, so a
 * submitter either sees asleep == 1 (and writes the eventfd) or pushed before the
 * handler looked: no wake-up is lost, and one write per sleep is enough. Threads
 * holding the pool lock also set `kicked`, which the handler reads before it sleeps.
 *
 * Only the handler writes to sockets; other threads queue units and kick it. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/util.h"
#include "linux/futex.h"
#include "pool/pool_parent.h"

int mp__pool_check_pool(const mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    return p->owner == mp__self_pid() ? 0 : MP_ECHILD;
}

void mp__pool_wake(mp_pool *p)
{
    if (atomic_exchange(&p->asleep, 0) != 1)
        return;
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

void mp__pool_kick_locked(mp_pool *p)
{
    p->kicked = true;
    if (!mp__pool_on_handler(p))
        mp__pool_wake(p);
}

void mp__pool_set_state_locked(mp_pool *p, enum mp__pstate s)
{
    pthread_mutex_lock(&p->inbox_mu);
    p->state = s;
    pthread_mutex_unlock(&p->inbox_mu);
}

/* ---- units ---- */

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

void mp__pool_kick_drop_locked(mp_pool *p, struct mp__feed_kick *k)
{
    if (k != NULL && --k->parent_refs == 0)
        mp__pool_region_free_locked(p, k);
}

void mp__pool_feed_drop_locked(mp_pool *p, struct mp__feed *f)
{
    if (f == NULL || --f->parent_refs != 0)
        return;
    mp__pool_kick_drop_locked(p, f->kick);
    mp__pool_region_free_locked(p, f);
}

void mp__pool_feed_abandon(struct mp__feed *f)
{
    atomic_store(&f->abandoned, 1);
    atomic_fetch_add(&f->wseq, 1);
    mp__futex_wake(&f->wseq, INT32_MAX);
}

void mp__pool_kick_wake(struct mp__feed_kick *k)
{
    atomic_fetch_add(&k->seq, 1);
    if (atomic_load(&k->waiting))
        mp__futex_wake(&k->seq, INT32_MAX);
}

void mp__pool_free_unit_locked(mp_pool *p, struct mp__unit *u)
{
    mp__pool_feed_drop_locked(p, u->feed);
    mp__pool_region_free_locked(p, u->region);
    mp__pool_region_free_locked(p, u->out_region);
    free(u->frame);
    free(u);
}

/* ---- sending ---- */

/* Appends u to w's outstanding units, to be written after those before it. */
static void out_push_locked(struct mp__worker *w, struct mp__unit *u)
{
    u->next = NULL;
    if (w->tail)
        w->tail->next = u;
    else
        w->head = u;
    w->tail = u;
    w->n_out++;
    if (w->unsent == NULL) {
        w->unsent = u;
        w->unsent_off = 0;
    }
}

void mp__pool_write_units_locked(struct mp__worker *w)
{
    while (w->unsent != NULL && !w->eof) {
        struct iovec iov[64];
        int cnt = 0;
        for (struct mp__unit *u = w->unsent; u != NULL && cnt < 64; u = u->next, cnt++) {
            size_t off = u == w->unsent ? w->unsent_off : 0;
            iov[cnt] = (struct iovec){u->frame + off, u->frame_len - off};
        }
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(w->sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN: wait for POLLOUT; EPIPE: the worker is ending */
        }
        struct iovec *rest = iov; /* iov[k] is the k-th unit from w->unsent */
        int left = cnt;
        mp__iov_advance(&rest, &left, (size_t)n);
        for (int k = cnt - left; k > 0; k--)
            w->unsent = w->unsent->next;
        w->unsent_off = left > 0 ? (size_t)((char *)rest->iov_base - w->unsent->frame) : 0;
    }
}

/* A worker takes a task when it has none outstanding. A map chunk of many items
 * may also wait queued behind the one it runs (one, so that its next chunk is
 * there when it finishes, and a slow worker holds no chunk an idle one could
 * run); small tasks, up to MP__POOL_MAX_OUT when the backlog is long, so results
 * stream back while it works. */
static bool can_take(const mp_pool *p, const struct mp__worker *w, const struct mp__unit *u)
{
    if (!w->up || w->shut || w->eof || (p->maxtasks && w->sent >= p->maxtasks))
        return false;
    if (w->n_out == 0)
        return true;
    const struct mp__task_hdr *h = (const struct mp__task_hdr *)u->frame;
    if (u->kind != MP__UNIT_APPLY &&
        (h->count > MP__POOL_SMALL_COUNT || (h->flags & (MP__UNIT_REGION | MP__UNIT_FEED))))
        return w->n_out < 2;
    return p->n_pending >= 2 * (size_t)p->n && w->n_out < MP__POOL_MAX_OUT;
}

void mp__pool_dispatch_locked(mp_pool *p)
{
    if (!mp__pool_on_handler(p)) {
        if (p->pend != NULL)
            mp__pool_kick_locked(p);
        return;
    }
    while (p->pend != NULL) {
        struct mp__worker *best = NULL;
        for (int i = 0; i < p->n; i++)
            if (can_take(p, &p->w[i], p->pend) && (best == NULL || p->w[i].n_out < best->n_out))
                best = &p->w[i];
        if (best == NULL)
            break;
        struct mp__unit *u = p->pend;
        p->pend = u->next;
        if (p->pend == NULL)
            p->pend_tail = NULL;
        p->n_pending--;
        best->sent++;
        out_push_locked(best, u);
    }
    for (int i = 0; i < p->n; i++)
        if (p->w[i].up && p->w[i].unsent != NULL)
            mp__pool_write_units_locked(&p->w[i]);
}

/* ---- zero-copy jobs: the JOB frames ---- */

int mp__pool_job_send_locked(mp_pool *p, mp_async_result *r, int i)
{
    struct mp__unit *u = mp__pool_make_unit(MP__UNIT_JOB, 0, 0, 0, 0, 0, 0);
    if (u == NULL)
        return MP_ENOMEM;
    struct mp__task_hdr *h = (struct mp__task_hdr *)u->frame;
    h->id = u->id = ++p->next_id;
    h->region_off = (uint64_t)(uintptr_t)r->job;
    u->r = r;
    out_push_locked(&p->w[i], u);
    r->parts++;
    return 0;
}

/* A worker that will not end before it could run a job. */
static bool job_open_to(const mp_pool *p, const struct mp__worker *w)
{
    return w->up && !w->shut && !w->eof && !(p->maxtasks && w->sent >= p->maxtasks);
}

/* At submission, and when r has chunks nobody claimed and no participant left. */
void mp__pool_job_offer_locked(mp_pool *p, mp_async_result *r)
{
    for (int i = 0; i < p->n; i++)
        if (job_open_to(p, &p->w[i]))
            mp__pool_job_send_locked(p, r, i); /* out of memory: fewer participants */
}
