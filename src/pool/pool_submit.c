/* pool_submit.c — turning apply/map/starmap/map_shared calls into tasks for the
 * pool (pool.c describes the protocol). Arguments are copied here, outside the pool
 * lock: inline into the task's frame, or into a block of the shared region. The
 * units then go to the handler through the inbox; a zero-copy map's job is set up
 * in the region and offered to the workers directly, under the pool lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux/futex.h"
#include "pool/pool_parent.h"

static _Thread_local char last_message[512];

const char *mp_pool_last_message(void)
{
    return last_message;
}

static void set_last_message(const char *m)
{
    snprintf(last_message, sizeof last_message, "%s", m ? m : "");
}

/* A unit whose payload_len bytes go to *dst: a region block when large and the
 * region has room, else inline in the frame. out_len > 0 (a fixed-size map chunk's
 * count * out_size) asks for a region block the worker writes the results into,
 * when large enough and the region has room; else they come back in the result
 * frame. Takes the pool lock briefly. */
static struct mp__unit *new_unit(mp_pool *p, uint32_t kind, uint32_t flags, uint64_t fn,
                                 size_t count, size_t in_size, size_t out_size, size_t payload_len,
                                 size_t out_len, char **dst)
{
    void *block = NULL, *out_block = NULL;
    char *fresh = NULL;
    size_t fresh_len = 0;
    if (payload_len >= MP__POOL_REGION_MIN || out_len >= MP__POOL_REGION_MIN) {
        mp__pool_lock(p);
        if (payload_len >= MP__POOL_REGION_MIN)
            block = mp__pool_region_alloc_locked(p, payload_len);
        if (block != NULL) /* we write it next: its new pages in one call, not a fault each */
            fresh = mp__pool_region_fresh_locked(p, block, payload_len, &fresh_len);
        if (out_len >= MP__POOL_REGION_MIN)
            out_block = mp__pool_region_alloc_locked(p, out_len);
        mp__pool_unlock(p);
        mp__pool_region_populate(fresh, fresh_len);
    }
    struct mp__unit *u = mp__pool_make_unit(kind, flags | (block ? MP__UNIT_REGION : 0), fn, count,
                                            in_size, out_size, block ? 0 : payload_len);
    if (u == NULL) {
        if (block || out_block) {
            mp__pool_lock(p);
            mp__pool_region_free_locked(p, block);
            mp__pool_region_free_locked(p, out_block);
            mp__pool_unlock(p);
        }
        return NULL;
    }
    struct mp__task_hdr *h = (struct mp__task_hdr *)u->frame;
    h->payload_len = payload_len;
    if (block) {
        u->region = block;
        h->region_off = (uint64_t)(uintptr_t)block;
    }
    if (out_block) {
        u->out_region = out_block;
        h->out_off = (uint64_t)(uintptr_t)out_block;
    }
    *dst = block ? block : u->frame + sizeof *h;
    return u;
}

static void free_units(mp_pool *p, struct mp__unit *list)
{
    mp__pool_lock(p);
    while (list) {
        struct mp__unit *next = list->next;
        mp__pool_free_unit_locked(p, list);
        list = next;
    }
    mp__pool_unlock(p);
}

/* Hands a list of units (in order) to the handler through the inbox: a short lock
 * that the handler holds only to take the whole list, so submitters do not wait for
 * the handler's work. MP_ECLOSED frees them. The caller is inside the pool
 * (mp__pool_enter) until after the wake: the handler may already be running these
 * tasks and their callbacks. */
static int submit(mp_pool *p, struct mp__unit *list)
{
    struct mp__unit *last = list;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&p->inbox_mu);
    if (p->state != MP__RUN) {
        pthread_mutex_unlock(&p->inbox_mu);
        free_units(p, list);
        return MP_ECLOSED;
    }
    if (p->inbox_tail)
        p->inbox_tail->next = list;
    else
        p->inbox = list;
    p->inbox_tail = last;
    pthread_mutex_unlock(&p->inbox_mu);
    mp__pool_wake(p);
    return 0;
}

/* A result of kind for n items in chunks of chunksize (0: an apply, no chunks),
 * with a reference for each of holders, the pool's handler and the caller's
 * options; NULL when out of memory. */
static mp_async_result *new_result(mp_pool *pool, enum mp__rkind kind, unsigned holders,
                                   const mp_async_options *opt, size_t n, size_t chunksize)
{
    mp_async_result *r = mp__result_new(kind, holders);
    if (r == NULL)
        return NULL;
    r->handler = pool->handler;
    if (opt != NULL)
        r->cb = *opt;
    r->n = n;
    r->chunksize = chunksize;
    r->n_chunks = n == 0 || chunksize == 0 ? 0 : (n - 1) / chunksize + 1;
    return r;
}

static int apply_async_entered(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *arg,
                               size_t len, const mp_async_options *opt)
{
    int rc;
    if (fn == NULL || (arg == NULL && len > 0))
        return MP_EINVAL;
    unsigned holders = MP__HOLDER_COMPLETION | (out != NULL ? MP__HOLDER_CALLER : 0);
    mp_async_result *r = new_result(pool, MP__R_APPLY, holders, opt, 1, 0);
    if (r == NULL)
        return MP_ENOMEM;
    char *dst;
    struct mp__unit *u =
        new_unit(pool, MP__UNIT_APPLY, 0, (uint64_t)(uintptr_t)fn, 1, 0, 0, len, 0, &dst);
    if (u == NULL) {
        mp__result_drop(r, holders);
        return MP_ENOMEM;
    }
    if (len > 0)
        memcpy(dst, arg, len);
    u->r = r;
    rc = submit(pool, u);
    if (rc != 0) {
        mp__result_drop(r, holders);
        return rc;
    }
    if (out != NULL)
        *out = r;
    return 0;
}

int mp_pool_apply_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *arg,
                        size_t len, const mp_async_options *opt)
{
    if (out != NULL)
        *out = NULL;
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    rc = apply_async_entered(pool, out, fn, arg, len, opt);
    mp__pool_leave(pool);
    return rc;
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

/* A synchronous map (whose items stay valid until it returns) streams its chunks:
 * each goes to the workers as soon as it is copied, and a chunk whose payload or
 * results go through the region first waits until this map's region blocks in
 * flight (copied, not yet answered) leave room for it within MP__POOL_STREAM_BYTES
 * (or a quarter of a smaller region), one chunk per worker always allowed. So a
 * map keeps a bounded part of the region whatever its size, the next chunks reuse
 * the blocks (already faulted in) of answered ones, and the workers start on the
 * first chunk while the next ones are copied. Only such a map gets result blocks:
 * an async map's whole backlog would hold them. Not from a callback (the handler
 * thread), which could not see the answers arrive. */
struct stream {
    size_t *bytes; /* per chunk: its payload's and results' bytes in the region */
    size_t seen;   /* answered chunks accounted for, in r->order */
    size_t in_flight, in_flight_bytes;
};

static void stream_wait(mp_pool *pool, mp_async_result *r, struct stream *st, size_t next)
{
    for (;;) {
        uint32_t seq = atomic_load(&r->seq);
        size_t done = atomic_load_explicit(&r->n_order, memory_order_acquire);
        for (; st->seen < done; st->seen++) {
            size_t c = r->order[st->seen];
            st->in_flight--;
            st->in_flight_bytes -= st->bytes[c];
        }
        size_t budget = pool->region_size / 4 < MP__POOL_STREAM_BYTES ? pool->region_size / 4
                                                                      : MP__POOL_STREAM_BYTES;
        if (st->in_flight < (size_t)pool->n || st->in_flight_bytes + next <= budget)
            return;
        mp__deadline d; /* a bounded sleep: the condition is re-checked */
        mp__deadline_init(&d, 100);
        mp__futex_wait(&r->seq, seq, &d);
    }
}

/* A streamed map that could not submit all its chunks (the pool closed, or memory
 * ran out) fails as a whole with the call's code, once the first submitted ones
 * are answered (each task gets exactly one answer, also when the pool is
 * terminated): then no unit refers to r and its results are dropped uncompleted. */
static void stream_drain(mp_pool *pool, mp_async_result *r, size_t submitted)
{
    for (;;) {
        uint32_t seq = atomic_load(&r->seq);
        if (atomic_load_explicit(&r->n_order, memory_order_acquire) >= submitted) {
            mp__pool_lock(pool); /* the answer's writer holds it until it is done with r */
            mp__pool_unlock(pool);
            return;
        }
        mp__deadline d;
        mp__deadline_init(&d, 100);
        mp__futex_wait(&r->seq, seq, &d);
    }
}

static int map_entered(mp_pool *pool, mp_async_result **out, uint64_t fn, const void *in,
                       size_t in_size, const mp_args *tuples, size_t n, void *out_array,
                       size_t out_size, const mp_async_options *opt, bool iter, bool unordered,
                       bool stream)
{
    int rc = 0;
    if (out == NULL || fn == 0)
        return MP_EINVAL;
    if (out_size && n > SIZE_MAX / out_size)
        return MP_EOVERFLOW; /* before check_items, which reads the n items */
    if ((rc = check_items(in, in_size, tuples, n)) != 0)
        return rc;
    const unsigned holders = MP__HOLDER_CALLER | MP__HOLDER_COMPLETION;
    /* Python's defaults: map and starmap ceil(n / (4 * workers)), imap 1. */
    size_t chunksize = opt && opt->chunksize ? opt->chunksize
                       : iter                ? 1
                                             : default_chunksize(pool, n);
    mp_async_result *r = new_result(pool, MP__R_MAP, holders, opt, n, chunksize);
    if (r == NULL)
        return MP_ENOMEM;
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
    struct mp__unit *list = NULL, **tail = &list;
    struct stream st = {0};
    if (stream && r->n_chunks > 1 && (st.bytes = calloc(r->n_chunks, sizeof *st.bytes)) == NULL)
        stream = false; /* out of memory for the bookkeeping: copy everything first */
    size_t c = 0;
    for (; c < r->n_chunks; c++) {
        struct mp__span s = mp__chunk_span(n, r->chunksize, c);
        size_t first = s.first, count = s.count;
        size_t payload = count * in_size; /* fixed-size items: n * in_size was checked */
        if (kind == MP__UNIT_MAP_VAR) {
            payload = 8 * count;
            for (size_t i = first; i < first + count; i++)
                payload += item_len(in, in_size, tuples, i);
        }
        /* results through the region only for a synchronous map, whose blocks
         * count in its budget: an async map's backlog would hold the region */
        size_t out_len = stream ? count * out_size : 0;
        size_t want = (payload >= MP__POOL_REGION_MIN ? payload : 0) +
                      (out_len >= MP__POOL_REGION_MIN ? out_len : 0);
        if (st.bytes != NULL && want > 0)
            stream_wait(pool, r, &st, want);
        char *dst;
        struct mp__unit *u =
            new_unit(pool, kind, flags, fn, count, kind == MP__UNIT_MAP_FIXED ? in_size : 0,
                     out_size, payload, out_len, &dst);
        if (u == NULL) {
            free_units(pool, list);
            list = NULL;
            rc = MP_ENOMEM;
            break;
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
        if (st.bytes != NULL) { /* to the workers now: u may be gone once submitted */
            size_t in_region =
                (u->region != NULL ? payload : 0) + (u->out_region != NULL ? out_len : 0);
            if ((rc = submit(pool, u)) != 0)
                break;
            st.bytes[c] = in_region;
            st.in_flight++;
            st.in_flight_bytes += st.bytes[c];
            continue;
        }
        *tail = u;
        tail = &u->next;
    }
    bool streamed = st.bytes != NULL;
    free(st.bytes);
    if (rc != 0 && streamed && c > 0)
        stream_drain(pool, r, c); /* then nothing refers to r but us: it goes, as below */
    if (rc != 0)
        goto out_release;
    if (n == 0) {
        mp__pool_lock(pool);
        rc = pool->state == MP__RUN ? 0 : MP_ECLOSED;
        if (rc == 0)
            mp__result_map_finish_locked(pool, r);
        mp__pool_unlock(pool);
    } else if (list != NULL) {
        rc = submit(pool, list);
    }
    if (rc != 0)
        goto out_release;
    *out = r;
    return 0;

out_release:
    mp__result_drop(r, holders);
    return rc;
}

static int map_common(mp_pool *pool, mp_async_result **out, uint64_t fn, const void *in,
                      size_t in_size, const mp_args *tuples, size_t n, void *out_array,
                      size_t out_size, const mp_async_options *opt, bool iter, bool unordered,
                      bool stream)
{
    if (out != NULL)
        *out = NULL;
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    rc = map_entered(pool, out, fn, in, in_size, tuples, n, out_array, out_size, opt, iter,
                     unordered, stream && !mp__pool_on_handler(pool));
    mp__pool_leave(pool);
    return rc;
}

int mp_pool_map_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                      size_t in_size, size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt,
                      false, false, false);
}

int mp_pool_imap(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                 size_t in_size, size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt,
                      true, false, false);
}

int mp_pool_imap_unordered(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                           size_t in_size, size_t n, size_t out_size, const mp_async_options *opt)
{
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, in, in_size, NULL, n, NULL, out_size, opt,
                      true, true, false);
}

int mp_pool_starmap_async(mp_pool *pool, mp_async_result **out, mp_star_fn fn,
                          const mp_args *tuples, size_t n, size_t out_size,
                          const mp_async_options *opt)
{
    if (tuples == NULL && n > 0)
        return MP_EINVAL;
    return map_common(pool, out, (uint64_t)(uintptr_t)fn, NULL, 0,
                      tuples ? tuples : (const mp_args *)"", n, NULL, out_size, opt, false, false,
                      false);
}

static int sync_map(mp_pool *pool, uint64_t fn, const void *in, size_t in_size,
                    const mp_args *tuples, size_t n, void *out, size_t out_size,
                    const mp_async_options *opt)
{
    if (out_size == 0 || (out == NULL && n > 0))
        return MP_EINVAL;
    mp_async_result *r;
    /* the items stay valid until the map returns: it streams them (see stream_wait) */
    int rc =
        map_common(pool, &r, fn, in, in_size, tuples, n, out, out_size, opt, false, false, true);
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
    return sync_map(pool, (uint64_t)(uintptr_t)fn, NULL, 0, tuples ? tuples : (const mp_args *)"",
                    n, out, out_size, opt);
}

static int map_shared_entered(mp_pool *pool, mp_async_result **out, mp_kernel_fn kernel,
                              const void *in, size_t in_size, void *out_array, size_t out_size,
                              size_t n, void *ctx, const mp_async_options *opt)
{
    int rc;
    if (out == NULL || kernel == NULL || (in_size && in == NULL) || (out_size && out_array == NULL))
        return MP_EINVAL;
    if ((in_size && n > SIZE_MAX / in_size) || (out_size && n > SIZE_MAX / out_size))
        return MP_EOVERFLOW;
    if (!pool->threads && !(opt && opt->any_shared_memory) && n > 0 &&
        ((in_size && !mp__pool_in_region(pool, in, n * in_size)) ||
         (out_size && !mp__pool_in_region(pool, out_array, n * out_size))))
        return MP_EINVAL;
    const unsigned holders = MP__HOLDER_CALLER | MP__HOLDER_COMPLETION | MP__HOLDER_JOB_LIST;
    size_t chunksize = opt && opt->chunksize ? opt->chunksize : default_chunksize(pool, n);
    mp_async_result *r = new_result(pool, MP__R_JOB, holders, opt, n, chunksize);
    if (r == NULL)
        return MP_ENOMEM;
    size_t fixed = sizeof(struct mp__job);
    if (r->n_chunks > (SIZE_MAX - fixed) / (sizeof(int32_t) + 1)) { /* no region holds it */
        rc = MP_ENOMEM;
        goto out_release;
    }
    size_t size = fixed + r->n_chunks * (sizeof(int32_t) + 1);
    mp__pool_lock(pool);
    if (pool->state != MP__RUN) {
        mp__pool_unlock(pool);
        rc = MP_ECLOSED;
        goto out_release;
    }
    struct mp__job *j = mp__pool_region_alloc_locked(pool, size);
    if (j == NULL) {
        mp__pool_unlock(pool);
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
    j->chunk_code = (int32_t *)(j + 1);
    j->chunk_state = (_Atomic uint8_t *)(j->chunk_code + r->n_chunks);
    atomic_store(&j->fast, r->cb.callback == NULL && r->cb.error_callback == NULL);
    r->job = j;
    r->pool = pool;
    r->ready_word = &j->state;
    r->job_next = pool->jobs;
    pool->jobs = r;
    if (n > 0)
        mp__pool_job_offer_locked(pool, r);
    mp__pool_kick_locked(pool); /* it writes the job frames, or completes a job nobody could join */
    mp__pool_unlock(pool);
    *out = r;
    return 0;

out_release:
    mp__result_drop(r, holders);
    return rc;
}

int mp_pool_map_shared_async(mp_pool *pool, mp_async_result **out, mp_kernel_fn kernel,
                             const void *in, size_t in_size, void *out_array, size_t out_size,
                             size_t n, void *ctx, const mp_async_options *opt)
{
    if (out != NULL)
        *out = NULL;
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    rc = map_shared_entered(pool, out, kernel, in, in_size, out_array, out_size, n, ctx, opt);
    mp__pool_leave(pool);
    return rc;
}

/* The whole call is inside the pool: destroying a job result touches the pool. */
int mp_pool_map_shared(mp_pool *pool, mp_kernel_fn kernel, const void *in, size_t in_size,
                       void *out, size_t out_size, size_t n, void *ctx, const mp_async_options *opt)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    mp_async_result *r;
    rc = mp_pool_map_shared_async(pool, &r, kernel, in, in_size, out, out_size, n, ctx, opt);
    if (rc == 0) {
        rc = mp_async_result_get(r, -1, NULL, NULL);
        set_last_message(r->msg);
        mp_async_result_destroy(r);
    }
    mp__pool_leave(pool);
    return rc;
}
