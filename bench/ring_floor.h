/* bench/ring_floor.h — the raw floor of the queue_64B_* cases: the same stream of
 * 64-byte messages through a plain bounded ring in MAP_SHARED memory, with no
 * library around it. Dmitry Vyukov's bounded MPMC scheme: each slot has a sequence
 * word; a producer claims position p with a CAS on tail when slot[p % SLOTS].seq == p,
 * writes the message and publishes seq = p + 1; a consumer claims p with a CAS on
 * head when seq == p + 1, copies the message out and frees the slot with
 * seq = p + SLOTS. With one producer and one consumer the CAS never fails.
 * Waiting spins with a pause as mp_queue's waiters do, then yields the CPU (no
 * futex sleep: a floor may burn what it likes). */
#ifndef MPROC_BENCH_RING_FLOOR_H
#define MPROC_BENCH_RING_FLOOR_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define RING_SLOTS 4096 /* a power of two */
#define RING_MSG 64

struct ring_slot {
    _Atomic uint64_t seq;
    uint32_t len;
    char data[RING_MSG];
} __attribute__((aligned(128)));

struct ring {
    _Atomic uint64_t tail __attribute__((aligned(128))); /* next position to produce */
    _Atomic uint64_t head __attribute__((aligned(128))); /* next position to consume */
    struct ring_slot slot[RING_SLOTS];
};

static inline void ring_pause(unsigned *spins)
{
    if (++*spins < 200) {
        bench_cpu_relax();
    } else {
        sched_yield();
    }
}

static inline void ring_put(struct ring *r, const void *msg, uint32_t len)
{
    unsigned spins = 0;
    uint64_t p = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        struct ring_slot *s = &r->slot[p % RING_SLOTS];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq == p) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &p, p + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(s->data, msg, len);
                s->len = len;
                atomic_store_explicit(&s->seq, p + 1, memory_order_release);
                return;
            }
        } else if (seq < p) {
            ring_pause(&spins); /* full */
            p = atomic_load_explicit(&r->tail, memory_order_relaxed);
        } else {
            p = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

static inline uint32_t ring_get(struct ring *r, void *msg)
{
    unsigned spins = 0;
    uint64_t p = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        struct ring_slot *s = &r->slot[p % RING_SLOTS];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq == p + 1) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &p, p + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                uint32_t len = s->len;
                memcpy(msg, s->data, len);
                atomic_store_explicit(&s->seq, p + RING_SLOTS, memory_order_release);
                return len;
            }
        } else if (seq < p + 1) {
            ring_pause(&spins); /* empty */
            p = atomic_load_explicit(&r->head, memory_order_relaxed);
        } else {
            p = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

/* n 64-byte messages from `producers` processes to `consumers` processes through
 * the ring; microseconds per message, timed as queue_stream() times mp_queue. */
static inline double ring_stream(int n, int producers, int consumers)
{
    struct ring *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return -1;
    for (uint64_t i = 0; i < RING_SLOTS; i++)
        atomic_init(&r->slot[i].seq, i);
    pid_t pids[producers + consumers];
    double t0 = bench_now_s();
    for (int i = 0; i < producers + consumers; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return -1;
        if (pids[i] == 0) {
            char msg[RING_MSG] = "a 64-byte message";
            for (int k = 0; k < n / (i < producers ? producers : consumers); k++) {
                if (i < producers) {
                    ring_put(r, msg, sizeof msg);
                } else {
                    /* as mp_queue_get, the message lands in a buffer of its own */
                    char *m = malloc(RING_MSG);
                    if (m == NULL || ring_get(r, m) != RING_MSG)
                        _exit(1);
                    free(m);
                }
            }
            _exit(0);
        }
    }
    int ok = 1;
    for (int i = 0; i < producers + consumers; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    double t = bench_now_s() - t0;
    munmap(r, sizeof *r);
    return ok ? t / n * 1e6 : -1;
}

#endif /* MPROC_BENCH_RING_FLOOR_H */
