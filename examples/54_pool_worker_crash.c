/* 54_pool_worker_crash.c — a worker crashes mid-task: the pool reports that task and carries on */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

static int risky(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg;
    if (x == 3) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV); /* as if it had dereferenced a bad pointer */
    }
    if (x == 5)
        _exit(7); /* a library that calls exit behind our back */
    int y = x * 10;
    return mp_task_return(t, &y, sizeof y);
}

int main(void)
{
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 2}) != 0)
        return 1;
    mp_async_result *r[8];
    for (int i = 0; i < 8; i++)
        mp_pool_apply_async(pool, &r[i], risky, &i, sizeof i, NULL);
    for (int i = 0; i < 8; i++) {
        const void *d;
        int rc = mp_async_result_get(r[i], -1, &d, NULL);
        if (rc == 0)
            printf("task %d -> %d\n", i, *(const int *)d);
        else
            printf("task %d failed: %s (%s)\n", i, mp_err_name(rc), mp_async_result_message(r[i]));
        mp_async_result_destroy(r[i]);
    }
    int pids[2];
    int n = mp_pool_worker_pids(pool, pids, 2);
    printf("the pool still has %d workers and keeps serving\n", n);
    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    mp_pool_destroy(pool);
    return 0;
}
