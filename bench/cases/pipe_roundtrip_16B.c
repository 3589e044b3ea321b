/* pipe_roundtrip_16B: a 16-byte message to a child and back over mp_pipe(duplex).
 * raw: the same ping-pong with write/read on a plain socketpair. */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 20000

static double run_mproc(void)
{
    mp_conn *a, *b;
    if (mp_pipe(&a, &b, true) != 0)
        return -1;
    char buf[16] = "0123456789abcde";
    size_t len;
    pid_t pid = fork();
    if (pid == 0) {
        mp_conn_close(a);
        while (mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len) == 0)
            if (mp_conn_send_bytes(b, buf, len) != 0)
                break;
        _exit(0);
    }
    mp_conn_close(b);
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (mp_conn_send_bytes(a, buf, sizeof buf) ||
            mp_conn_recv_bytes_into(a, buf, sizeof buf, 0, &len))
            return -1;
    double t = bench_now_s() - t0;
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    return t / N * 1e6;
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

static double run_raw(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    char buf[16] = "0123456789abcde";
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        while (read_full(sv[1], buf, sizeof buf) == 0)
            if (write(sv[1], buf, sizeof buf) != sizeof buf)
                break;
        _exit(0);
    }
    close(sv[1]);
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (write(sv[0], buf, sizeof buf) != sizeof buf || read_full(sv[0], buf, sizeof buf))
            return -1;
    double t = bench_now_s() - t0;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
