/* conn_send_recv_obj: a small tuple ('ping', 42) to a child and back over
 * mp_pipe(duplex), with mp_conn_send / mp_conn_recv (pickle protocol 4 on both
 * sides, decoded and re-encoded by the child). raw: the same ping-pong of the
 * already-encoded pickle with write/read on a plain socketpair (no encoding: the
 * syscall floor). Every side (and the CPython one) is measured by
 * bench/pingpong.h's frame: both processes on one CPU, the same warm-up, the
 * lower quartile of 25 batches of 800 round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "pingpong.h"

#define BATCH 800

struct mproc_ctx {
    mp_conn *a;
    mp_obj *msg;
};

static int mproc_round(void *arg)
{
    struct mproc_ctx *c = arg;
    mp_obj *back;
    if (mp_conn_send(c->a, c->msg) != 0 || mp_conn_recv(c->a, &back) != 0)
        return -1;
    mp_obj_unref(back);
    return 0;
}

static double run_mproc(void)
{
    mp_conn *a, *b;
    if (mp_pipe(&a, &b, true) != 0)
        return -1;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        mp_conn_close(a);
        mp_obj *o;
        while (mp_conn_recv(b, &o) == 0) {
            int rc = mp_conn_send(b, o);
            mp_obj_unref(o);
            if (rc != 0)
                break;
        }
        _exit(0);
    }
    mp_conn_close(b);
    mp_obj *msg;
    if (mp_obj_build(&msg, "(si)", "ping", 42) != 0)
        return -1;
    struct mproc_ctx c = {a, msg};
    double us = pp_measure(mproc_round, &c, BATCH, 1);
    mp_obj_unref(msg);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    return us;
}

static int read_full(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

struct raw_ctx {
    int fd;
    const unsigned char *frame;
    size_t n;
};

static int raw_round(void *arg)
{
    struct raw_ctx *c = arg;
    unsigned char buf[64];
    return write(c->fd, c->frame, c->n) != (ssize_t)c->n || read_full(c->fd, buf, c->n);
}

static double run_raw(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    /* The framed pickle of ('ping', 42), as mp_conn_send writes it. */
    mp_obj *msg;
    void *pk;
    size_t pl;
    if (mp_obj_build(&msg, "(si)", "ping", 42) != 0 || mp_pickle_dumps(msg, 4, &pk, &pl) != 0)
        return -1;
    mp_obj_unref(msg);
    unsigned char frame[64];
    frame[0] = 0;
    frame[1] = 0;
    frame[2] = 0;
    frame[3] = (unsigned char)pl;
    memcpy(frame + 4, pk, pl);
    free(pk);
    size_t n = pl + 4;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        close(sv[0]);
        unsigned char buf[64];
        while (read_full(sv[1], buf, n) == 0)
            if (write(sv[1], buf, n) != (ssize_t)n)
                break;
        _exit(0);
    }
    close(sv[1]);
    struct raw_ctx c = {sv[0], frame, n};
    double us = pp_measure(raw_round, &c, BATCH, 1);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
