/* 65_listener_echo.c — C Listener echo server, python3 Client with the same authkey */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with the python child's */
    mp_listener *l;
    char err[200];
    int rc = mp_listener_new(&l, "127.0.0.1:0",
                             &(mp_listener_options){.authkey = "secret password",
                                                    .authkey_len = 15,
                                                    .errbuf = err,
                                                    .errbuf_len = sizeof err});
    if (rc != 0) {
        fprintf(stderr, "listener: %s: %s\n", mp_err_name(rc), err);
        return 1;
    }
    printf("C server listening on %s\n", mp_listener_address(l));
    fflush(stdout);

    /* The python client, started from here so the demo is one program. */
    const char *argv[] = {"python3", "65_listener_echo_client.py", mp_listener_address(l), NULL};
    mp_popen *py;
    if (mp_popen_new(&py, argv, NULL) != 0) {
        fprintf(stderr, "cannot start python3: %s\n", py ? mp_popen_message(py) : "");
        return 1;
    }
    mp_conn *c;
    rc = mp_listener_accept(l, &c, 20000);
    if (rc != 0) {
        fprintf(stderr, "accept: %s (%s)\n", mp_err_name(rc), mp_listener_last_error(l));
        return 1;
    }
    printf("C server: connection authenticated\n");
    for (;;) {
        void *msg;
        size_t len;
        rc = mp_conn_recv_bytes(c, &msg, &len, 0);
        if (rc == MP_EEOF)
            break;
        if (rc != 0)
            return 1;
        printf("C server: echoing %zu bytes\n", len);
        mp_conn_send_bytes(c, msg, len);
        free(msg);
    }
    int code = -1;
    mp_popen_wait(py, 20000, &code);
    printf("C server: client closed; python exited with %d\n", code);
    mp_popen_destroy(py);
    mp_conn_destroy(c);
    mp_listener_destroy(l);
    return code == 0 ? 0 : 1;
}
