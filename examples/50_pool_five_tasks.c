/* 50_pool_five_tasks.c — Pool(4) runs five tasks; the fifth waits for a free worker */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

struct report {
    int pid;
    double start, end; /* seconds since the program started */
};

static double t0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int nap(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    struct report r = {.pid = getpid(), .start = now() - t0};
    usleep((useconds_t)(*(const int *)arg) * 1000);
    r.end = now() - t0;
    return mp_task_return(t, &r, sizeof r);
}

int main(void)
{
    t0 = now();
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 4}) != 0)
        return 1;
    mp_async_result *res[5];
    int ms = 400;
    for (int i = 0; i < 5; i++)
        if (mp_pool_apply_async(pool, &res[i], nap, &ms, sizeof ms, NULL) != 0)
            return 1;
    for (int i = 0; i < 5; i++) {
        const void *d;
        if (mp_async_result_get(res[i], -1, &d, NULL) != 0)
            return 1;
        const struct report *r = d;
        printf("task %d: worker pid %d, ran from %.2fs to %.2fs\n", i, r->pid, r->start, r->end);
        mp_async_result_destroy(res[i]);
    }
    printf("four workers: the fifth task started when one of the first four finished\n");
    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    mp_pool_destroy(pool);
    return 0;
}
