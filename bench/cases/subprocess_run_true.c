/* subprocess_run_true: mp_run("/bin/true") and wait, repeated; microseconds per run.
 * raw: vfork + execve + waitpid. The rounds and their frame: bench/run_true.h. */
#include "bench.h"
#include "run_true.h"

static double run_mproc(void)
{
    return run_true_measure(run_true_mproc);
}

static double run_raw(void)
{
    return run_true_measure(run_true_raw);
}

BENCH_MAIN("us", run_mproc, run_raw)
