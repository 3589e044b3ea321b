/* manager_queue_8_clients: eight client processes of one manager's queue.Queue,
 * each doing put+get pairs of a small int; microseconds per operation, aggregate
 * (put and get each count as one: 1 / the server's operations per second).
 * raw: the same eight processes doing two plain TCP request/reply round trips per
 * pair (mproc's frame sizes) against a thread-per-connection echo server. */
#include <pthread.h>
#include <stdint.h>
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

static raw_sizes sizes;

static void *raw_conn_thread(void *arg)
{
    raw_serve((int)(intptr_t)arg, sizes);
    return NULL;
}

static double run_raw(void)
{
    sizes = raw_pair_sizes();
    struct sockaddr_in a;
    int ls = raw_listener(&a);
    if (ls < 0)
        return -1;
    pid_t server = fork();
    if (server == 0) {
        pthread_t t[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
            pthread_create(&t[i], NULL, raw_conn_thread, (void *)(intptr_t)accept(ls, NULL, NULL));
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(t[i], NULL);
        _exit(0);
    }
    close(ls);
    int go[2], ready[2]; /* made after the server's fork, so it holds no end */
    if (pipe(go) || pipe(ready))
        return -1;
    pid_t pids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(go[1]);
            int s = raw_connect(&a);
            char b = 1;
            if (s < 0 || raw_pairs(s, sizes, 50) < 0 || write(ready[1], &b, 1) != 1 ||
                read(go[0], &b, 1) != 0)
                _exit(1);
            _exit(raw_pairs(s, sizes, PAIRS) < 0 ? 1 : 0);
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
    waitpid(server, NULL, 0);
    return bad ? -1 : t / (2.0 * CLIENTS * PAIRS) * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
