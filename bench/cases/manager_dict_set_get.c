/* manager_dict_set_get: a python3 client doing d[k] = v; d[k] on a SyncManager dict
 * proxy (bench/sync_peer.py dict), microseconds per set+get, against a mproc
 * server serving the SyncManager types. The CPython side runs the same client
 * against CPython's SyncManager, so the ratio is the server's share. No raw side. */
#include <stdio.h>

#include "bench.h"
#include "mproc.h"

static double run_mproc(void)
{
    mp_manager *m;
    if (mp_manager_new(&m, "127.0.0.1:0", "abc", 3, NULL) < 0)
        return -1;
    if (mp_sync_manager_register(m) < 0 || mp_manager_start(m) < 0) {
        mp_manager_destroy(m);
        return -1;
    }
    char cmd[1024];
    const char *addr = mp_manager_address(m);
    const char *colon = strrchr(addr, ':');
    snprintf(cmd, sizeof cmd, "python3 %s/sync_peer.py dict %.*s %s 5000", MPROC_BENCH_DIR,
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
