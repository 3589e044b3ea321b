/* net/net.h — what the listener, the client and the handshake share: address
 * parsing, failure messages and the handshake state machine. */
#ifndef MPROC_INTERNAL_NET_H
#define MPROC_INTERNAL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/util.h"
#include "mproc/listener.h"

/* ---- failure messages ---- */

/* Formats a message into buf (NUL-terminated, truncated to len - 1 bytes). buf may
 * be NULL or len 0: nothing is written. */
MP__HIDDEN void mp__net_msg(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- addresses ---- */

#define MP__ADDR_TEXT_MAX 160

typedef struct mp__addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;         /* AF_INET, AF_INET6, AF_UNIX */
    bool unix_path;     /* a filesystem path (not abstract) */
    bool wildcard_host; /* "" host: every interface */
} mp__addr;

/* Parses a public address string (see mproc/listener.h). for_listener: port 0 and
 * an empty host are allowed. Host names are resolved with getaddrinfo (first
 * IPv4 stream result, as CPython). MP_EINVAL with a message in err on a bad address. */
MP__HIDDEN int mp__addr_parse(mp__addr *out, const char *text, bool for_listener, char *err,
                              size_t errlen);

/* Writes the public form of a socket address ("1.2.3.4:5", "[::1]:5", "/path",
 * "@name") into out (MP__ADDR_TEXT_MAX bytes). */
MP__HIDDEN void mp__addr_format(const struct sockaddr *sa, socklen_t len, char *out);

/* Sets TCP_NODELAY when family is AF_INET or AF_INET6; a no-op (0) otherwise. */
MP__HIDDEN int mp__set_nodelay(int fd, int family);

/* ---- the handshake (auth.c) ---- */

/* The state of one handshake on a socket descriptor: a list of steps run in order.
 * Reads go into a fixed buffer of one largest frame (a 12-byte header and
 * MP_HANDSHAKE_FRAME_MAX payload bytes), so nothing is allocated on the length the
 * peer claims; the last frame is read exactly, so nothing the peer sends after the
 * handshake is consumed. Reads never block (MSG_DONTWAIT); writes are one send() per
 * frame. */
enum mp__auth_step {
    MP__AUTH_DELIVER, /* send a challenge, read and verify the answer, send the verdict */
    MP__AUTH_ANSWER,  /* read a challenge, send the answer, read the verdict */
};

typedef struct mp__auth {
    int fd;
    const unsigned char *key; /* not owned */
    size_t keylen;
    bool refuse_md5;
    enum mp__auth_step steps[2];
    int nsteps;
    int cur;                /* index into steps */
    bool wait_first;        /* the next read_frame returns 1 without reading (after a send) */
    int phase;              /* within a step: 0 not started, 1 waiting for a frame */
    unsigned char chal[48]; /* our challenge payload: "{sha256}" + 40 random bytes */
    unsigned char in[12 + MP_HANDSHAKE_FRAME_MAX]; /* the frame being received */
    size_t have;                                   /* bytes in in[] */
    size_t excess;                                 /* of those, bytes past the frame */
    uint32_t need;                                 /* the payload length of a whole frame */
    unsigned char frame[MP_HANDSHAKE_FRAME_MAX];
    char answered[16]; /* the digest we answered with, for messages */
    char err[200];     /* message of a failure */
} mp__auth;

/* Sets up a handshake of nsteps steps on fd. */
MP__HIDDEN void mp__auth_init(mp__auth *a, int fd, const void *key, size_t keylen, bool refuse_md5,
                              const enum mp__auth_step *steps, int nsteps);

/* Makes all the progress possible without blocking: 0 when the handshake is done,
 * 1 when it needs more bytes from the peer (poll fd for POLLIN, then call again), or
 * a negative code with a->err set (MP_EAUTH, MP_EPROTO, MP_EEOF, MP_ETRUNCATED, a
 * socket error). After init and after each frame it sends, it returns 1 without
 * trying to read, since the peer's reply cannot have arrived yet: call it again
 * only once fd polls readable (level-triggered readiness makes this safe). */
MP__HIDDEN int mp__auth_resume(mp__auth *a);

/* Runs the handshake to its end, waiting for the peer until the deadline
 * (MP_ETIMEDOUT, with a->err set). */
MP__HIDDEN int mp__auth_run(mp__auth *a, const mp__deadline *d);

/* The pure parts, exposed for the fuzz target and tests. */
/* Verifies an answer to challenge (chlen bytes); 0 or MP_EAUTH with a message. */
MP__HIDDEN int mp__auth_verify(const void *key, size_t keylen, const unsigned char *chal,
                               size_t chlen, const unsigned char *ans, size_t anslen,
                               bool refuse_md5, char *err, size_t errlen);
/* Builds the answer to challenge payload msg (after "#CHALLENGE#") into out
 * (MP_HANDSHAKE_FRAME_MAX bytes), storing its length; 0 or MP_EAUTH. */
MP__HIDDEN int mp__auth_respond(const void *key, size_t keylen, const unsigned char *msg,
                                size_t msglen, bool refuse_md5, unsigned char *out, size_t *outlen,
                                char *err, size_t errlen);

/* A handshake timeout option (0: default, -1: none, MP_TIMEOUT_NOW: 0) as
 * milliseconds for a deadline; MP_EINVAL for anything else below -1. */
MP__HIDDEN int mp__handshake_ms(int opt_ms, int *out);

/* ---- listener.c ---- */

/* How accept wraps an authenticated peer's descriptor: mp_conn_from_fd; tests
 * replace it to see a peer turned away for want of memory. */
MP__HIDDEN extern int (*mp__listener_wrap_fd)(mp_conn **out, int fd, bool readable, bool writable);

/* ---- frames with deadlines (frame.c) ---- */

/* Sends one frame (CPython's header, then len bytes of buf) on the stream socket
 * fd, waiting for room until d; the socket may be blocking. Errors: MP_ETIMEDOUT
 * (part of the frame may have gone: the stream is out of step), MP_EPIPE,
 * MP_ECONNRESET and the other send errors. Never raises SIGPIPE. */
MP__HIDDEN int mp__net_send_frame(int fd, const void *buf, size_t len, const mp__deadline *d);

/* Receives one frame from fd into a new malloc'd buffer (*out, *outlen; never NULL
 * on success). Waits for its first byte until first; once it has begun, the rest
 * must come within rest_ms of that first byte, or by first if first is later and
 * not forever (rest_ms -1: no limit), so a peer that stops half way through a
 * frame is given up on.
 * maxlen 0: no limit. *extra is set when bytes beyond the frame arrived with it
 * (they are dropped: the stream is then out of step). Errors: MP_ETIMEDOUT,
 * MP_EEOF (closed before the frame), MP_ETRUNCATED (closed inside it),
 * MP_EPROTO (a length CPython cannot have sent), MP_EMSGSIZE, MP_ENOMEM, socket
 * errors; after any error the stream is out of step. */
MP__HIDDEN int mp__net_recv_frame(int fd, const mp__deadline *first, int rest_ms, size_t maxlen,
                                  void **out, size_t *outlen, bool *extra);

/* Sets fd's SO_RCVTIMEO to ms (> 0): a blocking recv on it then ends with EAGAIN
 * after at most ms (rounded up to the kernel's clock ticks). Other readers of
 * fd that wait out EAGAIN with a poll (mp_conn's) are not affected. 0, MP_EINVAL,
 * or a negative errno. */
MP__HIDDEN int mp__net_set_rcvtimeo(int fd, int ms);

/* The calling thread vouches that fd is a blocking socket whose SO_RCVTIMEO is at
 * most ms (mp__net_set_rcvtimeo), until the next call (fd -1: vouches for
 * nothing). mp__net_recv_frame on fd then waits with the socket's own blocking
 * recv while its deadline is further than ms (one system call per reply instead
 * of a poll and a recv), and with a poll for the rest. Set it around one round
 * trip, while fd cannot be closed: a descriptor vouched for that is not so
 * could wait past the deadline. Thread-local; no system call. */
MP__HIDDEN void mp__net_trust_rcvtimeo(int fd, int ms);

#endif /* MPROC_INTERNAL_NET_H */
