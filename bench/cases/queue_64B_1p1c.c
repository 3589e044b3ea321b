/* queue_64B_1p1c: a stream of 64-byte messages from one producer process to one
 * consumer process through mp_queue (put / get); time per message, from the start
 * of both until the consumer has them all. raw: the same stream through a plain
 * shared-memory ring (bench/ring_floor.h), the floor of any queue. */
#include "queue_stream.h"
#include "ring_floor.h"

static double run_mproc(void)
{
    return queue_stream(1, 1);
}

static double run_raw(void)
{
    return ring_stream(N, 1, 1);
}

BENCH_MAIN("us", run_mproc, run_raw)
