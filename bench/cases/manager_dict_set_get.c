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
    /* The whole output is read before pclose closes the pipe: the peer may write
     * its line in more than one write (print() does, the number and then "\n",
     * under PYTHONUNBUFFERED=1), and a pipe closed after the first would fail
     * the second with EPIPE, and the peer with BrokenPipeError. */
    FILE *p = popen(cmd, "r");
    double v = -1;
    char out[256];
    size_t got = 0;
    if (p != NULL) {
        size_t n;
        while ((n = fread(out + got, 1, sizeof out - 1 - got, p)) > 0)
            got += n;
        while (fread(out + got, 1, 1, p) > 0) /* drained to EOF: more than a line is wrong */
            v = -2;
    }
    out[got] = '\0';
    if (v == -2 || sscanf(out, "%lf", &v) != 1)
        v = -1;
    if (p != NULL && pclose(p) != 0)
        v = -1;
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return v;
}

BENCH_MAIN("us", run_mproc, NULL)
