/* pickle_roundtrip_dict_10k_str: dumps then loads of {'key0': 'value0', ...} with
 * 10000 str keys and str values, protocol 4; time per round trip. raw: none. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "mproc.h"

#define N 300

static double run_mproc(void)
{
    mp_obj *d = mp_dict_new();
    char k[32], v[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "value%d", i);
        if (mp_dict_set(d, mp_str_c(k), mp_str_c(v)) != 0)
            return -1;
    }
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        void *buf;
        size_t len;
        mp_obj *back;
        if (mp_pickle_dumps(d, 4, &buf, &len) != 0 ||
            mp_pickle_loads(buf, len, NULL, &back, NULL) != 0 || mp_obj_len(back) != 10000)
            return -1;
        free(buf);
        mp_obj_unref(back);
    }
    double t = bench_now_s() - t0;
    mp_obj_unref(d);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, NULL)
