/* 34_connection_wait.c — mp_wait on the read ends of several pipes, as
 * multiprocessing.connection.wait */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mproc.h"

#define N 4

static int worker(void *arg)
{
    mp_conn *w = arg;
    int id = (int)(getpid() % 1000);
    srand((unsigned)getpid());
    usleep((useconds_t)(rand() % 50) * 1000);
    char msg[32];
    for (int i = 0; i < 3; i++) {
        int n = snprintf(msg, sizeof msg, "message %d from pid ..%03d", i, id);
        mp_conn_send_bytes(w, msg, (size_t)n);
    }
    mp_conn_close(w);
    return 0;
}

int main(void)
{
    mp_conn *readers[N];
    mp_process *procs[N];
    for (int i = 0; i < N; i++) {
        mp_conn *w;
        mp_pipe(&readers[i], &w, false);
        mp_process_new(&procs[i], worker, w, NULL);
        mp_process_start(procs[i]);
        mp_conn_destroy(w); /* only the child writes */
    }
    int open = N;
    while (open > 0) {
        mp_wait_object objs[N];
        size_t n = 0;
        int which[N];
        for (int i = 0; i < N; i++)
            if (readers[i] != NULL) {
                objs[n] = (mp_wait_object){.conn = readers[i]};
                which[n++] = i;
            }
        mp_wait(objs, n, -1);
        for (size_t k = 0; k < n; k++) {
            if (!objs[k].ready)
                continue;
            int i = which[k];
            void *msg;
            size_t len;
            if (mp_conn_recv_bytes(readers[i], &msg, &len, 0) == MP_EEOF) {
                mp_conn_destroy(readers[i]);
                readers[i] = NULL;
                open--;
                continue;
            }
            printf("%.*s\n", (int)len, (char *)msg);
            free(msg);
        }
    }
    for (int i = 0; i < N; i++) {
        mp_process_join(procs[i], -1);
        mp_process_destroy(procs[i]);
    }
    printf("all workers done\n");
    return 0;
}
