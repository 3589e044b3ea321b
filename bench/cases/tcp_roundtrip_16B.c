/* tcp_roundtrip_16B: a 16-byte message to another process and back over an
 * authenticated TCP connection (mp_listener / mp_client).
 * raw: the same ping-pong of the same 20 bytes (length + payload, one write) over a
 * plain loopback TCP socket with TCP_NODELAY. Every side (and the CPython one)
 * is measured by bench/pingpong.h's frame: both processes on one CPU, the same
 * warm-up, the lower quartile of 25 batches of 800 round trips. */
#include <stdlib.h>
#include <sys/wait.h>

#include "mproc.h"
#include "net_raw.h"
#include "pingpong.h"

#define BATCH 800
#define KEY "benchmark key"

struct mproc_ctx {
    mp_conn *c;
    char buf[16];
};

static int mproc_round(void *arg)
{
    struct mproc_ctx *x = arg;
    size_t len;
    return mp_conn_send_bytes(x->c, x->buf, sizeof x->buf) ||
           mp_conn_recv_bytes_into(x->c, x->buf, sizeof x->buf, 0, &len);
}

struct raw_ctx {
    int fd;
    unsigned char buf[20];
};

static int raw_round(void *arg)
{
    struct raw_ctx *x = arg;
    return write(x->fd, x->buf, sizeof x->buf) != sizeof x->buf ||
           raw_read_full(x->fd, x->buf, sizeof x->buf);
}

static double run_mproc(void)
{
    mp_listener *l;
    mp_listener_options lo = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
    if (mp_listener_new(&l, "127.0.0.1:0", &lo) != 0)
        return -1;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        mp_conn *c;
        if (mp_listener_accept(l, &c, 20000) != 0)
            _exit(1);
        char buf[16];
        size_t len;
        while (mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len) == 0)
            if (mp_conn_send_bytes(c, buf, len) != 0)
                break;
        _exit(0);
    }
    mp_conn *c;
    mp_client_options co = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
    if (mp_client(&c, mp_listener_address(l), &co) != 0)
        return -1;
    struct mproc_ctx x = {.c = c, .buf = "0123456789abcde"};
    double us = pp_measure(mproc_round, &x, BATCH, 1);
    mp_conn_destroy(c);
    waitpid(pid, NULL, 0);
    mp_listener_destroy(l);
    return us;
}

static double run_raw(void)
{
    int port;
    int lfd = raw_listen(&port);
    if (lfd < 0)
        return -1;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            _exit(1);
        raw_nodelay(fd);
        unsigned char buf[20];
        while (raw_read_full(fd, buf, sizeof buf) == 0)
            if (write(fd, buf, sizeof buf) != sizeof buf)
                break;
        _exit(0);
    }
    int fd = raw_connect(port);
    if (fd < 0)
        return -1;
    struct raw_ctx x = {.fd = fd,
                        .buf = {0, 0, 0, 16, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}};
    double us = pp_measure(raw_round, &x, BATCH, 1);
    close(fd);
    waitpid(pid, NULL, 0);
    close(lfd);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
