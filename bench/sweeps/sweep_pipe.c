/* sweep_pipe: pipe throughput by message size.
 *     sweep_pipe mproc|raw <size>
 * One message of <size> bytes to a child, which answers with a 1-byte message when
 * it has all of it; microseconds per message. mproc: mp_pipe(duplex), send_bytes and
 * recv_bytes_into. raw: write/read on a plain socketpair with the same ack.
 * Both sides (and the CPython one) are measured by bench/pingpong.h's frame: both
 * processes on one CPU, 2 warm-up batches, the lower quartile of 25 batches. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "pingpong.h"

static int io_full(int fd, char *buf, size_t n, bool writing)
{
    for (size_t done = 0; done < n;) {
        ssize_t k = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    return 0;
}

struct ctx {
    mp_conn *a;
    int fd;
    char *buf;
    size_t size;
};

static int mproc_round(void *arg)
{
    struct ctx *c = arg;
    char ack[1];
    size_t len;
    return mp_conn_send_bytes(c->a, c->buf, c->size) ||
           mp_conn_recv_bytes_into(c->a, ack, 1, 0, &len);
}

static int raw_round(void *arg)
{
    struct ctx *c = arg;
    char ack[1];
    return io_full(c->fd, c->buf, c->size, true) || io_full(c->fd, ack, 1, false);
}

static double run_mproc(char *buf, size_t size, int batch)
{
    mp_conn *a, *b;
    if (mp_pipe(&a, &b, true) != 0)
        return -1;
    size_t len;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        mp_conn_close(a);
        while (mp_conn_recv_bytes_into(b, buf, size, 0, &len) == 0 && len == size)
            if (mp_conn_send_bytes(b, "k", 1) != 0)
                break;
        _exit(0);
    }
    mp_conn_close(b);
    struct ctx c = {.a = a, .buf = buf, .size = size};
    double us = pp_measure(mproc_round, &c, batch, 1);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    waitpid(pid, NULL, 0);
    return us;
}

static double run_raw(char *buf, size_t size, int batch)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    pp_place_parent(PP_SAME);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        close(sv[0]);
        char k = 'k';
        while (io_full(sv[1], buf, size, false) == 0)
            if (io_full(sv[1], &k, 1, true) != 0)
                break;
        _exit(0);
    }
    close(sv[1]);
    struct ctx c = {.fd = sv[0], .buf = buf, .size = size};
    double us = pp_measure(raw_round, &c, batch, 1);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return us;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s mproc|raw size\n", argv[0]);
        return 2;
    }
    size_t size = strtoul(argv[2], NULL, 0);
    long n = (long)((1u << 30) / (size + 4096)); /* about 1 GiB, 20 to 50k messages */
    n = n < 20 ? 20 : n > 50000 ? 50000 : n;
    long batch = n / PP_BATCHES > 0 ? n / PP_BATCHES : 1; /* in 25 batches, after 2 more */
    char *buf = malloc(size);
    if (buf == NULL)
        return 1;
    memset(buf, 7, size);
    double us = strcmp(argv[1], "raw") == 0 ? run_raw(buf, size, (int)batch)
                                            : run_mproc(buf, size, (int)batch);
    if (us < 0)
        return 1;
    printf("%.6g us\n", us);
    free(buf);
    return 0;
}
