/* server.c — the manager server: CPython's managers.Server, in C.
 *
 * Threads: the thread that calls mp__mgr_serve runs the accept loop; the
 * listener (mproc/listener.h) authenticates peers concurrently, each with its own
 * handshake deadline, so silent or garbage peers never hold up real ones and
 * nothing is ever sent to a peer that failed to authenticate. Every authenticated
 * connection starts in a worker thread of its own (as CPython's thread per
 * connection): it reads one control request and closes, or, after
 * 'accept_connection', goes to the channel loop (below), where a few workers
 * serve every channel's method calls. Served methods run concurrently, unlocked,
 * as in CPython.
 *
 * Lock: s->lock guards the object table, the connection list and every channel's
 * owned references (s->wmu, a leaf lock, the worker list). It is never held while a method runs,
 * while sending or while a served object is destroyed. s->lmu guards the loop's leadership
 * (leaders, idle workers, handed-off events).
 *
 * Lifetimes: no worker closes a connection's descriptor; the one that ends a
 * connection marks it done and wakes the accept loop, which then closes and frees
 * it (and joins the workers that have ended). So while the connection is on the
 * list, its fd is valid, and the stop path may shutdown() every listed fd under
 * the lock to wake threads blocked in a receive or a send.
 *
 * Stop: a 'shutdown' request (or the config's stop_fd) sets stopping; the accept
 * loop closes the listener, shuts every connection's socket down, wakes the loop,
 * waits that are in progress see stopping within one slice (served.c), every
 * worker is joined, the channels still open are ended (their CLOSED events come
 * from the accept loop's thread), and the table's objects are released. */
#include <assert.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "manager/mgr.h"
#include "manager/table.h"
#include "mproc/listener.h"
#include "mproc/pickle.h"
#include "net/net.h"
#include "queue/conn.h"

#define THREAD_STACK (256 * 1024)
#define LOOP_BATCH 64 /* events a leader takes per epoll_wait */
#define MAX_LEADERS 4 /* workers leading at once: the online CPUs, 2 to 4 */
/* Events that the leaders' batches and the handed-off array hold together, at
 * most (see lead: every leader reserves its batch's room here first). */
#define PEND_MAX (MAX_LEADERS * LOOP_BATCH)
#define RETRY_MS 50 /* while a worker is wanted, the accept loop tries again this often */

struct mp_mgr_server {
    const mp__mgr_server_config *cfg;
    mp_listener *l;
    const char *address;
    pthread_mutex_t lock;
    mp__mgr_table table;
    mp__mgr_conn *conns;
    size_t nconns;
    uint64_t next_id;
    _Atomic bool stopping;
    int wake[2]; /* written when a thread ends or a shutdown arrives */
    /* For the on_event hook: connections open, and who asked to stop (first wins;
     * under lock). */
    _Atomic size_t nlive;
    mp_manager_stop_reason stop_reason;
    uint64_t stop_conn;
    char stop_peer[MP__ADDR_TEXT_MAX];
    char stop_text[128];
    /* The channel loop (see "the channel loop" below): its epoll set, the eventfd
     * that stops it, a slot per connection allowed, and every worker thread. */
    int ep, loop_stop, loop_kick;
    struct loop_slot *slots;
    size_t nslots;
    struct loop_worker *workers; /* under wmu */
    /* A leaf lock for the worker list alone: a handoff starts a worker while the
     * blocking call holds its object's mutex, and debug_info takes objects' mutexes
     * (repr) under s->lock, so starting a worker must not take s->lock. */
    pthread_mutex_t wmu;
    pthread_mutex_t lmu; /* guards what follows */
    pthread_cond_t lcv;  /* idle workers wait here for the leadership */
    size_t nleaders;     /* workers leading ... */
    size_t max_leaders;  /* ... at most (fixed at the start) */
    size_t nidle;
    /* Events leaders handed off unserved (npend), and the room that leaders hold
     * reserved for their batches (held): npend + held <= PEND_MAX always, as a
     * leader reserves its batch before epoll_wait fills it and a hand-off moves
     * what is left of a batch (less than its reservation) from held to pend. So
     * no hand-off can find pend full. */
    struct epoll_event pend[PEND_MAX];
    size_t npend;
    size_t held;
    /* A hand-off could not start the worker that was to lead in its place: the
     * accept loop starts one (every RETRY_MS until one starts), so the loop
     * always regains a leader while calls block. */
    _Atomic bool want_worker;
};

bool (*_Atomic mp__mgr_worker_start_fault)(int kind, size_t leaders);
_Atomic int mp__mgr_send_stall_ms;

bool mp__mgr_server_stopping(const struct mp_mgr_server *s)
{
    return atomic_load(&((struct mp_mgr_server *)s)->stopping);
}

static void wake_loop(struct mp_mgr_server *s)
{
    char b = 1;
    ssize_t r;
    do
        r = write(s->wake[1], &b, 1);
    while (r < 0 && errno == EINTR);
}

/* ---- events (mp_manager_options.on_event) ---- */

static void emit(struct mp_mgr_server *s, mp_manager_event ev)
{
    if (s->cfg->on_event == NULL)
        return;
    ev.connections = atomic_load(&s->nlive);
    s->cfg->on_event(&ev, s->cfg->on_event_arg);
}

/* The peer of fd as text into text (MP__ADDR_TEXT_MAX bytes; "" when nobody
 * listens to events). */
static void peer_text(struct mp_mgr_server *s, int fd, char *text)
{
    text[0] = '\0';
    if (s->cfg->on_event == NULL)
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        mp__addr_format((struct sockaddr *)&ss, len < sizeof ss ? len : sizeof ss, text);
}

static void on_reject(void *arg, const char *peer, const char *reason)
{
    emit(arg,
         (mp_manager_event){.kind = MP_MANAGER_EVENT_AUTH_FAILED, .peer = peer, .reason = reason});
}

/* An authenticated peer the listener had no memory to make a connection for. */
static void on_turn_away(void *arg, const char *peer, const char *reason)
{
    emit(arg,
         (mp_manager_event){.kind = MP_MANAGER_EVENT_TURNED_AWAY, .peer = peer, .reason = reason});
}

/* Records why the server stops (the first reason wins) and makes the loop stop. */
static void request_stop(struct mp_mgr_server *s, mp_manager_stop_reason why, mp__mgr_conn *c,
                         const char *text)
{
    pthread_mutex_lock(&s->lock);
    if (s->stop_reason == 0) {
        s->stop_reason = why;
        s->stop_conn = c ? c->id : 0;
        snprintf(s->stop_peer, sizeof s->stop_peer, "%s", c ? c->peer : "");
        snprintf(s->stop_text, sizeof s->stop_text, "%s", text);
    }
    pthread_mutex_unlock(&s->lock);
    atomic_store(&s->stopping, true);
}

/* ---- replies ---- */

/* The bytes fd's peer has not taken yet (its send queue: SIOCOUTQ, for TCP and
 * Unix stream sockets alike), or -1 when the kernel cannot tell. */
static int outq(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

static int conn_send(struct mp_mgr_server *s, mp__mgr_conn *c, const void *buf, size_t len);

static int send_reply(mp__mgr_conn *c, const char *kind, const mp_obj *result)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = mp__mgr_reply_encode(kind, result, &buf, &len);
    if (rc < 0) {
        /* CPython: send(('#UNSERIALIZABLE', format_exc())). */
        char *tb = mp__mgr_traceback_text("serve_client", "ValueError: the result could not be "
                                                          "pickled");
        mp_obj *t = tb ? mp_str_c(tb) : NULL;
        free(tb);
        rc = t ? mp__mgr_reply_encode("#UNSERIALIZABLE", t, &buf, &len) : MP_ENOMEM;
        mp_obj_unref(t);
        if (rc < 0)
            return rc;
    }
    rc = conn_send(c->server, c, buf, len);
    free(buf);
    return rc;
}

static int send_traceback(mp__mgr_conn *c, const char *where, const char *line)
{
    char *tb = mp__mgr_traceback_text(where, line);
    mp_obj *t = tb ? mp_str_c(tb) : NULL;
    free(tb);
    if (t == NULL)
        return MP_ENOMEM;
    int rc = send_reply(c, "#TRACEBACK", t);
    mp_obj_unref(t);
    return rc;
}

static int send_tracebackf(mp__mgr_conn *c, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int send_tracebackf(mp__mgr_conn *c, const char *where, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return send_traceback(c, where, line);
}

/* ---- control requests ---- */

static const mp__mgr_typeid *find_typeid(struct mp_mgr_server *s, const char *typeid)
{
    for (size_t i = 0; i < s->cfg->ntypes; i++)
        if (strcmp(s->cfg->types[i].typeid, typeid) == 0)
            return &s->cfg->types[i];
    return NULL;
}

static void release_object(mp_served *obj)
{
    mp_served_unref(obj);
}

/* Adds one reference to ident (owned by c when c is a channel). Locked. */
static int incref_locked(struct mp_mgr_server *s, mp__mgr_conn *c, mp__mgr_entry *e)
{
    if (c->channel && mp__mgr_owned_add(c, e->ident, 1) < 0)
        return MP_ENOMEM;
    e->refcount++;
    (void)s;
    return 0;
}

/* Sends the reply of a method or control function that ran with call. */
static int send_outcome(mp__mgr_conn *c, mp_manager_call *call, int rc, mp_obj *result,
                        const char *where)
{
    if (call->reply_kind == MP__REPLY_ERROR && call->exc != NULL)
        return send_reply(c, "#ERROR", call->exc);
    if (call->reply_kind == MP__REPLY_TRACEBACK && call->text != NULL) {
        mp_obj *t = mp_str_c(call->text);
        int r = t ? send_reply(c, "#TRACEBACK", t) : MP_ENOMEM;
        mp_obj_unref(t);
        return r;
    }
    if (rc == MP_EREMOTE) /* raised, but the exception could not be made */
        return send_traceback(c, where, "MemoryError");
    if (rc < 0)
        return send_tracebackf(c, where, "OSError: [mproc %s] %s", mp_err_name(rc),
                               mp_strerror(rc));
    return send_reply(c, "#RETURN", result);
}

static int do_create(struct mp_mgr_server *s, mp__mgr_conn *c, const mp__mgr_request *req)
{
    int64_t na = mp_obj_len(req->args);
    const char *typeid = na > 0 ? mp_str_cstr(mp_seq_item(req->args, 0)) : NULL;
    if (na < 1)
        return send_traceback(c, "_handle_request",
                              "TypeError: Server.create() missing 1 required positional "
                              "argument: 'typeid'");
    const mp__mgr_typeid *t = typeid ? find_typeid(s, typeid) : NULL;
    if (t == NULL || (t->type == NULL && t->object == NULL && t->callable == NULL)) {
        char *r = mp_obj_repr(mp_seq_item(req->args, 0));
        int rc = send_tracebackf(c, "create", "KeyError: %.200s", r ? r : "?");
        free(r);
        return rc;
    }
    mp_obj *rest = mp_tuple_new((size_t)(na - 1));
    if (rest == NULL)
        return MP_ENOMEM;
    for (int64_t i = 1; i < na; i++)
        mp_tuple_set(rest, (size_t)(i - 1), mp_obj_ref(mp_seq_item(req->args, (size_t)i)));
    mp_manager_call call = {
        .server = s, .conn = c, .method = "create", .python_version = s->cfg->python_version};
    mp_served *obj = NULL;
    int rc = 0;
    if (t->object != NULL) {
        if (na > 1 || mp_obj_len(req->kwds) > 0)
            rc = mp_manager_call_raisef(&call, "builtins", "TypeError",
                                        "<lambda>() takes 0 positional arguments but %lld were "
                                        "given",
                                        (long long)(na - 1));
        else
            obj = mp_served_ref(t->object);
    } else if (t->callable != NULL) {
        rc = t->callable(t->callable_arg, &call, rest, req->kwds, &obj);
        if (rc >= 0 && obj == NULL)
            rc = MP_EINVAL;
    } else if (t->type != NULL && t->type->create != NULL) {
        void *self = NULL;
        rc = t->type->create(&self, &call, rest, req->kwds);
        if (rc >= 0 && (rc = mp_served_wrap(&obj, t->type, self)) < 0 && t->type->destroy)
            t->type->destroy(self);
    } else {
        rc = MP_ENOSYS;
    }
    mp_obj_unref(rest);
    if (rc < 0 || obj == NULL) {
        /* CPython sends the create's exception as a traceback. */
        if (call.reply_kind == MP__REPLY_ERROR && call.exc != NULL) {
            char *r = mp_obj_repr(call.exc);
            const char *name = mp_object_name(call.exc);
            const mp_obj *a0 = mp_seq_item(mp_object_args(call.exc), 0);
            rc = send_tracebackf(c, "create", "%s: %s", name ? name : "Exception",
                                 mp_str_cstr(a0) ? mp_str_cstr(a0) : (r ? r : ""));
            free(r);
        } else {
            rc = send_outcome(c, &call, rc, NULL, "create");
        }
        mp__mgr_call_clear(&call);
        mp_served_unref(obj);
        return rc;
    }
    mp__mgr_call_clear(&call);
    mp_obj *exposed =
        mp__mgr_exposed(obj->type, (const char *const *)t->exposed, s->cfg->python_version);
    mp_obj *reply = NULL;
    if (exposed != NULL) {
        pthread_mutex_lock(&s->lock);
        mp__mgr_entry *e;
        rc = mp__mgr_table_add(&s->table, obj, mp_obj_ref(exposed), &e);
        if (rc == 0)
            rc = incref_locked(s, c, e);
        if (rc == 0)
            reply = mp_tuple2(mp_str_c(e->ident), mp_obj_ref(exposed));
        pthread_mutex_unlock(&s->lock);
    }
    mp_obj_unref(exposed);
    mp_served_unref(obj);
    if (reply == NULL)
        return send_traceback(c, "create", "MemoryError");
    rc = send_reply(c, "#RETURN", reply);
    mp_obj_unref(reply);
    return rc;
}

static const char *one_str_arg(const mp__mgr_request *req)
{
    return mp_obj_len(req->args) == 1 ? mp_str_cstr(mp_seq_item(req->args, 0)) : NULL;
}

static int do_incref(struct mp_mgr_server *s, mp__mgr_conn *c, const mp__mgr_request *req, bool up)
{
    const char *ident = one_str_arg(req);
    if (mp_obj_len(req->args) != 1 || mp_obj_len(req->kwds) != 0)
        return send_tracebackf(c, "_handle_request",
                               "TypeError: Server.%s() takes 3 positional arguments but %lld "
                               "were given",
                               req->method, (long long)mp_obj_len(req->args) + 2);
    mp_served *drop = NULL;
    long bad = 0;
    bool asserted = false;
    pthread_mutex_lock(&s->lock);
    mp__mgr_entry *e = mp__mgr_table_find(&s->table, ident);
    int rc = 0;
    if (e != NULL && up) {
        rc = incref_locked(s, c, e);
    } else if (e != NULL) {
        if (e->refcount <= 0) {
            bad = e->refcount;
            asserted = true;
        } else {
            e->refcount--;
            if (c->channel)
                mp__mgr_owned_add(c, e->ident, -1);
            if (e->refcount == 0)
                drop = mp__mgr_table_drop(&s->table, e);
        }
    }
    pthread_mutex_unlock(&s->lock);
    release_object(drop);
    if (e == NULL) {
        char *r = mp_obj_repr(mp_seq_item(req->args, 0));
        rc = send_tracebackf(c, req->method, "KeyError: %.200s", r ? r : "?");
        free(r);
        return rc;
    }
    if (asserted)
        return send_tracebackf(c, "decref", "AssertionError: Id %s has refcount %ld, not 1+", ident,
                               bad);
    if (rc < 0)
        return send_traceback(c, req->method, "MemoryError");
    return send_reply(c, "#RETURN", NULL);
}

static int do_get_methods(struct mp_mgr_server *s, mp__mgr_conn *c, const mp__mgr_request *req)
{
    const mp_obj *token = mp_obj_len(req->args) == 1 ? mp_seq_item(req->args, 0) : NULL;
    const mp_obj *state = token ? mp_object_state(token) : NULL;
    const char *ident = state ? mp_str_cstr(mp_seq_item(state, 2)) : NULL;
    mp_obj *exposed = NULL;
    pthread_mutex_lock(&s->lock);
    mp__mgr_entry *e = mp__mgr_table_find(&s->table, ident);
    if (e != NULL)
        exposed = mp_obj_ref(e->exposed);
    pthread_mutex_unlock(&s->lock);
    if (exposed == NULL) {
        if (token == NULL)
            return send_traceback(c, "_handle_request",
                                  "TypeError: Server.get_methods() missing 1 required positional "
                                  "argument: 'token'");
        return send_tracebackf(c, "get_methods", "KeyError: '%.100s'", ident ? ident : "?");
    }
    int rc = send_reply(c, "#RETURN", exposed);
    mp_obj_unref(exposed);
    return rc;
}

static int do_debug_info(struct mp_mgr_server *s, mp__mgr_conn *c)
{
    size_t cap = 256, len = 0;
    char *text = malloc(cap);
    if (text == NULL)
        return MP_ENOMEM;
    text[0] = '\0';
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->table.n; i++) {
        mp__mgr_entry *e = &s->table.entries[i];
        char *r = mp__mgr_served_repr(e->obj);
        char line[256];
        int n = snprintf(line, sizeof line, "%s  %s:       refcount=%ld\n    %.75s", i ? "\n" : "",
                         e->ident, e->refcount, r ? r : "?");
        free(r);
        if (n < 0)
            continue;
        if (len + (size_t)n + 1 > cap) {
            size_t ncap = (len + (size_t)n + 1) * 2;
            char *nt = realloc(text, ncap);
            if (nt == NULL)
                break;
            text = nt;
            cap = ncap;
        }
        memcpy(text + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    pthread_mutex_unlock(&s->lock);
    mp_obj *t = mp_str(text, len);
    free(text);
    int rc = t ? send_reply(c, "#RETURN", t) : MP_ENOMEM;
    mp_obj_unref(t);
    return rc;
}

/* Runs one control request. Returns 1 when the connection must become a channel
 * (accept_connection on a fresh connection), 0 otherwise, or a negative code when
 * the connection is broken. */
static int control(struct mp_mgr_server *s, mp__mgr_conn *c, const mp__mgr_request *req)
{
    const char *f = req->method;
    if (strcmp(f, "dummy") == 0)
        return send_reply(c, "#RETURN", NULL);
    if (strcmp(f, "create") == 0)
        return do_create(s, c, req);
    if (strcmp(f, "incref") == 0)
        return do_incref(s, c, req, true);
    if (strcmp(f, "decref") == 0)
        return do_incref(s, c, req, false);
    if (strcmp(f, "accept_connection") == 0) {
        int rc = send_reply(c, "#RETURN", NULL);
        return rc < 0 ? rc : c->channel ? 0 : 1;
    }
    if (strcmp(f, "get_methods") == 0)
        return do_get_methods(s, c, req);
    if (strcmp(f, "number_of_objects") == 0) {
        pthread_mutex_lock(&s->lock);
        mp_obj *n = mp_int((int64_t)s->table.n);
        pthread_mutex_unlock(&s->lock);
        int rc = send_reply(c, "#RETURN", n);
        mp_obj_unref(n);
        return rc;
    }
    if (strcmp(f, "debug_info") == 0)
        return do_debug_info(s, c);
    if (strcmp(f, "shutdown") == 0 && s->cfg->refuse_shutdown) {
        /* Refused as CPython's _handle_request refuses a name not in Server.public. */
        emit(s, (mp_manager_event){
                    .kind = MP_MANAGER_EVENT_SHUTDOWN_REFUSED, .conn_id = c->id, .peer = c->peer});
        return send_traceback(c, "_handle_request",
                              "AssertionError: 'shutdown' unrecognized (remote shutdown is "
                              "disabled on this server)");
    }
    if (strcmp(f, "shutdown") == 0) {
        /* CPython's shutdown() replies, then _handle_request replies again; both go
         * before the stop, which shuts every connection down. */
        send_reply(c, "#RETURN", NULL);
        send_reply(c, "#RETURN", NULL);
        request_stop(s, MP_MANAGER_STOP_REMOTE, c, "a client's shutdown request");
        wake_loop(s);
        return 0;
    }
    char *r = mp_obj_repr(mp_seq_item(req->root, 1));
    int rc =
        send_tracebackf(c, "_handle_request", "AssertionError: %.200s unrecognized", r ? r : "?");
    free(r);
    return rc;
}

/* ---- method calls ---- */

static void touch(mp__mgr_conn *c, mp_served *obj)
{
    if (obj->type->conn_closed == NULL)
        return;
    for (size_t i = 0; i < c->ntouched; i++)
        if (c->touched[i] == obj)
            return;
    if (c->ntouched == c->captouched) {
        size_t ncap = c->captouched ? c->captouched * 2 : 4;
        mp_served **nt = realloc(c->touched, ncap * sizeof *nt);
        if (nt == NULL)
            return;
        c->touched = nt;
        c->captouched = ncap;
    }
    c->touched[c->ntouched++] = mp_served_ref(obj);
}

static bool exposes(const mp_obj *exposed, const char *name)
{
    int64_t n = mp_obj_len(exposed);
    for (int64_t i = 0; i < n; i++) {
        const char *e = mp_str_cstr(mp_seq_item(exposed, (size_t)i));
        if (e != NULL && strcmp(e, name) == 0)
            return true;
    }
    return false;
}

static int method_call(struct mp_mgr_server *s, mp__mgr_conn *c, const mp__mgr_request *req)
{
    mp_served *obj = NULL;
    mp_obj *exposed = NULL;
    pthread_mutex_lock(&s->lock);
    mp__mgr_entry *e = mp__mgr_table_find(&s->table, req->ident);
    if (e != NULL) {
        obj = mp_served_ref(e->obj);
        exposed = mp_obj_ref(e->exposed);
    }
    pthread_mutex_unlock(&s->lock);
    if (obj == NULL)
        return send_tracebackf(c, "serve_client", "KeyError: '%.100s'", req->ident);

    int rc;
    const mp_manager_method *m = NULL;
    if (!exposes(exposed, req->method)) {
        const char *f = req->method;
        if (strcmp(f, "__repr__") == 0 || strcmp(f, "__str__") == 0) {
            char *r = mp__mgr_served_repr(obj);
            mp_obj *t = r ? mp_str_c(r) : NULL;
            free(r);
            rc = t ? send_reply(c, "#RETURN", t) : send_traceback(c, "serve_client", "MemoryError");
            mp_obj_unref(t);
        } else if (strcmp(f, "#GETVALUE") == 0 && obj->type->getvalue != NULL) {
            mp_manager_call call = {
                .server = s, .conn = c, .method = f, .python_version = s->cfg->python_version};
            mp_obj *v = obj->type->getvalue(obj->self, &call);
            rc = send_outcome(c, &call, v ? 0 : MP_EREMOTE, v, "fallback_getvalue");
            mp_obj_unref(v);
            mp__mgr_call_clear(&call);
        } else {
            char *ex = mp_obj_repr(exposed);
            rc = send_tracebackf(c, "serve_client",
                                 "AttributeError: method '%.100s' of <class '%s'> object is not "
                                 "in exposed=%.300s\n\nDuring handling of the above exception, "
                                 "another exception occurred:\n\nKeyError: '%.100s'",
                                 f, obj->type->name, ex ? ex : "?", f);
            free(ex);
        }
        goto out;
    }
    m = mp__mgr_find_method(obj->type, req->method);
    if (m == NULL) {
        rc = send_tracebackf(c, "serve_client",
                             "AttributeError: '%s' object has no attribute '%.100s'",
                             obj->type->name, req->method);
        goto out;
    }
    touch(c, obj);
    mp_manager_call call = {
        .server = s, .conn = c, .method = m->name, .python_version = s->cfg->python_version};
    mp_obj *result = NULL;
    rc = m->fn(obj->self, &call, req->args, req->kwds, &result);
    if (rc >= 0 && call.reply_kind == MP__REPLY_PROXY && call.proxied != NULL) {
        const mp__mgr_typeid *t = find_typeid(s, call.proxied_typeid);
        mp_obj *ex = mp__mgr_exposed(call.proxied->type, t ? (const char *const *)t->exposed : NULL,
                                     s->cfg->python_version);
        mp_obj *reply = NULL;
        if (ex != NULL) {
            pthread_mutex_lock(&s->lock);
            mp__mgr_entry *ne;
            int r = mp__mgr_table_add(&s->table, call.proxied, mp_obj_ref(ex), &ne);
            if (r == 0 && incref_locked(s, c, ne) == 0)
                reply = mp_tuple2(mp_obj_ref(ex),
                                  mp__mgr_token(call.proxied_typeid, s->address, ne->ident));
            pthread_mutex_unlock(&s->lock);
        }
        mp_obj_unref(ex);
        rc = reply ? send_reply(c, "#PROXY", reply) : send_traceback(c, m->name, "MemoryError");
        mp_obj_unref(reply);
    } else {
        if (rc >= 0 && result == NULL)
            result = mp_none();
        rc = send_outcome(c, &call, rc, result, m->name);
        if (rc < 0 && call.undelivered != NULL && result != NULL &&
            call.reply_kind == MP__REPLY_RETURN)
            call.undelivered(obj->self, result, call.undelivered_arg);
    }
    mp_obj_unref(result);
    mp__mgr_call_clear(&call);
out:
    mp_obj_unref(exposed);
    mp_served_unref(obj);
    return rc;
}

/* ---- connections ---- */

typedef enum { RECV_OK, RECV_EOF, RECV_BAD_PICKLE, RECV_BROKEN } recv_status;

/* A connection's first request, read with its mp_conn (blocking, in the
 * connection's first thread). */
static recv_status recv_request(struct mp_mgr_server *s, mp__mgr_conn *c, mp__mgr_request *req,
                                mp_obj_error *err)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = mp_conn_recv_bytes(c->conn, &buf, &len, s->cfg->max_message);
    if (rc == MP_EEOF)
        return RECV_EOF;
    if (rc < 0)
        return RECV_BROKEN;
    rc = mp__mgr_request_decode(buf, len, req, err);
    free(buf);
    if (rc == MP_ENOMEM) {
        snprintf(err->text, sizeof err->text, "MemoryError");
        return RECV_BAD_PICKLE;
    }
    return rc < 0 ? RECV_BAD_PICKLE : RECV_OK;
}

/* Serves one request frame of a channel: 0, or a negative code when the
 * connection is broken. */
static int serve_frame(struct mp_mgr_server *s, mp__mgr_conn *c, const void *buf, size_t len)
{
    mp__mgr_request req;
    mp_obj_error err;
    int rc = mp__mgr_request_decode(buf, len, &req, &err);
    if (rc == MP_ENOMEM)
        snprintf(err.text, sizeof err.text, "MemoryError");
    if (rc < 0)
        return send_traceback(c, "serve_client", err.text);
    if (req.ident == NULL)
        rc = control(s, c, &req); /* mproc's own clients: references owned by c */
    else
        rc = method_call(s, c, &req);
    mp__mgr_request_free(&req);
    return rc < 0 ? rc : 0;
}

static void connection_closed(struct mp_mgr_server *s, mp__mgr_conn *c)
{
    atomic_store(&c->gone, true);
    /* Give back the references this channel owned. */
    mp_served **drop = NULL;
    size_t ndrop = 0;
    pthread_mutex_lock(&s->lock);
    if (c->nowned > 0)
        drop = calloc(c->nowned, sizeof *drop);
    for (size_t i = 0; i < c->nowned; i++) {
        mp__mgr_entry *e = mp__mgr_table_find(&s->table, c->owned[i].ident);
        if (e != NULL) {
            long d = c->owned[i].count < e->refcount ? c->owned[i].count : e->refcount;
            e->refcount -= d;
            if (e->refcount <= 0) {
                mp_served *o = mp__mgr_table_drop(&s->table, e);
                if (drop != NULL)
                    drop[ndrop++] = o;
                else
                    mp_served_unref(o); /* out of memory: destroy under the lock */
            }
        }
        free(c->owned[i].ident);
    }
    c->nowned = 0;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < c->ntouched; i++) {
        c->touched[i]->type->conn_closed(c->touched[i]->self, c->id);
        mp_served_unref(c->touched[i]);
    }
    c->ntouched = 0;
    for (size_t i = 0; i < ndrop; i++)
        release_object(drop[i]);
    free(drop);
}

/* Ends a connection (by whoever serves it, or the stop path once every worker is
 * joined): releases what it owned, emits CLOSED and marks it done, after which
 * only the accept loop's reap touches it. */
static void finish_connection(struct mp_mgr_server *s, mp__mgr_conn *c)
{
    connection_closed(s, c);
    shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_lock(&c->announce); /* after the accept loop's ACCEPTED */
    pthread_mutex_unlock(&c->announce);
    atomic_fetch_sub(&s->nlive, 1);
    if (s->cfg->on_event != NULL)
        emit(s,
             (mp_manager_event){.kind = MP_MANAGER_EVENT_CLOSED,
                                .conn_id = c->id,
                                .peer = c->peer,
                                .channel = c->channel,
                                .duration_ms = ((int64_t)mp__now_ns() - c->opened_ns) / 1000000});
    atomic_store(&c->done, true);
    wake_loop(s);
}

/* ---- the channel loop ----
 *
 * Persistent channels are served by an event loop rather than a thread each: a
 * few workers, the leaders (one per CPU, 2 to 4), wait in epoll_wait on one
 * edge-triggered set and each serves the ready channels it is given in turn, reading with
 * MSG_DONTWAIT into the channel's own buffer (a partial frame waits there for its next bytes) and
 * sending each reply with one MSG_DONTWAIT send. So under load the leader serves many requests per
 * wake-up, and a client's send wakes no thread of the server.
 *
 * A call that blocks (every served wait goes through mp_manager_call_wait, which
 * calls mp__mgr_server_blocking first) or a reply the socket cannot take at once
 * must not stall the other channels: the leader hands off first, passing the
 * events it has not served yet and its leadership to an idle worker (or a new
 * one; when none can start, the accept loop retries every RETRY_MS until one
 * does), and goes on serving that one channel alone, blocking; once the channel
 * has nothing more to read it goes back to the loop, and the thread leads again
 * if fewer than the maximum do, waits as an idle worker (at most IDLE_MAX), or
 * ends. A reply waits for room at most MP__MGR_SEND_STALL_MS without progress;
 * then its peer is taken for dead and the connection ends.
 *
 * Handed-off events: each leader reserves room for its batch in s->held before
 * epoll_wait (or takes its batch from pend, which moves it from npend to held),
 * and a hand-off moves the rest of its batch, fewer events than its reservation,
 * back to pend. So npend + held <= PEND_MAX at every step and a hand-off always
 * fits: no event is ever dropped. (With at most MAX_LEADERS leaders, a leader
 * that finds pend empty always has a whole batch of room.)
 *
 * Ownership: a channel's slot word (generation, state) says whether it is idle
 * or owned (busy) by the thread serving it; a thread owns it by a compare-and-
 * swap from idle, so exactly one thread serves a channel at a time, and an event
 * of an older generation (a channel since closed, its slot reused) is ignored. An
 * event for a busy channel marks it (SLOT_MISSED) and the owner, whose giving it
 * back then fails, serves it again: so no event is lost and no extra read is
 * needed. */

#define IDLE_MAX 4
#define IBUF_MIN 1024               /* a channel's receive buffer at first (kept while small) */
#define IBUF_KEEP 65536             /* a larger one is freed once empty */
#define WAKE_TOKEN UINT64_MAX       /* loop_stop: readable once stopping */
#define KICK_TOKEN (UINT64_MAX - 1) /* loop_kick: events were handed off */

/* SLOT_MISSED: busy, and an event came meanwhile (the owner serves again). */
enum { SLOT_FREE = 0, SLOT_IDLE = 1, SLOT_BUSY = 2, SLOT_MISSED = 3 };

typedef struct loop_slot {
    _Atomic uint64_t word; /* generation << 2 | SLOT_* */
    mp__mgr_conn *conn;
    /* The owner's only: received bytes not yet served, and whether the last read
     * came back short (the socket had nothing more then). */
    char *ibuf;
    size_t ilen, icap;
    bool drained;
    /* The generation whose peer hung up (an EPOLLRDHUP, EPOLLHUP or EPOLLERR
     * event), set by whichever leader saw it: mp__mgr_call_peer_hung_up reads it
     * through the connection's hup. 0 never. */
    _Atomic uint32_t hup;
} loop_slot;

typedef struct loop_worker {
    struct loop_worker *next; /* the server's list, under s->lock */
    struct mp_mgr_server *server;
    pthread_t thread;
    _Atomic bool done;
    mp__mgr_conn *first; /* the connection it starts with, or NULL */
} loop_worker;

static __thread bool t_leader;
static __thread struct epoll_event *t_evs;
static __thread int t_n, t_i;
static __thread size_t t_held; /* this leader's reservation in s->held */

static uint64_t slot_word(uint32_t gen, int state)
{
    return (uint64_t)gen << 2 | (uint64_t)state;
}

static int start_worker(struct mp_mgr_server *s, mp__mgr_conn *first, int kind, size_t leaders);

/* Gives the leadership away (the calling thread is about to block): the events
 * of its batch not served yet go to the next leader. A no-op in a thread that
 * does not lead. */
static void handoff(struct mp_mgr_server *s)
{
    if (!t_leader)
        return;
    t_leader = false;
    pthread_mutex_lock(&s->lmu);
    /* What is left of the batch (fewer than t_held: the event being served is
     * not) moves from this leader's reservation to pend: npend + held shrinks. */
    assert(s->held >= t_held);
    assert(t_n <= t_i + 1 ||
           ((size_t)(t_n - t_i - 1) < t_held && s->npend + (size_t)(t_n - t_i - 1) <= PEND_MAX));
    s->held -= t_held;
    t_held = 0;
    for (int i = t_i + 1; i < t_n; i++)
        s->pend[s->npend++] = t_evs[i];
    t_n = t_i + 1; /* the batch ends with the channel being served */
    s->nleaders--;
    bool spawn = s->nidle == 0, kick = s->npend > 0 && s->nleaders > 0;
    size_t leaders = s->nleaders;
    if (!spawn)
        pthread_cond_signal(&s->lcv);
    pthread_mutex_unlock(&s->lmu);
    if (kick) { /* a leader waiting in epoll_wait takes them at once */
        uint64_t one = 1;
        if (write(s->loop_kick, &one, sizeof one) < 0) {
            /* full counter: it is readable anyway */
        }
    }
    if (spawn && start_worker(s, NULL, MP__MGR_START_HANDOFF, leaders) < 0) {
        /* No thread now: the accept loop tries again until one starts (when every
         * leader has handed off, no other thread would serve the idle channels
         * before a blocked call returns). */
        atomic_store(&s->want_worker, true);
        wake_loop(s);
    }
}

void mp__mgr_server_blocking(struct mp_mgr_server *s)
{
    if (s != NULL)
        handoff(s);
}

/* Sends one reply frame on c: MSG_DONTWAIT first; if the socket cannot take it
 * all, the leadership is handed off and the rest waits for room. */
static int conn_send(struct mp_mgr_server *s, mp__mgr_conn *c, const void *buf, size_t len)
{
    unsigned char small[MP__FRAME_HEADER_MAX + 512];
    unsigned char hdr[MP__FRAME_HEADER_MAX];
    struct iovec iov[2];
    int n;
    if (len <= 512) { /* one contiguous piece is cheaper than gathering two */
        size_t h = mp__frame_header(len, small);
        if (len > 0)
            memcpy(small + h, buf, len);
        iov[0] = (struct iovec){small, h + len};
        n = 1;
    } else {
        iov[0] = (struct iovec){hdr, mp__frame_header(len, hdr)};
        iov[1] = (struct iovec){(void *)buf, len};
        n = 2;
    }
    struct iovec *v = iov;
    while (n > 0) {
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = n == 1 ? send(c->fd, v->iov_base, v->iov_len, MSG_DONTWAIT | MSG_NOSIGNAL)
                           : sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            handoff(s);
            /* The peer must take some of it within the stall limit, or it is
             * dropped as dead (a stop shuts the socket down, which wakes this).
             * Taking is measured by the bytes still queued (SIOCOUTQ), not by
             * POLLOUT alone: a socket turns writable only once a large part of
             * its buffer is free, which a peer that reads slowly but steadily
             * may take longer than the limit to free. */
            int stall = atomic_load(&mp__mgr_send_stall_ms);
            int queued = outq(c->fd), r;
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            while ((r = poll(&p, 1, stall > 0 ? stall : MP__MGR_SEND_STALL_MS)) == 0) {
                int now = outq(c->fd);
                if (now < 0 || queued < 0 || now >= queued)
                    return MP_ETIMEDOUT; /* nothing taken for the whole limit */
                queued = now;
            }
            if (r < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        mp__iov_advance(&v, &n, (size_t)w);
    }
    return 0;
}

/* Whether ibuf holds a whole frame: 1 (*hlen header bytes, then *flen payload
 * bytes), 0 (not yet; *need: bytes the frame needs in all, when known), or a
 * negative code (a frame CPython cannot send, or one over max_message). */
static int frame_in(const loop_slot *sl, size_t max, size_t *hlen, size_t *flen, size_t *need)
{
    *need = 0;
    if (sl->ilen < 4)
        return 0;
    const unsigned char *p = (const unsigned char *)sl->ibuf;
    int32_t n = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    uint64_t len;
    if (n >= 0) {
        *hlen = 4;
        len = (uint64_t)n;
    } else if (n == -1) {
        if (sl->ilen < 12)
            return 0;
        *hlen = 12;
        len = 0;
        for (int i = 4; i < 12; i++)
            len = len << 8 | p[i];
    } else {
        return MP_EPROTO;
    }
    if (len > (uint64_t)INT64_MAX || (max != 0 && len > max))
        return MP_EMSGSIZE;
    *need = *hlen + (size_t)len;
    *flen = (size_t)len;
    return sl->ilen >= *need ? 1 : 0;
}

/* Reads what the socket has and serves every whole frame: 0 when it has nothing
 * more for now, or a negative code (peer gone, framing broken, reply failed). */
static int pump(struct mp_mgr_server *s, loop_slot *sl)
{
    mp__mgr_conn *c = sl->conn;
    for (;;) {
        if (atomic_load(&s->stopping))
            return MP_ECLOSED;
        size_t hlen = 0, flen = 0, need = 0;
        int f = frame_in(sl, s->cfg->max_message, &hlen, &flen, &need);
        if (f < 0)
            return f;
        if (f == 1) {
            /* drained stays: what comes in meanwhile raises a new edge (and a
             * channel given back by a non-leader is checked again). */
            int rc = serve_frame(s, c, sl->ibuf + hlen, flen);
            sl->ilen -= need;
            if (sl->ilen > 0)
                memmove(sl->ibuf, sl->ibuf + need, sl->ilen);
            if (rc < 0)
                return rc;
            continue;
        }
        if (sl->drained)
            return 0;
        if (sl->ilen == sl->icap) { /* grow: double, up to the frame when its size is known */
            size_t cap = sl->icap ? 2 * sl->icap : IBUF_MIN;
            if (need > sl->icap && cap > need)
                cap = need;
            char *nb = realloc(sl->ibuf, cap);
            if (nb == NULL)
                return MP_ENOMEM;
            sl->ibuf = nb;
            sl->icap = cap;
        }
        size_t room = sl->icap - sl->ilen;
        ssize_t r = recv(c->fd, sl->ibuf + sl->ilen, room, MSG_DONTWAIT);
        if (r == 0)
            return MP_EEOF;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                sl->drained = true;
                continue;
            }
            return -errno;
        }
        sl->ilen += (size_t)r;
        sl->drained = (size_t)r < room;
    }
}

static void free_ibuf(loop_slot *sl)
{
    free(sl->ibuf);
    sl->ibuf = NULL;
    sl->ilen = sl->icap = 0;
}

/* Serves the channel of sl, owned (busy) by the calling thread with generation
 * gen, until it has nothing more to read; then gives it back (or ends it). */
static void serve_owned(struct mp_mgr_server *s, loop_slot *sl, uint32_t gen)
{
    for (;;) {
        int rc = pump(s, sl);
        if (rc < 0 && !atomic_load(&s->stopping)) {
            mp__mgr_conn *c = sl->conn;
            epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
            free_ibuf(sl);
            atomic_store(&sl->word, slot_word(gen, SLOT_FREE));
            finish_connection(s, c);
            return;
        }
        /* On a stop the channel stays for the stop path to end. */
        if (sl->ilen == 0 && sl->icap > IBUF_KEEP)
            free_ibuf(sl); /* an idle channel keeps only a small buffer */
        sl->drained = false;
        if (rc < 0) { /* stopping */
            atomic_store(&sl->word, slot_word(gen, SLOT_IDLE));
            return;
        }
        uint64_t busy = slot_word(gen, SLOT_BUSY);
        if (atomic_compare_exchange_strong(&sl->word, &busy, slot_word(gen, SLOT_IDLE)))
            return; /* what comes next raises a new event */
        /* SLOT_MISSED: a leader saw an event while we were busy: look again. */
        atomic_store(&sl->word, slot_word(gen, SLOT_BUSY));
    }
}

/* Puts a fresh channel into the loop (from its first thread). */
static void adopt(struct mp_mgr_server *s, mp__mgr_conn *c)
{
    loop_slot *sl = NULL;
    uint32_t gen = 0;
    size_t idx = 0;
    pthread_mutex_lock(&s->lock);
    for (idx = 0; idx < s->nslots; idx++) {
        uint64_t w = atomic_load(&s->slots[idx].word);
        if ((w & 3) == SLOT_FREE) {
            sl = &s->slots[idx];
            gen = (uint32_t)(w >> 2) + 1;
            atomic_store(&sl->word, slot_word(gen, SLOT_BUSY));
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (sl == NULL) { /* cannot happen: a slot per connection allowed */
        finish_connection(s, c);
        return;
    }
    sl->conn = c;
    sl->drained = false;
    c->hup = &sl->hup;
    c->hup_gen = gen;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)gen << 32 | idx};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        atomic_store(&sl->word, slot_word(gen, SLOT_FREE));
        finish_connection(s, c);
        return;
    }
    serve_owned(s, sl, gen);
}

/* Serves the channel an event names, if no one else does. */
static void loop_ready(struct mp_mgr_server *s, uint64_t d, uint32_t events)
{
    uint32_t idx = (uint32_t)d, gen = (uint32_t)(d >> 32);
    if (idx >= s->nslots)
        return;
    loop_slot *sl = &s->slots[idx];
    uint64_t w = atomic_load(&sl->word);
    /* Told before it is served (and while a call on it runs): a get then takes
     * no item for it without a poll() of its own. */
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && (uint32_t)(w >> 2) == gen)
        atomic_store(&sl->hup, gen);
    while ((uint32_t)(w >> 2) == gen) {
        if ((w & 3) == SLOT_IDLE) {
            if (atomic_compare_exchange_weak(&sl->word, &w, slot_word(gen, SLOT_BUSY))) {
                serve_owned(s, sl, gen);
                return;
            }
        } else if ((w & 3) == SLOT_BUSY) {
            if (atomic_compare_exchange_weak(&sl->word, &w, slot_word(gen, SLOT_MISSED)))
                return; /* its owner looks again before giving it back */
        } else {
            return; /* free, or already marked */
        }
    }
}

/* Leads the loop until the thread hands off (and has served that channel) or the
 * server stops. */
static void lead(struct mp_mgr_server *s)
{
    struct epoll_event evs[LOOP_BATCH];
    t_leader = true;
    t_evs = evs;
    t_n = 0;
    t_held = 0;
    while (t_leader && !atomic_load(&s->stopping)) {
        /* The batch just served gives its room back; the next one is taken from
         * pend, or reserved (up to the room left) before epoll_wait fills it. */
        pthread_mutex_lock(&s->lmu);
        s->held -= t_held;
        int n = s->npend < LOOP_BATCH ? (int)s->npend : LOOP_BATCH;
        s->npend -= (size_t)n;
        memcpy(evs, s->pend + s->npend, (size_t)n * sizeof *evs);
        size_t room = PEND_MAX - s->npend - s->held - (size_t)n;
        t_held = n > 0 ? (size_t)n : room < LOOP_BATCH ? room : LOOP_BATCH;
        s->held += t_held;
        pthread_mutex_unlock(&s->lmu);
        t_n = 0;
        if (n == 0 && t_held == 0) {
            /* No room (cannot happen with at most MAX_LEADERS leaders: pend is
             * empty here and the others hold a batch each): wait for some. */
            poll(NULL, 0, 1);
            continue;
        }
        if (n == 0) {
            n = epoll_wait(s->ep, evs, (int)t_held, -1);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                request_stop(s, MP_MANAGER_STOP_ERROR, NULL, mp_strerror(-errno));
                wake_loop(s);
                break;
            }
        }
        t_n = n;
        for (t_i = 0; t_i < t_n; t_i++)
            if (evs[t_i].data.u64 == KICK_TOKEN) {
                uint64_t v;
                if (read(s->loop_kick, &v, sizeof v) < 0) {
                    /* another leader read it */
                }
            } else if (evs[t_i].data.u64 != WAKE_TOKEN) {
                loop_ready(s, evs[t_i].data.u64, evs[t_i].events);
            }
    }
    if (t_leader) {
        t_leader = false;
        pthread_mutex_lock(&s->lmu);
        s->held -= t_held;
        t_held = 0;
        s->nleaders--;
        pthread_cond_broadcast(&s->lcv);
        pthread_mutex_unlock(&s->lmu);
    }
    t_evs = NULL;
}

/* A worker joins the pool: it leads when no one does, else waits as an idle worker
 * (at most IDLE_MAX) or ends. */
static void pool(struct mp_mgr_server *s)
{
    pthread_mutex_lock(&s->lmu);
    while (!atomic_load(&s->stopping)) {
        if (s->nleaders < s->max_leaders) {
            s->nleaders++;
            pthread_mutex_unlock(&s->lmu);
            lead(s);
            pthread_mutex_lock(&s->lmu);
            continue;
        }
        if (s->nidle >= IDLE_MAX)
            break;
        s->nidle++;
        pthread_cond_wait(&s->lcv, &s->lmu);
        s->nidle--;
    }
    pthread_mutex_unlock(&s->lmu);
}

/* A connection's first request, in its own thread: a one-request connection is
 * served and ended here; a channel goes to the loop. */
static void serve_first(struct mp_mgr_server *s, mp__mgr_conn *c)
{
    mp__mgr_request req;
    mp_obj_error err;
    recv_status st = recv_request(s, c, &req, &err);
    if (st == RECV_BAD_PICKLE) {
        send_traceback(c, "_handle_request", err.text);
    } else if (st == RECV_OK) {
        /* A fresh connection: the ident is ignored, as CPython's _handle_request. */
        int rc = control(s, c, &req);
        mp__mgr_request_free(&req);
        if (rc == 1) {
            c->channel = true;
            /* What the peer sent at once after accept_connection came with it. */
            while (rc >= 0 && !atomic_load(&s->stopping) && mp__conn_has_buffered(c->conn)) {
                void *buf = NULL;
                size_t len = 0;
                rc = mp_conn_recv_bytes(c->conn, &buf, &len, s->cfg->max_message);
                if (rc == 0)
                    rc = serve_frame(s, c, buf, len);
                free(buf);
            }
            if (rc >= 0 && !atomic_load(&s->stopping)) {
                adopt(s, c);
                return;
            }
        }
    }
    finish_connection(s, c);
}

static void *worker_main(void *arg)
{
    loop_worker *w = arg;
    struct mp_mgr_server *s = w->server;
    if (w->first != NULL)
        serve_first(s, w->first);
    pool(s);
    atomic_store(&w->done, true);
    wake_loop(s);
    return NULL;
}

/* Starts a worker thread (serving first first, when not NULL) for kind
 * (MP__MGR_START_*; leaders: the workers leading now, for the test hook): 0 or a
 * negative code. */
static int start_worker(struct mp_mgr_server *s, mp__mgr_conn *first, int kind, size_t leaders)
{
    loop_worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return MP_ENOMEM;
    w->server = s;
    w->first = first;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, THREAD_STACK);
    pthread_mutex_lock(&s->wmu);
    bool (*fault)(int, size_t) = mp__mgr_worker_start_fault;
    int e = fault != NULL && fault(kind, leaders) ? EAGAIN
                                                  : pthread_create(&w->thread, &a, worker_main, w);
    if (e == 0) {
        w->next = s->workers;
        s->workers = w;
    }
    pthread_mutex_unlock(&s->wmu);
    pthread_attr_destroy(&a);
    if (e != 0) {
        free(w);
        return -e;
    }
    return 0;
}

static void free_conn(mp__mgr_conn *c)
{
    mp_conn_destroy(c->conn);
    free(c->owned);
    free(c->touched);
    pthread_mutex_destroy(&c->announce);
    free(c);
}

/* Joins the workers that have ended (all of them when all). */
static void reap_workers(struct mp_mgr_server *s, bool all)
{
    for (;;) {
        loop_worker *done = NULL;
        pthread_mutex_lock(&s->wmu);
        for (loop_worker **p = &s->workers; *p != NULL; p = &(*p)->next) {
            if (all || atomic_load(&(*p)->done)) {
                done = *p;
                *p = done->next;
                break;
            }
        }
        pthread_mutex_unlock(&s->wmu);
        if (done == NULL)
            return;
        pthread_join(done->thread, NULL);
        free(done);
    }
}

/* Frees the connections that are done (all of them when all, once every worker
 * has been joined), and joins the workers that ended. */
static void reap(struct mp_mgr_server *s, bool all)
{
    reap_workers(s, false);
    for (;;) {
        mp__mgr_conn *done = NULL;
        pthread_mutex_lock(&s->lock);
        for (mp__mgr_conn **p = &s->conns; *p != NULL; p = &(*p)->next) {
            if (all || atomic_load(&(*p)->done)) {
                done = *p;
                *p = done->next;
                s->nconns--;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (done == NULL)
            return;
        if (!atomic_load(&done->done))
            finish_connection(s, done); /* a channel idle in the loop at the stop */
        free_conn(done);
    }
}

static void start_connection(struct mp_mgr_server *s, mp_conn *conn)
{
    int max = s->cfg->max_connections > 0 ? s->cfg->max_connections : 1024;
    mp__mgr_conn *c = NULL;
    pthread_mutex_lock(&s->lock);
    bool full = s->nconns >= (size_t)max;
    pthread_mutex_unlock(&s->lock);
    if (full || (c = calloc(1, sizeof *c)) == NULL) {
        char peer[MP__ADDR_TEXT_MAX];
        peer_text(s, mp_conn_fileno(conn), peer);
        char why[64];
        snprintf(why, sizeof why, full ? "max_connections (%d) open" : "out of memory", max);
        emit(s,
             (mp_manager_event){.kind = MP_MANAGER_EVENT_TURNED_AWAY, .peer = peer, .reason = why});
        mp_conn_destroy(conn);
        return;
    }
    pthread_mutex_init(&c->announce, NULL);
    c->server = s;
    c->conn = conn;
    c->fd = mp_conn_fileno(conn);
    c->id = ++s->next_id;
    if (s->cfg->on_event != NULL) {
        peer_text(s, c->fd, c->peer);
        c->opened_ns = (int64_t)mp__now_ns();
    }
    /* Counted before the thread starts; reported once it has started (a connection
     * without a thread is only TURNED_AWAY), with its CLOSED held back until then. */
    atomic_fetch_add(&s->nlive, 1);
    pthread_mutex_lock(&c->announce);
    int e = start_worker(s, c, MP__MGR_START_CONNECTION, 0);
    if (e == 0) {
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        s->conns = c;
        s->nconns++;
        pthread_mutex_unlock(&s->lock);
    }
    if (e != 0) {
        pthread_mutex_unlock(&c->announce);
        atomic_fetch_sub(&s->nlive, 1);
        emit(s, (mp_manager_event){.kind = MP_MANAGER_EVENT_TURNED_AWAY,
                                   .peer = c->peer,
                                   .reason = "no thread for it"});
        free_conn(c);
        return;
    }
    if (s->cfg->on_event != NULL)
        emit(s, (mp_manager_event){
                    .kind = MP_MANAGER_EVENT_ACCEPTED, .conn_id = c->id, .peer = c->peer});
    pthread_mutex_unlock(&c->announce);
}

static void drain(int fd)
{
    char b[64];
    while (read(fd, b, sizeof b) > 0) {
    }
}

/* The loop's epoll set, its stop eventfd and its slots. */
static int loop_init(struct mp_mgr_server *s)
{
    int max = s->cfg->max_connections > 0 ? s->cfg->max_connections : 1024;
    s->slots = calloc((size_t)max, sizeof *s->slots);
    if (s->slots == NULL)
        return MP_ENOMEM;
    s->nslots = (size_t)max;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->max_leaders = cpus < 2 ? 2 : cpus > MAX_LEADERS ? MAX_LEADERS : (size_t)cpus;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->loop_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->loop_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->ep < 0 || s->loop_stop < 0 || s->loop_kick < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    struct epoll_event kick = {.events = EPOLLIN | EPOLLET, .data.u64 = KICK_TOKEN};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->loop_stop, &ev) < 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->loop_kick, &kick) < 0)
        return -errno;
    return 0;
}

int mp__mgr_serve(const mp__mgr_server_config *cfg,
                  void (*ready)(void *arg, const char *address, int rc), void *arg)
{
    struct mp_mgr_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        ready(arg, NULL, MP_ENOMEM);
        return MP_ENOMEM;
    }
    s->cfg = cfg;
    s->wake[0] = s->wake[1] = -1;
    s->ep = s->loop_stop = s->loop_kick = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->lmu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->lcv, NULL);
    int rc = pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) ? -errno : 0;
    if (rc == 0)
        rc = loop_init(s);
    if (rc == 0)
        rc = mp_listener_new(
            &s->l, cfg->address,
            &(mp_listener_options){.backlog = 128,
                                   .authkey = cfg->authkey,
                                   .authkey_len = cfg->authkey_len,
                                   .handshake_timeout_ms = cfg->handshake_timeout_ms,
                                   .errbuf = cfg->errbuf,
                                   .errbuf_len = cfg->errbuf_len,
                                   .on_reject = cfg->on_event ? on_reject : NULL,
                                   .on_turn_away = cfg->on_event ? on_turn_away : NULL,
                                   .on_reject_arg = s});
    if (rc < 0) {
        ready(arg, NULL, rc);
        goto out_free;
    }
    s->address = mp_listener_address(s->l);
    ready(arg, s->address, 0);
    emit(s, (mp_manager_event){.kind = MP_MANAGER_EVENT_LISTENING, .address = s->address});
    int lfd = mp_listener_fileno(s->l);
    while (!atomic_load(&s->stopping)) {
        struct pollfd p[3] = {{.fd = lfd, .events = POLLIN},
                              {.fd = s->wake[0], .events = POLLIN},
                              {.fd = cfg->stop_fd, .events = POLLIN}};
        bool want = atomic_load(&s->want_worker);
        int n = poll(p, cfg->stop_fd >= 0 ? 3 : 2, want ? RETRY_MS : 1000);
        if (n < 0 && errno != EINTR) {
            request_stop(s, MP_MANAGER_STOP_ERROR, NULL, mp_strerror(-errno));
            break;
        }
        if (atomic_load(&s->want_worker) && atomic_exchange(&s->want_worker, false) &&
            !atomic_load(&s->stopping)) {
            /* A hand-off found no thread to lead in its place: one more worker
             * (it leads if too few do, else idles or ends). */
            pthread_mutex_lock(&s->lmu);
            size_t leaders = s->nleaders;
            pthread_mutex_unlock(&s->lmu);
            if (start_worker(s, NULL, MP__MGR_START_RETRY, leaders) < 0)
                atomic_store(&s->want_worker, true);
        }
        if (n <= 0)
            continue;
        if (p[1].revents)
            drain(s->wake[0]);
        if (cfg->stop_fd >= 0 && p[2].revents)
            request_stop(s, cfg->stop_fd_reason ? cfg->stop_fd_reason : MP_MANAGER_STOP_API, NULL,
                         cfg->stop_fd_reason == MP_MANAGER_STOP_PARENT
                             ? "the starting process went away"
                             : "mp_manager_stop");
        reap(s, false);
        if (p[0].revents && !atomic_load(&s->stopping)) {
            mp_conn *conn;
            while (mp_listener_accept(s->l, &conn, 0) == 0)
                start_connection(s, conn);
        }
    }
    atomic_store(&s->stopping, true);
    if (cfg->on_event != NULL) {
        pthread_mutex_lock(&s->lock);
        if (s->stop_reason == 0)
            s->stop_reason = MP_MANAGER_STOP_API;
        mp_manager_event ev = {.kind = MP_MANAGER_EVENT_SHUTDOWN,
                               .stop = s->stop_reason,
                               .conn_id = s->stop_conn,
                               .peer = s->stop_conn ? s->stop_peer : NULL,
                               .reason = s->stop_text[0] ? s->stop_text : "stopped"};
        pthread_mutex_unlock(&s->lock);
        emit(s, ev); /* stop_* no longer change: the first reason won */
    }
    mp_listener_close(s->l);
    pthread_mutex_lock(&s->lock);
    for (mp__mgr_conn *c = s->conns; c != NULL; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    /* Wake the leader and the idle workers; every worker ends. */
    uint64_t one = 1;
    if (write(s->loop_stop, &one, sizeof one) < 0) {
        /* an eventfd write fails only at its maximum count: it is readable then */
    }
    pthread_mutex_lock(&s->lmu);
    pthread_cond_broadcast(&s->lcv);
    pthread_mutex_unlock(&s->lmu);
    reap_workers(s, true);
    reap(s, true);
    rc = 0;
    pthread_mutex_lock(&s->lock);
    mp__mgr_table t = s->table;
    memset(&s->table, 0, sizeof s->table);
    pthread_mutex_unlock(&s->lock);
    mp__mgr_table_clear(&t);
out_free:
    mp_listener_destroy(s->l);
    mp__close_fd(s->wake[0]);
    mp__close_fd(s->wake[1]);
    mp__close_fd(s->ep);
    mp__close_fd(s->loop_stop);
    mp__close_fd(s->loop_kick);
    if (s->slots != NULL)
        for (size_t i = 0; i < s->nslots; i++)
            free(s->slots[i].ibuf);
    free(s->slots);
    pthread_cond_destroy(&s->lcv);
    pthread_mutex_destroy(&s->lmu);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return rc;
}
