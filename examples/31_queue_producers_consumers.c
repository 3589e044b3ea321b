/* 31_queue_producers_consumers.c — a Queue(3) shared by three producer and three consumer processes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#define ITEMS 4 /* per producer */

struct role {
    mp_queue *q;
    int id;
};

static int producer(void *arg)
{
    struct role *r = arg;
    for (int i = 0; i < ITEMS; i++) {
        char item[32];
        int n = snprintf(item, sizeof item, "item %d from producer %d", i, r->id);
        mp_queue_put(r->q, item, (size_t)n, -1); /* blocks while 3 items wait */
    }
    return 0;
}

static int consumer(void *arg)
{
    struct role *r = arg;
    for (;;) {
        void *msg;
        size_t len;
        if (mp_queue_get(r->q, &msg, &len, -1) != 0)
            return 1;
        if (len == 4 && memcmp(msg, "STOP", 4) == 0) {
            free(msg);
            return 0;
        }
        printf("consumer %d got %.*s\n", r->id, (int)len, (char *)msg);
        fflush(stdout);
        free(msg);
    }
}

int main(void)
{
    mp_queue *q;
    if (mp_queue_new(&q, 3, NULL) != 0)
        return 1;
    struct role roles[6];
    mp_process *procs[6];
    for (int i = 0; i < 6; i++) {
        roles[i] = (struct role){q, i % 3 + 1};
        mp_process_new(&procs[i], i < 3 ? producer : consumer, &roles[i], NULL);
        mp_process_start(procs[i]);
    }
    for (int i = 0; i < 3; i++)
        mp_process_join(procs[i], -1);
    for (int i = 0; i < 3; i++)
        mp_queue_put(q, "STOP", 4, -1);
    for (int i = 3; i < 6; i++)
        mp_process_join(procs[i], -1);
    printf("all %d items consumed, queue empty: %s\n", 3 * ITEMS, mp_queue_empty(q) ? "yes" : "no");
    for (int i = 0; i < 6; i++)
        mp_process_destroy(procs[i]);
    mp_queue_destroy(q);
    return 0;
}
