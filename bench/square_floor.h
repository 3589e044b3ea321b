/* bench/square_floor.h — the raw floor of the pool map cases: squaring n ints on 2
 * threads of one process, the same work as mp_pool_map_shared with the pool's
 * defaults, without the processes: the arrays in MAP_SHARED memory (as the pool's
 * region), chunks of ceil(n / 8) items (the default chunksize for 2 workers) claimed
 * with an atomic fetch_add by whichever thread is free, the same scalar loop per
 * chunk, and threads that sleep in the kernel between rounds (a futex-based
 * barrier) as the pool's workers do. One warm-up pass, then reps timed passes;
 * nanoseconds per item, or -1 when memory ran out or the result is wrong.
 *
 * Not an OpenMP parallel for: its static halves and spinning barrier lose far more
 * than the pool to a descheduled thread on a shared machine, which made the floor
 * slower than mproc (DESIGN.md §5: such a floor is wrong). */
#ifndef MPROC_BENCH_SQUARE_FLOOR_H
#define MPROC_BENCH_SQUARE_FLOOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bench.h"

struct square_floor_job {
    const int *in;
    int *out;
    size_t n, chunksize, n_chunks;
    _Atomic size_t next;
    bool stop;
    pthread_barrier_t start, end;
};

/* The kernel of one chunk: the same loop as the pool cases' kernels. */
__attribute__((noinline)) static void square_floor_chunk(const int *a, int *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * a[i];
}

static void square_floor_claim(struct square_floor_job *j)
{
    for (;;) {
        size_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->n_chunks)
            return;
        size_t first = c * j->chunksize;
        size_t count = j->n - first < j->chunksize ? j->n - first : j->chunksize;
        square_floor_chunk(j->in + first, j->out + first, count);
    }
}

static void *square_floor_helper(void *arg)
{
    struct square_floor_job *j = arg;
    for (;;) {
        pthread_barrier_wait(&j->start);
        if (j->stop)
            return NULL;
        square_floor_claim(j);
        pthread_barrier_wait(&j->end);
    }
}

static inline double square_floor(int n, int reps)
{
    size_t bytes = (size_t)n * sizeof(int);
    char *mem = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    static struct square_floor_job j;
    j.in = (const int *)mem;
    j.out = (int *)(mem + bytes);
    j.n = (size_t)n;
    j.chunksize = ((size_t)n + 7) / 8;
    j.n_chunks = ((size_t)n + j.chunksize - 1) / j.chunksize;
    for (int i = 0; i < n; i++)
        ((int *)mem)[i] = i;
    pthread_t helper;
    if (pthread_barrier_init(&j.start, NULL, 2) != 0 ||
        pthread_barrier_init(&j.end, NULL, 2) != 0 ||
        pthread_create(&helper, NULL, square_floor_helper, &j) != 0)
        return -1;
    double t0 = 0;
    for (int r = -1; r < reps; r++) {
        if (r == 0)
            t0 = bench_now_s();
        atomic_store(&j.next, 0);
        pthread_barrier_wait(&j.start);
        square_floor_claim(&j);
        pthread_barrier_wait(&j.end);
    }
    double dt = bench_now_s() - t0;
    j.stop = true;
    pthread_barrier_wait(&j.start);
    pthread_join(helper, NULL);
    pthread_barrier_destroy(&j.start);
    pthread_barrier_destroy(&j.end);
    bool ok = j.out[n - 1] == (int)((unsigned)(n - 1) * (unsigned)(n - 1));
    munmap(mem, 2 * bytes);
    return ok ? dt / reps / n * 1e9 : -1;
}

#endif /* MPROC_BENCH_SQUARE_FLOOR_H */
