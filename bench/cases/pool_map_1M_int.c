/* pool_map_1M_int: square one million ints with 2 workers, per item, with plain
 * mp_pool_map (items copied to the workers, results copied back), chunksize
 * 125000 — what CPython's Pool.map picks by default for 1M items on 2 workers
 * (len / (4 * processes)), set explicitly on both sides.
 * raw: square_floor.h, two threads of one process squaring the same number of
 * ints in the same chunks, the memory-speed floor of the work. */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"
#include "square_floor.h"

#define N 1000000
#define CHUNKSIZE 125000
#define REPS 20

static int square(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg;
    int y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

static double run_mproc(void)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return -1;
    int *in = malloc(N * sizeof(int)), *out = malloc(N * sizeof(int));
    if (in == NULL || out == NULL)
        return -1;
    for (int i = 0; i < N; i++)
        in[i] = i;
    mp_async_options opt = {.chunksize = CHUNKSIZE};
    /* warm-up, as the CPython side: a small map first */
    if (mp_pool_map(pool, square, in, sizeof(int), 100, out, sizeof(int), &opt) != 0)
        return -1;
    double t0 = bench_now_s();
    for (int r = 0; r < REPS; r++)
        if (mp_pool_map(pool, square, in, sizeof(int), N, out, sizeof(int), &opt) != 0)
            return -1;
    double dt = bench_now_s() - t0;
    if (out[N - 1] != (int)((unsigned)(N - 1) * (unsigned)(N - 1)))
        return -1;
    mp_pool_destroy(pool);
    free(in);
    free(out);
    return dt / REPS / N * 1e9;
}

static double run_raw(void)
{
    return square_floor(N, REPS);
}

BENCH_MAIN("ns", run_mproc, run_raw)
