/* process_start_join_1GiB_parent: create, start and join a child that returns at
 * once, from a parent with 1 GiB of touched memory. mproc: the forkserver start
 * method, its server started while the parent was small (as a program should);
 * the goal is the cost of process_start_join (fork from a small parent).
 * raw: the smallest forkserver, started the same way: a server process made while
 * the parent was small forks, reaps and reports each child when the 1 GiB parent
 * writes it one byte over a socketpair (one round trip per child; no argument,
 * no pidfd, no sentinel). Plain fork from the 1 GiB parent costs about 100x more
 * and is not a floor of the forkserver method. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define SIZE (1UL << 30)

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static char *touch_memory(void)
{
    char *m = malloc(SIZE);
    if (m != NULL)
        memset(m, 1, SIZE);
    return m;
}

static double run_mproc(void)
{
    enum { N = 2000 };
    if (mp_forkserver_ensure_running() != 0)
        return -1;
    char *m = touch_memory();
    if (m == NULL)
        return -1;
    const mp_process_options opt = {.start_method = MP_START_FORKSERVER};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_process *p;
        if (mp_process_new(&p, nothing, NULL, &opt) || mp_process_start(p) ||
            mp_process_join(p, -1))
            return -1;
        mp_process_destroy(p);
    }
    double us = (bench_now_s() - t0) / N * 1e6;
    free(m);
    mp_forkserver_stop();
    return us;
}

/* The raw server: one byte in, fork + waitpid, the child's exit status out. */
static void raw_server(int fd)
{
    char c;
    while (read(fd, &c, 1) == 1) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        int status = -1;
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            status = -1;
        c = (char)(status == 0 ? 0 : 1);
        if (write(fd, &c, 1) != 1)
            break;
    }
    _exit(0);
}

static double run_raw(void)
{
    enum { N = 2000 };
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    pid_t server = fork();
    if (server < 0)
        return -1;
    if (server == 0) {
        close(sv[0]);
        raw_server(sv[1]);
    }
    close(sv[1]);
    char *m = touch_memory();
    if (m == NULL)
        return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        char c = 1;
        if (write(sv[0], &c, 1) != 1 || read(sv[0], &c, 1) != 1 || c != 0)
            return -1;
    }
    double us = (bench_now_s() - t0) / N * 1e6;
    free(m);
    close(sv[0]);
    waitpid(server, NULL, 0);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
