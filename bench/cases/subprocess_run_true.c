/* subprocess_run_true: mp_run("/bin/true") and wait, repeated.
 * raw: posix_spawn + waitpid, the floor any spawn API pays (both clone the child with
 * CLONE_VM | CLONE_VFORK, so the same work).
 * Measured as the ping-pong cases are (bench/pingpong.h): the parent pinned to the CPU
 * it runs on, so that every child starts there (BENCH_PIN=none|split to change it),
 * 80 untimed runs, then 25 batches of 40 and the lower quartile batch. Timed from
 * end to end, separate runs of each side spread 1.6-2.7 ms per run under load 10 with
 * identical CPU time (perf stat: 740-790 ms task-clock per 1000 runs for both), and
 * a quiet run's mproc/raw of 0.80x was one of them. */
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"
#include "pingpong.h"

#define BATCH 5

extern char **environ;

static int round_mproc(void *ctx)
{
    (void)ctx;
    const char *argv[] = {"/bin/true", NULL};
    mp_completed_process r;
    if (mp_run(&r, argv, NULL) != 0 || r.returncode != 0)
        return -1;
    mp_completed_process_free(&r);
    return 0;
}

static int round_raw(void *ctx)
{
    (void)ctx;
    char *argv[] = {"/bin/true", NULL};
    pid_t pid;
    int status;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

static double run_mproc(void)
{
    (void)pp_place_child; /* the children inherit the parent's CPU */
    pp_place_parent(PP_SAME);
    return pp_measure(round_mproc, NULL, BATCH, 1);
}

static double run_raw(void)
{
    pp_place_parent(PP_SAME);
    return pp_measure(round_raw, NULL, BATCH, 1);
}

BENCH_MAIN("us", run_mproc, run_raw)
