/* pool_map_1MiB_items: map over 200 items of 1 MiB each (result: their length) on
 * a pool of 2 workers, default chunksize, per item; after a 2-item warm-up map,
 * ROUNDS warm rounds are timed, on both sides. The first round of a new pool is
 * pool_map_1MiB_items_first_round. No raw equivalent. */
#include <stdint.h>
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 200
#define ITEM (1 << 20)
#define ROUNDS 10

static int length(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    uint64_t l = len;
    return mp_task_return(t, &l, sizeof l);
}

static double run_mproc(void)
{
    static mp_buf items[N];
    static uint64_t out[N];
    for (int i = 0; i < N; i++) {
        char *b = malloc(ITEM);
        if (b == NULL)
            return -1;
        memset(b, i % 256, ITEM);
        items[i] = (mp_buf){b, ITEM};
    }
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return -1;
    if (mp_pool_map(pool, length, items, 0, 2, out, sizeof out[0], NULL) != 0)
        return -1;
    double t0 = bench_now_s();
    for (int round = 0; round < ROUNDS; round++) {
        if (mp_pool_map(pool, length, items, 0, N, out, sizeof out[0], NULL) != 0)
            return -1;
        for (int i = 0; i < N; i++)
            if (out[i] != ITEM)
                return -1;
    }
    double dt = bench_now_s() - t0;
    mp_pool_destroy(pool);
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    return dt / ((double)N * ROUNDS) * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
