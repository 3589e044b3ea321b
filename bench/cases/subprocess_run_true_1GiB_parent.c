/* subprocess_run_true_1GiB_parent: mp_run("/bin/true") from a parent with 1 GiB
 * of touched memory; the cost should stay that of subprocess_run_true (mp_run's
 * child shares the parent's memory until its exec: no page-table copy).
 * raw: vfork + execve + waitpid from the same parent. The rounds and their frame:
 * bench/run_true.h. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "run_true.h"

#define SIZE (1UL << 30)

static double run_from_1GiB(int (*round)(void *))
{
    char *m = malloc(SIZE);
    if (m == NULL)
        return -1;
    memset(m, 1, SIZE);
    double us = run_true_measure(round);
    free(m);
    return us;
}

static double run_mproc(void)
{
    return run_from_1GiB(run_true_mproc);
}

static double run_raw(void)
{
    return run_from_1GiB(run_true_raw);
}

BENCH_MAIN("us", run_mproc, run_raw)
