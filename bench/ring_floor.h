/* bench/ring_floor.h — the raw floor of the queue_64B_* cases: the same stream of
 * 64-byte messages through a plain bounded ring in MAP_SHARED memory, with no
 * library around it. Dmitry Vyukov's bounded MPMC scheme: each slot has a sequence
 * word; a producer claims position p with a CAS on tail when slot[p % SLOTS].seq == p,
 * writes the message and publishes seq = p + 1; a consumer claims p with a CAS on
 * head when seq == p + 1, copies the message out and frees the slot with
 * seq = p + SLOTS. With one producer and one consumer the CAS never fails.
 * Waiting is mp_queue's: spin with a pause (200 rounds), yield (20 times), then
 * sleep on a futex, with a flag saying so that the other side checks after each
 * publish (Dekker style: the publish is sequentially consistent, then the flag is
 * read; only a side that finds it set makes the FUTEX_WAKE system call). A queue
 * must sleep when empty or full, since a get may wait for hours, and a floor that
 * only yields would skip what that costs on every message: the full fence of the
 * publish and the read of the other side's flag. (Until 2026-12 the floor yielded
 * forever and published with a plain release store.) */
#ifndef MPROC_BENCH_RING_FLOOR_H
#define MPROC_BENCH_RING_FLOOR_H

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

/* One side's sleep: seq is the futex word, bumped by a waker; waiting says that
 * a waiter may sleep on it. */
struct ring_sleep {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiting;
} __attribute__((aligned(128)));

struct ring {
    _Atomic uint64_t tail __attribute__((aligned(128))); /* next position to produce */
    _Atomic uint64_t head __attribute__((aligned(128))); /* next position to consume */
    struct ring_sleep data;  /* consumers sleep here when the ring is empty */
    struct ring_sleep space; /* producers sleep here when it is full */
    struct ring_slot slot[RING_SLOTS];
};

#define RING_SPIN 200
#define RING_YIELDS 20

/* One round of waiting for `ready` (a slot state) as mp_queue waits: spin, yield,
 * then sleep on sl (at most 100 ms at a time, as mp_queue sleeps in slices). */
static inline void ring_wait(struct ring_sleep *sl, unsigned *spins, _Atomic uint64_t *seqw,
                             uint64_t want)
{
    if (++*spins < RING_SPIN) {
        bench_cpu_relax();
        return;
    }
    if (*spins < RING_SPIN + RING_YIELDS) {
        sched_yield();
        return;
    }
    atomic_store(&sl->waiting, 1);
    uint32_t seq = atomic_load(&sl->seq);
    if (atomic_load(seqw) >= want) /* re-check after the flag is visible */
        return;
    struct timespec slice = {0, 100000000};
    syscall(SYS_futex, &sl->seq, FUTEX_WAIT, seq, &slice, NULL, 0);
}

/* After a publish (sequentially consistent): wake the other side if it sleeps. */
static inline void ring_wake(struct ring_sleep *sl)
{
    if (atomic_load(&sl->waiting) && atomic_exchange(&sl->waiting, 0)) {
        atomic_fetch_add(&sl->seq, 1);
        syscall(SYS_futex, &sl->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
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
                atomic_store(&s->seq, p + 1);
                ring_wake(&r->data);
                return;
            }
        } else if (seq < p) {
            ring_wait(&r->space, &spins, &s->seq, p); /* full */
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
                atomic_store(&s->seq, p + RING_SLOTS);
                ring_wake(&r->space);
                return len;
            }
        } else if (seq < p + 1) {
            ring_wait(&r->data, &spins, &s->seq, p + 1); /* empty */
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
