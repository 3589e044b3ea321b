/* queue_64B_2p2c: a stream of 64-byte messages from two producer processes to two
 * consumer processes through mp_queue (put / get); time per message, from the start
 * of both until the consumers have them all. No raw floor. */
#include "queue_stream.h"

static double run_mproc(void)
{
    return queue_stream(2, 2);
}

BENCH_MAIN("us", run_mproc, NULL)
