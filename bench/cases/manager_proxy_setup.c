/* manager_proxy_setup: what a worker pays to start: connect + get a queue proxy +
 * the first call (qsize), against a running manager; milliseconds each.
 * No raw side. */
#include "bench.h"
#include "manager_bench.h"

#define N 50

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    double total = 0;
    for (int i = 0; i < N; i++) {
        double t0 = bench_now_s();
        mp_proxy *q;
        mp_manager *c = bench_client(mp_manager_address(m), &q);
        if (c == NULL || mp_proxy_qsize(q) < 0)
            return -1;
        total += bench_now_s() - t0;
        mp_proxy_destroy(q);
        mp_manager_destroy(c);
    }
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return total / N * 1e3;
}

BENCH_MAIN("ms", run_mproc, NULL)
