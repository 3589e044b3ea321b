/* pool_map_1MiB_items_first_round: the first map of a new pool over 200 items of
 * 1 MiB each (result: their length), 2 workers, default chunksize, per item: the
 * cold-start cost that pool_map_1MiB_items leaves out. Pool creation is not
 * timed; the map is, on both sides. No raw equivalent. */
#include <stdint.h>
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 200
#define ITEM (1 << 20)

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
    double t0 = bench_now_s();
    if (mp_pool_map(pool, length, items, 0, N, out, sizeof out[0], NULL) != 0)
        return -1;
    double dt = bench_now_s() - t0;
    for (int i = 0; i < N; i++)
        if (out[i] != ITEM)
            return -1;
    mp_pool_destroy(pool);
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    return dt / N * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
