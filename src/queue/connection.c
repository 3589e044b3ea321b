/* connection.c — Pipe and Connection with CPython's framing (the wire format below).
 *
 * Wire format, per message: a signed 32-bit big-endian length n and n payload
 * bytes; when the payload is longer than 0x7fffffff bytes, n is -1 and an unsigned
 * 64-bit big-endian length follows. Any other negative n is a protocol error.
 *
 * Sending writes header and payload with one writev/sendmsg (no copy), looping on
 * short writes; payloads up to SMALL_MSG bytes are copied behind the header and
 * sent with one send/write, which costs the kernel less than gathering. Sockets use MSG_NOSIGNAL;
 * for pipes SIGPIPE is blocked in the calling thread around the write and a SIGPIPE this write
 * raised is consumed, so a closed peer is an MP_EPIPE, never a dead process.
 *
 * Receiving reads ahead: header bytes are read into a private buffer with one
 * read() that may also bring the payload (and the start of later messages), so a
 * small message costs one system call, like a raw read. The buffer grows on demand:
 * it starts at RBUF_MIN bytes and doubles (up to RBUF_MAX) each time a read fills
 * it, so a connection that only ever carries small requests (a manager server's
 * idle channels, thousands of them) holds 1 KiB, and a busy stream reaches the full
 * read-ahead after a few reads. Payload
 * bytes beyond what the buffer holds are read straight into the destination, never
 * ahead of the message. Once a header has been decoded its length is kept in
 * `known`, so a receive refused for a short buffer (MP_ETOOSHORT) or a length limit
 * (MP_EMSGSIZE) leaves the message where it was for the next receive.
 *
 * A header is only a claim: recv_bytes allocates at most FIRST_ALLOC bytes for a
 * payload before any of it has arrived and grows the buffer (GROWTH times, never
 * past the claim) as the bytes come, so a peer that announces 8 GiB and sends nothing
 * costs FIRST_ALLOC. A payload whose buffer cannot grow (MP_ENOMEM) stays in the
 * connection as far as it came (`part`), and the next receive goes on from there.
 * Lengths above 2^63 - 1 are protocol errors: CPython cannot make such a bytes.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "mproc/connection.h"
#include "queue/conn.h"

#define RBUF_MIN 1024  /* the read-ahead buffer at first (at least a 12-byte header) */
#define RBUF_MAX 65536 /* ... and at most, doubling each time a read fills it */
#define FIRST_ALLOC ((size_t)256 * 1024) /* a payload's buffer before its bytes arrive */
#define MAX_CLAIM ((uint64_t)INT64_MAX)  /* the longest bytes CPython can send */
#define GROWTH 8      /* a full buffer grows 8 times: few copies, at most 8 times what came */
#define SMALL_MSG 512 /* payloads copied behind their header and sent in one piece */

struct mp_conn {
    int fd;                    /* -1 once closed */
    bool readable;             /* may receive */
    bool writable;             /* may send */
    bool is_socket;            /* sendmsg(MSG_NOSIGNAL) works */
    char *rbuf;                /* read-ahead buffer, rcap bytes, allocated on first receive */
    size_t rcap;               /* RBUF_MIN .. RBUF_MAX */
    size_t rpos;               /* next unread byte in rbuf */
    size_t rlen;               /* bytes in rbuf */
    bool has_known;            /* a header was decoded and its payload not yet received */
    uint64_t known;            /* that payload's length */
    char *part;                /* the payload received so far after an MP_ENOMEM, or NULL */
    size_t part_got, part_cap; /* bytes in part, and its size */
};

size_t mp__frame_header(uint64_t len, unsigned char out[MP__FRAME_HEADER_MAX])
{
    if (len <= 0x7fffffffu) {
        for (int i = 0; i < 4; i++)
            out[i] = (unsigned char)(len >> (24 - 8 * i));
        return 4;
    }
    memset(out, 0xff, 4);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 12;
}

bool mp__conn_has_buffered(const mp_conn *c)
{
    return c->has_known || c->rpos < c->rlen;
}

static int conn_new(mp_conn **out, int fd, bool readable, bool writable)
{
    mp_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MP_ENOMEM;
    struct stat st;
    c->fd = fd;
    c->readable = readable;
    c->writable = writable;
    c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    *out = c;
    return 0;
}

int mp_pipe(mp_conn **conn1, mp_conn **conn2, bool duplex)
{
    if (conn1 == NULL || conn2 == NULL)
        return MP_EINVAL;
    int fds[2];
    int rc =
        duplex ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : pipe2(fds, O_CLOEXEC);
    if (rc != 0)
        return -errno;
    mp_conn *a = NULL, *b = NULL;
    /* pipe2: fds[0] is the read end, which Python hands out first. */
    rc = conn_new(&a, fds[0], true, duplex);
    if (rc == 0)
        rc = conn_new(&b, fds[1], duplex, true);
    if (rc != 0) {
        free(a);
        mp__close_fd(fds[0]);
        mp__close_fd(fds[1]);
        return rc;
    }
    *conn1 = a;
    *conn2 = b;
    return 0;
}

int mp_conn_from_fd(mp_conn **out, int fd, bool readable, bool writable)
{
    if (out == NULL || fd < 0 || (!readable && !writable))
        return MP_EINVAL;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    return conn_new(out, fd, readable, writable);
}

static int check_usable(const mp_conn *c, bool want_read)
{
    if (c->fd < 0)
        return MP_ECLOSED;
    if (want_read ? !c->readable : !c->writable)
        return MP_EBADF;
    return 0;
}

/* ---- sending ---- */

/* Blocks SIGPIPE in this thread for a write to a pipe; *was_pending tells whether
 * one was already pending (then it is not ours to consume). */
static void sigpipe_block(sigset_t *old, bool *was_pending)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    *was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void sigpipe_restore(const sigset_t *old, bool was_pending, bool got_epipe)
{
    if (got_epipe && !was_pending) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static ssize_t write_iov(mp_conn *c, struct iovec *iov, int n)
{
    if (n == 1 && c->is_socket)
        return send(c->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
    if (n == 1)
        return write(c->fd, iov->iov_base, iov->iov_len);
    if (c->is_socket) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        return sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    }
    return writev(c->fd, iov, n);
}

/* Writes every byte of iov[0..n) (modifying iov), retrying EINTR and waiting out
 * EAGAIN on a non-blocking descriptor. */
static int write_all(mp_conn *c, struct iovec *iov, int n)
{
    sigset_t old;
    bool was_pending = false;
    if (!c->is_socket)
        sigpipe_block(&old, &was_pending);
    int rc = 0;
    while (n > 0) {
        ssize_t w = write_iov(c, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                mp__deadline forever;
                mp__deadline_init(&forever, -1);
                rc = mp__poll_one(c->fd, POLLOUT, &forever, NULL);
                if (rc < 0)
                    break;
                rc = 0;
                continue;
            }
            rc = -errno;
            break;
        }
        mp__iov_advance(&iov, &n, (size_t)w);
    }
    if (!c->is_socket)
        sigpipe_restore(&old, was_pending, rc == MP_EPIPE);
    return rc;
}

int mp_conn_send_bytes(mp_conn *c, const void *buf, size_t len)
{
    if (c == NULL || (buf == NULL && len > 0))
        return MP_EINVAL;
    int rc = check_usable(c, false);
    if (rc != 0)
        return rc;
    if (len <= SMALL_MSG) { /* one contiguous send is cheaper than gathering two */
        unsigned char frame[4 + SMALL_MSG];
        size_t h = mp__frame_header(len, frame);
        if (len > 0)
            memcpy(frame + h, buf, len);
        struct iovec iov = {frame, h + len};
        return write_all(c, &iov, 1);
    }
    unsigned char hdr[MP__FRAME_HEADER_MAX];
    struct iovec iov[2] = {{hdr, mp__frame_header(len, hdr)}, {(void *)buf, len}};
    return write_all(c, iov, 2);
}

int mp_conn_send_bytes_range(mp_conn *c, const void *buf, size_t buflen, size_t offset, size_t size)
{
    if (c == NULL || (buf == NULL && buflen > 0) || offset > buflen)
        return MP_EINVAL;
    if (size == MP_CONN_REST)
        size = buflen - offset;
    if (size > buflen - offset)
        return MP_EINVAL;
    return mp_conn_send_bytes(c, (const char *)buf + offset, size);
}

/* ---- receiving ---- */

/* One read() into dst, retrying EINTR and waiting out EAGAIN. >0 bytes, 0 at
 * end-of-file, or a negative code. */
static ssize_t read_some(int fd, void *dst, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, dst, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        mp__deadline forever;
        mp__deadline_init(&forever, -1);
        int rc = mp__poll_one(fd, POLLIN, &forever, NULL);
        if (rc < 0)
            return rc;
    }
}

/* Makes at least need bytes available in rbuf (need <= 8), reading ahead.
 * MP_EEOF when the peer closed with nothing buffered; MP_ETRUNCATED when it closed
 * with a partial header buffered. */
static int fill(mp_conn *c, size_t need)
{
    if (c->rbuf == NULL) {
        c->rbuf = malloc(RBUF_MIN);
        if (c->rbuf == NULL)
            return MP_ENOMEM;
        c->rcap = RBUF_MIN;
    }
    if (c->rpos + need > c->rcap || c->rpos == c->rlen) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    while (c->rlen - c->rpos < need) {
        ssize_t r = read_some(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return c->rlen == c->rpos ? MP_EEOF : MP_ETRUNCATED;
        c->rlen += (size_t)r;
        if (c->rlen == c->rcap && c->rcap < RBUF_MAX) { /* more may be waiting: grow */
            char *nb = realloc(c->rbuf, 2 * c->rcap);
            if (nb != NULL) { /* else: go on reading ahead with what we have */
                c->rbuf = nb;
                c->rcap *= 2;
            }
        }
    }
    return 0;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Decodes the next header into c->known (once per message). */
static int read_header(mp_conn *c)
{
    if (c->has_known)
        return 0;
    int rc = fill(c, 4);
    if (rc != 0)
        return rc;
    const unsigned char *p = (const unsigned char *)c->rbuf + c->rpos;
    int32_t n = (int32_t)(uint32_t)be(p, 4);
    if (n >= 0) {
        c->rpos += 4;
        c->known = (uint64_t)n;
    } else if (n == -1) {
        rc = fill(c, 12);
        if (rc != 0)
            return rc == MP_EEOF ? MP_ETRUNCATED : rc;
        p = (const unsigned char *)c->rbuf + c->rpos;
        c->rpos += 12;
        c->known = be(p + 4, 8);
    } else {
        return MP_EPROTO;
    }
    c->has_known = true;
    return 0;
}

static void drop_part(mp_conn *c)
{
    free(c->part);
    c->part = NULL;
    c->part_got = c->part_cap = 0;
}

/* Receives the known payload into dst (c->known bytes) and forgets the header. */
static int read_payload(mp_conn *c, char *dst)
{
    uint64_t n = c->known;
    uint64_t got = 0;
    if (c->part != NULL) { /* what an earlier receive got before MP_ENOMEM */
        memcpy(dst, c->part, c->part_got);
        got = c->part_got;
        drop_part(c);
    }
    size_t have = c->rlen - c->rpos;
    size_t take = have < n - got ? have : (size_t)(n - got);
    if (take > 0)
        memcpy(dst + got, c->rbuf + c->rpos, take);
    c->rpos += take;
    got += take;
    int rc = 0;
    while (got < n) {
        ssize_t r = read_some(c->fd, dst + got, (size_t)(n - got));
        if (r <= 0) {
            rc = r == 0 ? MP_ETRUNCATED : (int)r;
            break;
        }
        got += (uint64_t)r;
    }
    c->has_known = false;
    return rc;
}

int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *len, size_t maxlength)
{
    if (c == NULL || out == NULL || len == NULL)
        return MP_EINVAL;
    int rc = check_usable(c, true);
    if (rc == 0)
        rc = read_header(c);
    if (rc != 0)
        return rc;
    if (c->known > MAX_CLAIM)
        return MP_EPROTO;
    if (c->known > SIZE_MAX - 1 || (maxlength != 0 && c->known > maxlength)) {
        *len = c->known > SIZE_MAX ? SIZE_MAX : (size_t)c->known;
        return MP_EMSGSIZE;
    }
    size_t n = (size_t)c->known;
    if (c->part == NULL) {
        size_t have = c->rlen - c->rpos;
        size_t first = n < FIRST_ALLOC ? n : have > FIRST_ALLOC ? have : FIRST_ALLOC;
        c->part = malloc(first > 0 ? first : 1);
        if (c->part == NULL)
            return MP_ENOMEM;
        c->part_cap = first;
        c->part_got = have < n ? have : n;
        memcpy(c->part, c->rbuf + c->rpos, c->part_got);
        c->rpos += c->part_got;
    }
    while (c->part_got < n) {
        if (c->part_got == c->part_cap) { /* more bytes came than we hold: grow */
            size_t cap = c->part_cap > n / GROWTH ? n : GROWTH * c->part_cap;
            char *p = realloc(c->part, cap);
            if (p == NULL)
                return MP_ENOMEM; /* what came stays in part for the next receive */
            c->part = p;
            c->part_cap = cap;
        }
        ssize_t r = read_some(c->fd, c->part + c->part_got, c->part_cap - c->part_got);
        if (r <= 0) {
            drop_part(c);
            c->has_known = false;
            return r == 0 ? MP_ETRUNCATED : (int)r;
        }
        c->part_got += (size_t)r;
    }
    *out = c->part;
    *len = n;
    c->part = NULL;
    c->part_got = c->part_cap = 0;
    c->has_known = false;
    return 0;
}

int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t buflen, size_t offset, size_t *len)
{
    if (c == NULL || len == NULL || (buf == NULL && buflen > 0) || offset > buflen)
        return MP_EINVAL;
    int rc = check_usable(c, true);
    if (rc == 0)
        rc = read_header(c);
    if (rc != 0)
        return rc;
    if (c->known > MAX_CLAIM)
        return MP_EPROTO;
    if (c->known > buflen - offset) {
        *len = c->known > SIZE_MAX ? SIZE_MAX : (size_t)c->known;
        return MP_ETOOSHORT;
    }
    size_t n = (size_t)c->known;
    rc = read_payload(c, (char *)buf + offset);
    if (rc == 0)
        *len = n;
    return rc;
}

int mp_conn_poll(mp_conn *c, int timeout_ms)
{
    if (c == NULL)
        return MP_EINVAL;
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc == 0)
        rc = check_usable(c, true);
    if (rc != 0)
        return rc;
    if (mp__conn_has_buffered(c))
        return 1;
    rc = mp__poll_one(c->fd, POLLIN, &d, NULL);
    return rc == MP_ETIMEDOUT ? 0 : rc;
}

int mp_conn_fileno(const mp_conn *c)
{
    if (c == NULL)
        return MP_EINVAL;
    return c->fd < 0 ? MP_ECLOSED : c->fd;
}

bool mp_conn_readable(const mp_conn *c)
{
    return c != NULL && c->readable;
}
bool mp_conn_writable(const mp_conn *c)
{
    return c != NULL && c->writable;
}
bool mp_conn_closed(const mp_conn *c)
{
    return c == NULL || c->fd < 0;
}

int mp_conn_close(mp_conn *c)
{
    if (c == NULL)
        return MP_EINVAL;
    mp__close_fd(c->fd);
    c->fd = -1;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = 0;
    drop_part(c);
    c->rpos = c->rlen = 0;
    c->has_known = false;
    return 0;
}

void mp_conn_destroy(mp_conn *c)
{
    if (c == NULL)
        return;
    mp_conn_close(c);
    free(c);
}
