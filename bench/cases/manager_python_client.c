/* manager_python_client: a python3 client (bench/manager_peer.py pairs) doing
 * put+get pairs against a mproc manager server; microseconds per pair. The CPython
 * side runs the same client against a CPython server, so the ratio is the server's
 * share. No raw side. */
#include <stdio.h>

#include "bench.h"
#include "manager_bench.h"

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    char cmd[1024];
    const char *addr = mp_manager_address(m);
    const char *colon = strrchr(addr, ':');
    snprintf(cmd, sizeof cmd, "python3 %s/manager_peer.py pairs %.*s %s 5000", MPROC_BENCH_DIR,
             (int)(colon - addr), addr, colon + 1);
    FILE *p = popen(cmd, "r");
    double v = -1;
    if (p == NULL || fscanf(p, "%lf", &v) != 1)
        v = -1;
    if (p != NULL && pclose(p) != 0)
        v = -1;
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return v;
}

BENCH_MAIN("us", run_mproc, NULL)
