/* sweep_process: process start + join by how many start at once and by the
 * parent's size.
 *     sweep_process mproc|raw <at_once> <parent_MiB>
 * The parent first touches <parent_MiB> MiB of memory, then starts <at_once>
 * children that return at once and joins them all, repeatedly; microseconds per
 * child. mproc: mp_process_new/start/join, with the start method in
 * MPROC_START_METHOD (the forkserver is started before the memory is touched).
 * raw: fork + _exit + waitpid.
 * One child at a time (at_once 1: the parent-size sweep and the first point of the
 * other) is measured as the ping-pong cases are (bench/pingpong.h): the parent pinned
 * to the CPU it runs on, so that every child starts there (BENCH_PIN=none|split to
 * change it), two untimed batches, then 25 batches and the lower quartile batch.
 * Timed from end to end, where each child ran was left to the scheduler: the 1 MiB
 * parent's raw point spread 450-940 us per child between runs under load 10, and a
 * quiet run's mproc/raw of 0.84x was one of them (perf stat of the same runs: mproc
 * 530-550 ms of CPU and 65k page faults per 2000 children, raw 420-430 ms and 36k).
 * Several at once keep the end-to-end time of all their rounds. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"
#include "pingpong.h"

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int rounds_for(int at_once, size_t mib)
{
    int children = mib >= 512 ? 200 : 2000; /* a large parent forks slowly */
    return children / at_once > 0 ? children / at_once : 1;
}

static double run_mproc(int at_once, int rounds)
{
    mp_process *p[at_once];
    double t0 = bench_now_s();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < at_once; i++)
            if (mp_process_new(&p[i], nothing, NULL, NULL) || mp_process_start(p[i]))
                return -1;
        for (int i = 0; i < at_once; i++) {
            if (mp_process_join(p[i], -1))
                return -1;
            mp_process_destroy(p[i]);
        }
    }
    return (bench_now_s() - t0) / ((double)rounds * at_once) * 1e6;
}

static double run_raw(int at_once, int rounds)
{
    pid_t p[at_once];
    double t0 = bench_now_s();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < at_once; i++) {
            if ((p[i] = fork()) < 0)
                return -1;
            if (p[i] == 0)
                _exit(0);
        }
        for (int i = 0; i < at_once; i++) {
            int status;
            if (waitpid(p[i], &status, 0) != p[i])
                return -1;
        }
    }
    return (bench_now_s() - t0) / ((double)rounds * at_once) * 1e6;
}

static int round_mproc(void *ctx)
{
    (void)ctx;
    mp_process *p;
    if (mp_process_new(&p, nothing, NULL, NULL) || mp_process_start(p) || mp_process_join(p, -1))
        return -1;
    mp_process_destroy(p);
    return 0;
}

static int round_raw(void *ctx)
{
    (void)ctx;
    int status;
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0)
        _exit(0);
    return waitpid(p, &status, 0) == p ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s mproc|raw at_once parent_MiB\n", argv[0]);
        return 2;
    }
    int at_once = atoi(argv[2]);
    size_t mib = strtoul(argv[3], NULL, 0);
    if (at_once < 1)
        return 2;
    /* Under the forkserver, start it while small, as a program should. */
    if (strcmp(argv[1], "mproc") == 0 && mp_get_start_method() == MP_START_FORKSERVER &&
        mp_forkserver_ensure_running() != 0)
        return 1;
    char *ballast = mib ? malloc(mib << 20) : NULL;
    if (mib && ballast == NULL)
        return 1;
    if (ballast)
        memset(ballast, 1, mib << 20);
    int rounds = rounds_for(at_once, mib);
    bool raw = strcmp(argv[1], "raw") == 0;
    double us;
    if (at_once == 1) {
        (void)pp_place_child; /* the children inherit the parent's CPU */
        pp_place_parent(PP_SAME);
        int batch = rounds / PP_BATCHES > 0 ? rounds / PP_BATCHES : 1;
        us = pp_measure(raw ? round_raw : round_mproc, NULL, batch, 1);
    } else {
        us = raw ? run_raw(at_once, rounds) : run_mproc(at_once, rounds);
    }
    if (us < 0)
        return 1;
    printf("%.6g us\n", us);
    free(ballast);
    return 0;
}
