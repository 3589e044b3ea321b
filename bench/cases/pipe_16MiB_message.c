/* pipe_16MiB_message: one 16 MiB message to a child, which answers with a 1-byte
 * message when it has all of it; per message. mproc: mp_pipe(duplex), send_bytes
 * and recv_bytes_into. raw: write/read on a plain socketpair with the same ack. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 40
#define SIZE ((size_t)16 << 20)

static double run_mproc(void)
{
    mp_conn *a, *b;
    char *buf = malloc(SIZE);
    if (buf == NULL || mp_pipe(&a, &b, true) != 0)
        return -1;
    memset(buf, 7, SIZE);
    size_t len;
    pid_t pid = fork();
    if (pid == 0) {
        mp_conn_close(a);
        while (mp_conn_recv_bytes_into(b, buf, SIZE, 0, &len) == 0 && len == SIZE)
            if (mp_conn_send_bytes(b, "k", 1) != 0)
                break;
        _exit(0);
    }
    mp_conn_close(b);
    char ack[1];
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (mp_conn_send_bytes(a, buf, SIZE) || mp_conn_recv_bytes_into(a, ack, 1, 0, &len))
            return -1;
    double t = bench_now_s() - t0;
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    free(buf);
    return t / N * 1e3;
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

static double run_raw(void)
{
    int sv[2];
    char *buf = malloc(SIZE);
    if (buf == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    memset(buf, 7, SIZE);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        while (read_full(sv[1], buf, SIZE) == 0)
            if (write(sv[1], "k", 1) != 1)
                break;
        _exit(0);
    }
    close(sv[1]);
    char ack[1];
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (write_full(sv[0], buf, SIZE) || read_full(sv[0], ack, 1))
            return -1;
    double t = bench_now_s() - t0;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    free(buf);
    return t / N * 1e3;
}

BENCH_MAIN("ms", run_mproc, run_raw)
