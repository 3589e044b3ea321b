/* manager/mgr.h — what the files of src/manager/ share: request and reply codecs,
 * the served-object and call-context internals, the server and the client. */
#ifndef MPROC_INTERNAL_MGR_H
#define MPROC_INTERNAL_MGR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/connection.h"
#include "mproc/manager.h"
#include "mproc/object.h"
#include "net/net.h"

/* ---- request.c: (ident, funcname, args, kwds) and (kind, result) ---- */

/* A decoded request. The strings and objects are borrowed from root. */
typedef struct mp__mgr_request {
    mp_obj *root;       /* the whole request (owned) */
    const char *ident;  /* NULL for a control request (ident None) */
    const char *method; /* funcname */
    const mp_obj *args; /* a tuple */
    const mp_obj *kwds; /* a dict */
} mp__mgr_request;

/* Decodes one request frame. On MP_EPROTO, err->text says what is wrong in
 * CPython's words where there are some ("not enough values to unpack (expected 4,
 * got 2)"), and err->position is 1 when the pickle itself could not be decoded
 * (0 when it decoded to a wrong shape). On success the caller frees req with
 * mp__mgr_request_free. Errors: MP_EPROTO, MP_ENOMEM. */
MP__HIDDEN int mp__mgr_request_decode(const void *buf, size_t len, mp__mgr_request *req,
                                      mp_obj_error *err);
MP__HIDDEN void mp__mgr_request_free(mp__mgr_request *req);

/* Encodes a request into a malloc'd pickle. ident NULL: None. args/kwds NULL: ()
 * and {}. Errors: MP_EINVAL, MP_ENOMEM. */
MP__HIDDEN int mp__mgr_request_encode(const char *ident, const char *method, const mp_obj *args,
                                      const mp_obj *kwds, void **out, size_t *len);

/* Encodes (kind, result) into a malloc'd pickle; result NULL: None. */
MP__HIDDEN int mp__mgr_reply_encode(const char *kind, const mp_obj *result, void **out,
                                    size_t *len);

/* The kinds of reply. */
enum {
    MP__REPLY_RETURN,
    MP__REPLY_ERROR,
    MP__REPLY_TRACEBACK,
    MP__REPLY_UNSERIALIZABLE,
    MP__REPLY_PROXY
};

/* Decodes a reply frame: *kind one of the above, *result a new reference to the
 * second item. Errors: MP_EPROTO (not a 2-tuple with a known kind), MP_ENOMEM. */
MP__HIDDEN int mp__mgr_reply_decode(const void *buf, size_t len, int *kind, mp_obj **result);

/* A Token(typeid, (host, port), ident) object node, as CPython pickles it. */
MP__HIDDEN mp_obj *mp__mgr_token(const char *typeid, const char *address, const char *ident);

/* CPython's traceback text for an exception raised in the server:
 * "Traceback (most recent call last):\n  File \"<mproc manager>\", in <where>\n<line>\n". */
MP__HIDDEN char *mp__mgr_traceback_text(const char *where, const char *line);

/* ---- served.c: served objects and the call context ---- */

struct mp_served {
    _Atomic long refs;
    const mp_manager_type *type;
    void *self;
};

struct mp_mgr_server;

/* One server-side connection (server.c). fd and id are fixed for its life. */
typedef struct mp__mgr_conn {
    struct mp__mgr_conn *next; /* the server's list, under the server's lock */
    struct mp_mgr_server *server;
    mp_conn *conn;
    int fd;
    uint64_t id;
    _Atomic bool done; /* ended (CLOSED emitted): the accept loop may free it */
    _Atomic bool gone; /* the peer closed or reset the connection */
    bool channel;      /* accept_connection was received */
    /* References owned by this channel (ident -> count), under the server's lock. */
    struct mp__mgr_owned *owned;
    size_t nowned, capowned;
    /* Objects this connection called methods on (one reference each), for the
     * types' conn_closed hooks; only the thread serving the connection touches it. */
    mp_served **touched;
    size_t ntouched, captouched;
    /* For the on_event hook only ("" / 0 without one): the peer's address (held
     * here, so that no allocation can fail to give one) and when the connection
     * was accepted. */
    char peer[MP__ADDR_TEXT_MAX];
    int64_t opened_ns;
    /* Held by the accept loop from before the thread starts until ACCEPTED has been
     * emitted; the thread takes it before emitting CLOSED, so that CLOSED follows
     * ACCEPTED, and a connection whose thread could not start gets TURNED_AWAY
     * only. */
    pthread_mutex_t announce;
} mp__mgr_conn;

typedef struct mp__mgr_owned {
    char *ident;
    long count;
} mp__mgr_owned;

struct mp_manager_call {
    struct mp_mgr_server *server; /* NULL outside a server (mp_served_new) */
    struct mp__mgr_conn *conn;
    const char *method;
    int python_version;
    /* The outcome, besides the method's return value. */
    int reply_kind;     /* MP__REPLY_*: set by raise / traceback / return_proxy */
    mp_obj *exc;        /* raised exception (owned) */
    char *text;         /* traceback text (owned) */
    mp_served *proxied; /* return_proxy's object (owned) */
    char *proxied_typeid;
    void (*undelivered)(void *self, const mp_obj *result, void *arg);
    void *undelivered_arg;
};

/* Whether the server is stopping (for waits). */
MP__HIDDEN bool mp__mgr_server_stopping(const struct mp_mgr_server *s);

/* Called by a served call about to block (mp_manager_call_wait): when the calling
 * thread leads the server's channel loop, it hands the loop to another worker
 * first, so that the other channels keep being served (server.c). */
MP__HIDDEN void mp__mgr_server_blocking(struct mp_mgr_server *s);

/* Test hooks of server.c (NULL / 0 outside tests).
 * mp__mgr_worker_start_fault: called before the server starts a worker thread;
 * kind says for what (MP__MGR_START_*), leaders how many workers lead the channel
 * loop at that moment (for a hand-off: after it). Returning true makes that start
 * fail as pthread_create does for want of threads (EAGAIN).
 * mp__mgr_send_stall_ms: when > 0, replaces MP__MGR_SEND_STALL_MS. */
enum { MP__MGR_START_CONNECTION = 1, MP__MGR_START_HANDOFF, MP__MGR_START_RETRY };
MP__HIDDEN extern bool (*_Atomic mp__mgr_worker_start_fault)(int kind, size_t leaders);
MP__HIDDEN extern _Atomic int mp__mgr_send_stall_ms;

/* How long a reply may wait for its peer to take any of it (the socket full, no
 * byte accepted) before the server drops that connection as a dead peer. */
#define MP__MGR_SEND_STALL_MS 30000

/* Frees what a call holds (exception, text, proxy object). */
MP__HIDDEN void mp__mgr_call_clear(mp_manager_call *call);

/* The exposed names of type for python_version (a tuple of str), or of the
 * registered list when exposed is not NULL. NULL on out-of-memory. */
MP__HIDDEN mp_obj *mp__mgr_exposed(const mp_manager_type *type, const char *const *exposed,
                                   int python_version);

/* The method of type called name, or NULL. */
MP__HIDDEN const mp_manager_method *mp__mgr_find_method(const mp_manager_type *type,
                                                        const char *name);

/* repr(obj) of a served object, malloc'd. */
MP__HIDDEN char *mp__mgr_served_repr(const mp_served *o);

/* ---- registry (client.c owns it; server.c reads it) ---- */

typedef struct mp__mgr_typeid {
    char *typeid;
    const mp_manager_type *type;
    mp_served *object;
    mp_manager_callable callable;
    void *callable_arg;
    char **exposed; /* NULL-terminated copy, or NULL */
} mp__mgr_typeid;

/* ---- server.c ---- */

typedef struct mp__mgr_server_config {
    const char *address;
    const void *authkey;
    size_t authkey_len;
    int python_version;
    int handshake_timeout_ms;
    int max_connections;
    size_t max_message;
    const mp__mgr_typeid *types;
    size_t ntypes;
    int stop_fd; /* readable means stop (a pipe's read end, an epoll set); -1 for none */
    /* What stop_fd means, for the event; read when stop_fd polls readable, and may
     * be changed by another thread (or a signal handler) before it makes it so. */
    _Atomic mp_manager_stop_reason stop_fd_reason;
    bool refuse_shutdown; /* mp_manager_options.refuse_remote_shutdown */
    mp_manager_event_fn on_event;
    void *on_event_arg;
    char *errbuf;
    size_t errbuf_len;
} mp__mgr_server_config;

/* Listens on cfg->address and calls ready(arg, bound_address) once it does (or
 * ready(arg, NULL) with the error code returned when it cannot), then serves until
 * a 'shutdown' request or cfg->stop_fd becomes readable; then closes every
 * connection, joins every thread, drops every object and returns 0. */
MP__HIDDEN int mp__mgr_serve(const mp__mgr_server_config *cfg,
                             void (*ready)(void *arg, const char *address, int rc), void *arg);

#endif /* MPROC_INTERNAL_MGR_H */
