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

/* What a map's chunks are made of. */
struct map_items {
    uint32_t kind, flags;
    uint64_t fn;
    const void *in;
    size_t in_size;
    const mp_args *tuples;
    size_t n, out_size;
};

/* The bytes of chunk s's items (without the lengths of variable-size items) and
 * its largest item. */
static size_t chunk_item_bytes(const struct map_items *it, struct mp__span s, size_t *max_item)
{
    if (it->kind == MP__UNIT_MAP_FIXED) {
        *max_item = it->in_size;
        return s.count * it->in_size;
    }
    size_t bytes = 0, max = 0;
    for (size_t i = s.first; i < s.first + s.count; i++) {
        size_t l = item_len(it->in, it->in_size, it->tuples, i);
        bytes += l;
        max = l > max ? l : max;
    }
    *max_item = max;
    return bytes;
}

/* Writes the count u64 lengths of chunk s's items to dst, then (items true) the
 * items after them. */
static void write_chunk(char *dst, const struct map_items *it, struct mp__span s, bool items)
{
    if (it->kind != MP__UNIT_MAP_VAR) {
        if (items && s.count > 0)
            memcpy(dst, (const char *)it->in + s.first * it->in_size, s.count * it->in_size);
        return;
    }
    char *data = dst + 8 * s.count;
    for (size_t i = s.first; i < s.first + s.count; i++) {
        uint64_t l = item_len(it->in, it->in_size, it->tuples, i);
        memcpy(dst + 8 * (i - s.first), &l, 8);
        if (items)
            write_item(data, it->in, it->in_size, it->tuples, i);
        data += l;
    }
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
 * thread), which could not see the answers arrive.
 *
 * A chunk at least twice as large as a feed ring (MP__POOL_FEED_RING, or its
 * largest item rounded up to a power of two) does not travel whole: its items go
 * through the ring of a feed (struct mp__feed, pool/pool.h) as the worker running
 * the chunk consumes them, so the region holds a few rings rather than whole
 * chunks (a new pool's first map would otherwise get its region pages allocated
 * and zeroed by the kernel, a chunk per worker). The submitter keeps up to one
 * feed per worker and one more open and fills whichever has room, so no worker
 * waits on another's chunk; it sleeps on the map's kick word, which workers bump
 * as they consume and the handler as it answers a chunk. A chunk answered before
 * all its items were written (an item failed, or the pool was terminated) is
 * abandoned: the worker, if it still reads it, stops. */
struct feed_src {
    struct mp__feed *f;      /* the submitter's reference */
    size_t chunk, next, end; /* items [next, end) of the chunk are still to be written */
    uint64_t v;              /* stream offset after the items written */
    uint64_t published;      /* `written` as last stored */
};

struct stream {
    size_t *bytes; /* per chunk: its payload's and results' bytes in the region */
    char *is_feed; /* per chunk: it travels through a feed */
    size_t seen;   /* answered chunks accounted for, in r->order */
    size_t in_flight, in_flight_bytes, feeds;
    struct mp__feed_kick *kick; /* the submitter's reference, or NULL: no feeds */
    struct feed_src *src;       /* the feeds still being written */
    size_t n_src;
    size_t sized, items, max_item; /* chunk sized - 1: its item bytes and largest item */
};

static void stream_account(mp_async_result *r, struct stream *st)
{
    size_t done = atomic_load_explicit(&r->n_order, memory_order_acquire);
    for (; st->seen < done; st->seen++) {
        size_t c = r->order[st->seen];
        st->in_flight--;
        st->in_flight_bytes -= st->bytes[c];
        st->feeds -= (size_t)st->is_feed[c];
    }
}

static void feed_publish(struct feed_src *s)
{
    struct mp__feed *f = s->f;
    atomic_store(&f->written, s->v);
    s->published = s->v;
    if (atomic_load(&f->worker_waits)) {
        atomic_fetch_add(&f->wseq, 1);
        mp__futex_wake(&f->wseq, INT32_MAX);
    }
}

/* Writes into feed s what fits of its items; true when it wrote any. */
static bool feed_fill(struct feed_src *s, const struct map_items *it)
{
    struct mp__feed *f = s->f;
    uint64_t ring = f->ring_size, mask = ring - 1;
    uint64_t room_end = atomic_load(&f->consumed) + ring;
    bool wrote = false, reloaded = false;
    while (s->next < s->end) {
        size_t len = item_len(it->in, it->in_size, it->tuples, s->next);
        uint64_t start = mp__feed_place(s->v, len, ring);
        size_t k = 1; /* items to write at start */
        if (it->kind == MP__UNIT_MAP_FIXED && len > 0) {
            /* a run of fixed-size items up to the ring's end or the room's */
            uint64_t lim =
                ring - (start & mask) < room_end - start ? ring - (start & mask) : room_end - start;
            if (start > room_end)
                lim = 0;
            k = (size_t)(lim / len);
            if (k > s->end - s->next)
                k = s->end - s->next;
        } else if (start + len > room_end) {
            k = 0;
        }
        if (k == 0) {
            if (reloaded)
                break;
            room_end = atomic_load(&f->consumed) + ring;
            reloaded = true;
            continue;
        }
        char *dst = f->ring + (start & mask);
        if (it->kind == MP__UNIT_MAP_FIXED)
            memcpy(dst, (const char *)it->in + s->next * len, k * len);
        else
            write_item(dst, it->in, it->in_size, it->tuples, s->next);
        s->next += k;
        s->v = start + k * len;
        wrote = true;
        reloaded = false;
        if (s->v - s->published >= (256u << 10))
            feed_publish(s);
    }
    if (s->v != s->published)
        feed_publish(s);
    return wrote;
}

/* A feed for count items of at most max_item bytes, with the submitter's and the
 * unit's references, or NULL (no room: the chunk travels whole). */
static struct mp__feed *feed_new(mp_pool *pool, struct stream *st, size_t ring)
{
    char *fresh = NULL;
    size_t fresh_len = 0;
    mp__pool_lock(pool);
    struct mp__feed *f = mp__pool_region_alloc_locked(pool, sizeof *f + ring);
    if (f != NULL) {
        fresh = mp__pool_region_fresh_locked(pool, f, sizeof *f + ring, &fresh_len);
        st->kick->parent_refs++;
    }
    mp__pool_unlock(pool);
    if (f == NULL)
        return NULL;
    mp__pool_region_populate(fresh, fresh_len);
    atomic_store(&f->written, 0);
    atomic_store(&f->consumed, 0);
    atomic_store(&f->wseq, 0);
    atomic_store(&f->worker_waits, 0);
    atomic_store(&f->abandoned, 0);
    f->parent_refs = 2;
    f->kick = st->kick;
    f->ring_size = ring;
    return f;
}

/* Makes chunk c's unit (through a feed when it is large, fits under the feed
 * limit and there is room) and submits it, if the map's budget allows it now.
 * Returns 1 when submitted, 0 when it must wait, or an error. */
static int stream_open(mp_pool *pool, mp_async_result *r, struct stream *st,
                       const struct map_items *it, size_t c)
{
    struct mp__span s = mp__chunk_span(it->n, r->chunksize, c);
    if (st->sized != c + 1) { /* once per chunk, however often it must wait */
        st->items = chunk_item_bytes(it, s, &st->max_item);
        st->sized = c + 1;
    }
    size_t max_item = st->max_item, items = st->items;
    size_t lens = it->kind == MP__UNIT_MAP_VAR ? 8 * s.count : 0;
    size_t payload = lens + items, out_len = s.count * it->out_size;
    size_t ring = MP__POOL_FEED_RING;
    while (ring < max_item && ring <= SIZE_MAX / 4)
        ring *= 2;
    bool feed = st->kick != NULL && items / 2 >= ring && ring <= pool->region_size / 8;
    size_t out_region = out_len >= MP__POOL_REGION_MIN ? out_len : 0;
    /* a feed chunk's frame still carries its items' lengths, in the region when
     * they are many (8 bytes an item: more than the items when they are small) */
    size_t frame = feed ? lens : payload;
    size_t want = (feed ? sizeof(struct mp__feed) + ring : 0) +
                  (frame >= MP__POOL_REGION_MIN ? frame : 0) + out_region;
    size_t budget = pool->region_size / 4 < MP__POOL_STREAM_BYTES ? pool->region_size / 4
                                                                  : MP__POOL_STREAM_BYTES;
    if (want > 0 && st->in_flight >= (size_t)pool->n && st->in_flight_bytes + want > budget)
        return 0;
    if (feed && st->feeds > (size_t)pool->n)
        return 0;
    struct mp__feed *f = feed ? feed_new(pool, st, ring) : NULL;
    char *dst;
    uint64_t in_size = it->kind == MP__UNIT_MAP_FIXED ? it->in_size : 0;
    struct mp__unit *u =
        new_unit(pool, it->kind, it->flags | (f ? MP__UNIT_FEED : 0), it->fn, s.count, in_size,
                 it->out_size, f ? lens : payload, out_len, &dst);
    if (u == NULL) {
        if (f != NULL) {
            mp__pool_lock(pool);
            f->parent_refs = 1;
            mp__pool_feed_drop_locked(pool, f);
            mp__pool_unlock(pool);
        }
        return MP_ENOMEM;
    }
    write_chunk(dst, it, s, f == NULL);
    u->r = r;
    u->chunk = c;
    u->feed = f;
    if (f != NULL)
        ((struct mp__task_hdr *)u->frame)->feed_off = (uint64_t)(uintptr_t)f;
    /* read before the submit: the handler may free u at once */
    size_t in_region = (f != NULL ? sizeof *f + ring : 0) +
                       (u->region != NULL ? (f != NULL ? lens : payload) : 0) +
                       (u->out_region != NULL ? out_len : 0);
    int rc = submit(pool, u); /* frees u (and its reference to f) on failure */
    if (rc != 0) {
        if (f != NULL) {
            mp__pool_lock(pool);
            mp__pool_feed_drop_locked(pool, f);
            mp__pool_unlock(pool);
        }
        return rc;
    }
    st->bytes[c] = in_region;
    st->is_feed[c] = f != NULL;
    st->in_flight++;
    st->in_flight_bytes += in_region;
    st->feeds += f != NULL;
    if (f != NULL)
        st->src[st->n_src++] =
            (struct feed_src){.f = f, .chunk = c, .next = s.first, .end = s.first + s.count};
    return 1;
}

/* Fills the open feeds: drops those written whole and abandons those whose chunk
 * was answered. True when anything moved. */
static bool stream_feed(mp_pool *pool, mp_async_result *r, struct stream *st,
                        const struct map_items *it)
{
    bool moved = false;
    for (size_t k = 0; k < st->n_src;) {
        struct feed_src *s = &st->src[k];
        bool answered = atomic_load_explicit(&r->chunks[s->chunk].done, memory_order_acquire);
        if (!answered && feed_fill(s, it))
            moved = true;
        if (!answered && s->next < s->end) {
            k++;
            continue;
        }
        if (s->next < s->end)
            mp__pool_feed_abandon(s->f);
        mp__pool_lock(pool);
        mp__pool_feed_drop_locked(pool, s->f);
        mp__pool_unlock(pool);
        *s = st->src[--st->n_src];
        moved = true;
    }
    return moved;
}

/* Submits every chunk of map r, streaming (see above); *submitted: how many went.
 * 0, or the error that stopped it (MP_ECLOSED, MP_ENOMEM) once every feed of the
 * chunks submitted was written or abandoned. */
static int stream_map(mp_pool *pool, mp_async_result *r, struct stream *st,
                      const struct map_items *it, size_t *submitted)
{
    _Atomic uint32_t *word = st->kick != NULL ? &st->kick->seq : &r->seq;
    size_t c = 0;
    int rc = 0;
    bool armed = false;
    uint32_t seq = 0;
    for (;;) {
        stream_account(r, st);
        bool moved = stream_feed(pool, r, st, it);
        while (rc == 0 && c < r->n_chunks) {
            size_t feeds = st->n_src;
            int o = stream_open(pool, r, st, it, c);
            if (o < 0)
                rc = o;
            if (o != 1)
                break;
            c++;
            moved = true;
            if (st->n_src > feeds)
                break; /* fill it before the next ring's pages are faulted in */
        }
        if ((rc != 0 || c == r->n_chunks) && st->n_src == 0)
            break;
        if (moved) {
            if (armed && st->kick != NULL)
                atomic_store(&st->kick->waiting, 0);
            armed = false;
            continue;
        }
        if (!armed) { /* announce the sleep, then look once more */
            if (st->kick != NULL)
                atomic_store(&st->kick->waiting, 1);
            seq = atomic_load(word);
            armed = true;
            continue;
        }
        mp__deadline d; /* a bounded sleep: the conditions are re-checked */
        mp__deadline_init(&d, 100);
        mp__futex_wait(word, seq, &d);
        if (st->kick != NULL)
            atomic_store(&st->kick->waiting, 0);
        armed = false;
    }
    if (armed && st->kick != NULL)
        atomic_store(&st->kick->waiting, 0);
    *submitted = c;
    return rc;
}

/* Sets up the streaming of map r: its bookkeeping and its kick word (with the
 * submitter's and r's references). False: out of memory, no streaming. */
static bool stream_init(mp_pool *pool, mp_async_result *r, struct stream *st)
{
    st->bytes = calloc(r->n_chunks, sizeof *st->bytes);
    st->is_feed = calloc(r->n_chunks, 1);
    st->src = calloc((size_t)pool->n + 1, sizeof *st->src);
    if (st->bytes == NULL || st->is_feed == NULL || st->src == NULL) {
        free(st->bytes);
        free(st->is_feed);
        free(st->src);
        return false;
    }
    char *fresh = NULL;
    size_t fresh_len = 0;
    mp__pool_lock(pool);
    struct mp__feed_kick *k = mp__pool_region_alloc_locked(pool, sizeof *k);
    if (k != NULL) {
        fresh = mp__pool_region_fresh_locked(pool, k, sizeof *k, &fresh_len);
        k->parent_refs = 2;
        r->kick = k;
    }
    mp__pool_unlock(pool);
    mp__pool_region_populate(fresh, fresh_len);
    if (k != NULL) {
        atomic_store(&k->seq, 0);
        atomic_store(&k->waiting, 0);
    }
    st->kick = k; /* NULL: no feeds, the waits are on r->seq */
    return true;
}

static void stream_fini(mp_pool *pool, struct stream *st)
{
    mp__pool_lock(pool);
    mp__pool_kick_drop_locked(pool, st->kick);
    mp__pool_unlock(pool);
    free(st->bytes);
    free(st->is_feed);
    free(st->src);
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
    struct map_items it = {.kind = in_size && !tuples ? MP__UNIT_MAP_FIXED : MP__UNIT_MAP_VAR,
                           .flags = tuples ? MP__UNIT_STAR : 0,
                           .fn = fn,
                           .in = in,
                           .in_size = in_size,
                           .tuples = tuples,
                           .n = n,
                           .out_size = out_size};
    struct stream st = {0};
    if (stream && r->n_chunks > 1 && stream_init(pool, r, &st)) {
        size_t submitted = 0;
        rc = stream_map(pool, r, &st, &it, &submitted);
        stream_fini(pool, &st);
        if (rc != 0 && submitted > 0)
            stream_drain(pool, r, submitted); /* then nothing refers to r but us */
        if (rc != 0) {
            mp__pool_lock(pool);
            mp__pool_kick_drop_locked(pool, r->kick); /* its chunks will not all be answered */
            r->kick = NULL;
            mp__pool_unlock(pool);
            goto out_release;
        }
        *out = r;
        return 0;
    }
    struct mp__unit *list = NULL, **tail = &list;
    for (size_t c = 0; c < r->n_chunks; c++) {
        struct mp__span s = mp__chunk_span(n, r->chunksize, c);
        size_t max_item, payload = chunk_item_bytes(&it, s, &max_item);
        if (it.kind == MP__UNIT_MAP_VAR)
            payload += 8 * s.count;
        char *dst;
        /* results through the region only for a synchronous map (a single chunk
         * here), whose caller waits: an async map's backlog would hold the region */
        struct mp__unit *u = new_unit(pool, it.kind, it.flags, fn, s.count,
                                      it.kind == MP__UNIT_MAP_FIXED ? in_size : 0, out_size,
                                      payload, stream ? s.count * out_size : 0, &dst);
        if (u == NULL) {
            free_units(pool, list);
            rc = MP_ENOMEM;
            goto out_release;
        }
        write_chunk(dst, &it, s, true);
        u->r = r;
        u->chunk = c;
        *tail = u;
        tail = &u->next;
    }
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
    /* the items stay valid until the map returns: it streams them (see stream_map) */
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
