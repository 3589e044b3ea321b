/* process_start_join_1GiB_parent: create, start and join a child that returns at
 * once, from a parent with 1 GiB of touched memory. mproc: the forkserver start
 * method, its server started while the parent was small (as a program should);
 * the goal is the cost of process_start_join (fork from a small parent).
 * raw: fork + _exit + waitpid from the same 1 GiB parent (what fork costs). */
#include <stdlib.h>
#include <string.h>
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

static double run_raw(void)
{
    enum { N = 200 };
    char *m = touch_memory();
    if (m == NULL)
        return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0)
            _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid)
            return -1;
    }
    double us = (bench_now_s() - t0) / N * 1e6;
    free(m);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
