/* bench/pingpong.h — the measuring frame of the two-process ping-pong cases
 * (pipe_roundtrip_16B, conn_send_recv_obj, tcp_roundtrip_16B, event_handoff);
 * bench/pingpong.py is the same frame for their CPython sides. Every side of a
 * case (mproc, raw, CPython) is measured the same way:
 *
 * Placement. A round trip between two processes costs very different amounts
 * depending on where the scheduler puts them: on one CPU a wake-up is a context
 * switch (about 12 us per round trip on the 2-CPU VM of the README), across
 * two CPUs it is an inter-processor wake-up of a vCPU that may be halted (100 to
 * 1000 us under load, and anywhere between in a quiet run, depending on the
 * guest's adaptive halt-polling history). Left to the scheduler, one run of a
 * side spends a random share of its time in each mode: the same binary ranged
 * 15-100 us between runs, and one side could look 25% "faster than the floor".
 * So the parent pins itself, before it forks, to the CPU it runs on, and
 * the child either inherits that CPU ("same", the default of the byte cases:
 * the floor of a wake-up is a switch on the same CPU) or moves to another CPU
 * ("split", event_handoff's default: its waiters spin, which only helps across
 * CPUs). BENCH_PIN=same|split|none in the environment overrides the default.
 *
 * Timing. PP_WARMUP untimed rounds (connections set up, buffers grown, caches
 * settled), then PP_BATCHES timed batches of `batch` rounds; the result is the
 * lower quartile of the batches (the 7th fastest of 25), per round. On a shared
 * machine most batches include time in which another process had the CPU;
 * averaging them in measured the machine's load (the same binary ranged 2-3x
 * between runs with the load average at 20-40). The lower quartile is the cost
 * of the work with the least interference, still not the single luckiest batch.
 * Measured this way with mproc and raw batches alternating in one process, the
 * ratio mproc/raw of pipe_roundtrip_16B was 1.00-1.03 in five runs, while
 * separate runs' ratios ranged 0.3-1.6 under that load.
 */
#ifndef MPROC_BENCH_PINGPONG_H
#define MPROC_BENCH_PINGPONG_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define PP_WARMUP_BATCHES 2 /* untimed batches before the timed ones */
#define PP_BATCHES 25       /* timed batches; the lower quartile is reported */

enum pp_mode { PP_NONE, PP_SAME, PP_SPLIT };

static int pp_child_cpu = -1; /* where the child goes after fork, or -1: stay */

static void pp_pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* In the parent, before fork: pins the parent (see above) and chooses the
 * child's CPU. default_mode applies unless BENCH_PIN says otherwise. */
static void pp_place_parent(enum pp_mode default_mode)
{
    enum pp_mode mode = default_mode;
    const char *env = getenv("BENCH_PIN");
    if (env != NULL)
        mode = strcmp(env, "same") == 0 ? PP_SAME : strcmp(env, "split") == 0 ? PP_SPLIT : PP_NONE;
    if (mode == PP_NONE)
        return;
    cpu_set_t allowed;
    int here = sched_getcpu();
    if (here < 0 || sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    int other = -1;
    for (int c = 0; c < CPU_SETSIZE && mode == PP_SPLIT; c++)
        if (c != here && CPU_ISSET(c, &allowed)) {
            other = c;
            break;
        }
    if (mode == PP_SPLIT && other < 0)
        mode = PP_SAME; /* one CPU only */
    pp_pin_to(here);
    pp_child_cpu = mode == PP_SPLIT ? other : -1;
}

/* In the child, right after fork. */
static void pp_place_child(void)
{
    if (pp_child_cpu >= 0)
        pp_pin_to(pp_child_cpu);
}

static int pp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs round(ctx) PP_WARMUP_BATCHES * batch times untimed, then PP_BATCHES
 * batches of batch rounds, and returns the lower quartile batch's time per round in
 * microseconds, divided by per_round (2 for a hand-off case that times half a
 * round trip); -1 when a round fails (returns nonzero). */
static double pp_measure(int (*round)(void *), void *ctx, int batch, int per_round)
{
    double t[PP_BATCHES];
    for (int i = 0; i < PP_WARMUP_BATCHES * batch; i++)
        if (round(ctx) != 0)
            return -1;
    for (int b = 0; b < PP_BATCHES; b++) {
        double t0 = bench_now_s();
        for (int i = 0; i < batch; i++)
            if (round(ctx) != 0)
                return -1;
        t[b] = (bench_now_s() - t0) / batch / per_round * 1e6;
    }
    qsort(t, PP_BATCHES, sizeof t[0], pp_cmp_double);
    if (getenv("BENCH_BATCHES") != NULL) { /* the sorted batches, to stderr */
        for (int b = 0; b < PP_BATCHES; b++)
            fprintf(stderr, "%.3g ", t[b]);
        fprintf(stderr, "\n");
    }
    return t[PP_BATCHES / 4];
}

#endif /* MPROC_BENCH_PINGPONG_H */
