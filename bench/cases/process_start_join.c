/* process_start_join: create, start and join a child that returns at once.
 * raw: fork + _exit + waitpid. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 2000

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static double run_mproc(void)
{
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_process *p;
        if (mp_process_new(&p, nothing, NULL, NULL) || mp_process_start(p) ||
            mp_process_join(p, -1))
            return -1;
        mp_process_destroy(p);
    }
    return (bench_now_s() - t0) / N * 1e6;
}

static double run_raw(void)
{
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
    return (bench_now_s() - t0) / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
