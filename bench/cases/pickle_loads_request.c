/* pickle_loads_request: unpickle the manager request ('7f3802039be0', 'put', (4242,),
 * {}) exactly as CPython 3.11-3.13 pickle it (FRAME, MEMOIZE and all), and free it.
 * raw: none (no syscall floor for decoding). */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 1000000

/* pickle.dumps(('7f3802039be0', 'put', (4242,), {})) on CPython 3.11-3.13 */
static const unsigned char request[] = {
    0x80, 0x04, 0x95, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x8c, 0x0c, '7',
    'f',  '3',  '8',  '0',  '2',  '0',  '3',  '9',  'b',  'e',  '0',  0x94, 0x8c, 0x03, 'p',
    'u',  't',  0x94, 0x4d, 0x92, 0x10, 0x85, 0x94, 0x7d, 0x94, 0x74, 0x94, 0x2e};

static double run_mproc(void)
{
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_obj *o;
        if (mp_pickle_loads(request, sizeof request, NULL, &o, NULL) != 0)
            return -1;
        mp_obj_unref(o);
    }
    return (bench_now_s() - t0) / N * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
