/* 32_joinable_queue_workers.c — three producers put tasks on a JoinableQueue and join it while two
 * daemon consumers mark each task done */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mproc.h"

#define TASKS 5 /* per producer */

struct role {
    mp_joinable_queue *q;
    int id;
};

static int consumer(void *arg)
{
    struct role *r = arg;
    for (;;) { /* a daemon: ended when the main process exits */
        void *msg;
        size_t len;
        if (mp_joinable_queue_get(r->q, &msg, &len, -1) != 0)
            return 1;
        usleep(10000); /* "work" */
        printf("consumer %d did %.*s\n", r->id, (int)len, (char *)msg);
        fflush(stdout);
        free(msg);
        mp_joinable_queue_task_done(r->q);
    }
}

static int producer(void *arg)
{
    struct role *r = arg;
    for (int i = 0; i < TASKS; i++) {
        char task[32];
        int n = snprintf(task, sizeof task, "task %d.%d", r->id, i);
        mp_joinable_queue_put(r->q, task, (size_t)n, -1);
    }
    mp_joinable_queue_join(r->q, -1); /* until every task put so far is done */
    printf("producer %d: all tasks done\n", r->id);
    fflush(stdout);
    return 0;
}

int main(void)
{
    mp_joinable_queue *q;
    if (mp_joinable_queue_new(&q, 0, NULL) != 0)
        return 1;
    struct role roles[5];
    mp_process *consumers[2], *producers[3];
    for (int i = 0; i < 2; i++) {
        roles[i] = (struct role){q, i + 1};
        mp_process_new(&consumers[i], consumer, &roles[i], &(mp_process_options){.daemon = true});
        mp_process_start(consumers[i]);
    }
    for (int i = 0; i < 3; i++) {
        roles[2 + i] = (struct role){q, i + 1};
        mp_process_new(&producers[i], producer, &roles[2 + i], NULL);
        mp_process_start(producers[i]);
    }
    for (int i = 0; i < 3; i++)
        mp_process_join(producers[i], -1);
    printf("producers finished; the daemon consumers end with the main process\n");
    for (int i = 0; i < 3; i++)
        mp_process_destroy(producers[i]);
    return 0; /* daemons are terminated at exit; the queue's memory goes with the process */
}
