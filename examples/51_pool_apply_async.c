/* 51_pool_apply_async.c — Pool(2): apply_async prints 0..4, then close and join */
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

static int show(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    printf("  worker %d got %d\n", (int)getpid(), *(const int *)arg);
    return 0;
}

static int twice(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int y = 2 * *(const int *)arg;
    return mp_task_return(t, &y, sizeof y);
}

int main(void)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return 1;
    printf("fire and forget (workers print, in any order):\n");
    fflush(stdout); /* before the workers' lines */
    for (int i = 0; i < 5; i++)
        mp_pool_apply_async(pool, NULL, show, &i, sizeof i, NULL);

    mp_async_result *r[5];
    for (int i = 0; i < 5; i++)
        mp_pool_apply_async(pool, &r[i], twice, &i, sizeof i, NULL);
    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    printf("results, in submission order:");
    for (int i = 0; i < 5; i++) {
        const void *d;
        if (mp_async_result_get(r[i], 0, &d, NULL) == 0)
            printf(" %d", *(const int *)d / 2);
        mp_async_result_destroy(r[i]);
    }
    printf("\n");
    mp_pool_destroy(pool);
    return 0;
}
