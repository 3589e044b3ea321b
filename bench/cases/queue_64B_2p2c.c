/* queue_64B_2p2c: a stream of 64-byte messages from two producer processes to two
 * consumer processes through mp_queue (put / get); time per message, from the start
 * of both until the consumers have them all. raw: the same stream through a plain
 * shared-memory ring (bench/ring_floor.h), the floor of any queue. */
#include "queue_stream.h"
#include "ring_floor.h"

static double run_mproc(void)
{
    return queue_stream(2, 2);
}

static double run_raw(void)
{
    return ring_stream(N, 2, 2);
}

BENCH_MAIN("us", run_mproc, run_raw)
