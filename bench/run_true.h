/* bench/run_true.h — one round of the subprocess_run_true cases, for each side.
 * mproc: mp_run("/bin/true") and its completed process freed. raw: vfork + execve +
 * waitpid, the floor any spawn API pays: a child sharing the parent's memory while
 * the parent is suspended (CLONE_VM | CLONE_VFORK, as mp_run's and posix_spawn's),
 * that execs at once. Not posix_spawn: glibc's child reads and sets the disposition
 * of all 64 signals (128 rt_sigaction calls, strace) before its exec, while the
 * parent waits; mp_run's child only reads them (64) and resets the ones with
 * handlers, and these processes have none, so a vfork child that resets nothing does
 * the least there is to do. posix_spawn's floor was about 10% slower than mp_run
 * (lowest of 6 interleaved runs each: 912 vs 802 us, load 15).
 * Both cases measure rounds in bench/pingpong.h's frame (and their CPython sides in
 * bench/pingpong.py's): the parent pinned to the CPU it runs on, so that every child
 * starts there (BENCH_PIN=none|split to change it), untimed batches, then 25 batches
 * and the lower quartile batch. Timed from end to end, separate runs of each side
 * spread 1.6-2.7 ms per run under load 10 with identical CPU time (perf stat:
 * 740-790 ms task-clock per 1000 runs for both), and a quiet run's mproc/raw of
 * 0.80x was one of them. */
#ifndef MPROC_BENCH_RUN_TRUE_H
#define MPROC_BENCH_RUN_TRUE_H

#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "pingpong.h"

#define RUN_TRUE_BATCH 5 /* runs per timed batch */

extern char **environ;

static int run_true_mproc(void *ctx)
{
    (void)ctx;
    const char *argv[] = {"/bin/true", NULL};
    mp_completed_process r;
    if (mp_run(&r, argv, NULL) != 0 || r.returncode != 0)
        return -1;
    mp_completed_process_free(&r);
    return 0;
}

static int run_true_raw(void *ctx)
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

/* The lower quartile batch's microseconds per run of round, the parent pinned. */
static double run_true_measure(int (*round)(void *))
{
    (void)pp_place_child; /* the children inherit the parent's CPU */
    pp_place_parent(PP_SAME);
    return pp_measure(round, NULL, RUN_TRUE_BATCH, 1);
}

#endif /* MPROC_BENCH_RUN_TRUE_H */
