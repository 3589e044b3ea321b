/* subprocess_run_true: mp_run("/bin/true") and wait, repeated.
 * raw: vfork + execve + waitpid, the floor any spawn API pays: a child sharing the
 * parent's memory while the parent is suspended (CLONE_VM | CLONE_VFORK, as mp_run's
 * and posix_spawn's) that execs at once. Not posix_spawn: glibc's child reads and
 * sets the disposition of all 64 signals (128 rt_sigaction calls, strace) before its
 * exec, while the parent waits; mp_run's child only reads them (64) and resets the
 * ones with handlers, and this process has none, so a vfork child that resets nothing
 * does the least there is to do. posix_spawn's floor was about 10% slower than mp_run
 * (lowest of 6 interleaved runs each: 912 vs 802 us, load 15).
 * Measured as the ping-pong cases are (bench/pingpong.h): the parent pinned to the CPU
 * it runs on, so that every child starts there (BENCH_PIN=none|split to change it),
 * 80 untimed runs, then 25 batches of 40 and the lower quartile batch. Timed from
 * end to end, separate runs of each side spread 1.6-2.7 ms per run under load 10 with
 * identical CPU time (perf stat: 740-790 ms task-clock per 1000 runs for both), and
 * a quiet run's mproc/raw of 0.80x was one of them. */
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
    int status;
    pid_t pid = vfork();
    if (pid == 0) {
        execve(argv[0], argv, environ);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
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
