/* async_result.c — mp_async_result: the result objects' references and their
 * completion, and the public calls that wait for, read and iterate them. The
 * handler fills a result's fields and marks it ready (pool_settle.c,
 * pool_handler.c); the table of who writes which field is at struct mp_async_result
 * in pool/pool_parent.h. */
#include <stdlib.h>
#include <string.h>

#include "linux/futex.h"
#include "pool/pool_parent.h"

mp_async_result *mp__result_new(enum mp__rkind kind, unsigned holders)
{
    mp_async_result *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->kind = kind;
    r->owner = mp__self_pid();
    r->ready_word = &r->ready;
    atomic_store(&r->refs, __builtin_popcount(holders));
    return r;
}

static void result_free(mp_async_result *r)
{
    free(r->msg);
    free(r->data);
    free(r->death_msg);
    for (size_t c = 0; r->chunks != NULL && c < r->n_chunks; c++) {
        free(r->chunks[c].msg);
        free(r->chunks[c].buf);
        free(r->chunks[c].offs);
    }
    free(r->chunks);
    free(r->order);
    if (r->out_owned)
        free(r->out);
    free(r);
}

void mp__result_drop(mp_async_result *r, unsigned holders)
{
    int n = __builtin_popcount(holders);
    if (r != NULL && n > 0 && atomic_fetch_sub(&r->refs, n) == n)
        result_free(r);
}

static char *dup_msg(const char *m)
{
    return m ? strdup(m) : NULL;
}

void mp__result_complete_locked(mp_pool *p, mp_async_result *r)
{
    r->completed = true;
    r->cb_next = NULL;
    if (p->cbq_tail)
        p->cbq_tail->cb_next = r;
    else
        p->cbq = r;
    p->cbq_tail = r;
    mp__pool_kick_locked(p);
}

void mp__result_map_finish_locked(mp_pool *p, mp_async_result *r)
{
    for (size_t c = 0; c < r->n_chunks; c++) {
        if (r->chunks[c].status != 0) {
            r->status = r->chunks[c].status;
            r->task_code = r->chunks[c].task_code;
            r->msg = dup_msg(r->chunks[c].msg);
            break;
        }
    }
    mp__result_complete_locked(p, r);
}

/* The caller's threads read a job result's job, ready_word and pool between these
 * two. A pool destroyed from a callback is freed by its handler thread while the
 * caller may be using its results: mp__result_job_unpublish points ready_word back
 * at r->ready and clears pool, then waits for job_readers to be 0 before the job's
 * memory goes (seq_cst on both sides: either a reader sees the new pointers, or the
 * freer sees the reader). Other kinds never change these words. */
static void job_read_begin(mp_async_result *r)
{
    if (r->kind == MP__R_JOB)
        atomic_fetch_add(&r->job_readers, 1);
}

static void job_read_end(mp_async_result *r)
{
    if (r->kind == MP__R_JOB)
        atomic_fetch_sub_explicit(&r->job_readers, 1, memory_order_release);
}

void mp__result_job_unpublish(mp_async_result *r)
{
    atomic_store(&r->pool, NULL);
    atomic_store(&r->ready_word, &r->ready);
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    uint32_t n;
    while ((n = atomic_load_explicit(&r->job_readers, memory_order_acquire)) != 0)
        mp__futex_wait_slice(&r->job_readers, n, &forever, 1);
}

/* A callback of r's own completion may read it without waiting for itself. */
static bool in_own_callback(const mp_async_result *r)
{
    return pthread_equal(pthread_self(), r->handler) && r->completed &&
           atomic_load(atomic_load(&r->ready_word)) != MP__READY;
}

/* Waits for r's ready word (the caller is between job_read_begin and _end). */
static int wait_ready(mp_async_result *r, int timeout_ms, const mp__deadline *d)
{
    if (in_own_callback(r))
        return 0;
    if (pthread_equal(pthread_self(), r->handler) && !atomic_load(&r->completed) &&
        atomic_load_explicit(atomic_load(&r->ready_word), memory_order_acquire) != MP__READY)
        return timeout_ms == 0 ? MP_ETIMEDOUT : MP_EBUSY; /* a callback would wait for itself */
    /* enum mp__ready_state: the completer wakes sleepers only when it replaces
     * PENDING_WAITED, which a waiter sets before it sleeps. */
    for (;;) {
        _Atomic uint32_t *w = atomic_load(&r->ready_word);
        uint32_t v = atomic_load_explicit(w, memory_order_acquire);
        if (v == MP__READY)
            return 0;
        if (v == MP__PENDING && !atomic_compare_exchange_strong(w, &v, MP__PENDING_WAITED))
            continue;
        if (mp__futex_wait(w, MP__PENDING_WAITED, d) == MP_ETIMEDOUT)
            return atomic_load_explicit(w, memory_order_acquire) == MP__READY ? 0 : MP_ETIMEDOUT;
    }
}

int mp_async_result_wait(mp_async_result *r, int timeout_ms)
{
    if (r == NULL)
        return MP_EINVAL;
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return MP_EINVAL;
    if (r->owner != mp__self_pid())
        return MP_ECHILD; /* a copy inherited through fork: nobody would complete it */
    job_read_begin(r);
    int rc = wait_ready(r, timeout_ms, &d);
    job_read_end(r);
    return rc;
}

bool mp_async_result_ready(mp_async_result *r)
{
    if (r == NULL)
        return false;
    job_read_begin(r);
    bool ready =
        atomic_load_explicit(atomic_load(&r->ready_word), memory_order_acquire) == MP__READY ||
        in_own_callback(r);
    job_read_end(r);
    return ready;
}

int mp_async_result_get(mp_async_result *r, int timeout_ms, const void **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    int rc = mp_async_result_wait(r, timeout_ms);
    if (rc != 0)
        return rc;
    if (r->status != 0)
        return r->status;
    if (r->kind == MP__R_APPLY) {
        if (data)
            *data = r->data;
        if (len)
            *len = r->len;
    } else if (r->kind == MP__R_MAP && !r->var) {
        if (data)
            *data = r->out;
        if (len)
            *len = r->n * r->out_size;
    }
    return 0;
}

int mp_async_result_successful(mp_async_result *r)
{
    if (r == NULL)
        return MP_EINVAL;
    if (!mp_async_result_ready(r))
        return MP_ENOTREADY;
    return r->status == 0;
}

int mp_async_result_task_code(mp_async_result *r)
{
    return r != NULL && mp_async_result_ready(r) ? r->task_code : 0;
}

const char *mp_async_result_message(mp_async_result *r)
{
    return r != NULL && mp_async_result_ready(r) && r->msg != NULL ? r->msg : "";
}

/* Item i of a map whose chunk is done. */
static int item_of(mp_async_result *r, size_t i, const void **data, size_t *len)
{
    struct mp__chunk_res *ch = &r->chunks[i / r->chunksize];
    if (ch->status != 0)
        return ch->status;
    if (!r->var) {
        *data = r->out + i * r->out_size;
        *len = r->out_size;
    } else {
        size_t k = i % r->chunksize;
        uint64_t l;
        memcpy(&l, ch->buf + 8 * k, 8);
        *data = ch->buf + ch->offs[k];
        *len = l;
    }
    return 0;
}

int mp_async_result_item(mp_async_result *r, size_t i, const void **data, size_t *len)
{
    const void *d = NULL;
    size_t l = 0;
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (r == NULL || r->kind != MP__R_MAP)
        return MP_EINVAL;
    if (i >= r->n)
        return MP_ERANGE;
    if (!atomic_load_explicit(&r->chunks[i / r->chunksize].done, memory_order_acquire))
        return MP_ENOTREADY;
    int rc = item_of(r, i, &d, &l);
    if (data)
        *data = d;
    if (len)
        *len = l;
    return rc;
}

int mp_async_result_progress(mp_async_result *r, size_t *done, size_t *total)
{
    if (r == NULL)
        return MP_EINVAL;
    size_t d;
    if (r->kind == MP__R_APPLY) {
        d = mp_async_result_ready(r) ? 1 : 0;
    } else {
        job_read_begin(r);
        struct mp__job *j = atomic_load(&r->job);
        d = j != NULL ? atomic_load(&j->done_items) : atomic_load(&r->items_done);
        job_read_end(r);
    }
    if (done)
        *done = d;
    if (total)
        *total = r->n;
    return 0;
}

int mp_imap_next(mp_async_result *r, size_t *index, const void **data, size_t *len, int timeout_ms)
{
    const void *d = NULL;
    size_t l = 0;
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (r == NULL || r->kind != MP__R_MAP)
        return MP_EINVAL;
    mp__deadline dl;
    if (mp__deadline_init(&dl, timeout_ms) != 0)
        return MP_EINVAL;
    if (r->owner != mp__self_pid())
        return MP_ECHILD;
    if (r->emitted == r->n)
        return MP_EEOF;
    size_t item;
    for (;;) {
        uint32_t seq = atomic_load(&r->seq);
        if (!r->unordered) {
            item = r->emitted;
            if (atomic_load_explicit(&r->chunks[item / r->chunksize].done, memory_order_acquire))
                break;
        } else if (r->cur < atomic_load_explicit(&r->n_order, memory_order_acquire)) {
            size_t c = r->order[r->cur];
            item = c * r->chunksize + r->cur_k;
            if (++r->cur_k == mp__chunk_span(r->n, r->chunksize, c).count) {
                r->cur++;
                r->cur_k = 0;
            }
            break;
        }
        if (pthread_equal(pthread_self(), r->handler)) /* from a callback: chunks wait for it */
            return timeout_ms == 0 ? MP_ETIMEDOUT : MP_EBUSY;
        if (mp__futex_wait(&r->seq, seq, &dl) == MP_ETIMEDOUT && atomic_load(&r->seq) == seq)
            return MP_ETIMEDOUT;
    }
    r->emitted++;
    if (index)
        *index = item;
    int rc = item_of(r, item, &d, &l);
    if (data)
        *data = d;
    if (len)
        *len = l;
    return rc;
}

/* The caller destroys job result r while its job is attached: the handler frees
 * the job once no worker is in it (mp__pool_check_jobs_locked), and drops the job
 * list's reference then. */
static void job_orphan(mp_async_result *r, mp_pool *p)
{
    mp__pool_lock(p);
    r->orphan = true;
    mp__pool_kick_locked(p);
    mp__pool_unlock(p);
}

void mp_async_result_destroy(mp_async_result *r)
{
    if (r == NULL)
        return;
    /* A copy in a forked child leaves the pool alone: its lock may have been held
     * by a thread that the child does not have. */
    if (r->kind == MP__R_JOB && r->owner == mp__self_pid()) {
        job_read_begin(r);
        mp_pool *p = atomic_load(&r->pool);
        if (p != NULL)
            job_orphan(r, p);
        job_read_end(r);
    }
    mp__result_drop(r, MP__HOLDER_CALLER);
}
