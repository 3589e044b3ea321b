/* bench/sweeps/byte_ring.h — the raw floor for streams of messages longer than 64
 * bytes between one producer and one consumer process (the queue sweep's points
 * over 64 bytes): a plain single-producer single-consumer byte ring in MAP_SHARED
 * memory doing the work mp_queue does for such a stream, with no library around it:
 * each message's length and bytes copied in once, copied out once into a buffer of
 * its own (malloc, as mp_queue_get), and a side that finds the ring empty or full
 * spinning, then yielding, then sleeping on a futex until the other side wakes it.
 *
 *   - Records of an 8-byte length and the bytes, padded to 8, packed one after the
 *     other in a ring, wrapping at its end (copied in two pieces there), as much
 *     ring as mp_queue uses for such messages: 1 MiB (its default ring) for a
 *     stream whose messages fit that whole, else 4 MiB (its block area for longer
 *     messages, BLOB_AREA_RINGS). A record is published whole with one release
 *     store of tail once its bytes are in, and freed whole with one of head once
 *     they are out (mp_queue commits a long message's record, too, only after its
 *     whole block is copied). (1 MiB messages in pieces through a 1 MiB ring made
 *     the floor 0.74x mproc; short records through a 4 MiB ring spread over four
 *     times the memory, more than the 1 MiB L2, 0.64-0.84x at 4-256 KiB.)
 *   - A message whose record is longer than the ring (over 4 MiB; no sweep point)
 *     goes through it in pieces of a quarter of the ring, each published as soon
 *     as it is copied.
 *   - Each side keeps a copy of the other side's index and reads the shared one
 *     only when its copy says "full" / "empty" (Lamport's ring with cached
 *     indices): the index lines move once per batch of messages, not per message.
 *   - A waiting side looks at the other's index once every BYTE_RING_STRIDE
 *     pauses; a producer that finds the ring full waits, for at most the spin,
 *     until BYTE_RING_BATCH bytes beyond its record are free, so that its next puts
 *     do not read head again (mp_queue's room batch).
 *   - Sleeping, Dekker style, as mp_queue and ring_floor.h: a waiter reads its
 *     side's sleep sequence, sets its flag, looks at the ring again and
 *     futex-waits (100 ms slices); a side that published makes one full fence,
 *     reads the other side's flag and makes the FUTEX_WAKE call only when it is
 *     set. The fence and the flag read are paid at every publish, as a queue must.
 * (Until 2026-12 this ring had no sleep and no fence, published the length apart
 * from the bytes, read the other side's index at every piece and was 256 KiB: not
 * a floor of the same work: mproc/raw 0.22-0.66x at 512 B - 32 KiB and 1 MiB.) */
#ifndef MPROC_BENCH_BYTE_RING_H
#define MPROC_BENCH_BYTE_RING_H

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BYTE_RING_SHORT ((uint64_t)1 << 20) /* the ring for messages that fit it whole */
#define BYTE_RING_LONG ((uint64_t)1 << 22)  /* the ring for longer messages */
#define BYTE_RING_HDR 8u
#define BYTE_RING_SPIN 200
#define BYTE_RING_STRIDE 8 /* pauses between two looks at the other side's index */
#define BYTE_RING_YIELDS 20
#define BYTE_RING_BATCH 4096u /* free bytes a producer that found the ring full spins for */

/* One side's sleep: seq is the futex word, bumped by a waker; waiting says that a
 * waiter may sleep on it. */
struct byte_ring_sleep {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiting;
} __attribute__((aligned(128)));

struct byte_ring {
    _Atomic uint64_t tail __attribute__((aligned(128))); /* bytes produced; producer writes */
    uint64_t head_seen;                                  /* the producer's copy of head */
    _Atomic uint64_t head __attribute__((aligned(128))); /* bytes consumed; consumer writes */
    uint64_t tail_seen;                                  /* the consumer's copy of tail */
    struct byte_ring_sleep data;  /* the consumer sleeps here when the ring is empty */
    struct byte_ring_sleep space; /* the producer sleeps here when it is full */
    uint64_t cap;                 /* bytes, a power of two; constant */
    unsigned char ring[] __attribute__((aligned(128)));
};

/* A ring for a stream of messages of up to `longest` bytes: BYTE_RING_SHORT bytes
 * when such a message's record fits that whole, else BYTE_RING_LONG (see above). */
static inline struct byte_ring *byte_ring_new(size_t longest)
{
    uint64_t cap =
        8 + ((longest + 7) & ~(size_t)7) <= BYTE_RING_SHORT ? BYTE_RING_SHORT : BYTE_RING_LONG;
    struct byte_ring *r =
        mmap(NULL, sizeof *r + cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    r->cap = cap;
    return r;
}

static inline void byte_ring_free(struct byte_ring *r)
{
    munmap(r, sizeof *r + r->cap);
}

static inline void byte_ring_futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    struct timespec slice = {0, 100000000};
    syscall(SYS_futex, w, op, val, op == FUTEX_WAIT ? &slice : NULL, NULL, 0);
}

/* After a release store of this side's index: the full fence, then a wake-up of the
 * other side if it sleeps. */
static inline void byte_ring_published(struct byte_ring_sleep *other)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&other->waiting, memory_order_relaxed) &&
        atomic_exchange(&other->waiting, 0)) {
        atomic_fetch_add(&other->seq, 1);
        byte_ring_futex(&other->seq, FUTEX_WAKE, INT_MAX);
    }
}

/* Free bytes for the producer at tail, by a fresh look at head. */
static inline uint64_t byte_ring_room(struct byte_ring *r, uint64_t tail)
{
    r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
    return r->cap - (tail - r->head_seen);
}

/* Bytes filled for the consumer at head, by a fresh look at tail. */
static inline uint64_t byte_ring_filled(struct byte_ring *r, uint64_t head)
{
    r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->tail_seen - head;
}

/* Waits until a look at the other side's index (room or filled) gives at least
 * `batch` while spinning, then at least `need`; sl is this side's sleep. */
static inline void byte_ring_wait(struct byte_ring *r,
                                  uint64_t (*look)(struct byte_ring *, uint64_t), uint64_t pos,
                                  uint64_t need, uint64_t batch, struct byte_ring_sleep *sl)
{
    uint64_t have = look(r, pos);
    if (have >= batch)
        return;
    for (int i = 1; i <= BYTE_RING_SPIN; i++) {
        bench_cpu_relax();
        if (i % BYTE_RING_STRIDE == 0 && (have = look(r, pos)) >= batch)
            return;
    }
    if (have >= need)
        return;
    for (int i = 0; i < BYTE_RING_YIELDS; i++) {
        sched_yield();
        if (look(r, pos) >= need)
            return;
    }
    for (;;) {
        uint32_t seq = atomic_load(&sl->seq); /* before the flag, as mp_queue */
        atomic_store(&sl->waiting, 1);
        if (look(r, pos) >= need)
            break;
        byte_ring_futex(&sl->seq, FUTEX_WAIT, seq);
    }
    atomic_store(&sl->waiting, 0);
}

static inline void byte_ring_copy_in(struct byte_ring *r, uint64_t pos, const void *src, size_t n)
{
    size_t off = pos & (r->cap - 1), first = n < r->cap - off ? n : r->cap - off;
    memcpy(r->ring + off, src, first);
    memcpy(r->ring, (const unsigned char *)src + first, n - first);
}

static inline void byte_ring_copy_out(const struct byte_ring *r, uint64_t pos, void *dst, size_t n)
{
    size_t off = pos & (r->cap - 1), first = n < r->cap - off ? n : r->cap - off;
    memcpy(dst, r->ring + off, first);
    memcpy((unsigned char *)dst + first, r->ring, n - first);
}

/* Waits for `need` free bytes at tail (the producer). */
static inline void byte_ring_wait_room(struct byte_ring *r, uint64_t tail, uint64_t need)
{
    if (r->cap - (tail - r->head_seen) < need)
        byte_ring_wait(r, byte_ring_room, tail, need,
                       need + BYTE_RING_BATCH <= r->cap ? need + BYTE_RING_BATCH : need, &r->space);
}

/* Waits for `need` filled bytes at head (the consumer). */
static inline void byte_ring_wait_data(struct byte_ring *r, uint64_t head, uint64_t need)
{
    if (r->tail_seen - head < need)
        byte_ring_wait(r, byte_ring_filled, head, need, need, &r->data);
}

static inline uint64_t byte_ring_round8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* Puts one message of n bytes (the producer); blocks while the ring is full. */
static inline void byte_ring_put(struct byte_ring *r, const void *msg, size_t n)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t len = n, rec = BYTE_RING_HDR + byte_ring_round8(n);
    if (rec <= r->cap) { /* the whole record, published once */
        byte_ring_wait_room(r, tail, rec);
        byte_ring_copy_in(r, tail, &len, sizeof len);
        byte_ring_copy_in(r, tail + BYTE_RING_HDR, msg, n);
        atomic_store_explicit(&r->tail, tail + rec, memory_order_release);
        byte_ring_published(&r->data);
        return;
    }
    const unsigned char *p = msg; /* longer than the ring: the header, then pieces */
    byte_ring_wait_room(r, tail, BYTE_RING_HDR);
    byte_ring_copy_in(r, tail, &len, sizeof len);
    tail += BYTE_RING_HDR;
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    byte_ring_published(&r->data);
    for (uint64_t left = byte_ring_round8(n); left > 0;) {
        uint64_t k = left < r->cap / 4 ? left : r->cap / 4;
        byte_ring_wait_room(r, tail, k);
        uint64_t real = (uint64_t)(p - (const unsigned char *)msg) + k <= n
                            ? k
                            : n - (uint64_t)(p - (const unsigned char *)msg); /* last, unpadded */
        byte_ring_copy_in(r, tail, p, real);
        p += real, left -= k, tail += k;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        byte_ring_published(&r->data);
    }
}

/* Takes the next message (the consumer): *msg a malloc'd copy of its *n bytes, the
 * caller's to free; -1 when memory ran out. Blocks while the ring is empty. */
static inline int byte_ring_get(struct byte_ring *r, void **msg, size_t *n)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t len;
    byte_ring_wait_data(r, head, BYTE_RING_HDR);
    byte_ring_copy_out(r, head, &len, sizeof len);
    uint64_t rec = BYTE_RING_HDR + byte_ring_round8(len);
    unsigned char *m = malloc(len ? len : 1);
    if (m == NULL)
        return -1;
    if (rec <= r->cap) { /* published whole with its header */
        byte_ring_copy_out(r, head + BYTE_RING_HDR, m, len);
        atomic_store_explicit(&r->head, head + rec, memory_order_release);
        byte_ring_published(&r->space);
    } else {
        head += BYTE_RING_HDR;
        atomic_store_explicit(&r->head, head, memory_order_release);
        byte_ring_published(&r->space);
        for (uint64_t done = 0, left = byte_ring_round8(len); left > 0;) {
            uint64_t k = left < r->cap / 4 ? left : r->cap / 4;
            byte_ring_wait_data(r, head, k);
            uint64_t real = done + k <= len ? k : len - done;
            byte_ring_copy_out(r, head, m + done, real);
            done += real, left -= k, head += k;
            atomic_store_explicit(&r->head, head, memory_order_release);
            byte_ring_published(&r->space);
        }
    }
    *msg = m;
    *n = len;
    return 0;
}

#endif /* MPROC_BENCH_BYTE_RING_H */
