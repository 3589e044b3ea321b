/* 33_pipe_send_recv.c — a Pipe: the child sends 1 and "hello", the parent receives them in order */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

static int child(void *arg)
{
    mp_conn *conn = arg;
    mp_conn_send_bytes(conn, "1", 1);
    mp_conn_send_bytes(conn, "hello", 5);
    mp_conn_close(conn);
    return 0;
}

int main(void)
{
    mp_conn *parent_conn, *child_conn;
    if (mp_pipe(&parent_conn, &child_conn, true) != 0)
        return 1;
    mp_process *p;
    mp_process_new(&p, child, child_conn, NULL);
    mp_process_start(p);
    mp_conn_close(child_conn); /* the parent keeps only its end */
    for (;;) {
        void *msg;
        size_t len;
        int rc = mp_conn_recv_bytes(parent_conn, &msg, &len, 0);
        if (rc == MP_EEOF) {
            printf("child closed its end\n");
            break;
        }
        if (rc != 0)
            return 1;
        printf("received %.*s\n", (int)len, (char *)msg);
        free(msg);
    }
    mp_process_join(p, -1);
    mp_process_destroy(p);
    mp_conn_destroy(parent_conn);
    mp_conn_destroy(child_conn);
    return 0;
}
