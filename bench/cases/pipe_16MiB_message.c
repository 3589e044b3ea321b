/* pipe_16MiB_message: one 16 MiB message to a child, which answers with a 1-byte
 * message when it has all of it; per message. mproc: mp_pipe(duplex), send_bytes
 * and recv_bytes_into. raw: write/read on a plain socketpair with the same ack (both
 * with the default socket buffers; mp_pipe sets none).
 * Measured as the ping-pong cases are (bench/pingpong.h): parent and child on the CPU
 * the parent runs on (BENCH_PIN=none|split to change it), 2 untimed messages, then
 * 25 batches of 1 and the lower quartile batch. Timed from end to end over 40
 * messages, separate runs of each side spread 6-13 ms per message under load 10
 * with the same CPU time and context switches (perf stat), and a quiet run's
 * mproc/raw of 0.87x was one of them. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"
#include "pingpong.h"

#define BATCH 1
#define SIZE ((size_t)16 << 20)

static char *msg_buf; /* the message, in parent and child */

static int round_mproc(void *ctx)
{
    mp_conn *a = ctx;
    char ack[1];
    size_t len;
    if (mp_conn_send_bytes(a, msg_buf, SIZE) != 0 ||
        mp_conn_recv_bytes_into(a, ack, 1, 0, &len) != 0)
        return -1;
    return 0;
}

static double run_mproc(void)
{
    mp_conn *a, *b;
    msg_buf = malloc(SIZE);
    if (msg_buf == NULL || mp_pipe(&a, &b, true) != 0)
        return -1;
    memset(msg_buf, 7, SIZE);
    size_t len;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        mp_conn_close(a);
        while (mp_conn_recv_bytes_into(b, msg_buf, SIZE, 0, &len) == 0 && len == SIZE)
            if (mp_conn_send_bytes(b, "k", 1) != 0)
                break;
        _exit(0);
    }
    mp_conn_close(b);
    double us = pp_measure(round_mproc, a, BATCH, 1);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    free(msg_buf);
    return us < 0 ? -1 : us / 1e3;
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

static int write_full(int fd, const char *buf, size_t n)
{
    for (size_t put = 0; put < n;) {
        ssize_t w = write(fd, buf + put, n - put);
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

static int round_raw(void *ctx)
{
    int fd = *(int *)ctx;
    char ack[1];
    return write_full(fd, msg_buf, SIZE) || read_full(fd, ack, 1) ? -1 : 0;
}

static double run_raw(void)
{
    int sv[2];
    msg_buf = malloc(SIZE);
    if (msg_buf == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    memset(msg_buf, 7, SIZE);
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        close(sv[0]);
        while (read_full(sv[1], msg_buf, SIZE) == 0)
            if (write(sv[1], "k", 1) != 1)
                break;
        _exit(0);
    }
    close(sv[1]);
    double us = pp_measure(round_raw, &sv[0], BATCH, 1);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    free(msg_buf);
    return us < 0 ? -1 : us / 1e3;
}

BENCH_MAIN("ms", run_mproc, run_raw)
