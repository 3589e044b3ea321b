/* bench/square_floor.h — the raw floor of the pool map cases: squaring n ints on 2
 * threads of one process, the same work as mp_pool_map_shared with the pool's
 * defaults, without the processes: the arrays in MAP_SHARED memory (as the pool's
 * region), chunks of ceil(n / 8) items (the default chunksize for 2 workers) claimed
 * with an atomic fetch_add by whichever thread is free, the same scalar loop per
 * chunk, threads that sleep in the kernel between rounds as the pool's workers
 * do, and a round that ends when its last chunk is done (the finisher wakes the
 * waiter), not when both threads checked in. One warm-up pass, then reps timed passes;
 * nanoseconds per item, or -1 when memory ran out or the result is wrong.
 *
 * The two threads that square are both helpers; the calling thread only starts a
 * round and sleeps until it is over, as the pool's caller does while its two
 * workers run. An earlier version let the calling thread claim chunks too, right
 * after its wake-up call; on a heavily loaded machine (load 25-40 on 2 CPUs) that
 * made it 1.3-4x slower than mproc, and this version reached mproc/raw 0.94x there.
 *
 * The chunk loop is 64-byte aligned (aligned(64) on its function: the loop then
 * starts 16 bytes in and its 18 bytes never cross a 64-byte line). The loop is
 * the same six instructions as the mproc side's kernel, but where the linker put
 * it decided its speed: at 0x3d70-0x3d82 in bench_pool_map_shared_1M_int it
 * crossed the line at 0x3d80, and on this AMD EPYC (Zen 3) VM a loop that spans two
 * 64-byte fetch blocks runs at about one iteration per two cycles instead of one:
 * 0.63-0.67 ns per item on one thread against 0.36 for the same loop within one
 * line (the same loop in a test program, shifted by 36 bytes of nops, best of 20
 * batches, 12 interleaved runs each). That was the
 * whole of the "mproc/raw 0.5-0.64x" of earlier runs (mproc 0.39 ns/item, floor
 * 0.61): mproc's kernel happened to lie inside one line (0x3da0-0x3db2), and
 * in most rounds one worker squares all 8 chunks in both (the other is still being
 * woken), so the ratio was the loops' ratio. Threads vs processes, page faults (none
 * in the timed rounds, no THP: shmem_enabled is never), array offsets and NUMA
 * (one node) made no difference. With the aligned loop: mproc/raw 1.04 (medians of 12
 * interleaved runs, load 13), and in one process alternating batches of 10 rounds
 * of each, 1.1-1.3 in six runs.
 *
 * Not an OpenMP parallel for: its static halves and spinning barrier lose far more
 * than the pool to a descheduled thread on a shared machine, which made the floor
 * slower than mproc (DESIGN.md §5: such a floor is wrong). */
#ifndef MPROC_BENCH_SQUARE_FLOOR_H
#define MPROC_BENCH_SQUARE_FLOOR_H

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

struct square_floor_job {
    const int *in;
    int *out;
    size_t n, chunksize, n_chunks;
    _Atomic size_t next;     /* chunks claimed this round (may pass n_chunks) */
    _Atomic size_t finished; /* chunks done this round */
    _Atomic uint32_t gen;    /* futex word: a new round (or stop) for the helper */
    _Atomic uint32_t done;   /* futex word: 1 once every chunk of the round is done */
    _Atomic bool stop;
};

static inline void square_floor_wait(_Atomic uint32_t *word, uint32_t expected)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static inline void square_floor_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* The kernel of one chunk: the same loop as the pool cases' kernels, aligned so
 * that the loop lies within one 64-byte line (see the top of the file). */
__attribute__((noinline, aligned(64))) static void square_floor_chunk(const int *a, int *b,
                                                                      size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * a[i];
}

/* Claims and squares chunks until none is left; whoever finishes the last one
 * ends the round (the pool's fast path: the worker finishing the last chunk wakes
 * the waiter, a worker that never woke up delays nothing). */
static void square_floor_claim(struct square_floor_job *j)
{
    for (;;) {
        size_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->n_chunks)
            return;
        size_t first = c * j->chunksize;
        size_t count = j->n - first < j->chunksize ? j->n - first : j->chunksize;
        square_floor_chunk(j->in + first, j->out + first, count);
        if (atomic_fetch_add(&j->finished, 1) + 1 == j->n_chunks) {
            atomic_store(&j->done, 1);
            square_floor_wake(&j->done);
        }
    }
}

static void *square_floor_helper(void *arg)
{
    struct square_floor_job *j = arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        while ((g = atomic_load(&j->gen)) == seen)
            square_floor_wait(&j->gen, seen);
        seen = g;
        if (atomic_load(&j->stop))
            return NULL;
        square_floor_claim(j);
    }
}

static inline double square_floor(int n, int reps)
{
    size_t bytes = (size_t)n * sizeof(int);
    char *mem = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    static struct square_floor_job j;
    for (int i = 0; i < n; i++)
        ((int *)mem)[i] = i;
    memset(&j, 0, sizeof j); /* gen counts from 0 in the helpers */
    j.in = (const int *)mem;
    j.out = (int *)(mem + bytes);
    j.n = (size_t)n;
    j.chunksize = ((size_t)n + 7) / 8;
    j.n_chunks = ((size_t)n + j.chunksize - 1) / j.chunksize;
    pthread_t helpers[2];
    int started = 0;
    for (; started < 2; started++)
        if (pthread_create(&helpers[started], NULL, square_floor_helper, &j) != 0)
            break;
    bool ok = started == 2;
    double t0 = 0;
    for (int r = -1; ok && r < reps; r++) {
        if (r == 0)
            t0 = bench_now_s();
        /* the previous round is over: every claimed chunk was finished */
        atomic_store(&j.finished, 0);
        atomic_store(&j.done, 0);
        atomic_store(&j.next, 0);
        atomic_fetch_add(&j.gen, 1);
        square_floor_wake(&j.gen);
        while (atomic_load(&j.done) == 0)
            square_floor_wait(&j.done, 0);
    }
    double dt = bench_now_s() - t0;
    atomic_store(&j.stop, true);
    atomic_fetch_add(&j.gen, 1);
    square_floor_wake(&j.gen);
    for (int i = 0; i < started; i++)
        pthread_join(helpers[i], NULL);
    ok = ok && j.out[n - 1] == (int)((unsigned)(n - 1) * (unsigned)(n - 1));
    munmap(mem, 2 * bytes);
    return ok ? dt / reps / n * 1e9 : -1;
}

#endif /* MPROC_BENCH_SQUARE_FLOOR_H */
