/* auth.c — CPython's authkey handshake (multiprocessing.connection's
 * deliver_challenge / answer_challenge), as seen on the wire from 3.11, 3.12, 3.13.
 *
 * Frames are CPython's (a big-endian int32 length, or -1 and a uint64, then the
 * payload), at most MP_HANDSHAKE_FRAME_MAX payload bytes during the handshake:
 *
 *   challenger                          answerer
 *   "#CHALLENGE#" + M          ---->
 *                              <----    answer = MAC(authkey, M)
 *   "#WELCOME#" | "#FAILURE#"  ---->
 *
 * As challenger we send M = "{sha256}" + 40 random bytes. An answer of 16 or 20
 * bytes is raw HMAC-MD5 over M (what 3.11 sends whatever M holds); any other answer
 * must be "{name}" + HMAC-name over M, with name one of CPython's allowed digests.
 * As answerer: M shorter than 20 bytes fails, exactly 20 bytes gets raw HMAC-MD5
 * (a 3.11 challenger), anything else must start with an allowed "{name}". The MAC
 * always covers all of M, prefix included.
 *
 * The state machine reads exactly one frame at a time with non-blocking recv()s
 * into fixed buffers, so a listener can drive many handshakes at once and nothing
 * past the handshake is consumed from the socket.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "net/digest.h"
#include "net/net.h"
#include "queue/conn.h"

#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define CHALLENGE_LEN 11
#define VERDICT_LEN 9
#define LEGACY_MSG_LEN 20 /* a 3.11 challenge payload */
#define MD5_LEN 16
#define MAX_DIGEST_NAME 8 /* "sha3_384" */

void mp__net_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int mp__handshake_ms(int opt_ms, int *out)
{
    /* An options field (mproc/timeout.h): MP_TIMEOUT_NOW is an immediate timeout. */
    if (opt_ms < -1 && opt_ms != MP_TIMEOUT_NOW)
        return MP_EINVAL;
    *out = opt_ms == MP_TIMEOUT_NOW ? 0 : opt_ms == 0 ? MP_HANDSHAKE_TIMEOUT_DEFAULT_MS : opt_ms;
    return 0;
}

/* ---- MACs (net/digest.h) ---- */

/* The "{name}" prefix of p as CPython finds it: '{' at 0 and '}' within the next
 * MAX_DIGEST_NAME + 1 bytes. Its name length, or -1. */
static int prefix_name(const unsigned char *p, size_t n)
{
    if (n < 2 || p[0] != '{')
        return -1;
    for (size_t i = 1; i < n && i < MAX_DIGEST_NAME + 2; i++)
        if (p[i] == '}')
            return (int)i - 1;
    return -1;
}

/* Printable form of a peer's digest name for messages. */
static void show_name(const unsigned char *p, int n, char *out, size_t outlen)
{
    size_t o = 0;
    for (int i = 0; i < n && o + 5 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, p[i] >= 0x20 && p[i] < 0x7f ? "%c" : "\\x%02x",
                              p[i]);
    out[o] = '\0';
}

int mp__auth_verify(const void *key, size_t keylen, const unsigned char *chal, size_t chlen,
                    const unsigned char *ans, size_t anslen, bool refuse_md5, char *err,
                    size_t errlen)
{
    unsigned char want[MP__DIGEST_MAX];
    const mp__digest *md;
    const unsigned char *got;
    size_t gotlen;
    char name[48] = "raw MD5";
    if (anslen == MD5_LEN || anslen == LEGACY_MSG_LEN) {
        if (refuse_md5) {
            mp__net_msg(err, errlen,
                        "digest received was wrong: the peer answered with raw HMAC-MD5 "
                        "(a CPython 3.11 peer?), which refuse_md5 forbids");
            return MP_EAUTH;
        }
        md = mp__digest_md5();
        got = ans;
        gotlen = anslen;
    } else {
        int n = prefix_name(ans, anslen);
        if (n < 0) {
            mp__net_msg(err, errlen,
                        "digest received was wrong: the peer's %zu-byte answer has no "
                        "{digest} prefix",
                        anslen);
            return MP_EAUTH;
        }
        char shown[40];
        show_name(ans + 1, n, shown, sizeof shown);
        snprintf(name, sizeof name, "{%s}", shown);
        md = mp__digest_named(ans + 1, (size_t)n);
        if (md == NULL) {
            mp__net_msg(err, errlen,
                        "digest received was wrong: the peer's answer names the unsupported "
                        "digest %s",
                        name);
            return MP_EAUTH;
        }
        if (refuse_md5 && md == mp__digest_md5()) {
            mp__net_msg(err, errlen,
                        "digest received was wrong: the peer answered with {md5}, which "
                        "refuse_md5 forbids");
            return MP_EAUTH;
        }
        got = ans + n + 2;
        gotlen = anslen - (size_t)n - 2;
    }
    size_t wantlen = mp__hmac(md, key, keylen, chal, chlen, want);
    if (gotlen != wantlen) {
        mp__net_msg(err, errlen,
                    "digest received was wrong: the peer's %s answer has %zu MAC bytes, "
                    "expected %zu",
                    name, gotlen, wantlen);
        return MP_EAUTH;
    }
    if (!mp__digest_equal(want, got, wantlen)) {
        mp__net_msg(err, errlen, "digest received was wrong: the peer's %s answer did not match",
                    name);
        return MP_EAUTH;
    }
    return 0;
}

int mp__auth_respond(const void *key, size_t keylen, const unsigned char *msg, size_t msglen,
                     bool refuse_md5, unsigned char *out, size_t *outlen, char *err, size_t errlen)
{
    unsigned char m[MP__DIGEST_MAX];
    if (msglen < LEGACY_MSG_LEN) {
        mp__net_msg(err, errlen, "the peer's challenge is too short: %zu bytes", msglen);
        return MP_EAUTH;
    }
    if (msglen == LEGACY_MSG_LEN) {
        if (refuse_md5) {
            mp__net_msg(err, errlen,
                        "the peer sent a legacy 20-byte challenge (a CPython 3.11 peer?); "
                        "answering it needs MD5, which refuse_md5 forbids");
            return MP_EAUTH;
        }
        size_t n = mp__hmac(mp__digest_md5(), key, keylen, msg, msglen, m);
        memcpy(out, m, n);
        *outlen = n;
        return 0;
    }
    int n = prefix_name(msg, msglen);
    const mp__digest *md = n < 0 ? NULL : mp__digest_named(msg + 1, (size_t)n);
    if (md == NULL) {
        char shown[40] = "";
        if (n >= 0)
            show_name(msg + 1, n, shown, sizeof shown);
        mp__net_msg(err, errlen,
                    n < 0 ? "the peer's challenge has no {digest} prefix%s"
                          : "the peer's challenge names the unsupported digest {%s}",
                    shown);
        return MP_EAUTH;
    }
    if (refuse_md5 && md == mp__digest_md5()) {
        mp__net_msg(err, errlen, "the peer's challenge asks for {md5}, which refuse_md5 forbids");
        return MP_EAUTH;
    }
    size_t len = mp__hmac(md, key, keylen, msg, msglen, m);
    memcpy(out, msg, (size_t)n + 2);
    memcpy(out + n + 2, m, len);
    *outlen = (size_t)n + 2 + len;
    return 0;
}

/* ---- the state machine ---- */

void mp__auth_init(mp__auth *a, int fd, const void *key, size_t keylen, bool refuse_md5,
                   const enum mp__auth_step *steps, int nsteps)
{
    memset(a, 0, sizeof *a);
    a->fd = fd;
    a->key = key;
    a->keylen = keylen;
    a->refuse_md5 = refuse_md5;
    for (int i = 0; i < nsteps && i < 2; i++)
        a->steps[i] = steps[i];
    a->nsteps = nsteps < 2 ? nsteps : 2;
    a->wait_first = true; /* nothing from the peer before we poll */
}

/* Sends one whole frame with one send() (the socket buffer of a connection in its
 * handshake always has room for these few bytes; a short write is finished with
 * a bounded wait). */
static int send_frame(mp__auth *a, const void *p, size_t n)
{
    unsigned char buf[4 + MP_HANDSHAKE_FRAME_MAX];
    size_t h = mp__frame_header(n, buf);
    memcpy(buf + h, p, n);
    size_t off = 0, total = h + n;
    mp__deadline d;
    mp__deadline_init(&d, 1000);
    a->wait_first = true; /* the peer's reply cannot be there yet */
    while (off < total) {
        ssize_t w = send(a->fd, buf + off, total - off, MSG_NOSIGNAL);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            int rc = mp__poll_one(a->fd, POLLOUT, &d, NULL);
            if (rc < 0) {
                mp__net_msg(a->err, sizeof a->err, "cannot send a handshake frame: %s",
                            mp_strerror(rc));
                return rc;
            }
            continue;
        }
        int rc = -errno;
        mp__net_msg(a->err, sizeof a->err, "cannot send a handshake frame: %s", mp_strerror(rc));
        return rc;
    }
    return 0;
}

/* Reads what is there of the current frame. 0: a whole frame is in a->frame
 * (a->need bytes); 1: more is needed; or a negative code.
 *
 * greedy: the peer must wait for our reply before it sends anything after this
 * frame, so one recv() may ask for as much as a frame can hold (header and payload
 * in one system call), and bytes beyond the frame are a protocol error. Not
 * greedy (the last frame of the handshake, which the peer may follow with its
 * first message at once): exactly the header, then exactly the payload. */
static int read_frame(mp__auth *a, bool greedy)
{
    if (a->wait_first) { /* save a recv() that would only say EAGAIN */
        a->wait_first = false;
        return 1;
    }
    for (;;) {
        size_t want;
        if (a->have < 4) {
            want = 4 - a->have;
        } else {
            const unsigned char *p = a->in;
            int32_t n =
                (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
            size_t hl = n == -1 ? 12 : 4; /* -1: CPython's long form, legal for any size */
            uint64_t len = (uint64_t)n;
            if (n < -1) {
                mp__net_msg(a->err, sizeof a->err, "handshake frame with the invalid length %d",
                            (int)n);
                return MP_EPROTO;
            }
            if (a->have < hl) {
                want = hl - a->have;
                goto receive;
            }
            if (n == -1) {
                len = 0;
                for (int i = 4; i < 12; i++)
                    len = len << 8 | p[i];
            }
            if (len > MP_HANDSHAKE_FRAME_MAX) {
                mp__net_msg(a->err, sizeof a->err,
                            "handshake frame of %llu bytes is over the %d-byte limit",
                            (unsigned long long)len, MP_HANDSHAKE_FRAME_MAX);
                return MP_EPROTO;
            }
            size_t total = hl + (size_t)len;
            if (a->have >= total) {
                /* Bytes beyond the frame came before the peer's turn. The frame is
                 * still handled first: a manager server follows #FAILURE# with a
                 * traceback frame, and that rejection is what the caller must see. */
                a->excess = a->have - total;
                memcpy(a->frame, p + hl, (size_t)len);
                a->need = (uint32_t)len;
                return 0;
            }
            want = total - a->have;
        }
    receive:
        if (greedy)
            want = sizeof a->in - a->have;
        ssize_t r = recv(a->fd, a->in + a->have, want, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 1;
            int rc = -errno;
            mp__net_msg(a->err, sizeof a->err, "handshake: %s", mp_strerror(rc));
            return rc;
        }
        if (r == 0) {
            bool between = a->have == 0;
            mp__net_msg(a->err, sizeof a->err, "the peer closed the connection %s the handshake",
                        between ? "during" : "in the middle of a frame of");
            return between ? MP_EEOF : MP_ETRUNCATED;
        }
        a->have += (size_t)r;
    }
}

static void next_frame(mp__auth *a)
{
    a->have = 0;
    a->excess = 0;
    a->need = 0;
}

static int send_challenge(mp__auth *a)
{
    memcpy(a->chal, "{sha256}", 8);
    size_t off = 8;
    while (off < sizeof a->chal) {
        ssize_t r = getrandom(a->chal + off, sizeof a->chal - off, 0);
        if (r < 0 && errno != EINTR) {
            int rc = -errno;
            mp__net_msg(a->err, sizeof a->err, "getrandom: %s", mp_strerror(rc));
            return rc;
        }
        if (r > 0)
            off += (size_t)r;
    }
    unsigned char frame[CHALLENGE_LEN + sizeof a->chal];
    memcpy(frame, CHALLENGE, CHALLENGE_LEN);
    memcpy(frame + CHALLENGE_LEN, a->chal, sizeof a->chal);
    return send_frame(a, frame, sizeof frame);
}

/* A frame has arrived for the current step; handles it. 0: step done. */
static int on_frame(mp__auth *a)
{
    const unsigned char *p = a->frame;
    size_t n = a->need;
    if (a->steps[a->cur] == MP__AUTH_DELIVER) {
        int rc = mp__auth_verify(a->key, a->keylen, a->chal, sizeof a->chal, p, n, a->refuse_md5,
                                 a->err, sizeof a->err);
        int src = send_frame(a, rc == 0 ? WELCOME : FAILURE, VERDICT_LEN);
        return rc != 0 ? rc : src;
    }
    if (a->phase == 1) { /* the challenge */
        if (n < CHALLENGE_LEN || memcmp(p, CHALLENGE, CHALLENGE_LEN) != 0) {
            mp__net_msg(a->err, sizeof a->err,
                        "protocol error: the peer's %zu-byte frame is not a #CHALLENGE# (does "
                        "the peer use an authkey?)",
                        n);
            return MP_EPROTO;
        }
        unsigned char ans[MP_HANDSHAKE_FRAME_MAX];
        size_t anslen;
        int rc = mp__auth_respond(a->key, a->keylen, p + CHALLENGE_LEN, n - CHALLENGE_LEN,
                                  a->refuse_md5, ans, &anslen, a->err, sizeof a->err);
        if (rc == 0)
            rc = send_frame(a, ans, anslen);
        if (rc != 0)
            return rc;
        /* Remember what we answered with, for the message of a rejection. */
        size_t mlen = n - CHALLENGE_LEN;
        int pn = mlen == LEGACY_MSG_LEN ? -1 : prefix_name(p + CHALLENGE_LEN, mlen);
        if (pn < 0) {
            memcpy(a->answered, "raw MD5", 8);
        } else { /* "{name}": at most MAX_DIGEST_NAME + 2 bytes */
            memcpy(a->answered, p + CHALLENGE_LEN, (size_t)pn + 2);
            a->answered[pn + 2] = '\0';
        }
        a->phase = 2;
        return 1;
    }
    if (n == VERDICT_LEN && memcmp(p, WELCOME, VERDICT_LEN) == 0)
        return 0;
    if (n == VERDICT_LEN && memcmp(p, FAILURE, VERDICT_LEN) == 0)
        mp__net_msg(a->err, sizeof a->err,
                    "digest sent was rejected: the peer answered #FAILURE# to our %s answer (is "
                    "the authkey the same on both sides?)",
                    a->answered);
    else
        mp__net_msg(a->err, sizeof a->err,
                    "digest sent was rejected: the peer answered our %s answer with a %zu-byte "
                    "frame that is not #WELCOME#",
                    a->answered, n);
    return MP_EAUTH;
}

int mp__auth_resume(mp__auth *a)
{
    while (a->cur < a->nsteps) {
        if (a->phase == 0) {
            if (a->steps[a->cur] == MP__AUTH_DELIVER) {
                int rc = send_challenge(a);
                if (rc != 0)
                    return rc;
            }
            a->phase = 1;
            next_frame(a);
        }
        /* Only the verdict that ends the whole handshake may be followed at once. */
        bool last = a->cur == a->nsteps - 1 && a->steps[a->cur] == MP__AUTH_ANSWER && a->phase == 2;
        int rc = read_frame(a, !last);
        if (rc != 0)
            return rc;
        rc = on_frame(a);
        size_t excess = a->excess;
        next_frame(a);
        if (rc < 0)
            return rc;
        if (excess > 0) {
            mp__net_msg(a->err, sizeof a->err,
                        "protocol error: the peer sent %zu bytes after a handshake frame before "
                        "its turn",
                        excess);
            return MP_EPROTO;
        }
        if (rc == 0) {
            a->cur++;
            a->phase = 0;
        }
    }
    return 0;
}

int mp__auth_run(mp__auth *a, const mp__deadline *d)
{
    for (;;) {
        int rc = mp__auth_resume(a);
        if (rc <= 0)
            return rc;
        rc = mp__poll_one(a->fd, POLLIN, d, NULL);
        if (rc == MP_ETIMEDOUT) {
            mp__net_msg(a->err, sizeof a->err,
                        "handshake timed out waiting for the peer (does it use an authkey?)");
            return rc;
        }
        if (rc < 0) {
            mp__net_msg(a->err, sizeof a->err, "handshake: %s", mp_strerror(rc));
            return rc;
        }
    }
}

/* ---- public steps ---- */

static int run_step(mp_conn *c, const void *key, size_t keylen, const mp_auth_options *opt,
                    enum mp__auth_step step)
{
    static const mp_auth_options none = {0};
    if (opt == NULL)
        opt = &none;
    if (c == NULL || (key == NULL && keylen > 0)) {
        mp__net_msg(opt->errbuf, opt->errbuf_len, "NULL connection or authkey");
        return MP_EINVAL;
    }
    int ms;
    if (mp__handshake_ms(opt->timeout_ms, &ms) != 0) {
        mp__net_msg(opt->errbuf, opt->errbuf_len, "timeout_ms below -1");
        return MP_EINVAL;
    }
    int fd = mp_conn_fileno(c);
    if (fd < 0)
        return fd;
    if (!mp_conn_readable(c) || !mp_conn_writable(c)) {
        mp__net_msg(opt->errbuf, opt->errbuf_len, "the handshake needs a duplex connection");
        return MP_EBADF;
    }
    if (mp__conn_has_buffered(c)) {
        mp__net_msg(opt->errbuf, opt->errbuf_len,
                    "the connection already holds received bytes; run the handshake first");
        return MP_EBUSY;
    }
    mp__deadline d;
    mp__deadline_init(&d, ms);
    mp__auth a;
    mp__auth_init(&a, fd, key, keylen, opt->refuse_md5, &step, 1);
    int rc = mp__auth_run(&a, &d);
    if (rc != 0)
        mp__net_msg(opt->errbuf, opt->errbuf_len, "%s", a.err);
    return rc;
}

int mp_deliver_challenge(mp_conn *c, const void *authkey, size_t keylen, const mp_auth_options *opt)
{
    return run_step(c, authkey, keylen, opt, MP__AUTH_DELIVER);
}

int mp_answer_challenge(mp_conn *c, const void *authkey, size_t keylen, const mp_auth_options *opt)
{
    return run_step(c, authkey, keylen, opt, MP__AUTH_ANSWER);
}
