/* 66_client_python_listener.c — C Client with an authkey, python3 Listener */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with the python child's */
    const char *argv[] = {"python3", "66_python_listener.py", NULL};
    mp_popen *py;
    if (mp_popen_new(&py, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}) != 0) {
        fprintf(stderr, "cannot start python3: %s\n", py ? mp_popen_message(py) : "");
        return 1;
    }
    /* The listener prints its address (port 0 resolved) on its first line. */
    char addr[128];
    size_t n = 0;
    while (n + 1 < sizeof addr && read(mp_popen_stdout(py), addr + n, 1) == 1 && addr[n] != '\n')
        n++;
    addr[n] = '\0';
    printf("python listener is at %s\n", addr);

    mp_conn *c;
    char err[200];
    int rc = mp_client(&c, addr,
                       &(mp_client_options){.authkey = "secret password",
                                            .authkey_len = 15,
                                            .errbuf = err,
                                            .errbuf_len = sizeof err});
    if (rc != 0) {
        fprintf(stderr, "client: %s: %s\n", mp_err_name(rc), err);
        return 1;
    }
    printf("C client: authenticated both ways\n");
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        void *msg;
        size_t len;
        mp_conn_send_bytes(c, words[i], strlen(words[i]));
        if (mp_conn_recv_bytes(c, &msg, &len, 0) != 0)
            return 1;
        printf("C client: sent %s, got %.*s\n", words[i], (int)len, (char *)msg);
        free(msg);
    }
    mp_conn_destroy(c);
    /* Then a wrong key: both sides say why. */
    rc = mp_client(
        &c, addr,
        &(mp_client_options){
            .authkey = "guess", .authkey_len = 5, .errbuf = err, .errbuf_len = sizeof err});
    printf("C client with a wrong key: %s: %s\n", mp_err_name(rc), err);
    char *out = NULL;
    size_t out_len = 0;
    int code = -1;
    mp_popen_communicate(py, NULL, 0, 20000, &out, &out_len, NULL, NULL);
    mp_popen_wait(py, 1000, &code);
    printf("%s", out ? out : "");
    free(out);
    mp_popen_destroy(py);
    return code == 0 && rc == MP_EAUTH ? 0 : 1;
}
