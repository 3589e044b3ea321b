/* 30_queue_writer_reader.c — a writer puts A, B, C on a Queue; a reader process prints them and is
 * terminated at the end */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

struct queues {
    mp_queue *work, *acks;
};

static int reader(void *arg)
{
    struct queues *q = arg;
    for (;;) {
        void *msg;
        size_t len;
        if (mp_queue_get(q->work, &msg, &len, -1) != 0)
            return 1;
        printf("reader got %.*s\n", (int)len, (char *)msg);
        fflush(stdout);
        free(msg);
        mp_queue_put(q->acks, "", 0, -1);
    }
}

int main(void)
{
    struct queues q;
    if (mp_queue_new(&q.work, 0, NULL) != 0 || mp_queue_new(&q.acks, 0, NULL) != 0)
        return 1;
    mp_process *p;
    mp_process_new(&p, reader, &q, NULL);
    mp_process_start(p);

    const char *items[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        printf("writer puts %s\n", items[i]);
        fflush(stdout);
        mp_queue_put(q.work, items[i], 1, -1);
    }
    for (int i = 0; i < 3; i++) { /* wait until the reader printed all three */
        void *ack;
        size_t len;
        mp_queue_get(q.acks, &ack, &len, -1);
        free(ack);
    }
    mp_process_terminate(p); /* the reader loops forever: stop it, as in the docs */
    mp_process_join(p, -1);
    int code;
    mp_process_exitcode(p, &code);
    printf("reader terminated, exit code %d\n", code);
    mp_process_destroy(p);
    mp_queue_destroy(q.work);
    mp_queue_destroy(q.acks);
    return 0;
}
