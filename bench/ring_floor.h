/* bench/ring_floor.h — the raw floor of the queue_64B_* cases (and of the several
 * producer/consumer points of the queue sweep): the same stream of messages of up
 * to 64 bytes through a plain bounded ring in MAP_SHARED memory, with no library
 * around it. The least a ring between processes has to do for the work mp_queue
 * does (each message's bytes and length copied in, copied out into a buffer of
 * its own, and a side that finds the ring empty or full spinning, then yielding,
 * then sleeping on a futex until the other side wakes it):
 *
 *   - Slots of a length and the bytes, packed (72 bytes each): a message moves
 *     about one cache line from producer to consumer and nothing moves back but
 *     the consumer's index.
 *   - Two indices, tail (produced) and head (consumed), each written by its side
 *     only, and a copy of the other side's index kept by each side: a producer
 *     reads head only when its copy says "full", a consumer reads tail only when
 *     its copy says "empty", so the index lines move once per batch of messages,
 *     not once per message (Lamport's ring with cached indices).
 *   - A side that waits looks at the other's index once every RING_STRIDE pauses,
 *     not at every pause (each look takes the line from the side writing it), and
 *     a producer that finds the ring full waits, for at most the spin, until
 *     RING_BATCH slots are free, so that it does not read head again at the next
 *     message (on a stream the consumer is the slower side and the ring is full).
 *   - Sleeping, Dekker style: a waiter sets its side's flag, reads the sleep
 *     sequence, looks at the ring again and futex-waits (100 ms slices); a side
 *     that published (a release store of its index) makes one full fence, then
 *     reads the other side's flag and makes the FUTEX_WAKE system call only when
 *     it finds it set. The fence and the flag read are the price of being able to
 *     sleep, paid on every message; a queue must pay it, since a get may wait for
 *     hours.
 *   - With one producer and one consumer the ring takes no lock. Several producers
 *     (or consumers) share their side's index under a lock of their own: a futex
 *     lock word (0 free, 1 held, 2 held with sleepers; Drepper's "Futexes are
 *     tricky"), taken with one compare-and-swap, spun on, then slept on; its
 *     releasing exchange is also the full fence above. The lock, the side's index
 *     and its copy of the other index share one line, so a handover between two
 *     producers moves one line.
 * (Until 2026-12 the floor was Vyukov's MPMC ring with a sequence word in each
 * 128-byte slot: the consumer wrote every slot back, two lines moved each way per
 * message, and mp_queue, whose records are packed and whose sides batch their
 * index reads, ran faster than its "floor".) */
#ifndef MPROC_BENCH_RING_FLOOR_H
#define MPROC_BENCH_RING_FLOOR_H

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define RING_SLOTS 16384 /* a power of two: 1.1 MiB, as mp_queue's default 1 MiB ring */
#define RING_MSG 64
#define RING_SPIN 200
#define RING_STRIDE 8 /* pauses between two looks at the other side's index */
#define RING_YIELDS 20
#define RING_BATCH 64 /* free slots a producer that found the ring full spins for */

struct ring_slot {
    uint32_t len;
    uint32_t pad;
    char data[RING_MSG];
};

/* One side: its lock (several processes on the side only), the index it writes,
 * and its copy of the other side's index. */
struct ring_end {
    _Atomic uint32_t lock;
    _Atomic uint64_t pos;
    uint64_t seen;
} __attribute__((aligned(128)));

/* One side's sleep: seq is the futex word, bumped by a waker; waiting says that
 * a waiter may sleep on it. Read by the other side at every message, written only
 * around a sleep. */
struct ring_sleep {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiting;
} __attribute__((aligned(128)));

struct ring {
    struct ring_end put;         /* pos: tail, seen: a past head */
    struct ring_end get;         /* pos: head, seen: a past tail */
    struct ring_sleep data;      /* consumers sleep here when the ring is empty */
    struct ring_sleep space;     /* producers sleep here when it is full */
    bool put_locked, get_locked; /* several producers / consumers; constant */
    struct ring_slot slot[RING_SLOTS] __attribute__((aligned(128)));
};

static inline long ring_futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    struct timespec slice = {0, 100000000};
    return syscall(SYS_futex, w, op, val, op == FUTEX_WAIT ? &slice : NULL, NULL, 0);
}

/* A ring in shared memory for `producers` and `consumers` processes, or NULL. */
static inline struct ring *ring_new(int producers, int consumers)
{
    struct ring *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    r->put_locked = producers > 1;
    r->get_locked = consumers > 1;
    return r;
}

static inline void ring_free(struct ring *r)
{
    munmap(r, sizeof *r);
}

static inline void ring_lock(struct ring_end *e)
{
    uint32_t v = 0;
    if (atomic_compare_exchange_strong(&e->lock, &v, 1))
        return;
    for (int i = 0; i < RING_SPIN; i++) {
        bench_cpu_relax();
        v = 0;
        if (atomic_load_explicit(&e->lock, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&e->lock, &v, 1))
            return;
    }
    while (atomic_exchange(&e->lock, 2) != 0)
        ring_futex(&e->lock, FUTEX_WAIT, 2);
}

/* Releases the side (or, unlocked, makes the full fence), then wakes the other
 * side if it sleeps. */
static inline void ring_release(struct ring_end *e, bool locked, struct ring_sleep *other)
{
    if (locked) {
        if (atomic_exchange(&e->lock, 0) == 2)
            ring_futex(&e->lock, FUTEX_WAKE, 1);
    } else {
        atomic_thread_fence(memory_order_seq_cst);
    }
    if (atomic_load_explicit(&other->waiting, memory_order_relaxed) &&
        atomic_exchange(&other->waiting, 0)) {
        atomic_fetch_add(&other->seq, 1);
        ring_futex(&other->seq, FUTEX_WAKE, INT_MAX);
    }
}

/* Slots free for a producer at tail, by a fresh look at head. */
static inline uint64_t ring_room(struct ring *r, uint64_t tail)
{
    r->put.seen = atomic_load_explicit(&r->get.pos, memory_order_acquire);
    return RING_SLOTS - (tail - r->put.seen);
}

/* Slots filled for a consumer at head, by a fresh look at tail. */
static inline uint64_t ring_filled(struct ring *r, uint64_t head)
{
    r->get.seen = atomic_load_explicit(&r->put.pos, memory_order_acquire);
    return r->get.seen - head;
}

/* Waits until a look at the other side's index (room or filled) gives at least
 * `batch` while spinning, then at least one; sl is this side's sleep. */
static inline void ring_wait(struct ring *r, uint64_t (*look)(struct ring *, uint64_t),
                             uint64_t pos, uint64_t batch, struct ring_sleep *sl)
{
    uint64_t have = look(r, pos);
    if (have >= batch)
        return;
    for (int i = 1; i <= RING_SPIN; i++) {
        bench_cpu_relax();
        if (i % RING_STRIDE == 0 && (have = look(r, pos)) >= batch)
            return;
    }
    if (have > 0)
        return;
    for (int i = 0; i < RING_YIELDS; i++) {
        sched_yield();
        if (look(r, pos) > 0)
            return;
    }
    for (;;) {
        atomic_store(&sl->waiting, 1);
        uint32_t seq = atomic_load(&sl->seq);
        if (look(r, pos) > 0)
            break;
        ring_futex(&sl->seq, FUTEX_WAIT, seq);
    }
    atomic_store(&sl->waiting, 0);
}

static inline void ring_put(struct ring *r, const void *msg, uint32_t len)
{
    if (r->put_locked)
        ring_lock(&r->put);
    uint64_t tail = atomic_load_explicit(&r->put.pos, memory_order_relaxed);
    if (tail - r->put.seen == RING_SLOTS)
        ring_wait(r, ring_room, tail, RING_BATCH, &r->space);
    struct ring_slot *s = &r->slot[tail % RING_SLOTS];
    s->len = len;
    memcpy(s->data, msg, len);
    atomic_store_explicit(&r->put.pos, tail + 1, memory_order_release);
    ring_release(&r->put, r->put_locked, &r->data);
}

/* Copies the next message into msg (RING_MSG bytes); its length. */
static inline uint32_t ring_get(struct ring *r, void *msg)
{
    if (r->get_locked)
        ring_lock(&r->get);
    uint64_t head = atomic_load_explicit(&r->get.pos, memory_order_relaxed);
    if (r->get.seen == head)
        ring_wait(r, ring_filled, head, 1, &r->data);
    const struct ring_slot *s = &r->slot[head % RING_SLOTS];
    uint32_t len = s->len;
    memcpy(msg, s->data, len <= RING_MSG ? len : RING_MSG);
    atomic_store_explicit(&r->get.pos, head + 1, memory_order_release);
    ring_release(&r->get, r->get_locked, &r->space);
    return len;
}

/* n 64-byte messages from `producers` processes to `consumers` processes through
 * the ring; microseconds per message, timed as queue_stream() times mp_queue. */
static inline double ring_stream(int n, int producers, int consumers)
{
    struct ring *r = ring_new(producers, consumers);
    if (r == NULL)
        return -1;
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
    ring_free(r);
    return ok ? t / n * 1e6 : -1;
}

#endif /* MPROC_BENCH_RING_FLOOR_H */
