/* subprocess_cat_64MiB: mp_run("cat") with 64 MiB of input, reading the same
 * 64 MiB back (communicate both ways at once). No raw side. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "mproc.h"

#define SIZE (64UL << 20)
#define N 5

static double run_mproc(void)
{
    char *in = malloc(SIZE);
    if (in == NULL)
        return -1;
    memset(in, 'x', SIZE);
    const char *argv[] = {"cat", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_completed_process r;
        if (mp_run(&r, argv, &(mp_run_options){.input = in, .input_len = SIZE, .capture_output = true}) != 0 ||
            r.stdout_len != SIZE)
            return -1;
        mp_completed_process_free(&r);
    }
    double ms = (bench_now_s() - t0) / N * 1e3;
    free(in);
    return ms;
}

BENCH_MAIN("ms", run_mproc, NULL)
