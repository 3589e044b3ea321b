/* tcp_roundtrip_16B: a 16-byte message to another process and back over an
 * authenticated TCP connection (mp_listener / mp_client).
 * raw: the same ping-pong of the same 20 bytes (length + payload, one write) over a
 * plain loopback TCP socket with TCP_NODELAY. */
#include <stdlib.h>
#include <sys/wait.h>

#include "bench.h"
#include "mproc.h"
#include "net_raw.h"

#define N 20000
#define KEY "benchmark key"

static double run_mproc(void)
{
    mp_listener *l;
    mp_listener_options lo = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
    if (mp_listener_new(&l, "127.0.0.1:0", &lo) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
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
    char buf[16] = "0123456789abcde";
    size_t len;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (mp_conn_send_bytes(c, buf, sizeof buf) ||
            mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len))
            return -1;
    double t = bench_now_s() - t0;
    mp_conn_destroy(c);
    waitpid(pid, NULL, 0);
    mp_listener_destroy(l);
    return t / N * 1e6;
}

static double run_raw(void)
{
    int port;
    int lfd = raw_listen(&port);
    if (lfd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
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
    unsigned char buf[20] = {0, 0, 0, 16, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++)
        if (write(fd, buf, sizeof buf) != sizeof buf || raw_read_full(fd, buf, sizeof buf))
            return -1;
    double t = bench_now_s() - t0;
    close(fd);
    waitpid(pid, NULL, 0);
    close(lfd);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
