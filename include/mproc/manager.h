/* mproc/manager.h — managers, as CPython's multiprocessing.managers.BaseManager:
 * a server that serves objects (queues, your own C objects) to other processes and
 * machines, and the clients and proxies that call them, wire-compatible with
 * CPython 3.11, 3.12 and 3.13 (C and Python masters and workers mix freely).
 *
 * The master of Python's distributed-process tutorial, in C:
 *
 *     mp_served *task_q, *result_q;
 *     mp_served_queue_new(&task_q, 0);                  // queue.Queue()
 *     mp_served_queue_new(&result_q, 0);
 *     mp_manager *m;
 *     mp_manager_new(&m, "127.0.0.1:5000", "abc", 3, NULL);
 *     mp_manager_register(m, "get_task_queue", &(mp_manager_register_options){.object = task_q});
 *     mp_manager_register(m, "get_result_queue",
 *                         &(mp_manager_register_options){.object = result_q});
 *     mp_manager_start(m);                              // the server runs in a child process
 *     mp_proxy *task;
 *     mp_manager_create(m, "get_task_queue", NULL, NULL, &task);   // m.get_task_queue()
 *     mp_obj *n = mp_int(7);
 *     mp_proxy_put(task, n, -1);                        // task.put(7)
 *     ...
 *     mp_proxy_destroy(task);
 *     mp_manager_shutdown(m);
 *     mp_manager_destroy(m);
 *
 * and a worker:
 *
 *     mp_manager_new(&m, "127.0.0.1:5000", "abc", 3, NULL);
 *     mp_manager_connect(m);
 *     mp_manager_create(m, "get_task_queue", NULL, NULL, &task);
 *     mp_obj *item;
 *     int rc = mp_proxy_get(task, &item, 1000);         // task.get(timeout=1)
 *     if (rc == MP_EEMPTY) ...                          // except queue.Empty
 *
 * Wire protocol (CPython's): after the authkey handshake of mproc/listener.h, every
 * frame is one pickle. Requests are (ident, funcname, args, kwds); replies are
 * ('#RETURN', value), ('#ERROR', exception), ('#TRACEBACK', text) or
 * ('#PROXY', (exposed, Token)). Control requests (ident None) come one per
 * connection; 'accept_connection' turns its connection into a persistent channel
 * for method calls.
 *
 * Beyond CPython, the server:
 * - releases the references a client took over a persistent channel when that
 *   channel closes (a C client of this library takes all its references that way
 *   when it talks to a mproc server, so a C client that dies leaks nothing). A
 *   CPython client takes its references on throwaway connections that carry no
 *   client identity; those are kept until decref or shutdown, as CPython does;
 * - never takes an item (or anything else) for a peer that has gone: a method that
 *   blocks (a queue get) waits with mp_manager_call_wait, which wakes when the
 *   calling connection closes, and a queue item whose reply cannot be delivered is
 *   put back at the front of the queue;
 * - authenticates peers concurrently (at most 64 handshakes at once, more wait in
 *   the backlog) with a deadline per handshake (mp_manager_options), so silent or
 *   garbage peers cannot hold up real ones, and never sends anything to a peer that
 *   failed to authenticate (CPython sends it a traceback with paths);
 * - answers garbage from an authenticated peer with '#TRACEBACK' as CPython does and
 *   carries on; a frame that breaks the framing closes that connection only.
 *
 * Threads: an authenticated connection's first request is read and served by a
 * thread of its own; a persistent channel is then served by the server's event
 * loop: a few worker threads (one per CPU, 2 to 4) wait for ready channels and
 * serve their requests in turn, so many clients cost few wake-ups. A method that
 * blocks must wait with mp_manager_call_wait, which first hands the loop to
 * another worker, so a blocked call never holds up other channels (a method that
 * blocks otherwise, e.g. in sleep or a blocking syscall, delays the channels
 * behind it). A reply the peer does not read at once is finished the same way,
 * bounded: a peer that takes no byte of its reply for 30 s is dropped as dead
 * (its connection closed, as if it had gone: a queue item of that reply goes back
 * to the queue). A hand-off that cannot start a thread (the process has none
 * left) is retried by the accept loop every 50 ms until one starts, so the loop
 * always regains a worker; meanwhile the channels not being served wait.
 * Served methods still run concurrently, on several workers, with no lock held
 * (as in CPython): a served type must lock its own state.
 * The client side is thread-safe: each thread gets its own persistent channel.
 * Fork: a forked child must not use its parent's manager, proxies or channels
 * (open a new manager there); a started server's child process is reaped by
 * mp_manager_shutdown / mp_manager_destroy.
 */
#ifndef MPROC_MANAGER_H
#define MPROC_MANAGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/export.h"
#include "mproc/object.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_manager mp_manager;
typedef struct mp_proxy mp_proxy;
typedef struct mp_served mp_served;
typedef struct mp_manager_call mp_manager_call;

/* ======================================================================== */
/* Served types (server side)                                               */
/* ======================================================================== */

/* One method of a served type. fn runs in the server thread of the calling
 * connection with self (the object), the call context, args (a tuple) and kwds (a
 * dict); both are borrowed and valid during the call.
 * On success fn stores a new reference in *result (mp_none() for None) and returns
 * 0: the reply is ('#RETURN', *result). To raise, fn returns the value of
 * mp_manager_call_raise / mp_manager_call_raisef (reply '#ERROR', exception) or
 * mp_manager_call_traceback (reply '#TRACEBACK', text); any other negative code is
 * answered with a '#TRACEBACK' naming the code. To return a new served object as a
 * proxy, call mp_manager_call_return_proxy and return 0 with *result left NULL. */
typedef int (*mp_manager_method_fn)(void *self, mp_manager_call *call, const mp_obj *args,
                                    const mp_obj *kwds, mp_obj **result);

typedef struct mp_manager_method {
    const char *name;        /* the Python method name, e.g. "get" */
    mp_manager_method_fn fn; /* NULL only in the terminating entry */
    int since;               /* exposed only to Python >= since (e.g. 313); 0: every version */
} mp_manager_method;

/* A served type: how to make, call and free its objects. Static data, never copied. */
typedef struct mp_manager_type {
    /* Python's qualified class name, e.g. "queue.Queue"; used in messages, repr and
     * debug_info. */
    const char *name;
    /* Makes a new object from Python-style (args tuple, kwds dict), both borrowed,
     * and stores it in *self. call is NULL when the object is made outside a request
     * (mp_served_new); with a call, an error may be raised as in a method.
     * Returns 0 or a negative code. NULL: the type cannot be made from arguments
     * (only mp_served_wrap). */
    int (*create)(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds);
    /* Frees an object when its last reference goes. NULL: nothing to free. */
    void (*destroy)(void *self);
    /* The methods, terminated by an entry whose name is NULL. CPython's proxies learn
     * the exposed names from the create reply, in this order (write them sorted, as
     * Python's dir()). */
    const mp_manager_method *methods;
    /* Optional: called once for every object a connection called a method on, when
     * that connection closes (the peer went or the server stops), so the object can
     * drop what the connection owned (locks it holds). conn_id as
     * mp_manager_call_conn_id. Runs in that connection's server thread. */
    void (*conn_closed)(void *self, uint64_t conn_id);
    /* Optional: Python's repr(obj) as a malloc'd string, for the '__repr__' and
     * '__str__' fallbacks and debug_info; NULL means "<name object at 0x...>". */
    char *(*repr)(void *self);
    /* Optional: the object as a value, for the '#GETVALUE' fallback (a new
     * reference, or NULL with an error raised); NULL: '#GETVALUE' is refused. */
    mp_obj *(*getvalue)(void *self, mp_manager_call *call);
} mp_manager_type;

/* Python's queue.Queue(maxsize=0), served with the methods CPython's proxy calls:
 * empty, full, get(block=True, timeout=None), get_nowait, join, put(item, block=True,
 * timeout=None), put_nowait, qsize, shutdown(immediate=False) (exposed to 3.13+),
 * task_done. Raises _queue.Empty, queue.Full, queue.ShutDown and ValueError as
 * Python's queue module does. A get whose caller has gone takes nothing. */
MP_EXTERN extern const mp_manager_type mp_manager_queue_type;

/* A reference-counted served object: a type and its self pointer. */

/* Makes an object of type with type->create(NULL call, args, kwds); args NULL
 * means (), kwds NULL means {}. The caller owns the one reference.
 * Errors: MP_EINVAL (out or type NULL, type->create NULL), MP_ENOMEM, and the
 * create function's own codes. */
MP_EXTERN int mp_served_new(mp_served **out, const mp_manager_type *type, const mp_obj *args,
                            const mp_obj *kwds);

/* Wraps an object you made yourself: self then belongs to the served object and is
 * freed with type->destroy when the last reference goes. Errors: MP_EINVAL, MP_ENOMEM
 * (self is not freed then). */
MP_EXTERN int mp_served_wrap(mp_served **out, const mp_manager_type *type, void *self);

/* queue.Queue(maxsize) (maxsize <= 0: unbounded). Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_served_queue_new(mp_served **out, long maxsize);

/* The self pointer and type of o (borrowed). */
MP_EXTERN void *mp_served_self(const mp_served *o);
MP_EXTERN const mp_manager_type *mp_served_type(const mp_served *o);

/* Adds / drops a reference (atomic; any thread). NULL is accepted. */
MP_EXTERN mp_served *mp_served_ref(mp_served *o);
MP_EXTERN void mp_served_unref(mp_served *o);

/* ---- the call context, for served methods ---- */

/* An id of the calling connection, unique for the life of the server process and
 * never 0; lock ownership should follow it (CPython clients make every call of one
 * thread on one connection). */
MP_EXTERN uint64_t mp_manager_call_conn_id(const mp_manager_call *call);

/* The method being called ("get"), for messages. */
MP_EXTERN const char *mp_manager_call_method(const mp_manager_call *call);

/* The Python version whose behaviour the server follows (311, 312 or 313:
 * mp_manager_options.python_version). */
MP_EXTERN int mp_manager_call_python_version(const mp_manager_call *call);

/* True once the calling peer has closed its connection (or reset it), checked now
 * without blocking. A method must not take anything for a peer that has gone. */
MP_EXTERN bool mp_manager_call_peer_gone(mp_manager_call *call);

/* Waits on cv (with mu locked by the caller, as pthread_cond_timedwait) until it is
 * signalled, the deadline passes, the calling peer goes or the server stops; mu is
 * locked again on return. cv must use CLOCK_MONOTONIC (mp_manager_cond_init).
 * deadline_ns: an absolute CLOCK_MONOTONIC time (mp_manager_deadline_ns), or -1 for
 * no deadline. Returns 0 when woken (recheck your condition: wakeups may be
 * spurious), MP_ETIMEDOUT once the deadline passed, MP_EEOF when the peer has gone,
 * MP_ECLOSED when the server is stopping. A peer's going is noticed within 20 ms.
 * When the calling thread serves the server's channel loop, it hands the loop to
 * another worker before it waits (see Threads above). */
MP_EXTERN int mp_manager_call_wait(mp_manager_call *call, pthread_mutex_t *mu, pthread_cond_t *cv,
                                   int64_t deadline_ns);

/* Initialises cv with CLOCK_MONOTONIC, as mp_manager_call_wait needs. Errors:
 * MP_ENOMEM, MP_EINVAL. */
MP_EXTERN int mp_manager_cond_init(pthread_cond_t *cv);

/* The absolute CLOCK_MONOTONIC deadline timeout_s seconds from now, in ns; -1 when
 * timeout_s is negative (no deadline) or too large to represent. */
MP_EXTERN int64_t mp_manager_deadline_ns(double timeout_s);

/* Raises exc (a new reference, taken also on failure; e.g.
 * mp_exception_msg("builtins", "KeyError", "k")): the reply is ('#ERROR', exc), which
 * a CPython client raises as is. Returns MP_EREMOTE, for `return
 * mp_manager_call_raise(...)`. */
MP_EXTERN int mp_manager_call_raise(mp_manager_call *call, mp_obj *exc);

/* Raises module.name(message) with message formatted as printf (fmt NULL: no
 * arguments, as queue.Empty()). Returns MP_EREMOTE. */
MP_EXTERN int mp_manager_call_raisef(mp_manager_call *call, const char *module, const char *name,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Answers with ('#TRACEBACK', text) instead, text formatted as printf and given
 * CPython's "Traceback (most recent call last):" form; a CPython client raises
 * RemoteError with it. Returns MP_EREMOTE. */
MP_EXTERN int mp_manager_call_traceback(mp_manager_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Answers with ('#PROXY', (exposed, Token(typeid, address, ident))) for obj (a
 * reference is added; the server keeps obj in its table): CPython's
 * method_to_typeid. typeid must be registered. The method then returns 0 and
 * leaves *result NULL. Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_manager_call_return_proxy(mp_manager_call *call, mp_served *obj,
                                           const char *typeid);

/* Called with the result (borrowed) if the reply could not be sent because the peer
 * had gone, so the method can undo what it did (a queue get puts the item back).
 * One hook per call; the last one set wins. Runs in the connection's thread after
 * the method returned; self stays referenced until then. */
MP_EXTERN void
mp_manager_call_on_undelivered(mp_manager_call *call,
                               void (*fn)(void *self, const mp_obj *result, void *arg), void *arg);

/* Python's argument binding for a method def m(names[0], names[1], ...): fills
 * out[i] (borrowed, NULL when not given) from args by position, then from kwds by
 * name. The first nrequired names are required. On a mismatch raises TypeError
 * with Python's message ("get() got an unexpected keyword argument 'x'", "put()
 * missing 1 required positional argument: 'item'", "get() takes from 1 to 3
 * positional arguments but 4 were given") and returns MP_EREMOTE. names is
 * NULL-terminated; out has as many slots. */
MP_EXTERN int mp_manager_call_args(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                                   const char *const *names, size_t nrequired, const mp_obj **out);

/* Python's truth value of o (None, False, 0, 0.0, empty containers are false);
 * NULL gives dflt. */
MP_EXTERN bool mp_manager_truthy(const mp_obj *o, bool dflt);

/* A Python timeout argument (None, int or float seconds, or NULL when absent) as
 * a deadline for mp_manager_call_wait: -1 for None/absent. Raises ValueError
 * ("'timeout' must be a non-negative number") for a negative number and TypeError
 * for another kind, returning MP_EREMOTE. */
MP_EXTERN int mp_manager_call_timeout(mp_manager_call *call, const mp_obj *timeout,
                                      int64_t *deadline_ns);

/* ======================================================================== */
/* The manager: server and client                                           */
/* ======================================================================== */

/* ---- server events ---- */

typedef enum mp_manager_event_kind {
    /* The server listens (address: the bound address). Once, first. */
    MP_MANAGER_EVENT_LISTENING = 1,
    /* A peer passed the authkey handshake and got a connection (conn_id, peer). */
    MP_MANAGER_EVENT_ACCEPTED,
    /* A peer was dropped before it authenticated (peer, reason: a wrong digest, a
     * broken handshake frame, "handshake timed out after 5000 ms"); it was sent
     * nothing more. */
    MP_MANAGER_EVENT_AUTH_FAILED,
    /* A connection ended (conn_id, peer, channel, duration_ms): the peer closed it,
     * broke the framing, or the server is stopping. Every ACCEPTED gets one. */
    MP_MANAGER_EVENT_CLOSED,
    /* A 'shutdown' request was refused (refuse_remote_shutdown; conn_id, peer). */
    MP_MANAGER_EVENT_SHUTDOWN_REFUSED,
    /* The server stops (stop: why; conn_id and peer of the requester for
     * MP_MANAGER_STOP_REMOTE). Sent once, before the connections still open are
     * closed (their CLOSED events follow). */
    MP_MANAGER_EVENT_SHUTDOWN,
    /* An authenticated peer was closed at once, unserved (peer, reason: the
     * max_connections limit, or no memory or thread for it); no CLOSED follows. */
    MP_MANAGER_EVENT_TURNED_AWAY,
} mp_manager_event_kind;

typedef enum mp_manager_stop_reason {
    MP_MANAGER_STOP_REMOTE = 1, /* a client's 'shutdown' request */
    MP_MANAGER_STOP_API,        /* mp_manager_stop (e.g. from a signal handler) */
    MP_MANAGER_STOP_PARENT,     /* a mp_manager_start server whose starter went away */
    MP_MANAGER_STOP_ERROR,      /* the accept loop failed (reason says how) */
} mp_manager_stop_reason;

typedef struct mp_manager_event {
    mp_manager_event_kind kind;
    uint64_t conn_id;            /* as mp_manager_call_conn_id; 0 when no connection */
    const char *peer;            /* "127.0.0.1:51234", "[::1]:5", "@name"; "" for an unnamed
                                  * Unix socket peer; NULL when no peer. A Unix socket
                                  * peer's name is whatever it bound its own socket to,
                                  * before authenticating: any bytes but NUL (newlines,
                                  * escapes), so escape it before logging it */
    const char *address;         /* LISTENING: the bound address; otherwise NULL */
    const char *reason;          /* AUTH_FAILED, TURNED_AWAY, SHUTDOWN: a message, else NULL */
    mp_manager_stop_reason stop; /* SHUTDOWN: why; otherwise 0 */
    bool channel;                /* CLOSED: the connection was a persistent channel
                                  * ('accept_connection'), not a one-request connection */
    int64_t duration_ms;         /* CLOSED: how long it was open */
    size_t connections;          /* connections open after this event */
} mp_manager_event;

/* A server's event hook (mp_manager_options.on_event). ev and its strings are
 * borrowed for the call.
 * Thread context: LISTENING, ACCEPTED, AUTH_FAILED and SHUTDOWN are called from the
 * thread running the server's accept loop (the mp_manager_serve_forever caller, or
 * the child process of mp_manager_start, where arg is the child's copy); CLOSED and
 * SHUTDOWN_REFUSED from the server thread serving the connection at the time (its
 * first thread, or a worker of the channel loop), and the CLOSED of channels still
 * open at a stop from the accept-loop thread, after SHUTDOWN. So calls may come
 * from several threads at once: the hook must be thread-safe. It must not block
 * long (while an accept-loop event runs, no peer is accepted; while a worker's
 * CLOSED runs, the channels it would serve next wait) and must not call back into
 * the server or its manager, except
 * mp_manager_stop, which is safe anywhere. AUTH_FAILED runs with the listener's
 * lock held. */
typedef void (*mp_manager_event_fn)(const mp_manager_event *ev, void *arg);

typedef struct mp_manager_options {
    /* The CPython version the server imitates where they differ: the exposed lists
     * (3.13 adds Queue.shutdown). 311, 312 or 313; 0: 313. */
    int python_version;
    /* Server: deadline of each peer's handshake; 0: MP_HANDSHAKE_TIMEOUT_DEFAULT_MS. */
    int handshake_timeout_ms;
    /* Server: authenticated connections served at once; more are closed on arrival.
     * 0: 1024. */
    int max_connections;
    /* Server: the largest request accepted (bytes); a larger one closes that
     * connection. 0: 256 MiB. */
    size_t max_message;
    /* Server: answer a client's 'shutdown' control request as CPython's server
     * answers a request it does not serve, ('#TRACEBACK', "... AssertionError:
     * 'shutdown' unrecognized ..."), which a CPython client raises as RemoteError,
     * and keep serving; stop the server with mp_manager_stop instead. A C client's
     * mp_manager_shutdown then returns MP_EREMOTE (a mp_manager_start server is
     * still stopped by its starter: see mp_manager_shutdown). */
    bool refuse_remote_shutdown;
    /* Server: called for connections, authentication failures and the stop (see
     * mp_manager_event_fn for the thread rules); NULL: none. */
    mp_manager_event_fn on_event;
    void *on_event_arg;
    /* Client: how long a reply may take beyond the operation's own timeout (a
     * get's), and the limit for calls without one. It also bounds sending a request
     * (a server that does not read it) and the rest of a reply that has begun (one
     * that stops half way): a call ends with MP_ETIMEDOUT then, whatever its own
     * timeout. 0: 30000; -1: no limit (a call then ends when the server dies). */
    int call_timeout_ms;
    /* Client: connect deadline of each connection; 0: the listener.h default. */
    int connect_timeout_ms;
    /* Optional: a message for failures of mp_manager_new / start / connect. */
    char *errbuf;
    size_t errbuf_len;
} mp_manager_options;

/* Makes a manager for address ("host:port", "[v6]:port", a Unix path with '/', or
 * "@abstract", as mproc/listener.h; port 0 lets start pick a free port) and authkey
 * (authkey_len bytes, copied; NULL: 32 random bytes, usable only by this process
 * and its children, as CPython's current_process().authkey). Nothing is opened yet.
 * opt may be NULL. Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_manager_new(mp_manager **out, const char *address, const void *authkey,
                             size_t authkey_len, const mp_manager_options *opt);

/* Server side: BaseManager.register(typeid, callable, exposed). Exactly one of
 * type (every create makes a new object with type->create(args, kwds)), object
 * (every create returns this object: `callable=lambda: q`; a reference is kept
 * until destroy) or callable (your function makes or finds the object and stores a
 * new reference in *out, or raises as a method does) is set. exposed, when not NULL,
 * is a NULL-terminated list of the method names exposed (default: the type's, for
 * the server's Python version). opt NULL (client side, `register('get_task_queue')`)
 * only records the name; a client may call any typeid without registering it.
 * Register before start / serve_forever. Errors: MP_EINVAL (bad typeid or options,
 * two of type/object/callable), MP_EEXIST (typeid already registered), MP_EBUSY
 * (the server is running), MP_ENOMEM. */
typedef int (*mp_manager_callable)(void *arg, mp_manager_call *call, const mp_obj *args,
                                   const mp_obj *kwds, mp_served **out);
typedef struct mp_manager_register_options {
    const mp_manager_type *type;
    mp_served *object;
    mp_manager_callable callable;
    void *callable_arg;
    const char *const *exposed;
} mp_manager_register_options;
MP_EXTERN int mp_manager_register(mp_manager *m, const char *typeid,
                                  const mp_manager_register_options *opt);

/* BaseManager.start(): runs the server in a child process (forked, with the
 * registry as it is now) and returns once it listens, with mp_manager_address
 * giving the bound address (port 0 resolved). m is then also a client of that
 * server: mp_manager_create connects on first use. The server child also stops
 * when this process dies (it watches a pipe), so it never outlives its starter.
 * Errors: MP_EALREADY (started or connected), MP_EADDRINUSE and the other
 * mp_listener_new codes (errbuf says more), MP_ETIMEDOUT (the child did not report
 * within 10 s), MP_ESRCH (it died first), errors of mp_process_start. */
MP_EXTERN int mp_manager_start(mp_manager *m);

/* get_server().serve_forever(): runs the server in the calling thread until a
 * client sends 'shutdown' or mp_manager_stop is called, then closes every
 * connection, joins the server's threads, releases every served object and returns
 * 0. Errors: MP_EALREADY (already serving or started), the mp_listener_new codes. */
MP_EXTERN int mp_manager_serve_forever(mp_manager *m);

/* Stops the server this process runs for m: makes a serve_forever running in
 * another thread return, or, called in the child process of mp_manager_start
 * (from the on_event hook, with the child's copy of m as its arg), makes that
 * child's server stop and the child exit (the SHUTDOWN event says
 * MP_MANAGER_STOP_API). Async-signal-safe: it writes to a pipe. A stop made while
 * no serve_forever runs makes the next one return at once. In the process that
 * called mp_manager_start it does not reach the child's server: stop that with
 * mp_manager_shutdown. Errors: MP_EINVAL. */
MP_EXTERN int mp_manager_stop(mp_manager *m);

/* The server's address: after start, the bound one; during serve_forever, the
 * bound one; otherwise the one given to mp_manager_new. Owned by m. */
MP_EXTERN const char *mp_manager_address(const mp_manager *m);

/* The server's child process after mp_manager_start (CPython's manager._process),
 * owned by m, or NULL. For watching or, in tests, killing it; m reaps it. */
MP_EXTERN mp_process *mp_manager_process(const mp_manager *m);

/* Client side: BaseManager.connect(): opens this thread's persistent channel to the
 * server (authenticating) and checks that it answers. Errors: MP_EALREADY,
 * MP_ECONNREFUSED, MP_EAUTH (wrong authkey), MP_ETIMEDOUT, MP_EEOF, MP_ECONNRESET,
 * the other mp_client codes. */
MP_EXTERN int mp_manager_connect(mp_manager *m);

/* BaseManager.shutdown() (or a client's `m._Client(...)` 'shutdown' request): asks the
 * server to stop. After mp_manager_start, also waits up to 1 s for the child to
 * exit, then terminates it (and kills it after another second), as CPython's
 * finalizer; a child that refused the request (refuse_remote_shutdown) is
 * terminated at once, and 0 is returned. Proxies of m fail with MP_EEOF /
 * MP_ECONNRESET afterwards; a call in flight on another thread at that moment
 * ends at once with MP_EEOF / MP_ECONNRESET / MP_EPIPE (its channel is freed only
 * after it has returned).
 * Errors: MP_ENOTSTARTED (neither started nor connected), MP_EREMOTE (a connected
 * server refused: refuse_remote_shutdown; it goes on serving), the mp_client
 * codes. */
MP_EXTERN int mp_manager_shutdown(mp_manager *m);

/* Control requests, with CPython's results: number_of_objects (the server's table
 * size) and debug_info (a malloc'd string; free it). Errors: MP_ENOTSTARTED,
 * MP_EREMOTE, the mp_client codes. */
MP_EXTERN int mp_manager_number_of_objects(mp_manager *m, long *out);
MP_EXTERN int mp_manager_debug_info(mp_manager *m, char **out);

/* Closes every channel, shuts down a server started by mp_manager_start if still
 * running (as mp_manager_shutdown), drops registered objects and frees m. Proxies
 * of m must be destroyed first. NULL is accepted. */
MP_EXTERN void mp_manager_destroy(mp_manager *m);

/* ======================================================================== */
/* Proxies (client side)                                                    */
/* ======================================================================== */

/* Python's m.<typeid>(*args, **kwds): asks the server to create (or find) the object
 * registered as typeid and stores a proxy for it in *out (destroy it with
 * mp_proxy_destroy). args (a tuple) and kwds (a dict) may be NULL. Connects first
 * if m was neither started nor connected.
 * Errors: MP_EREMOTE (the server raised, e.g. unknown typeid: see
 * mp_manager_remote_error), MP_EINVAL, MP_ENOMEM, and the call errors below. */
MP_EXTERN int mp_manager_create(mp_manager *m, const char *typeid, const mp_obj *args,
                                const mp_obj *kwds, mp_proxy **out);

/* proxy._callmethod(method, args, kwds): calls method on the served object and
 * stores the returned value (a new reference) in *result (result may be NULL to
 * drop it). args/kwds may be NULL. timeout_ms bounds the wait for the reply (-1:
 * as long as it takes; 0: mp_manager_options.call_timeout_ms); sending the request
 * and receiving the rest of a reply that has begun are also bounded by
 * call_timeout_ms. A call whose request or reply does not get through in time
 * closes this thread's channel (the next call opens a new one).
 * Thread-safe: calls from different threads use different channels.
 * Errors: MP_EEMPTY (the server raised queue.Empty), MP_EFULL (queue.Full),
 * MP_EREMOTE (any other exception or traceback: mp_manager_remote_error),
 * MP_ETIMEDOUT (no reply in time), MP_EEOF / MP_ECONNRESET / MP_EPIPE (the server
 * went away), MP_ECONNREFUSED (it is not there), MP_EPROTO (a reply that is not one),
 * MP_EINVAL, MP_ENOMEM. A '#PROXY' reply gives the (exposed, Token) tuple in *result
 * and returns 1; use mp_proxy_call_proxy for a proxy. */
MP_EXTERN int mp_proxy_call(mp_proxy *p, const char *method, const mp_obj *args, const mp_obj *kwds,
                            int timeout_ms, mp_obj **result);

/* As mp_proxy_call for a method that returns a proxy (CPython's method_to_typeid):
 * stores a new proxy in *out. Errors: those of mp_proxy_call, MP_EPROTO (the
 * reply was not '#PROXY'). */
MP_EXTERN int mp_proxy_call_proxy(mp_proxy *p, const char *method, const mp_obj *args,
                                  const mp_obj *kwds, int timeout_ms, mp_proxy **out);

/* Queue shortcuts. put: queue.put(item, timeout=timeout_ms/1000) (-1: block forever,
 * 0: put_nowait); the caller keeps item. get: queue.get(timeout=...) likewise; the
 * item is a new reference in *item. The reply may take timeout_ms plus
 * call_timeout_ms. Errors: MP_EFULL / MP_EEMPTY after the timeout, and those of
 * mp_proxy_call. */
MP_EXTERN int mp_proxy_put(mp_proxy *p, const mp_obj *item, int timeout_ms);
MP_EXTERN int mp_proxy_get(mp_proxy *p, mp_obj **item, int timeout_ms);
/* queue.qsize(), as a count (>= 0) or a negative code. */
MP_EXTERN long mp_proxy_qsize(mp_proxy *p);

/* The proxy's typeid, the server's ident of the object, and whether the server
 * exposes method to it. Strings owned by p. */
MP_EXTERN const char *mp_proxy_typeid(const mp_proxy *p);
MP_EXTERN const char *mp_proxy_ident(const mp_proxy *p);
MP_EXTERN bool mp_proxy_exposes(const mp_proxy *p, const char *method);

/* Releases the proxy's reference on the server (decref, best effort: a server that
 * has gone is not an error) and frees p. NULL is accepted. */
MP_EXTERN void mp_proxy_destroy(mp_proxy *p);

/* The last remote error of the calling thread, from the most recent call that
 * returned MP_EREMOTE (or MP_EEMPTY / MP_EFULL): *exc the exception object of an
 * '#ERROR' reply (NULL for '#TRACEBACK'), *text the '#TRACEBACK' text or the
 * exception's repr. Both borrowed, valid until the thread's next manager call;
 * either pointer may be NULL. Returns 0, or MP_ENOENT when there is none. */
MP_EXTERN int mp_manager_remote_error(const mp_obj **exc, const char **text);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_MANAGER_H */
