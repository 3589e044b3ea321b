/* manager_100_clients: aggregate queue operations of 100 clients on one server,
 * microseconds per operation (put and get each count; lower is better). The
 * clients are C threads (4 processes x 25 threads, each thread with its own
 * connection and proxy), so that 2 cores can drive a server: the same driver runs
 * against the mproc server (mproc side) and against CPython's server (the CPython
 * side, bench/cases/manager_100_clients.py, runs this binary as
 * `bench_manager_100_clients drive HOST PORT`), so the ratio is the servers'.
 * No raw side. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define PROCS 4
#define THREADS 25
#define PAIRS 100

typedef struct worker {
    const char *address;
    pthread_barrier_t *ready, *go;
    int rc;
} worker;

/* Connections are made one at a time per process (not timed): CPython's server
 * listens with a backlog of 16 and authenticates in each connection's thread, so
 * 100 connects at once would time out there. */
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static void *client_thread(void *p)
{
    worker *w = p;
    mp_manager *m = NULL;
    mp_proxy *q = NULL;
    pthread_mutex_lock(&setup_lock);
    int rc = mp_manager_new(&m, w->address, "abc", 3,
                            &(mp_manager_options){.connect_timeout_ms = 60000});
    if (rc == 0)
        rc = mp_manager_connect(m);
    if (rc == 0)
        rc = mp_manager_create(m, "get_queue", NULL, NULL, &q);
    if (rc == 0) /* opens this thread's channel */
        rc = mp_proxy_qsize(q) < 0 ? -1 : 0;
    pthread_mutex_unlock(&setup_lock);
    pthread_barrier_wait(w->ready);
    pthread_barrier_wait(w->go);
    mp_obj *seven = mp_int(7);
    for (int i = 0; rc == 0 && i < PAIRS; i++) {
        mp_obj *got = NULL;
        rc = mp_proxy_put(q, seven, -1);
        if (rc == 0)
            rc = mp_proxy_get(q, &got, -1);
        mp_obj_unref(got);
    }
    if (rc < 0)
        fprintf(stderr, "client: %s\n", mp_err_name(rc));
    w->rc = rc;
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    return NULL;
}

/* One client process: THREADS threads; tells the parent when they are connected
 * (a byte on ready_fd), starts them on a byte from go_fd. */
static int client_process(const char *address, int ready_fd, int go_fd)
{
    pthread_barrier_t ready, go;
    pthread_barrier_init(&ready, NULL, THREADS + 1);
    pthread_barrier_init(&go, NULL, THREADS + 1);
    pthread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){address, &ready, &go, 0};
        pthread_create(&t[i], NULL, client_thread, &w[i]);
    }
    pthread_barrier_wait(&ready);
    char b = 1;
    if (write(ready_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 1)
        return 1;
    pthread_barrier_wait(&go);
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        bad |= w[i].rc != 0;
    }
    return bad;
}

/* Microseconds per operation of PROCS x THREADS clients against address. */
static double drive(const char *address)
{
    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return -1;
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(client_process(address, ready[1], go[0]));
    }
    char b;
    for (int i = 0; i < PROCS; i++)
        if (read(ready[0], &b, 1) != 1)
            return -1;
    double t0 = bench_now_s();
    char gos[PROCS] = {0};
    if (write(go[1], gos, PROCS) != PROCS)
        return -1;
    int bad = 0;
    for (int i = 0; i < PROCS; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double t = bench_now_s() - t0;
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    return bad ? -1 : t / (2.0 * PROCS * THREADS * PAIRS) * 1e6;
}

static double run_mproc(void)
{
    mp_served *q;
    mp_manager *m;
    if (mp_served_queue_new(&q, 0) < 0 || mp_manager_new(&m, "127.0.0.1:0", "abc", 3, NULL) < 0)
        return -1;
    int rc = mp_manager_register(m, "get_queue", &(mp_manager_register_options){.object = q});
    mp_served_unref(q);
    if (rc < 0 || mp_manager_start(m) < 0) {
        mp_manager_destroy(m);
        return -1;
    }
    double v = drive(mp_manager_address(m));
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return v;
}

int main(int argc, char **argv)
{
    double v;
    if (argc == 2 && strcmp(argv[1], "mproc") == 0) {
        v = run_mproc();
    } else if (argc == 2 && strcmp(argv[1], "raw") == 0) {
        printf("none us\n");
        return 0;
    } else if (argc == 4 && strcmp(argv[1], "drive") == 0) {
        char address[128];
        snprintf(address, sizeof address, "%s:%s", argv[2], argv[3]);
        v = drive(address);
    } else {
        fprintf(stderr, "usage: %s mproc|raw|drive HOST PORT\n", argv[0]);
        return 2;
    }
    if (v < 0)
        return 1;
    printf("%.6g us\n", v);
    return 0;
}
