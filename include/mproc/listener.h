/* mproc/listener.h — listeners, clients and the authkey handshake, as CPython's
 * multiprocessing.connection.Listener, Client, deliver_challenge and
 * answer_challenge, byte-compatible with CPython 3.11, 3.12 and 3.13.
 *
 *     mp_listener *l;                                       // server
 *     mp_listener_new(&l, "127.0.0.1:0", &(mp_listener_options){
 *         .authkey = "secret", .authkey_len = 6});
 *     printf("%s\n", mp_listener_address(l));               // "127.0.0.1:40123"
 *     mp_conn *c;
 *     mp_listener_accept(l, &c, -1);                        // authenticated peer
 *     ... mp_conn_recv_bytes / mp_conn_send_bytes ...
 *     mp_conn_destroy(c);
 *     mp_listener_destroy(l);
 *
 *     mp_conn *c;                                           // client
 *     char err[200];
 *     int rc = mp_client(&c, "127.0.0.1:40123", &(mp_client_options){
 *         .authkey = "secret", .authkey_len = 6, .errbuf = err, .errbuf_len = sizeof err});
 *     if (rc < 0) fprintf(stderr, "%s: %s\n", mp_err_name(rc), err);
 *
 * The connections are ordinary mp_conn (mproc/connection.h): CPython framing, one
 * system call per frame (header and payload together), and every TCP socket has
 * TCP_NODELAY, so a request written right after the handshake is never held back
 * by Nagle's algorithm.
 *
 * Addresses are strings:
 *   "host:port"       TCP over IPv4 (or a name, resolved to its first IPv4 address
 *                     with getaddrinfo, as CPython does; name resolution is not
 *                     bounded by the timeouts), e.g. "127.0.0.1:5000",
 *                     "localhost:5000". Port 0 for a listener picks a free port;
 *                     mp_listener_address reports it. An empty host (":5000") listens
 *                     on every interface (clients need a host).
 *   "[v6addr]:port"   TCP over IPv6, e.g. "[::1]:5000".
 *   a path with '/'   a Unix socket, e.g. "/tmp/app.sock" or "./app.sock" (a relative
 *                     path needs its "./", so that "name" alone is never ambiguous).
 *                     A listener creates the file and removes it when it closes (as
 *                     CPython does); an existing file is MP_EADDRINUSE.
 *   "@name"           a Linux abstract Unix socket (CPython's '\0name'); nothing on
 *                     the filesystem.
 * A bad address is MP_EINVAL with a message, e.g. "no port in '127.0.0.1'".
 *
 * Human-readable failure text: the option structs have an optional errbuf /
 * errbuf_len pair. When a call fails and errbuf is not NULL, a NUL-terminated
 * English message of at most errbuf_len - 1 bytes is written there (truncated if
 * needed), e.g. for MP_EAUTH "digest sent was rejected: the peer answered #FAILURE#
 * to our {sha256} answer (is the authkey the same on both sides?)" or "digest received
 * was wrong: the peer's {sha256} answer did not match". On success errbuf is left
 * as it was. For rejections inside mp_listener_accept, which are not failures of
 * the accept, see mp_listener_last_error.
 *
 * The handshake (both directions, as CPython): the accepting side challenges first,
 * then the connecting side. As challenger mproc sends "{sha256}" and 40 random
 * bytes, and accepts the modern "{name}"+HMAC answers CPython accepts (md5, sha256,
 * sha384, sha3_256, sha3_384) and the raw 16-byte HMAC-MD5 answer CPython 3.11
 * sends. As answerer it follows CPython 3.12's rules: a 20-byte challenge gets raw
 * HMAC-MD5 (3.11 peers), a "{name}" challenge gets "{name}"+HMAC-name over the
 * whole challenge, anything else fails. The MACs are the library's own HMAC over
 * MD5/SHA-256/SHA-384/SHA3-256/SHA3-384 (no libcrypto; src/net/digest.c) and are
 * compared in constant time. Hardening beyond CPython: every handshake frame is
 * read with a 256-byte limit (a longer one is MP_EPROTO, and nothing is allocated
 * on a length the peer claims), and the whole handshake has a deadline.
 *
 * An authkey of NULL means no handshake at all (CPython's authkey=None). A
 * non-NULL authkey of length 0 is the empty key and does run the handshake (as
 * CPython 3.13 does for b''). The key bytes are copied; the caller keeps them.
 */
#ifndef MPROC_LISTENER_H
#define MPROC_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "mproc/connection.h"
#include "mproc/export.h"
#include "mproc/timeout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default handshake deadline, used when an options field is 0. */
#define MP_HANDSHAKE_TIMEOUT_DEFAULT_MS 5000
/* Default connect deadline of mp_client, used when connect_timeout_ms is 0. */
#define MP_CONNECT_TIMEOUT_DEFAULT_MS 30000
/* The largest handshake frame read or written, as CPython's 256-byte limit. */
#define MP_HANDSHAKE_FRAME_MAX 256

typedef struct mp_listener mp_listener;

/* ---- Listener ---- */

typedef struct mp_listener_options {
    int backlog;         /* listen() backlog; 0: 128 */
    const void *authkey; /* NULL: no handshake; else authkey_len bytes (copied) */
    size_t authkey_len;  /* may be 0 with a non-NULL authkey: the empty key */
    /* per peer, from its arrival; 0: default; -1: no limit; MP_TIMEOUT_NOW: none to wait
     * (mproc/timeout.h) */
    int handshake_timeout_ms;
    bool refuse_md5; /* reject MD5 answers (3.11 peers) and never answer with MD5 */
    char *errbuf;    /* optional: the message of a failed mp_listener_new */
    size_t errbuf_len;
    /* Optional: called once for every rejected peer (the ones mp_listener_rejected
     * counts), with its address ("127.0.0.1:51234", "" for an unnamed Unix socket
     * peer) and why ("digest received was wrong: ...", "handshake timed out after
     * 5000 ms"), both borrowed for the call. A Unix socket peer's address is what it
     * bound its own socket to: any bytes but NUL; escape it before logging. It runs in the thread
     * calling mp_listener_accept, with the listener's mutex held: it must be quick and must not
     * call functions on this listener. */
    void (*on_reject)(void *arg, const char *peer, const char *reason);
    void *on_reject_arg;
    /* Optional: called (with on_reject_arg, in the same context as on_reject) for a
     * peer that passed the handshake but could not be given a connection (out of
     * memory: reason "no memory"); the peer is closed and accept returns the error.
     * NULL: on_reject is called for it instead. Such a peer is not counted by
     * mp_listener_rejected, but its message is mp_listener_last_error's. */
    void (*on_turn_away)(void *arg, const char *peer, const char *reason);
} mp_listener_options;

/* Creates a listening socket bound to address (see the top of this file), with
 * SO_REUSEADDR on TCP as CPython. opt may be NULL (no authkey, defaults).
 * The listener owns its descriptors (close-on-exec) and, for a Unix path, the file.
 * Errors: MP_EINVAL (bad address or option; see errbuf), MP_EADDRINUSE,
 * MP_EADDRNOTAVAIL, MP_EACCES, MP_ENOENT (Unix path in a missing directory),
 * MP_EMFILE, MP_ENOMEM. */
MP_EXTERN int mp_listener_new(mp_listener **out, const char *address,
                              const mp_listener_options *opt);

/* Waits up to timeout_ms (-1: forever, 0: only what is ready now) for a peer and
 * stores a new connection in *out (the caller destroys it).
 * With an authkey, a connection is returned only after both handshakes passed.
 * Handshakes run concurrently inside accept, without blocking on any one peer:
 * several peers may be mid-handshake at once (up to 64; more wait in the backlog),
 * each one is dropped when its own handshake_timeout_ms passes, and a peer that
 * fails (wrong key, bad frame, silence, hang-up) is closed and counted, never
 * returned; accept then goes on waiting for the next one until its own timeout.
 * Peers mid-handshake when accept times out stay with the listener and continue at
 * the next accept, so their deadline, not the accept's, decides their fate.
 * Thread safety: calls on one listener are serialised by a mutex; mp_listener_close
 * may be called from another thread to end an accept in progress (MP_ECLOSED).
 * Fork: one process at a time should accept on a listener (a child may take it over
 * from its parent); either process may close its copy without disturbing the
 * other's handshakes; only the creating process removes its Unix socket file.
 * Errors: MP_ETIMEDOUT (no authenticated peer in time), MP_ECLOSED, MP_EMFILE,
 * MP_ENOMEM (also for a peer that authenticated when no connection could be made
 * for it: it is closed and reported to on_turn_away), MP_EINVAL (NULL argument,
 * timeout below -1). */
MP_EXTERN int mp_listener_accept(mp_listener *l, mp_conn **out, int timeout_ms);

/* The bound address as a string owned by l (valid until destroy), in the forms
 * accepted above, with port 0 resolved: "127.0.0.1:40123", "[::1]:40123",
 * "/tmp/app.sock", "@name". NULL for a NULL l. */
MP_EXTERN const char *mp_listener_address(const mp_listener *l);

/* A descriptor for event loops, owned by l: it polls readable whenever
 * mp_listener_accept(l, &c, 0) can make progress (a new peer, handshake bytes from
 * a pending one, a pending handshake's deadline passed), and now and then when it
 * cannot (a deadline timer set for a handshake that has since finished). So
 * accept with timeout 0 may return MP_ETIMEDOUT after it polled readable.
 * Errors: MP_EINVAL, MP_ECLOSED. */
MP_EXTERN int mp_listener_fileno(const mp_listener *l);

/* How many peers were rejected so far (failed or timed-out handshakes), and the
 * message of the most recent rejection, e.g. "127.0.0.1:51234: digest received was
 * wrong: the peer's {sha256} answer did not match"; "" when none. The string is
 * owned by l and changes during the next accept: copy it first when several threads
 * use l. */
MP_EXTERN unsigned long mp_listener_rejected(const mp_listener *l);
MP_EXTERN const char *mp_listener_last_error(const mp_listener *l);

/* Stops listening: wakes an accept blocked in another thread (it returns
 * MP_ECLOSED), closes the socket and the peers mid-handshake, and removes the Unix
 * socket file the listener created, if that file is still there (same device and
 * inode: a socket someone else bound at the path since is left alone).
 * Connections already returned are not affected.
 * Closing twice returns 0. Errors: MP_EINVAL (l NULL). */
MP_EXTERN int mp_listener_close(mp_listener *l);

/* Closes (if needed) and frees l. NULL is accepted. No other call on l may run. */
MP_EXTERN void mp_listener_destroy(mp_listener *l);

/* ---- Client ---- */

typedef struct mp_client_options {
    const void *authkey; /* NULL: no handshake; else authkey_len bytes */
    size_t authkey_len;
    /* Options fields (mproc/timeout.h): 0: the default above; -1: no limit;
     * MP_TIMEOUT_NOW: nothing waited for. */
    int connect_timeout_ms;   /* for the connection itself */
    int handshake_timeout_ms; /* for both handshakes together */
    bool refuse_md5;          /* as in mp_listener_options */
    char *errbuf;             /* optional: the message of a failure */
    size_t errbuf_len;
} mp_client_options;

/* Connects to address, runs both handshakes when there is an authkey (answering
 * the listener's challenge, then challenging it), and stores the connection in
 * *out (the caller destroys it). TCP sockets get TCP_NODELAY. A Unix listener with
 * a full backlog is retried until the connect deadline. opt may be NULL.
 * Thread-safe (no shared state).
 * Errors: MP_EINVAL (bad address or option; see errbuf), MP_ECONNREFUSED,
 * MP_ENOENT (no such Unix socket), MP_ENETUNREACH / MP_EHOSTUNREACH,
 * MP_ETIMEDOUT (connect or handshake deadline), MP_EAUTH (a digest was rejected,
 * either way; errbuf says which), MP_EPROTO (the peer broke the handshake
 * framing, e.g. a frame over 256 bytes), MP_EEOF / MP_ETRUNCATED / MP_ECONNRESET
 * / MP_EPIPE (the peer went away mid-handshake), MP_EACCES (a Unix socket we may
 * not connect to), MP_EADDRNOTAVAIL, MP_EMFILE, MP_ENOMEM. On any failure no
 * descriptor is left open. */
MP_EXTERN int mp_client(mp_conn **out, const char *address, const mp_client_options *opt);

/* ---- The handshake steps, as Python's deliver_challenge / answer_challenge ---- */

typedef struct mp_auth_options {
    int timeout_ms;  /* deadline for this step; 0: default; -1: no limit; MP_TIMEOUT_NOW */
    bool refuse_md5; /* as in mp_listener_options */
    char *errbuf;    /* optional: the message of a failure */
    size_t errbuf_len;
} mp_auth_options;

/* Challenger's half: sends "#CHALLENGE#{sha256}" + 40 random bytes, reads the
 * answer (at most 256 bytes), verifies it in constant time, and sends #WELCOME# or
 * #FAILURE#. c must be a socket connection on which nothing has been received yet
 * by mp_conn_recv_* (the step reads the descriptor directly, never past the
 * handshake's last frame, so the first message after it stays on the socket for
 * mp_conn_recv_*). opt may be NULL.
 * Errors: MP_EAUTH (wrong or refused answer; #FAILURE# was sent), MP_EPROTO
 * (oversized or malformed frame, or bytes sent before the peer's turn), MP_ETIMEDOUT, MP_EEOF,
 * MP_ETRUNCATED, MP_ECONNRESET, MP_EPIPE, MP_EBUSY (c holds bytes already received), MP_ECLOSED,
 * MP_EBADF (c is not duplex), MP_EINVAL (c NULL, authkey NULL with keylen > 0, timeout_ms below -1
 * but not MP_TIMEOUT_NOW). */
MP_EXTERN int mp_deliver_challenge(mp_conn *c, const void *authkey, size_t keylen,
                                   const mp_auth_options *opt);

/* Answerer's half: reads a challenge (at most 256 bytes), sends the answer by
 * CPython 3.12's rules (20 bytes: raw HMAC-MD5; "{name}": that digest), and reads
 * the verdict. Same conditions on c as mp_deliver_challenge.
 * Errors: MP_EAUTH (the peer sent #FAILURE# or another verdict than #WELCOME#, or its
 * challenge cannot be answered: unknown digest, no "{name}" prefix, shorter than 20
 * bytes, MD5 with refuse_md5), MP_EPROTO (the first frame is not a #CHALLENGE#, e.g.
 * the peer runs no handshake, or a framing error), and the rest as
 * mp_deliver_challenge. */
MP_EXTERN int mp_answer_challenge(mp_conn *c, const void *authkey, size_t keylen,
                                  const mp_auth_options *opt);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_LISTENER_H */
