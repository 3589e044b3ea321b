/* manager_queue_put_get: one client of a manager's queue.Queue, put then get of a
 * small int, per pair (two request/reply round trips over TCP).
 * mproc: a mproc client and server. raw: two plain TCP request/reply round trips
 * per pair with the same frame sizes (the pickles mproc sends), one write per frame,
 * TCP_NODELAY, a forked echo server. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "manager_bench.h"

#define N 20000

static double run_mproc(void)
{
    mp_manager *m = bench_start_server();
    if (m == NULL)
        return -1;
    mp_proxy *q;
    mp_manager *c = bench_client(mp_manager_address(m), &q);
    if (c == NULL || bench_pairs(q, 200) < 0)
        return -1;
    double t0 = bench_now_s();
    if (bench_pairs(q, N) < 0)
        return -1;
    double t = bench_now_s() - t0;
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return t / N * 1e6;
}

/* The sizes of the four frames of one pair, as mproc encodes them. */
static size_t frame_len(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mp_obj *o;
    size_t len = 0;
    void *buf;
    if (mp_obj_buildv(&o, NULL, fmt, ap) == 0 && mp_pickle_dumps(o, 4, &buf, &len) == 0) {
        free(buf);
        mp_obj_unref(o);
    }
    va_end(ap);
    return len;
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

static int read_frame(int fd, char *buf)
{
    unsigned char h[4];
    if (read_full(fd, (char *)h, 4) < 0)
        return -1;
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    return n > 4096 ? -1 : read_full(fd, buf, n);
}

static int write_frame(int fd, char *buf, size_t n)
{
    buf[0] = (char)(n >> 24);
    buf[1] = (char)(n >> 16);
    buf[2] = (char)(n >> 8);
    buf[3] = (char)n;
    return write(fd, buf, n + 4) == (ssize_t)(n + 4) ? 0 : -1;
}

static double run_raw(void)
{
    size_t put_req = frame_len("(ss(i){})", "7f3802039be0", "put", 7);
    size_t get_req = frame_len("(ss(){})", "7f3802039be0", "get");
    size_t put_rep = frame_len("(sn)", "#RETURN");
    size_t get_rep = frame_len("(si)", "#RETURN", 7);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &alen))
        return -1;
    int one = 1;
    char buf[4200] = {0};
    pid_t pid = fork();
    if (pid == 0) {
        int s = accept(ls, NULL, NULL);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (int i = 0;; i++) {
            if (read_frame(s, buf + 4) < 0 || write_frame(s, buf, i % 2 ? get_rep : put_rep) < 0)
                break;
        }
        _exit(0);
    }
    close(ls);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < 200; i++)
        if (write_frame(s, buf, i % 2 ? get_req : put_req) || read_frame(s, buf + 4))
            return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        if (write_frame(s, buf, put_req) || read_frame(s, buf + 4) ||
            write_frame(s, buf, get_req) || read_frame(s, buf + 4))
            return -1;
    }
    double t = bench_now_s() - t0;
    close(s);
    waitpid(pid, NULL, 0);
    return t / N * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
