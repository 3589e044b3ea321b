/* subprocess_run_true_1GiB_parent: mp_run("/bin/true") from a parent with 1 GiB
 * of touched memory; the cost should stay that of subprocess_run_true.
 * raw: posix_spawn + waitpid from the same parent, as in subprocess_run_true
 * (glibc's posix_spawn uses clone(CLONE_VM|CLONE_VFORK): no page-table copy). */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define SIZE (1UL << 30)

extern char **environ;

static char *touch_memory(void)
{
    char *m = malloc(SIZE);
    if (m != NULL)
        memset(m, 1, SIZE);
    return m;
}

static double run_mproc(void)
{
    enum { N = 1000 };
    char *m = touch_memory();
    if (m == NULL)
        return -1;
    const char *argv[] = {"/bin/true", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_completed_process r;
        if (mp_run(&r, argv, NULL) != 0 || r.returncode != 0)
            return -1;
        mp_completed_process_free(&r);
    }
    double us = (bench_now_s() - t0) / N * 1e6;
    free(m);
    return us;
}

static double run_raw(void)
{
    enum { N = 1000 };
    char *m = touch_memory();
    if (m == NULL)
        return -1;
    char *argv[] = {"/bin/true", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        pid_t pid;
        int status;
        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, &status, 0) != pid)
            return -1;
    }
    double us = (bench_now_s() - t0) / N * 1e6;
    free(m);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
