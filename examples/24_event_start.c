/* 24_event_start.c — workers wait on one Event and all start the moment it is set */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

struct ctx {
    mp_event *start;
    int id;
};

static double t0; /* set before the fork: the children inherit it */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int worker(void *arg)
{
    struct ctx *c = arg;
    printf("worker %d waiting for the start signal\n", c->id);
    fflush(stdout);
    if (mp_event_wait(c->start, 10000) != 0)
        return 1;
    printf("worker %d started at %.1f ms\n", c->id, now_ms() - t0);
    fflush(stdout);
    return 0;
}

int main(void)
{
    mp_event *start;
    if (mp_event_new(&start, NULL) != 0)
        return 1;
    t0 = now_ms();
    struct ctx ctx[4];
    mp_process *procs[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (struct ctx){start, i};
        if (mp_process_new(&procs[i], worker, &ctx[i], NULL) != 0 ||
            mp_process_start(procs[i]) != 0)
            return 1;
    }
    usleep(300000);
    printf("main: setting the event at %.1f ms\n", now_ms() - t0);
    fflush(stdout);
    mp_event_set(start);
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        int code = 1;
        mp_process_join(procs[i], -1);
        mp_process_exitcode(procs[i], &code);
        failed |= code;
        mp_process_destroy(procs[i]);
    }
    mp_event_destroy(start);
    return failed;
}
