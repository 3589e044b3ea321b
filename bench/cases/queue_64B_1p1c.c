/* queue_64B_1p1c: a stream of 64-byte messages from one producer process to one
 * consumer process through mp_queue (put / get); time per message, from the start
 * of both until the consumer has them all. No raw floor. */
#include "queue_stream.h"

static double run_mproc(void)
{
    return queue_stream(1, 1);
}

BENCH_MAIN("us", run_mproc, NULL)
