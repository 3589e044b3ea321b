/* 52_pool_map_squares.c — map, imap and imap_unordered of x*x over range(10) */
#include <stdio.h>

#include "mproc.h"

static int square(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg, y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

int main(void)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 4}) != 0)
        return 1;
    int in[10], out[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;

    if (mp_pool_map(pool, square, in, sizeof in[0], 10, out, sizeof out[0], NULL) != 0)
        return 1;
    printf("map:            [");
    for (int i = 0; i < 10; i++)
        printf("%s%d", i ? ", " : "", out[i]);
    printf("]\n");

    mp_async_result *it;
    mp_pool_imap(pool, &it, square, in, sizeof in[0], 10, sizeof(int),
                 &(mp_async_options){.chunksize = 1});
    printf("imap:           ");
    const void *d;
    while (mp_imap_next(it, NULL, &d, NULL, -1) == 0)
        printf("%d ", *(const int *)d);
    printf("\n");
    mp_async_result_destroy(it);

    mp_pool_imap_unordered(pool, &it, square, in, sizeof in[0], 10, sizeof(int), NULL);
    int sum = 0;
    while (mp_imap_next(it, NULL, &d, NULL, -1) == 0)
        sum += *(const int *)d;
    printf("imap_unordered: sum of squares %d (in completion order)\n", sum);
    mp_async_result_destroy(it);

    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    mp_pool_destroy(pool);
    return 0;
}
