/* pool_apply_async_small: 10,000 apply_async of a trivial task on a pool of 2
 * workers, then every get, per task. No raw equivalent. */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 10000
#define ROUNDS 5

static int ident(const void *arg, size_t len, mp_task *t)
{
    return mp_task_return(t, arg, len);
}

static double run_mproc(void)
{
    static mp_async_result *rs[N];
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return -1;
    if (mp_pool_apply(pool, ident, "", 1, NULL, NULL) != 0)
        return -1;
    double t0 = bench_now_s();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++)
            if (mp_pool_apply_async(pool, &rs[i], ident, &i, sizeof i, NULL) != 0)
                return -1;
        long total = 0;
        for (int i = 0; i < N; i++) {
            const void *d;
            if (mp_async_result_get(rs[i], -1, &d, NULL) != 0)
                return -1;
            total += *(const int *)d;
            mp_async_result_destroy(rs[i]);
        }
        if (total != (long)N * (N - 1) / 2)
            return -1;
    }
    double dt = bench_now_s() - t0;
    mp_pool_destroy(pool);
    return dt / ((double)N * ROUNDS) * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
