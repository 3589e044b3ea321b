/* client_connect_auth: connect to an authenticated listener in another process, run
 * both handshakes, send one 16-byte request, read its reply, close.
 * raw: a plain TCP connect (TCP_NODELAY) and the same six handshake frames, sizes
 * and order (59/40/9 bytes each way, no MAC computed), then the same request and reply. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "bench.h"
#include "mproc.h"
#include "net_raw.h"

#define N 2000
#define KEY "benchmark key"

static double run_mproc(void)
{
    mp_listener *l;
    mp_listener_options lo = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
    if (mp_listener_new(&l, "127.0.0.1:0", &lo) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) {
            mp_conn *c;
            if (mp_listener_accept(l, &c, -1) != 0)
                _exit(1);
            char buf[16];
            size_t len;
            if (mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len) == 0)
                mp_conn_send_bytes(c, buf, len);
            mp_conn_destroy(c);
        }
    }
    mp_client_options co = {.authkey = KEY, .authkey_len = sizeof KEY - 1};
    char buf[16] = "0123456789abcde";
    size_t len;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_conn *c;
        if (mp_client(&c, mp_listener_address(l), &co) != 0 ||
            mp_conn_send_bytes(c, buf, sizeof buf) != 0 ||
            mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len) != 0)
            return -1;
        mp_conn_destroy(c);
    }
    double t = bench_now_s() - t0;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    mp_listener_destroy(l);
    return t / N * 1e6;
}

/* Frames as the handshake sends them: a 4-byte length and the payload, one write. */
static unsigned char challenge[4 + 59] = {0,   0,   0,   59,  '#', 'C', 'H', 'A',
                                          'L', 'L', 'E', 'N', 'G', 'E', '#', '{',
                                          's', 'h', 'a', '2', '5', '6', '}'};
static unsigned char answer[4 + 40] = {0, 0, 0, 40, '{', 's', 'h', 'a', '2', '5', '6', '}'};
static unsigned char welcome[4 + 9] = {0, 0, 0, 9, '#', 'W', 'E', 'L', 'C', 'O', 'M', 'E', '#'};

static int raw_exchange_server(int fd)
{
    unsigned char buf[64];
    return write(fd, challenge, sizeof challenge) != sizeof challenge ||
           raw_read_full(fd, buf, sizeof answer) ||
           write(fd, welcome, sizeof welcome) != sizeof welcome ||
           raw_read_full(fd, buf, sizeof challenge) ||
           write(fd, answer, sizeof answer) != sizeof answer ||
           raw_read_full(fd, buf, sizeof welcome);
}

static int raw_exchange_client(int fd)
{
    unsigned char buf[64];
    return raw_read_full(fd, buf, sizeof challenge) ||
           write(fd, answer, sizeof answer) != sizeof answer ||
           raw_read_full(fd, buf, sizeof welcome) ||
           write(fd, challenge, sizeof challenge) != sizeof challenge ||
           raw_read_full(fd, buf, sizeof answer) ||
           write(fd, welcome, sizeof welcome) != sizeof welcome;
}

static double run_raw(void)
{
    int port;
    int lfd = raw_listen(&port);
    if (lfd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                _exit(1);
            raw_nodelay(fd);
            unsigned char req[20];
            if (raw_exchange_server(fd) == 0 && raw_read_full(fd, req, sizeof req) == 0 &&
                write(fd, req, sizeof req) != sizeof req)
                _exit(1);
            close(fd);
        }
    }
    unsigned char req[20] = {0, 0, 0, 16, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        int fd = raw_connect(port);
        if (fd < 0 || raw_exchange_client(fd) || write(fd, req, sizeof req) != sizeof req ||
            raw_read_full(fd, req, sizeof req))
            return -1;
        close(fd);
    }
    double t = bench_now_s() - t0;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(lfd);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
