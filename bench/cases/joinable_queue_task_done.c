/* joinable_queue_task_done: put, get, task_done on a JoinableQueue, one cycle per
 * message in one process, then join; time per cycle. No raw floor. */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 2000000

static double run_mproc(void)
{
    mp_joinable_queue *q;
    if (mp_joinable_queue_new(&q, 0, NULL) != 0)
        return -1;
    char msg[64] = "task";
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        void *m;
        size_t len;
        if (mp_joinable_queue_put(q, msg, sizeof msg, -1) || mp_joinable_queue_get(q, &m, &len, -1))
            return -1;
        free(m);
        if (mp_joinable_queue_task_done(q))
            return -1;
    }
    if (mp_joinable_queue_join(q, -1))
        return -1;
    double t = bench_now_s() - t0;
    mp_joinable_queue_destroy(q);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
