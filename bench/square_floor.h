/* bench/square_floor.h — the raw floor of the pool map cases: squaring n ints with
 * an OpenMP parallel for on 2 threads (one warm-up pass, then reps timed passes);
 * nanoseconds per item, or -1 when memory ran out or the result is wrong. */
#ifndef MPROC_BENCH_SQUARE_FLOOR_H
#define MPROC_BENCH_SQUARE_FLOOR_H

#include <stdbool.h>
#include <stdlib.h>

#include "bench.h"

static inline double square_floor(int n, int reps)
{
    int *in = malloc((size_t)n * sizeof(int)), *out = malloc((size_t)n * sizeof(int));
    if (in == NULL || out == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        in[i] = i;
    double t0 = 0;
    for (int r = -1; r < reps; r++) {
        if (r == 0)
            t0 = bench_now_s();
#pragma omp parallel for num_threads(2)
        for (int i = 0; i < n; i++)
            out[i] = in[i] * in[i];
    }
    double dt = bench_now_s() - t0;
    bool ok = out[n - 1] == (int)((unsigned)(n - 1) * (unsigned)(n - 1));
    free(in);
    free(out);
    return ok ? dt / reps / n * 1e9 : -1;
}

#endif /* MPROC_BENCH_SQUARE_FLOOR_H */
