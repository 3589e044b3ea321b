/* net/frame.c — one CPython frame (mproc/connection.h's wire format) sent or
 * received on a stream socket with deadlines, for request/reply peers that must
 * not wait forever on a peer that stops reading, or stops in the middle of a
 * frame (the manager's client).
 *
 * The socket may stay blocking: every send is MSG_DONTWAIT, and a wait for room
 * or for bytes is a poll bounded by the deadline, but for two waits that are the
 * socket's own blocking recv, one system call instead of two: the first bytes of
 * a frame awaited with no deadline, and any wait on a descriptor whose
 * SO_RCVTIMEO (mp__net_set_rcvtimeo) the calling thread vouches for
 * (mp__net_trust_rcvtimeo) while the deadline is further than that timeout: the
 * manager's channels, where a reply is awaited by one recv. The header and a
 * payload go out with one send (copied together, up to 1 KiB) or sendmsg. A frame is received as
 * mp_conn_recv_bytes does (memory follows the bytes that arrived, not the length the peer claims),
 * with the same errors; the first read takes up to a small buffer's worth, so a small reply costs
 * one recv (or one poll and one recv), and what arrives beyond the frame is reported (*extra),
 * never kept: the caller's peer must send nothing it was not asked for. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "net/net.h"
#include "queue/conn.h"

#define FIRST_READ 4096
#define FIRST_ALLOC ((size_t)256 << 10) /* before any payload byte came */
#define SMALL_SEND 1024
#define RCVTIMEO_SLACK_MS 20 /* SO_RCVTIMEO is rounded up to clock ticks */

int mp__net_send_frame(int fd, const void *buf, size_t len, const mp__deadline *d)
{
    unsigned char hdr[MP__FRAME_HEADER_MAX];
    size_t hlen = mp__frame_header(len, hdr);
    /* A small frame goes out as one buffer: send's single range is cheaper for
     * the kernel to take than sendmsg's message header and vector. */
    unsigned char small[SMALL_SEND];
    struct iovec iov[2] = {{hdr, hlen}, {(void *)buf, len}};
    struct iovec *v = iov;
    int n = len > 0 ? 2 : 1;
    if (len > 0 && len <= sizeof small - hlen) {
        memcpy(small, hdr, hlen);
        memcpy(small + hlen, buf, len);
        iov[0] = (struct iovec){small, hlen + len};
        n = 1;
    }
    while (n > 0) {
        ssize_t w;
        if (n == 1) {
            w = send(fd, v->iov_base, v->iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)n};
            w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (w >= 0) {
            mp__iov_advance(&v, &n, (size_t)w);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = mp__poll_one(fd, POLLOUT, d, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The deadline of the rest of a frame whose first bytes came now: rest_ms from
 * now (-1: none), or first when that is later; a first deadline of forever (an
 * operation that may wait for ever for its reply) does not extend it. */
static void rest_deadline(mp__deadline *out, const mp__deadline *first, int rest_ms)
{
    mp__deadline_init(out, rest_ms < -1 ? -1 : rest_ms);
    if (!first->forever && !out->forever && mp__timespec_before(&out->at, &first->at))
        *out = *first;
}

/* ---- receive timeouts a caller vouches for ---- */

/* The descriptor (and its SO_RCVTIMEO) whose blocking recv the calling thread's
 * current round trip may use: set by mp__net_trust_rcvtimeo, -1 when none. */
static __thread int trusted_fd = -1;
static __thread int trusted_ms;

int mp__net_set_rcvtimeo(int fd, int ms)
{
    if (fd < 0 || ms <= 0)
        return MP_EINVAL;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 ? 0 : -errno;
}

void mp__net_trust_rcvtimeo(int fd, int ms)
{
    trusted_fd = fd >= 0 && ms > 0 ? fd : -1;
    trusted_ms = ms;
}

/* True when a blocking recv on fd returns before d: fd's receive timeout (which
 * the caller vouched for) ends, with a margin for the kernel's rounding to its
 * clock ticks, before d does. */
static bool rcvtimeo_bounds(int fd, const mp__deadline *d)
{
    if (fd != trusted_fd)
        return false;
    return d->forever || mp__deadline_poll_ms(d) > trusted_ms + RCVTIMEO_SLACK_MS;
}

/* One recv of up to n bytes, waiting until d. >0 bytes, MP_EEOF at end of file,
 * MP_ETIMEDOUT, or a negative errno. first: the first bytes of a frame, which
 * have usually not come yet. The wait is the socket's own blocking recv (one
 * system call) when it cannot outlast d: the first bytes awaited with no
 * deadline, or a descriptor whose SO_RCVTIMEO the caller vouched for, while d is
 * further than that timeout; once, since a recv that timed out says EAGAIN and
 * the rest of a long wait is a poll. Otherwise a MSG_DONTWAIT recv and a poll
 * bounded by d, the poll first for first bytes (saving a recv that would only
 * say EAGAIN). */
static ssize_t recv_until(int fd, void *dst, size_t n, const mp__deadline *d, bool first)
{
    bool poll_first = first, may_block = true;
    for (;;) {
        bool block = may_block && ((first && d->forever) || rcvtimeo_bounds(fd, d));
        if (!block && poll_first) {
            int rc = mp__poll_one(fd, POLLIN, d, NULL);
            if (rc < 0)
                return rc;
        }
        ssize_t r = recv(fd, dst, n, block ? 0 : MSG_DONTWAIT);
        if (r > 0)
            return r;
        if (r == 0)
            return MP_EEOF;
        if (errno == EINTR) {
            poll_first = false;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* A blocking recv that timed out (or a socket made non-blocking behind
         * our back) is not tried again: the rest of the wait is a poll. */
        may_block = may_block && !block;
        poll_first = true;
    }
}

/* The header in head[0..got): 0 with *hlen and *len once complete, 1 when more
 * bytes are needed, MP_EPROTO for a length CPython cannot have sent. */
static int parse_header(const unsigned char *head, size_t got, size_t *hlen, uint64_t *len)
{
    if (got < 4)
        return 1;
    int32_t n = (int32_t)(((uint32_t)head[0] << 24) | ((uint32_t)head[1] << 16) |
                          ((uint32_t)head[2] << 8) | head[3]);
    if (n >= 0) {
        *hlen = 4;
        *len = (uint64_t)n;
        return 0;
    }
    if (n != -1)
        return MP_EPROTO;
    if (got < 12)
        return 1;
    uint64_t v = 0;
    for (int i = 4; i < 12; i++)
        v = (v << 8) | head[i];
    if (v > (uint64_t)INT64_MAX || v > SIZE_MAX - 1)
        return MP_EPROTO;
    *hlen = 12;
    *len = v;
    return 0;
}

int mp__net_recv_frame(int fd, const mp__deadline *first, int rest_ms, size_t maxlen, void **out,
                       size_t *outlen, bool *extra)
{
    *out = NULL;
    *outlen = 0;
    *extra = false;
    unsigned char head[FIRST_READ];
    size_t got = 0, hlen = 0;
    uint64_t len = 0;
    mp__deadline rest = *first;
    const mp__deadline *d = first;
    for (;;) {
        ssize_t r = recv_until(fd, head + got, sizeof head - got, d, got == 0);
        if (r < 0)
            return r == MP_EEOF && got > 0 ? MP_ETRUNCATED : (int)r;
        if (got == 0) { /* the reply has begun: the rest of it has its own deadline */
            rest_deadline(&rest, first, rest_ms);
            d = &rest;
        }
        got += (size_t)r;
        int hr = parse_header(head, got, &hlen, &len);
        if (hr < 0)
            return hr;
        if (hr == 0)
            break;
    }
    if (maxlen > 0 && len > maxlen)
        return MP_EMSGSIZE;
    size_t want = (size_t)len;
    size_t cap = want < FIRST_ALLOC ? want : FIRST_ALLOC;
    unsigned char *buf = malloc(cap > 0 ? cap : 1);
    if (buf == NULL)
        return MP_ENOMEM;
    size_t have = got - hlen < want ? got - hlen : want;
    memcpy(buf, head + hlen, have);
    *extra = got - hlen > want;
    while (have < want) {
        if (have == cap) {
            size_t ncap = cap > (want - cap) ? want : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return MP_ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = recv_until(fd, buf + have, cap - have, d, false);
        if (r < 0) {
            free(buf);
            return r == MP_EEOF ? MP_ETRUNCATED : (int)r;
        }
        have += (size_t)r;
    }
    *out = buf;
    *outlen = want;
    return 0;
}
