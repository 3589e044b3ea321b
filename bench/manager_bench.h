/* bench/manager_bench.h — what the manager_* cases share: a started mproc manager
 * serving one queue.Queue as 'get_queue' (authkey "abc", a free port), and a
 * client of it. */
#ifndef MPROC_BENCH_MANAGER_H
#define MPROC_BENCH_MANAGER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mproc.h"

static inline mp_manager *bench_start_server(void)
{
    mp_served *q;
    mp_manager *m;
    if (mp_served_queue_new(&q, 0) < 0 || mp_manager_new(&m, "127.0.0.1:0", "abc", 3, NULL) < 0)
        return NULL;
    int rc = mp_manager_register(m, "get_queue", &(mp_manager_register_options){.object = q});
    mp_served_unref(q);
    if (rc < 0 || (rc = mp_manager_start(m)) < 0) {
        fprintf(stderr, "start: %s\n", mp_err_name(rc));
        mp_manager_destroy(m);
        return NULL;
    }
    return m;
}

/* A client manager connected to address, with a proxy of 'get_queue' in *q. */
static inline mp_manager *bench_client(const char *address, mp_proxy **q)
{
    mp_manager *c;
    if (mp_manager_new(&c, address, "abc", 3, NULL) < 0)
        return NULL;
    int rc = mp_manager_connect(c);
    if (rc == 0)
        rc = mp_manager_create(c, "get_queue", NULL, NULL, q);
    if (rc < 0) {
        fprintf(stderr, "client: %s\n", mp_err_name(rc));
        mp_manager_destroy(c);
        return NULL;
    }
    return c;
}

/* n put+get pairs of a small int; 0 or a negative code. */
static inline int bench_pairs(mp_proxy *q, int n)
{
    mp_obj *seven = mp_int(7);
    for (int i = 0; i < n; i++) {
        mp_obj *got = NULL;
        int rc = mp_proxy_put(q, seven, -1);
        if (rc == 0)
            rc = mp_proxy_get(q, &got, -1);
        mp_obj_unref(got);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the raw floor: plain TCP frames of the sizes mproc sends ---- */

/* The sizes of the four frames of one pair, as mproc encodes them. */
static inline size_t frame_len(const char *fmt, ...)
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

static inline int read_full(int fd, char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static inline int read_frame(int fd, char *buf)
{
    unsigned char h[4];
    if (read_full(fd, (char *)h, 4) < 0)
        return -1;
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    return n > 4096 ? -1 : read_full(fd, buf, n);
}

static inline int write_frame(int fd, char *buf, size_t n)
{
    buf[0] = (char)(n >> 24);
    buf[1] = (char)(n >> 16);
    buf[2] = (char)(n >> 8);
    buf[3] = (char)n;
    return write(fd, buf, n + 4) == (ssize_t)(n + 4) ? 0 : -1;
}

/* A loopback TCP listener on a free port: its fd, and its address in *a. */
static inline int raw_listener(struct sockaddr_in *a)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof *a;
    if (ls < 0 || bind(ls, (struct sockaddr *)a, sizeof *a) || listen(ls, 64) ||
        getsockname(ls, (struct sockaddr *)a, &alen))
        return -1;
    return ls;
}

static inline int raw_connect(const struct sockaddr_in *a)
{
    int one = 1;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof *a) < 0)
        return -1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

/* The four frame sizes of one put+get pair. */
typedef struct raw_sizes {
    size_t put_req, get_req, put_rep, get_rep;
} raw_sizes;

static inline raw_sizes raw_pair_sizes(void)
{
    return (raw_sizes){
        .put_req = frame_len("(ss(i){})", "7f3802039be0", "put", 7),
        .get_req = frame_len("(ss(){})", "7f3802039be0", "get"),
        .put_rep = frame_len("(sn)", "#RETURN"),
        .get_rep = frame_len("(si)", "#RETURN", 7),
    };
}

/* Serves one raw client: replies of the put and get sizes in turn, until EOF. */
static inline void raw_serve(int s, raw_sizes z)
{
    char buf[4200] = {0};
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0;; i++)
        if (read_frame(s, buf + 4) < 0 || write_frame(s, buf, i % 2 ? z.get_rep : z.put_rep) < 0)
            break;
    close(s);
}

/* n raw put+get pairs on s. */
static inline int raw_pairs(int s, raw_sizes z, int n)
{
    char buf[4200] = {0};
    for (int i = 0; i < n; i++)
        if (write_frame(s, buf, z.put_req) || read_frame(s, buf + 4) ||
            write_frame(s, buf, z.get_req) || read_frame(s, buf + 4))
            return -1;
    return 0;
}

#endif /* MPROC_BENCH_MANAGER_H */
