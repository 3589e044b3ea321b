/* served.c — served objects (a type and its self, reference-counted) and the call
 * context a served method gets: who is calling, raising Python exceptions, Python's
 * argument binding, and the wait that wakes when the caller goes.
 *
 * A wait is a pthread condition wait cut into slices of at most WAIT_SLICE_MS;
 * between slices it checks, without blocking, whether the calling peer has closed
 * its socket (POLLRDHUP/POLLHUP/POLLERR, or a zero-byte peek) and whether the
 * server is stopping. A signal of the condition ends a slice at once, so a put
 * wakes a waiting get without delay; only a peer's death is noticed late, by at
 * most one slice. */
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "manager/mgr.h"

#define WAIT_SLICE_MS 20

/* ---- served objects ---- */

int mp_served_wrap(mp_served **out, const mp_manager_type *type, void *self)
{
    if (out == NULL || type == NULL || type->methods == NULL)
        return MP_EINVAL;
    mp_served *o = malloc(sizeof *o);
    if (o == NULL)
        return MP_ENOMEM;
    atomic_init(&o->refs, 1);
    o->type = type;
    o->self = self;
    *out = o;
    return 0;
}

int mp_served_new(mp_served **out, const mp_manager_type *type, const mp_obj *args,
                  const mp_obj *kwds)
{
    if (out == NULL || type == NULL || type->create == NULL || type->methods == NULL)
        return MP_EINVAL;
    if ((args != NULL && !mp_obj_is_tuple(args)) || (kwds != NULL && !mp_obj_is_dict(kwds)))
        return MP_EINVAL;
    mp_obj *a = args ? mp_obj_ref(args) : mp_tuple_new(0);
    mp_obj *k = kwds ? mp_obj_ref(kwds) : mp_dict_new();
    int rc = MP_ENOMEM;
    void *self = NULL;
    if (a != NULL && k != NULL)
        rc = type->create(&self, NULL, a, k);
    mp_obj_unref(a);
    mp_obj_unref(k);
    if (rc < 0)
        return rc;
    rc = mp_served_wrap(out, type, self);
    if (rc < 0 && type->destroy != NULL)
        type->destroy(self);
    return rc;
}

void *mp_served_self(const mp_served *o)
{
    return o ? o->self : NULL;
}

const mp_manager_type *mp_served_type(const mp_served *o)
{
    return o ? o->type : NULL;
}

mp_served *mp_served_ref(mp_served *o)
{
    if (o != NULL)
        atomic_fetch_add(&o->refs, 1);
    return o;
}

void mp_served_unref(mp_served *o)
{
    if (o == NULL || atomic_fetch_sub(&o->refs, 1) != 1)
        return;
    if (o->type->destroy != NULL)
        o->type->destroy(o->self);
    free(o);
}

char *mp__mgr_served_repr(const mp_served *o)
{
    if (o->type->repr != NULL) {
        char *r = o->type->repr(o->self);
        if (r != NULL)
            return r;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "<%s object at %p>", o->type->name, o->self);
    return strdup(buf);
}

const mp_manager_method *mp__mgr_find_method(const mp_manager_type *type, const char *name)
{
    for (const mp_manager_method *m = type->methods; m->name != NULL; m++)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

mp_obj *mp__mgr_exposed(const mp_manager_type *type, const char *const *exposed, int python_version)
{
    mp_obj *l = mp_list_new();
    if (l == NULL)
        return NULL;
    if (exposed != NULL) {
        for (size_t i = 0; exposed[i] != NULL; i++)
            if (mp_list_append(l, mp_str_c(exposed[i])) < 0)
                goto out_fail;
    } else {
        for (const mp_manager_method *m = type->methods; m->name != NULL; m++)
            if (m->since <= python_version && mp_list_append(l, mp_str_c(m->name)) < 0)
                goto out_fail;
    }
    int64_t n = mp_obj_len(l);
    mp_obj *t = mp_tuple_new((size_t)n);
    if (t == NULL)
        goto out_fail;
    for (int64_t i = 0; i < n; i++)
        mp_tuple_set(t, (size_t)i, mp_obj_ref(mp_seq_item(l, (size_t)i)));
    mp_obj_unref(l);
    return t;
out_fail:
    mp_obj_unref(l);
    return NULL;
}

/* ---- the call context ---- */

uint64_t mp_manager_call_conn_id(const mp_manager_call *call)
{
    return call && call->conn ? call->conn->id : 0;
}

const char *mp_manager_call_method(const mp_manager_call *call)
{
    return call && call->method ? call->method : "?";
}

int mp_manager_call_python_version(const mp_manager_call *call)
{
    return call && call->python_version ? call->python_version : 313;
}

/* The flags alone: 1 gone, 0 not known to be gone, -1 no loop slot to tell. */
static int hung_up(mp__mgr_conn *c)
{
    if (atomic_load(&c->gone))
        return 1;
    if (c->hup == NULL)
        return -1;
    if (atomic_load(c->hup) != c->hup_gen)
        return 0;
    atomic_store(&c->gone, true);
    return 1;
}

bool mp__mgr_call_peer_hung_up(mp_manager_call *call)
{
    if (call == NULL || call->conn == NULL)
        return false;
    int h = hung_up(call->conn);
    return h < 0 ? mp_manager_call_peer_gone(call) : h == 1;
}

bool mp_manager_call_peer_gone(mp_manager_call *call)
{
    if (call == NULL || call->conn == NULL)
        return false;
    mp__mgr_conn *c = call->conn;
    if (hung_up(c) == 1)
        return true;
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    int n;
    do
        n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    bool gone = false;
    if (n > 0) {
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
            gone = true;
        } else if (p.revents & POLLIN) {
            char b;
            ssize_t r;
            do
                r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            while (r < 0 && errno == EINTR);
            gone = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        }
    }
    if (gone)
        atomic_store(&c->gone, true);
    return gone;
}

int mp_manager_cond_init(pthread_cond_t *cv)
{
    if (cv == NULL)
        return MP_EINVAL;
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return MP_ENOMEM;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int e = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return e ? -e : 0;
}

int64_t mp_manager_deadline_ns(double timeout_s)
{
    if (!(timeout_s >= 0) || timeout_s > 1e9)
        return -1;
    return (int64_t)mp__now_ns() + (int64_t)(timeout_s * 1e9);
}

int mp_manager_call_wait(mp_manager_call *call, pthread_mutex_t *mu, pthread_cond_t *cv,
                         int64_t deadline_ns)
{
    if (mu == NULL || cv == NULL)
        return MP_EINVAL;
    if (call != NULL && call->server != NULL && mp__mgr_server_stopping(call->server))
        return MP_ECLOSED;
    if (mp_manager_call_peer_gone(call))
        return MP_EEOF;
    int64_t now = (int64_t)mp__now_ns();
    if (deadline_ns >= 0 && now >= deadline_ns)
        return MP_ETIMEDOUT;
    int64_t end = now + WAIT_SLICE_MS * 1000000LL;
    if (call == NULL || call->conn == NULL)
        end = deadline_ns >= 0 ? deadline_ns : now + 3600LL * 1000000000LL;
    else if (deadline_ns >= 0 && deadline_ns < end)
        end = deadline_ns;
    if (call != NULL && call->server != NULL)
        mp__mgr_server_blocking(call->server); /* the loop goes on in another thread */
    struct timespec ts = {.tv_sec = end / 1000000000LL, .tv_nsec = end % 1000000000LL};
    pthread_cond_timedwait(cv, mu, &ts);
    return 0;
}

/* ---- raising ---- */

static void set_outcome(mp_manager_call *call, int kind, mp_obj *exc, char *text)
{
    mp_obj_unref(call->exc);
    free(call->text);
    call->reply_kind = kind;
    call->exc = exc;
    call->text = text;
}

int mp_manager_call_raise(mp_manager_call *call, mp_obj *exc)
{
    if (call == NULL) {
        mp_obj_unref(exc);
        return MP_EREMOTE;
    }
    set_outcome(call, MP__REPLY_ERROR, exc, NULL);
    return MP_EREMOTE;
}

int mp_manager_call_raisef(mp_manager_call *call, const char *module, const char *name,
                           const char *fmt, ...)
{
    char buf[512];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
    }
    return mp_manager_call_raise(call, mp_exception_msg(module, name, fmt ? buf : NULL));
}

int mp_manager_call_traceback(mp_manager_call *call, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (call == NULL)
        return MP_EREMOTE;
    set_outcome(call, MP__REPLY_TRACEBACK, NULL,
                mp__mgr_traceback_text(call->method ? call->method : "serve_client", buf));
    return MP_EREMOTE;
}

int mp_manager_call_return_proxy(mp_manager_call *call, mp_served *obj, const char *typeid)
{
    if (call == NULL || obj == NULL || typeid == NULL)
        return MP_EINVAL;
    char *t = strdup(typeid);
    if (t == NULL)
        return MP_ENOMEM;
    mp_served_unref(call->proxied);
    free(call->proxied_typeid);
    call->proxied = mp_served_ref(obj);
    call->proxied_typeid = t;
    call->reply_kind = MP__REPLY_PROXY;
    return 0;
}

void mp_manager_call_on_undelivered(mp_manager_call *call,
                                    void (*fn)(void *self, const mp_obj *result, void *arg),
                                    void *arg)
{
    if (call == NULL)
        return;
    call->undelivered = fn;
    call->undelivered_arg = arg;
}

void mp__mgr_call_clear(mp_manager_call *call)
{
    mp_obj_unref(call->exc);
    free(call->text);
    mp_served_unref(call->proxied);
    free(call->proxied_typeid);
    call->exc = NULL;
    call->text = NULL;
    call->proxied = NULL;
    call->proxied_typeid = NULL;
    call->reply_kind = MP__REPLY_RETURN;
    call->undelivered = NULL;
    call->undelivered_arg = NULL;
}

/* ---- argument binding ---- */

int mp_manager_call_args(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         const char *const *names, size_t nrequired, const mp_obj **out)
{
    size_t n = 0;
    while (names != NULL && names[n] != NULL)
        n++;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    const char *meth = mp_manager_call_method(call);
    int64_t na = args ? mp_obj_len(args) : 0;
    if (na < 0)
        na = 0;
    if ((size_t)na > n) {
        if (nrequired == n)
            return mp_manager_call_raisef(call, "builtins", "TypeError",
                                          "%s() takes %zu positional argument%s but %lld %s given",
                                          meth, n + 1, n ? "s" : "", (long long)na + 1,
                                          na + 1 == 1 ? "was" : "were");
        return mp_manager_call_raisef(call, "builtins", "TypeError",
                                      "%s() takes from %zu to %zu positional arguments but %lld "
                                      "were given",
                                      meth, nrequired + 1, n + 1, (long long)na + 1);
    }
    for (int64_t i = 0; i < na; i++)
        out[i] = mp_seq_item(args, (size_t)i);
    size_t it = 0;
    mp_obj *k, *v;
    while (kwds != NULL && mp_dict_next(kwds, &it, &k, &v)) {
        const char *ks = mp_str_cstr(k);
        size_t i;
        for (i = 0; i < n; i++)
            if (ks != NULL && strcmp(ks, names[i]) == 0)
                break;
        if (i == n)
            return mp_manager_call_raisef(call, "builtins", "TypeError",
                                          "%s() got an unexpected keyword argument '%s'", meth,
                                          ks ? ks : "?");
        if (out[i] != NULL)
            return mp_manager_call_raisef(call, "builtins", "TypeError",
                                          "%s() got multiple values for argument '%s'", meth, ks);
        out[i] = v;
    }
    size_t missing = 0;
    for (size_t i = 0; i < nrequired; i++)
        missing += out[i] == NULL;
    if (missing > 0) {
        char list[256] = "";
        size_t done = 0;
        for (size_t i = 0; i < nrequired; i++) {
            if (out[i] != NULL)
                continue;
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s'%s'",
                     done == 0             ? ""
                     : done + 1 == missing ? (missing > 2 ? ", and " : " and ")
                                           : ", ",
                     names[i]);
            done++;
        }
        return mp_manager_call_raisef(call, "builtins", "TypeError",
                                      "%s() missing %zu required positional argument%s: %s", meth,
                                      missing, missing > 1 ? "s" : "", list);
    }
    return 0;
}

bool mp_manager_truthy(const mp_obj *o, bool dflt)
{
    if (o == NULL)
        return dflt;
    switch (mp_obj_kind_of(o)) {
    case MP_OBJ_NONE:
        return false;
    case MP_OBJ_BOOL: {
        bool b = false;
        mp_bool_value(o, &b);
        return b;
    }
    case MP_OBJ_INT: {
        int64_t v;
        return mp_int_value(o, &v) != 0 || v != 0; /* out of range: certainly not 0 */
    }
    case MP_OBJ_FLOAT: {
        double d = 0;
        mp_float_value(o, &d);
        return d != 0;
    }
    case MP_OBJ_COMPLEX: {
        double re = 0, im = 0;
        mp_complex_value(o, &re, &im);
        return re != 0 || im != 0;
    }
    case MP_OBJ_OBJECT:
        return true;
    default:
        return mp_obj_len(o) > 0;
    }
}

int mp_manager_call_timeout(mp_manager_call *call, const mp_obj *timeout, int64_t *deadline_ns)
{
    if (deadline_ns == NULL)
        return MP_EINVAL;
    *deadline_ns = -1;
    if (timeout == NULL || mp_obj_is_none(timeout))
        return 0;
    double t;
    if (!(mp_obj_is_number(timeout) && !mp_obj_is_complex(timeout)) ||
        mp_float_value(timeout, &t) < 0) {
        if (mp_obj_is_int(timeout)) /* an int too large for a double: forever */
            return 0;
        return mp_manager_call_raisef(call, "builtins", "TypeError",
                                      "'<' not supported between instances of '%s' and 'int'",
                                      mp_obj_type_name(timeout));
    }
    if (isnan(t))
        t = 0;
    if (t < 0)
        return mp_manager_call_raisef(call, "builtins", "ValueError",
                                      "'timeout' must be a non-negative number");
    *deadline_ns = mp_manager_deadline_ns(t);
    if (*deadline_ns < 0) /* too far away to represent: as good as forever */
        *deadline_ns = -1;
    return 0;
}
