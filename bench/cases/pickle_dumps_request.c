/* pickle_dumps_request: pickle a manager request ('7f3802039be0', 'put', (4242,), {})
 * with protocol 4 into a new buffer (freed each time, as Python's bytes would be).
 * raw: none (no syscall floor for encoding). */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 1000000

static double run_mproc(void)
{
    mp_obj *req;
    if (mp_obj_build(&req, "(ss(i){})", "7f3802039be0", "put", 4242) != 0)
        return -1;
    size_t total = 0;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        void *buf;
        size_t len;
        if (mp_pickle_dumps(req, 4, &buf, &len) != 0)
            return -1;
        total += len;
        free(buf);
    }
    double t = bench_now_s() - t0;
    mp_obj_unref(req);
    return total ? t / N * 1e6 : -1;
}

BENCH_MAIN("us", run_mproc, NULL)
