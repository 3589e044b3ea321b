/* 55_pool_shared_map.c — zero-copy map over 10M floats in shared memory, watching its progress */
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

static int slow_sqrt(const void *in, void *out, size_t n, void *ctx)
{
    const float *a = in;
    float *b = out;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        float x = a[i], g = x > 1 ? x / 2 : 1;
        for (int k = 0; k < 20; k++) /* Newton's method, on purpose slow */
            g = 0.5f * (g + x / g);
        b[i] = g;
    }
    return 0;
}

int main(void)
{
    enum { N = 10 * 1000 * 1000 };
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return 1;
    float *in = mp_pool_shared_alloc(pool, N * sizeof(float));
    float *out = mp_pool_shared_alloc(pool, N * sizeof(float));
    if (in == NULL || out == NULL)
        return 1;
    for (int i = 0; i < N; i++)
        in[i] = (float)i;
    mp_async_result *r;
    mp_pool_map_shared_async(pool, &r, slow_sqrt, in, sizeof(float), out, sizeof(float), N, NULL,
                             &(mp_async_options){.chunksize = 100000});
    while (mp_async_result_wait(r, 100) == MP_ETIMEDOUT) {
        size_t done, total;
        mp_async_result_progress(r, &done, &total);
        printf("  progress: %5.1f%%\n", 100.0 * (double)done / (double)total);
    }
    int rc = mp_async_result_get(r, -1, NULL, NULL);
    printf("done (%s): sqrt(%d) = %.1f, sqrt(%d) = %.1f\n", mp_err_name(rc), 144, out[144], N - 1,
           out[N - 1]);
    mp_async_result_destroy(r);
    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    mp_pool_destroy(pool);
    return 0;
}
