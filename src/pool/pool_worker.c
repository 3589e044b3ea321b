/* pool_worker.c — the loop a pool worker runs, as a forked process or as a thread.
 *
 * A worker reads task frames (pool/pool.h) from its socket, one at a time, runs
 * each and answers it with one result frame, in task order; small frames wait in a
 * batch (see struct result_writer) while the next task is already read. The parent
 * attributes a death with `running` (the id of the task being run, set before the
 * task starts and cleared once its result is in the batch or the socket), not with
 * the order of the results.
 *
 * In a process, this code runs in a child forked from a multi-threaded parent: it
 * touches no lock of the parent (only its own socket, malloc and stdio, which the C
 * library keeps usable across fork) and never returns into the parent's code: the
 * caller _exits.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "linux/futex.h"
#include "pool/pool.h"

/* h first: mp_task_return's inline fast path (mproc/pool.h) reads it through the
 * task's pointer. h.fixed: a fixed-size map's slot for the item's result, or NULL;
 * h.fixed_set: the task wrote into it (mp_task_return or mp_task_result_buffer). */
struct mp_task {
    struct mp__task_head h;
    char *data; /* malloc'd result, or NULL */
    size_t len;
    char *msg; /* malloc'd failure message */
};

/* mp_task_return past its fast path: a result that does not go into a fixed slot. */
__attribute__((noinline)) static int task_return_slow(mp_task *t, const void *data, size_t len)
{
    void *p = mp_task_result_buffer(t, len);
    if (p == NULL && len > 0)
        return MP_ENOMEM;
    if (len > 0)
        memcpy(p, data, len);
    t->len = len;
    return 0;
}

/* The out-of-line mp_task_return (the header's inline fast path calls it for what
 * it does not handle itself; the parentheses keep the header's macro out). */
int(mp_task_return)(mp_task *t, const void *data, size_t len)
{
    if (t == NULL || (data == NULL && len > 0))
        return MP_EINVAL;
    if (t->h.fixed != NULL && len == t->h.fixed_size) {
        if (len == 4)
            memcpy(t->h.fixed, data, 4);
        else if (len == 8)
            memcpy(t->h.fixed, data, 8);
        else
            memcpy(t->h.fixed, data, len);
        t->h.fixed_set = true;
        return 0;
    }
    return task_return_slow(t, data, len);
}

void *mp_task_result_buffer(mp_task *t, size_t len)
{
    if (t == NULL || len == 0)
        return NULL;
    if (t->h.fixed != NULL && len == t->h.fixed_size) {
        t->h.fixed_set = true;
        return t->h.fixed;
    }
    t->h.fixed_set = false;
    char *p = realloc(t->data, len);
    if (p == NULL)
        return NULL;
    t->data = p;
    t->len = len;
    return p;
}

int mp_task_fail(mp_task *t, int code, const char *fmt, ...)
{
    if (t != NULL && fmt != NULL) {
        free(t->msg);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&t->msg, fmt, ap) < 0)
            t->msg = NULL;
        va_end(ap);
    }
    return code;
}

static void task_reset(mp_task *t)
{
    free(t->data);
    free(t->msg);
    *t = (mp_task){0};
}

/* Buffered reads: one read() usually brings several small task frames. */
struct rbuf {
    char *p;
    size_t pos, len, cap;
};

/* 0; MP_EEOF when the parent closed our socket, or -errno (it is gone). */
static int read_full(int fd, struct rbuf *b, void *buf, size_t n)
{
    char *dst = buf;
    for (;;) {
        size_t take = b->len - b->pos < n ? b->len - b->pos : n;
        memcpy(dst, b->p + b->pos, take);
        b->pos += take;
        dst += take;
        n -= take;
        if (n == 0)
            return 0;
        ssize_t r;
        if (n >= b->cap) { /* large payloads go straight to their place */
            r = read(fd, dst, n);
            if (r > 0) {
                dst += r;
                n -= (size_t)r;
                if (n == 0)
                    return 0;
            }
        } else {
            r = read(fd, b->p, b->cap);
            if (r > 0) {
                b->pos = 0;
                b->len = (size_t)r;
            }
        }
        if (r == 0)
            return MP_EEOF;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* 0 or -errno (MP_EPIPE: the parent went away; MSG_NOSIGNAL, so that this does
 * not kill a thread pool's process). */
static int write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        mp__iov_advance(&iov, &cnt, (size_t)w);
    }
    return 0;
}

struct growbuf {
    char *p;
    size_t len, cap;
};

/* Room for extra more bytes: 0 or MP_ENOMEM. */
static int grow(struct growbuf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return MP_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Results not yet written: small result frames are batched and written when the
 * worker would otherwise block, so one write carries many. A process worker's
 * batch is in the pool's shared region (c->batch): after each whole frame it
 * publishes the batch's length (batch_len, release), and sets it to 0 only once the
 * batch is in the socket, so the parent finds the finished results of a worker
 * that dies before writing them. Without a shared batch (a thread, or a small
 * region) the parent re-runs the finished tasks it did not hear of (see pool.c). */
struct result_writer {
    int fd;
    struct growbuf b;
    unsigned n;                  /* frames in b */
    _Atomic uint64_t *published; /* the slot's batch_len when b is the shared batch */
};

/* Writes the batch to the socket: 0 or -errno. */
static int flush_results(struct result_writer *o)
{
    if (o->b.len == 0)
        return 0;
    struct iovec iov = {o->b.p, o->b.len};
    int rc = write_all(o->fd, &iov, 1);
    o->b.len = 0;
    o->n = 0;
    if (rc == 0 && o->published != NULL)
        atomic_store_explicit(o->published, 0, memory_order_release);
    return rc;
}

/* Sends one result frame: into the batch when small (flushing it when it is
 * full), else after the batch, directly. 0 or -errno. */
static int send_result(struct result_writer *o, uint64_t id, int status, int task_code,
                       const char *msg, const void *payload, size_t payload_len)
{
    struct mp__result_hdr h = {.id = id,
                               .status = status,
                               .task_code = task_code,
                               .msg_len = msg ? strlen(msg) : 0,
                               .payload_len = payload_len};
    size_t total = sizeof h + h.msg_len + payload_len;
    if (total <= (32u << 10) &&
        (o->published != NULL ? o->b.len + total <= o->b.cap : grow(&o->b, total) == 0)) {
        char *d = o->b.p + o->b.len;
        memcpy(d, &h, sizeof h);
        if (h.msg_len)
            memcpy(d + sizeof h, msg, h.msg_len);
        if (payload_len)
            memcpy(d + sizeof h + h.msg_len, payload, payload_len);
        o->b.len += total;
        if (o->published != NULL)
            atomic_store_explicit(o->published, o->b.len, memory_order_release);
        return ++o->n >= 64 || o->b.len >= (64u << 10) ? flush_results(o) : 0;
    }
    int rc = flush_results(o);
    if (rc != 0)
        return rc;
    struct iovec iov[3] = {
        {&h, sizeof h}, {(void *)msg, h.msg_len}, {(void *)payload, payload_len}};
    return write_all(o->fd, iov, 3);
}

void (*mp__pool_fault_hook)(int point);

/* Reading a chunk's items from its feed (struct mp__feed, pool/pool.h). */
struct feed_reader {
    struct mp__feed *f;
    uint64_t v;         /* stream offset after the items done */
    uint64_t avail;     /* `written` as last seen */
    uint64_t published; /* `consumed` as last stored */
};

static void feed_publish(struct feed_reader *fr)
{
    atomic_store(&fr->f->consumed, fr->v);
    fr->published = fr->v;
    struct mp__feed_kick *k = fr->f->kick;
    if (atomic_load(&k->waiting)) {
        atomic_fetch_add(&k->seq, 1);
        mp__futex_wake(&k->seq, INT32_MAX);
    }
}

/* The address of the next item, of len bytes, once the parent wrote it; NULL when
 * the parent abandoned the feed. Before it sleeps it gives back the room of the
 * items done and writes the batched results. */
static const char *feed_item(struct feed_reader *fr, size_t len, struct result_writer *out)
{
    struct mp__feed *f = fr->f;
    uint64_t start = mp__feed_place(fr->v, len, f->ring_size);
    if (start + len > fr->avail) {
        if (mp__pool_fault_hook != NULL)
            mp__pool_fault_hook(MP__PF_FEED_WAIT);
        fr->v = start; /* done with the lap's end it skips, too */
        if (fr->v != fr->published)
            feed_publish(fr); /* the parent may be waiting for this room */
        for (int spins = 0;; spins++) {
            fr->avail = atomic_load(&f->written);
            if (start + len <= fr->avail)
                break;
            if (atomic_load(&f->abandoned))
                return NULL;
            if (spins < 200) {
                mp__cpu_relax();
                continue;
            }
            (void)flush_results(out);
            uint32_t seq = atomic_load(&f->wseq);
            atomic_store(&f->worker_waits, 1);
            if (start + len > atomic_load(&f->written) && !atomic_load(&f->abandoned)) {
                mp__deadline d; /* a bounded sleep: the condition is re-checked */
                mp__deadline_init(&d, 100);
                mp__futex_wait(&f->wseq, seq, &d);
            }
            atomic_store(&f->worker_waits, 0);
        }
    }
    fr->v = start;
    return f->ring + (start & (f->ring_size - 1));
}

/* The item just run (len bytes) is done with: its room goes back in steps. */
static inline void feed_done(struct feed_reader *fr, size_t len)
{
    fr->v += len;
    if (fr->v - fr->published >= (256u << 10))
        feed_publish(fr);
}

/* The message for a failure without one of its own. */
static char *default_msg(int rc)
{
    char *m = NULL;
    if (asprintf(&m, "task returned %d (%s)", rc, rc < 0 ? mp_err_name(rc) : "non-zero") < 0)
        m = NULL;
    return m;
}

static void flush_stdio(void)
{
    fflush(stdout);
    fflush(stderr);
}

/* Calls the task for one item (a packed tuple when star). */
static int call_item(const struct mp__task_hdr *h, const char *item, size_t len, mp_task *t)
{
    if (!(h->flags & MP__UNIT_STAR))
        return ((mp_task_fn)(uintptr_t)h->fn)(item, len, t);
    uint64_t argc;
    memcpy(&argc, item, sizeof argc);
    mp_buf small[8], *argv = argc <= 8 ? small : malloc(argc * sizeof *argv);
    if (argv == NULL)
        return mp_task_fail(t, MP_ENOMEM, "out of memory unpacking %llu arguments",
                            (unsigned long long)argc);
    const char *lens = item + 8, *data = lens + 8 * argc;
    for (uint64_t i = 0; i < argc; i++) {
        uint64_t l;
        memcpy(&l, lens + 8 * i, 8);
        argv[i] = (mp_buf){data, l};
        data += l;
    }
    int rc = ((mp_star_fn)(uintptr_t)h->fn)(argc, argv, t);
    if (argv != small)
        free(argv);
    return rc;
}

static int run_apply(struct result_writer *out, const struct mp__task_hdr *h, const char *arg)
{
    mp_task t = {0};
    int rc = ((mp_task_fn)(uintptr_t)h->fn)(arg, h->payload_len, &t);
    flush_stdio();
    int w;
    if (rc != 0) {
        if (t.msg == NULL)
            t.msg = default_msg(rc);
        w = send_result(out, h->id, MP_ETASKFAILED, rc, t.msg, NULL, 0);
    } else {
        w = send_result(out, h->id, 0, 0, NULL, t.data, t.len);
    }
    task_reset(&t);
    return w;
}

/* A map chunk. Fixed-size results go to their slot: in the region block at
 * h->out_off when the parent gave one (the result frame then carries none), else
 * in results, which also collects variable-size results; on the first failing
 * item the chunk fails. The loop is per item: no allocation or copy beyond what
 * the task itself does. */
static int run_chunk(struct result_writer *out, const struct mp__task_hdr *h, const char *payload,
                     struct growbuf *results)
{
    bool fixed_in = h->kind == MP__UNIT_MAP_FIXED, fixed_out = h->out_size > 0;
    bool in_region = fixed_out && h->out_off != 0;
    size_t count = h->count, out_size = h->out_size;
    const char *data = fixed_in ? payload : payload + 8 * count;
    char *slots = in_region ? (char *)(uintptr_t)h->out_off : NULL;
    results->len = 0;
    if (!in_region) {
        if (grow(results, fixed_out ? count * out_size : 8 * count) != 0)
            return send_result(out, h->id, MP_ENOMEM, 0, "worker out of memory", NULL, 0);
        results->len = fixed_out ? count * out_size : 8 * count;
        if (fixed_out)
            slots = results->p;
    }
    int status = 0, code = 0;
    char *msg = NULL;
    mp_task t = {.h.fixed_size = fixed_out ? out_size : 0};
    size_t i = 0;
    int rc = 0;
    bool ran = false; /* item i already ran in the tight loop; its outcome is below */
    struct feed_reader fr = {.f = (struct mp__feed *)(uintptr_t)h->feed_off};
    bool feed = h->flags & MP__UNIT_FEED;
    if (fixed_in && fixed_out && !feed && !(h->flags & MP__UNIT_STAR)) {
        /* fixed items to fixed results, the common case: a tight loop until an item
         * does anything but fill its slot. A result or message it left besides (a
         * slow path that the fast one then overrode) is freed after the loops. */
        mp_task_fn fn = (mp_task_fn)(uintptr_t)h->fn;
        size_t in_size = h->in_size;
        char *slot = slots;
        for (; i < count; i++, data += in_size, slot += out_size) {
            t.h.fixed = slot;
            t.h.fixed_set = false;
            rc = fn(data, in_size, &t);
            if (__builtin_expect(rc != 0 || !t.h.fixed_set, 0)) {
                ran = true;
                break;
            }
        }
    }
    for (; i < count && status == 0; i++) {
        size_t len = h->in_size;
        if (!fixed_in)
            memcpy(&len, payload + 8 * i, 8);
        if (!ran && feed && (data = feed_item(&fr, len, out)) == NULL) {
            status = MP_ECLOSED; /* the chunk was answered already: nobody reads this */
            msg = strdup("the map stopped sending the chunk's items");
            break;
        }
        if (!ran) {
            t.h.fixed = fixed_out ? slots + i * out_size : NULL;
            t.h.fixed_set = false;
            rc = call_item(h, data, len, &t);
        }
        ran = false;
        if (feed)
            feed_done(&fr, len);
        else
            data += len;
        if (rc != 0) {
            status = MP_ETASKFAILED;
            code = rc;
            msg = t.msg ? t.msg : default_msg(rc);
            t.msg = NULL;
        } else if (fixed_out && !t.h.fixed_set) {
            status = MP_EMSGSIZE;
            if (asprintf(&msg, "item %zu of the chunk returned %zu bytes, expected %llu", i,
                         t.data ? t.len : 0, (unsigned long long)out_size) < 0)
                msg = NULL;
        } else if (!fixed_out) {
            uint64_t l = t.data ? t.len : 0;
            if (grow(results, l) != 0) {
                status = MP_ENOMEM;
            } else {
                memcpy(results->p + 8 * i, &l, 8);
                if (l > 0)
                    memcpy(results->p + results->len, t.data, l);
                results->len += l;
            }
        }
        if (t.data != NULL || t.msg != NULL) {
            task_reset(&t);
            t.h.fixed_size = fixed_out ? out_size : 0;
        }
    }
    if (t.data != NULL || t.msg != NULL)
        task_reset(&t);
    flush_stdio();
    int w = status != 0 ? send_result(out, h->id, status, code, msg, NULL, 0)
            : in_region ? send_result(out, h->id, 0, 0, NULL, NULL, 0)
                        : send_result(out, h->id, 0, 0, NULL, results->p, results->len);
    /* A chunk read through a feed cannot run again (its ring holds its last items
     * now): its result is in the socket before `running` is cleared, so that a
     * death from here on cannot lose it when the batch is not shared. */
    if (feed && w == 0 && out->published == NULL)
        w = flush_results(out);
    free(msg);
    return w;
}

/* Zero-copy job: claim chunks until none is left. The order of the shared writes
 * is the one in the table at struct mp__job (pool/pool.h), which the parent relies on. */
static int run_job(struct result_writer *out, const struct mp__task_hdr *h)
{
    struct mp__job *j = (struct mp__job *)(uintptr_t)h->region_off;
    int rc = flush_results(out); /* a job is long: nothing waits behind it */
    if (rc != 0)
        return rc;
    mp_kernel_fn kernel = (mp_kernel_fn)(uintptr_t)j->kernel;
    while (!atomic_load(&j->cancel)) {
        uint64_t c = atomic_fetch_add(&j->next_chunk, 1);
        if (c >= j->n_chunks)
            break;
        struct mp__span s = mp__chunk_span(j->n, j->chunksize, c);
        int code = kernel(j->in ? j->in + s.first * j->in_size : NULL,
                          j->out ? j->out + s.first * j->out_size : NULL, s.count, j->ctx);
        if (code != 0) {
            j->chunk_code[c] = code;
            atomic_store(&j->failed, 1);
        }
        atomic_store(&j->chunk_state[c], code ? MP__CHUNK_FAILED : MP__CHUNK_DONE);
        atomic_fetch_add(&j->done_items, s.count);
        uint64_t f = atomic_fetch_add(&j->finished_chunks, 1) + 1;
        if (f == j->n_chunks && atomic_load(&j->fast) && !atomic_load(&j->failed) &&
            atomic_exchange(&j->state, MP__READY) == MP__PENDING_WAITED)
            mp__futex_wake(&j->state, INT32_MAX);
    }
    flush_stdio();
    return send_result(out, h->id, 0, 0, NULL, NULL, 0);
}

/* True when a whole task frame is already buffered (the next read won't block). */
static bool frame_buffered(const struct rbuf *b)
{
    struct mp__task_hdr h;
    if (b->len - b->pos < sizeof h)
        return false;
    memcpy(&h, b->p + b->pos, sizeof h);
    return (h.flags & MP__UNIT_REGION) || b->len - b->pos - sizeof h >= h.payload_len;
}

void mp__pool_worker_main(const struct mp__worker_ctx *c)
{
    if (c->initializer != NULL) {
        atomic_store(c->running, MP__RUNNING_INIT);
        c->initializer(c->initarg);
        flush_stdio();
        atomic_store(c->running, 0);
    }
    struct growbuf in = {0}, results = {0};
    struct result_writer out = {.fd = c->fd};
    if (c->batch != NULL)
        out = (struct result_writer){
            .fd = c->fd, .b = {.p = c->batch, .cap = MP__BATCH_CAP}, .published = c->batch_len};
    struct rbuf rb = {.cap = 64 << 10};
    rb.p = malloc(rb.cap);
    unsigned done = 0;
    while (rb.p != NULL) {
        struct mp__task_hdr h;
        if (!frame_buffered(&rb) && flush_results(&out) != 0)
            break;
        if (read_full(c->fd, &rb, &h, sizeof h) != 0)
            break;
        const char *payload;
        if (h.flags & MP__UNIT_REGION) {
            payload = (const char *)(uintptr_t)h.region_off;
        } else {
            in.len = 0;
            if (grow(&in, h.payload_len + 1) != 0 ||
                read_full(c->fd, &rb, in.p, h.payload_len) != 0)
                break;
            payload = in.p;
        }
        atomic_store(c->running, h.id);
        int rc;
        if (h.kind == MP__UNIT_JOB)
            rc = run_job(&out, &h);
        else if (h.kind == MP__UNIT_APPLY)
            rc = run_apply(&out, &h, payload);
        else
            rc = run_chunk(&out, &h, payload, &results);
        atomic_store(c->running, 0);
        if (mp__pool_fault_hook != NULL)
            mp__pool_fault_hook(MP__PF_TASK_DONE);
        if (rc != 0) /* the parent is gone or closed our socket */
            break;
        if (h.kind != MP__UNIT_JOB && c->maxtasks != 0 && ++done >= c->maxtasks)
            break;
    }
    flush_results(&out);
    if (out.published == NULL)
        free(out.b.p);
    free(rb.p);
    free(in.p);
    free(results.p);
}
