/* pipe_roundtrip_16B: a 16-byte message to a child and back over mp_pipe(duplex).
 * raw: the same ping-pong of the same 20 bytes (the 4-byte length and the payload,
 * as mp_conn_send_bytes writes them, in one write) on a plain socketpair.
 * Both sides (and the CPython one) are measured by bench/pingpong.h's frame: both
 * processes on one CPU, the same warm-up, the lower quartile of 25 batches of 800 round
 * trips. */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "pingpong.h"

#define BATCH 800

struct mproc_ctx {
    mp_conn *a;
    char buf[16];
};

static int mproc_round(void *arg)
{
    struct mproc_ctx *c = arg;
    size_t len;
    return mp_conn_send_bytes(c->a, c->buf, sizeof c->buf) ||
           mp_conn_recv_bytes_into(c->a, c->buf, sizeof c->buf, 0, &len);
}

static double run_mproc(void)
{
    mp_conn *a, *b;
    if (mp_pipe(&a, &b, true) != 0)
        return -1;
    struct mproc_ctx c = {.a = a, .buf = "0123456789abcde"};
    size_t len;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        mp_conn_close(a);
        while (mp_conn_recv_bytes_into(b, c.buf, sizeof c.buf, 0, &len) == 0)
            if (mp_conn_send_bytes(b, c.buf, len) != 0)
                break;
        _exit(0);
    }
    mp_conn_close(b);
    double us = pp_measure(mproc_round, &c, BATCH, 1);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    return us;
}

static int read_full(int fd, char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

struct raw_ctx {
    int fd;
    char buf[20];
};

static int raw_round(void *arg)
{
    struct raw_ctx *c = arg;
    return write(c->fd, c->buf, sizeof c->buf) != sizeof c->buf ||
           read_full(c->fd, c->buf, sizeof c->buf);
}

static double run_raw(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    struct raw_ctx c = {.fd = sv[0],
                        .buf = {0, 0, 0, 16, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}};
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        close(sv[0]);
        while (read_full(sv[1], c.buf, sizeof c.buf) == 0)
            if (write(sv[1], c.buf, sizeof c.buf) != sizeof c.buf)
                break;
        _exit(0);
    }
    close(sv[1]);
    double us = pp_measure(raw_round, &c, BATCH, 1);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
