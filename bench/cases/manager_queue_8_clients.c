/* manager_queue_8_clients: eight client processes of one manager's queue.Queue,
 * each doing put+get pairs of a small int; microseconds per operation, aggregate
 * (put and get each count as one: 1 / the server's operations per second).
 * No raw side. */
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "manager_bench.h"

#define CLIENTS 8
#define PAIRS 4000

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    int go[2], ready[2];
    if (pipe(go) || pipe(ready))
        return -1;
    fflush(NULL);
    pid_t pids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(go[1]);
            mp_proxy *q;
            mp_manager *c = bench_client(mp_manager_address(m), &q);
            if (c == NULL || bench_pairs(q, 50) < 0)
                _exit(1);
            char b = 1;
            if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 0)
                _exit(1);
            int rc = bench_pairs(q, PAIRS);
            mp_proxy_destroy(q);
            mp_manager_destroy(c);
            _exit(rc < 0 ? 1 : 0);
        }
    }
    close(go[0]);
    close(ready[1]);
    char b;
    for (int i = 0; i < CLIENTS; i++)
        if (read(ready[0], &b, 1) != 1)
            return -1;
    double t0 = bench_now_s();
    close(go[1]);
    int bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double t = bench_now_s() - t0;
    close(ready[0]);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return bad ? -1 : t / (2.0 * CLIENTS * PAIRS) * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
