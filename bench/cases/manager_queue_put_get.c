/* manager_queue_put_get: one client of a manager's queue.Queue, put then get of a
 * small int, per pair (two request/reply round trips over TCP).
 * mproc: a mproc client and server. raw: two plain TCP request/reply round trips
 * per pair with the same frame sizes (the pickles mproc sends), one write per frame,
 * TCP_NODELAY, a forked echo server. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "manager_bench.h"

#define N 20000

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    mp_proxy *q;
    mp_manager *c = bench_client(mp_manager_address(m), &q);
    if (c == NULL || bench_pairs(q, 200) < 0)
        return -1;
    double t0 = bench_now_s();
    if (bench_pairs(q, N) < 0)
        return -1;
    double t = bench_now_s() - t0;
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return t / N * 1e6;
}

static double run_raw(void)
{
    raw_sizes z = raw_pair_sizes();
    struct sockaddr_in a;
    int ls = raw_listener(&a);
    if (ls < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        raw_serve(accept(ls, NULL, NULL), z);
        _exit(0);
    }
    close(ls);
    int s = raw_connect(&a);
    if (s < 0 || raw_pairs(s, z, 100) < 0)
        return -1;
    double t0 = bench_now_s();
    if (raw_pairs(s, z, N) < 0)
        return -1;
    double t = bench_now_s() - t0;
    close(s);
    waitpid(pid, NULL, 0);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
