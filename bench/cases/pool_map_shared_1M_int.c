/* pool_map_shared_1M_int: square one million ints with 2 workers, per item.
 * mproc: mp_pool_map_shared over arrays in the pool's shared memory (zero-copy; CPython has no
 * equivalent, so no CPython side). raw: square_floor.h, the same work on two threads of one process
 * (MAP_SHARED arrays, the same chunks claimed the same way, threads sleeping between rounds). */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"
#include "square_floor.h"

#define N 1000000
#define REPS 300

static int square_kernel(const void *in, void *out, size_t n, void *ctx)
{
    const int *a = in;
    int *b = out;
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * a[i];
    return 0;
}

static double run_mproc(void)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return -1;
    int *in = mp_pool_shared_alloc(pool, N * sizeof(int));
    int *out = mp_pool_shared_alloc(pool, N * sizeof(int));
    if (in == NULL || out == NULL)
        return -1;
    for (int i = 0; i < N; i++)
        in[i] = i;
    /* warm-up: first touch of the pages in every worker */
    if (mp_pool_map_shared(pool, square_kernel, in, sizeof(int), out, sizeof(int), N, NULL, NULL) !=
        0)
        return -1;
    double t0 = bench_now_s();
    for (int r = 0; r < REPS; r++)
        if (mp_pool_map_shared(pool, square_kernel, in, sizeof(int), out, sizeof(int), N, NULL,
                               NULL) != 0)
            return -1;
    double dt = bench_now_s() - t0;
    if (out[N - 1] != (int)((unsigned)(N - 1) * (unsigned)(N - 1)))
        return -1;
    mp_pool_destroy(pool);
    return dt / REPS / N * 1e9;
}

static double run_raw(void)
{
    return square_floor(N, REPS);
}

BENCH_MAIN("ns", run_mproc, run_raw)
