/* subprocess_run_true: mp_run("/bin/true") and wait, repeated.
 * raw: posix_spawn + waitpid, the floor any spawn API pays. */
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 1000

extern char **environ;

static double run_mproc(void)
{
    const char *argv[] = {"/bin/true", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_completed_process r;
        if (mp_run(&r, argv, NULL) != 0 || r.returncode != 0)
            return -1;
        mp_completed_process_free(&r);
    }
    return (bench_now_s() - t0) / N * 1e6;
}

static double run_raw(void)
{
    char *argv[] = {"/bin/true", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        pid_t pid;
        int status;
        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, &status, 0) != pid)
            return -1;
    }
    return (bench_now_s() - t0) / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
