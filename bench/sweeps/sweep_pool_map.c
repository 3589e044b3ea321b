/* sweep_pool_map: pool map by item count.
 *     sweep_pool_map mproc|raw <n>
 * Squares <n> ints on 2 workers with plain mp_pool_map at CPython's default
 * chunksize for that n (n / (4 * processes), rounded up), after a small warm-up
 * map; nanoseconds per item. raw: square_floor.h, two threads of one process doing
 * the same work in the same chunks. */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"
#include "square_floor.h"

static int square(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg;
    int y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

static int reps_for(size_t n)
{
    return n >= 1000000 ? 5 : (int)(5000000 / n);
}

static double run_mproc(const int *in, int *out, size_t n)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return -1;
    mp_async_options opt = {.chunksize = (n + 7) / 8};
    if (mp_pool_map(pool, square, in, sizeof(int), n < 100 ? n : 100, out, sizeof(int), &opt))
        return -1;
    int reps = reps_for(n);
    double t0 = bench_now_s();
    for (int r = 0; r < reps; r++)
        if (mp_pool_map(pool, square, in, sizeof(int), n, out, sizeof(int), &opt) != 0)
            return -1;
    double dt = bench_now_s() - t0;
    mp_pool_destroy(pool);
    return dt / reps / (double)n * 1e9;
}

static double run_raw(const int *in, int *out, size_t n)
{
    (void)in;
    (void)out;
    return square_floor((int)n, reps_for(n));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s mproc|raw n\n", argv[0]);
        return 2;
    }
    size_t n = strtoul(argv[2], NULL, 0);
    int *in = malloc(n * sizeof(int)), *out = malloc(n * sizeof(int));
    if (n == 0 || in == NULL || out == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        in[i] = (int)i;
    bool raw = strcmp(argv[1], "raw") == 0; /* square_floor checks its own result */
    double ns = raw ? run_raw(in, out, n) : run_mproc(in, out, n);
    if (ns < 0 || (!raw && out[n - 1] != (int)((unsigned)(n - 1) * (unsigned)(n - 1))))
        return 1;
    printf("%.6g ns\n", ns);
    free(in);
    free(out);
    return 0;
}
