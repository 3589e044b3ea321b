/* manager_python_client: a python3 client (bench/manager_peer.py pairs) doing
 * put+get pairs against a mproc manager server; microseconds per pair. The CPython
 * side runs the same client against a CPython server, so the ratio is the server's
 * share. No raw side. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "manager_bench.h"

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    const char *addr = mp_manager_address(m);
    const char *colon = strrchr(addr, ':');
    char host[64], script[1024];
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    snprintf(script, sizeof script, "%s/manager_peer.py", MPROC_BENCH_DIR);
    const char *argv[] = {"python3", script, "pairs", host, colon + 1, "5000", NULL};
    char *out = NULL;
    double v = -1;
    int rc = mp_check_output(argv, NULL, &out, NULL, NULL);
    if (rc < 0 || out == NULL || sscanf(out, "%lf", &v) != 1) {
        fprintf(stderr, "python client: %s\n", mp_err_name(rc));
        v = -1;
    }
    free(out);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return v;
}

BENCH_MAIN("us", run_mproc, NULL)
