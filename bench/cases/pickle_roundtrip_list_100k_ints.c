/* pickle_roundtrip_list_100k_ints: dumps then loads of list(range(100000)), protocol 4;
 * time per round trip. raw: none. */
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 200

static double run_mproc(void)
{
    mp_obj *l = mp_list_new();
    for (int i = 0; i < 100000; i++)
        if (mp_list_append(l, mp_int(i)) != 0)
            return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        void *buf;
        size_t len;
        mp_obj *back;
        if (mp_pickle_dumps(l, 4, &buf, &len) != 0 ||
            mp_pickle_loads(buf, len, NULL, &back, NULL) != 0 || mp_obj_len(back) != 100000)
            return -1;
        free(buf);
        mp_obj_unref(back);
    }
    double t = bench_now_s() - t0;
    mp_obj_unref(l);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
