/* client.c — Client: connect with a deadline, TCP_NODELAY, then both handshakes
 * (the listener challenges first, then we do). */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "mproc/listener.h"
#include "net/net.h"

static int connect_error(int rc, const char *address, int ms, char *err, size_t errlen)
{
    if (rc == MP_ECONNREFUSED)
        mp__net_msg(err, errlen, "connection refused by '%s'", address);
    else if (rc == MP_ETIMEDOUT)
        mp__net_msg(err, errlen, "connecting to '%s' timed out after %d ms", address, ms);
    else if (rc == MP_ENOENT)
        mp__net_msg(err, errlen, "no Unix socket at '%s'", address);
    else
        mp__net_msg(err, errlen, "cannot connect to '%s': %s", address, mp_strerror(rc));
    return rc;
}

/* connect() on a non-blocking socket, waiting until the deadline. A Unix listener
 * with a full backlog answers EAGAIN: retried every few milliseconds. */
static int connect_until(int fd, const mp__addr *a, const mp__deadline *d)
{
    for (;;) {
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
            return 0;
        int e = errno;
        if (e == EINTR) /* the connection goes on in the background: wait for it */
            break;
        if (e == EAGAIN && a->family == AF_UNIX) {
            if (mp__deadline_passed(d))
                return MP_ETIMEDOUT;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (e != EINPROGRESS)
            return -e;
        break;
    }
    short revents = 0;
    int rc = mp__poll_one(fd, POLLOUT, d, &revents);
    if (rc < 0)
        return rc;
    if (!(revents & (POLLERR | POLLHUP)))
        return 0; /* writable without an error: connected */
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return -errno;
    return soerr != 0 ? -soerr : MP_ECONNRESET;
}

int mp_client(mp_conn **out, const char *address, const mp_client_options *opt)
{
    static const mp_client_options none = {0};
    if (opt == NULL)
        opt = &none;
    char *err = opt->errbuf;
    size_t errlen = opt->errbuf_len;
    int hs_ms;
    if (out == NULL || address == NULL ||
        (opt->connect_timeout_ms < -1 && opt->connect_timeout_ms != MP_TIMEOUT_NOW) ||
        mp__handshake_ms(opt->handshake_timeout_ms, &hs_ms) != 0 ||
        (opt->authkey == NULL && opt->authkey_len > 0)) {
        mp__net_msg(err, errlen,
                    "bad argument: NULL out or address, a timeout below -1, or "
                    "authkey NULL with authkey_len > 0");
        return MP_EINVAL;
    }
    int conn_ms = opt->connect_timeout_ms == MP_TIMEOUT_NOW ? 0
                  : opt->connect_timeout_ms == 0            ? MP_CONNECT_TIMEOUT_DEFAULT_MS
                                                            : opt->connect_timeout_ms;
    mp__addr a;
    int rc = mp__addr_parse(&a, address, false, err, errlen);
    if (rc != 0)
        return rc;
    int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return connect_error(-errno, address, conn_ms, err, errlen);
    mp__deadline d;
    mp__deadline_init(&d, conn_ms);
    rc = connect_until(fd, &a, &d);
    if (rc != 0) {
        connect_error(rc, address, conn_ms, err, errlen);
        goto out_close;
    }
    int off = 0; /* blocking from now on, as CPython's connections */
    if (ioctl(fd, FIONBIO, &off) != 0) {
        rc = -errno;
        connect_error(rc, address, conn_ms, err, errlen);
        goto out_close;
    }
    if ((rc = mp__set_nodelay(fd, a.family)) != 0) {
        connect_error(rc, address, conn_ms, err, errlen);
        goto out_close;
    }
    if (opt->authkey != NULL) {
        static const enum mp__auth_step client[2] = {MP__AUTH_ANSWER, MP__AUTH_DELIVER};
        mp__auth auth;
        mp__deadline hd;
        mp__deadline_init(&hd, hs_ms);
        mp__auth_init(&auth, fd, opt->authkey, opt->authkey_len, opt->refuse_md5, client, 2);
        rc = mp__auth_run(&auth, &hd);
        if (rc != 0) {
            if (rc == MP_ETIMEDOUT)
                mp__net_msg(err, errlen,
                            "handshake with '%s' timed out after %d ms (does the listener use "
                            "an authkey?)",
                            address, hs_ms);
            else
                mp__net_msg(err, errlen, "%s", auth.err);
            goto out_close;
        }
    }
    rc = mp_conn_from_fd(out, fd, true, true);
    if (rc == 0)
        return 0;
    mp__net_msg(err, errlen, "%s", mp_strerror(rc));
out_close:
    mp__close_fd(fd);
    return rc;
}
