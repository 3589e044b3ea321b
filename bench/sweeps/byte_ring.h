/* bench/sweeps/byte_ring.h — the raw floor for streams of messages of any size
 * between one producer and one consumer process: a plain byte ring in MAP_SHARED
 * memory (single producer, single consumer), each message an 8-byte length and its
 * bytes, copied in pieces of at most 32 KiB, each published as soon as it is copied so
 * that the two sides copy at once (a long message in whole-ring pieces made the
 * producer and consumer take turns, and the floor slower than mproc). Waiting spins with a
 * pause, then yields the CPU. */
#ifndef MPROC_BENCH_BYTE_RING_H
#define MPROC_BENCH_BYTE_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define BYTE_RING_CAP ((size_t)1 << 18)   /* 256 KiB, a power of two: the stream stays in cache */
#define BYTE_RING_PIECE ((size_t)1 << 15) /* the most copied before publishing */

struct byte_ring {
    _Atomic uint64_t head __attribute__((aligned(128))); /* bytes consumed; consumer writes */
    _Atomic uint64_t tail __attribute__((aligned(128))); /* bytes produced; producer writes */
    unsigned char data[BYTE_RING_CAP] __attribute__((aligned(128)));
};

static inline struct byte_ring *byte_ring_new(void)
{
    struct byte_ring *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return r == MAP_FAILED ? NULL : r;
}

static inline void byte_ring_wait(unsigned *spins)
{
    if (++*spins < 200)
        bench_cpu_relax();
    else
        sched_yield();
}

static inline void byte_ring_write(struct byte_ring *r, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    unsigned spins = 0;
    while (n > 0) {
        uint64_t free_ =
            BYTE_RING_CAP - (tail - atomic_load_explicit(&r->head, memory_order_acquire));
        if (free_ == 0) {
            byte_ring_wait(&spins);
            continue;
        }
        size_t off = tail & (BYTE_RING_CAP - 1), k = n < free_ ? n : free_;
        if (k > BYTE_RING_CAP - off)
            k = BYTE_RING_CAP - off;
        if (k > BYTE_RING_PIECE)
            k = BYTE_RING_PIECE;
        memcpy(r->data + off, p, k);
        p += k, n -= k, tail += k;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        spins = 0;
    }
}

static inline void byte_ring_read(struct byte_ring *r, void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    unsigned spins = 0;
    while (n > 0) {
        uint64_t avail = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
        if (avail == 0) {
            byte_ring_wait(&spins);
            continue;
        }
        size_t off = head & (BYTE_RING_CAP - 1), k = n < avail ? n : avail;
        if (k > BYTE_RING_CAP - off)
            k = BYTE_RING_CAP - off;
        if (k > BYTE_RING_PIECE)
            k = BYTE_RING_PIECE;
        memcpy(p, r->data + off, k);
        p += k, n -= k, head += k;
        atomic_store_explicit(&r->head, head, memory_order_release);
        spins = 0;
    }
}

#endif /* MPROC_BENCH_BYTE_RING_H */
