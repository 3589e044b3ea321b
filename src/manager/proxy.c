/* proxy.c — proxies: m.<typeid>() (create), calls by name, the queue shortcuts,
 * and the decref on destroy.
 *
 * References: against a mproc server a proxy's reference is taken and given back
 * over the manager's control channel, so the server can release it if this process
 * dies. Against a CPython server the create's own reference becomes the proxy's
 * (CPython's proxies add one with incref and drop the create's with decref, two
 * extra connections for the same net effect), and decref uses a fresh connection,
 * as CPython does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/client.h"

struct mp_proxy {
    struct mp_manager *m;
    char *typeid;
    char *ident;
    mp_obj *exposed; /* tuple of str */
    bool via_ctl;    /* the reference belongs to the control channel */
};

static bool transport_error(int rc)
{
    return rc < 0 && rc != MP_EEMPTY && rc != MP_EFULL && rc != MP_EREMOTE;
}

static int ensure_connected(struct mp_manager *m)
{
    pthread_mutex_lock(&m->connect_lock);
    int rc = m->connected ? 0 : mp__mgr_connect_ctl(m);
    pthread_mutex_unlock(&m->connect_lock);
    return rc;
}

/* A control request that takes or drops a reference: on the control channel when
 * the server is mproc's, else on a fresh connection. *via_ctl says which. */
static int ref_request(struct mp_manager *m, const char *method, const mp_obj *args,
                       const mp_obj *kwds, mp_obj **result, bool *via_ctl)
{
    mp__mgr_chan *ctl = mp__mgr_ctl_acquire(m);
    if (ctl != NULL) {
        *via_ctl = true;
        if (ctl->conn == NULL || mp_conn_closed(ctl->conn)) {
            pthread_mutex_unlock(&ctl->mu);
            return MP_EEOF;
        }
        int rc = mp__mgr_call(m, ctl->conn, NULL, method, args, kwds, 0, result);
        mp__mgr_chan_release(ctl, transport_error(rc));
        return rc;
    }
    *via_ctl = false;
    mp_conn *c;
    int rc = mp__mgr_open(m, &c);
    if (rc < 0)
        return rc;
    rc = mp__mgr_call(m, c, NULL, method, args, kwds, 0, result);
    mp_conn_destroy(c);
    return rc;
}

static int new_proxy(struct mp_manager *m, const char *typeid, const char *ident,
                     const mp_obj *exposed, bool via_ctl, mp_proxy **out)
{
    mp_proxy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    p->m = m;
    p->typeid = strdup(typeid);
    p->ident = strdup(ident);
    p->exposed = mp_obj_ref(exposed);
    p->via_ctl = via_ctl;
    if (p->typeid == NULL || p->ident == NULL) {
        mp_proxy_destroy(p);
        return MP_ENOMEM;
    }
    *out = p;
    return 0;
}

int mp_manager_create(mp_manager *m, const char *typeid, const mp_obj *args, const mp_obj *kwds,
                      mp_proxy **out)
{
    if (m == NULL || typeid == NULL || out == NULL || (args && !mp_obj_is_tuple(args)) ||
        (kwds && !mp_obj_is_dict(kwds)))
        return MP_EINVAL;
    int rc = ensure_connected(m);
    if (rc < 0)
        return rc;
    int64_t na = args ? mp_obj_len(args) : 0;
    mp_obj *full = mp_tuple_new((size_t)na + 1);
    if (full == NULL)
        return MP_ENOMEM;
    mp_tuple_set(full, 0, mp_str_c(typeid));
    for (int64_t i = 0; i < na; i++)
        mp_tuple_set(full, (size_t)i + 1, mp_obj_ref(mp_seq_item(args, (size_t)i)));
    mp_obj *r = NULL;
    bool via_ctl;
    rc = ref_request(m, "create", full, kwds, &r, &via_ctl);
    mp_obj_unref(full);
    if (rc == 0) {
        const char *ident = NULL;
        mp_obj *exposed = NULL;
        if (mp_obj_parse(r, NULL, "(sO)", &ident, &exposed) < 0 || !mp_obj_is_tuple(exposed))
            rc = MP_EPROTO;
        else
            rc = new_proxy(m, typeid, ident, exposed, via_ctl, out);
    } else if (rc > 0) {
        rc = MP_EPROTO;
    }
    mp_obj_unref(r);
    return rc;
}

int mp_proxy_call(mp_proxy *p, const char *method, const mp_obj *args, const mp_obj *kwds,
                  int timeout_ms, mp_obj **result)
{
    if (result != NULL)
        *result = NULL;
    if (p == NULL || method == NULL || timeout_ms < -1 || (args && !mp_obj_is_tuple(args)) ||
        (kwds && !mp_obj_is_dict(kwds)))
        return MP_EINVAL;
    mp__mgr_chan *ch;
    int rc = mp__mgr_chan_acquire(p->m, &ch);
    if (rc < 0)
        return rc;
    rc = mp__mgr_call(p->m, ch->conn, p->ident, method, args, kwds, timeout_ms, result);
    mp__mgr_chan_release(ch, transport_error(rc));
    return rc;
}

/* Moves the reference of a proxy made from a '#PROXY' reply from the calling
 * thread's channel to the control channel (mproc servers only). On failure the
 * reference stays the channel's, as before. */
static void adopt_reference(mp_proxy *p)
{
    pthread_mutex_lock(&p->m->lock);
    bool mproc_server = p->m->mproc_server;
    pthread_mutex_unlock(&p->m->lock);
    if (!mproc_server)
        return;
    mp_obj *args = mp_tuple1(mp_str_c(p->ident));
    bool via_ctl = false;
    if (args != NULL && ref_request(p->m, "incref", args, NULL, NULL, &via_ctl) == 0 && via_ctl) {
        p->via_ctl = true;
        mp__mgr_chan *ch;
        if (mp__mgr_chan_acquire(p->m, &ch) == 0) {
            int rc = mp__mgr_call(p->m, ch->conn, NULL, "decref", args, NULL, 0, NULL);
            mp__mgr_chan_release(ch, transport_error(rc));
        }
    }
    mp_obj_unref(args);
    mp__mgr_set_remote_error(NULL, NULL);
}

int mp_proxy_call_proxy(mp_proxy *p, const char *method, const mp_obj *args, const mp_obj *kwds,
                        int timeout_ms, mp_proxy **out)
{
    if (out == NULL)
        return MP_EINVAL;
    mp_obj *r = NULL;
    int rc = mp_proxy_call(p, method, args, kwds, timeout_ms, &r);
    if (rc == 0)
        rc = MP_EPROTO;
    if (rc == 1) {
        mp_obj *exposed = NULL, *token = NULL;
        const mp_obj *state;
        const char *typeid, *ident;
        if (mp_obj_parse(r, NULL, "(OO)", &exposed, &token) < 0 ||
            (state = mp_object_state(token)) == NULL ||
            (typeid = mp_str_cstr(mp_seq_item(state, 0))) == NULL ||
            (ident = mp_str_cstr(mp_seq_item(state, 2))) == NULL || !mp_obj_is_tuple(exposed))
            rc = MP_EPROTO;
        else
            rc = new_proxy(p->m, typeid, ident, exposed, false, out);
        /* A mproc server took the reference on the calling thread's channel, where
         * it would stay until the thread exits (or a call on the channel times out
         * and closes it under a live proxy). Move it to the control channel, as
         * create's: incref there, then decref on the thread's channel. A CPython
         * server's reference is unowned; its proxy decrefs on a fresh connection. */
        if (rc == 0)
            adopt_reference(*out);
    }
    mp_obj_unref(r);
    return rc;
}

/* The wait for a reply to an operation that itself waits up to timeout_ms. */
static int reply_timeout(const mp_proxy *p, int timeout_ms)
{
    int extra = p->m->opt.call_timeout_ms;
    if (timeout_ms < 0 || extra < 0)
        return -1;
    long long t = (long long)timeout_ms + extra;
    return t > 0x7fffffff ? -1 : (int)t;
}

static int timed_call(mp_proxy *p, const char *method, mp_obj *pos, int timeout_ms, mp_obj **result)
{
    mp_obj *kwds = NULL;
    int rc = MP_ENOMEM;
    if (pos == NULL)
        return MP_ENOMEM;
    if (timeout_ms > 0) {
        kwds = mp_dict_new();
        if (kwds == NULL || mp_dict_set_str(kwds, "timeout", mp_float(timeout_ms / 1000.0)) < 0)
            goto out;
    } else if (timeout_ms == 0) {
        /* block=False */
        int64_t n = mp_obj_len(pos);
        mp_obj *t = mp_tuple_new((size_t)n + 1);
        if (t == NULL)
            goto out;
        for (int64_t i = 0; i < n; i++)
            mp_tuple_set(t, (size_t)i, mp_obj_ref(mp_seq_item(pos, (size_t)i)));
        mp_tuple_set(t, (size_t)n, mp_bool(false));
        mp_obj_unref(pos);
        pos = t;
    }
    rc = mp_proxy_call(p, method, pos, kwds, reply_timeout(p, timeout_ms), result);
out:
    mp_obj_unref(pos);
    mp_obj_unref(kwds);
    return rc;
}

int mp_proxy_put(mp_proxy *p, const mp_obj *item, int timeout_ms)
{
    if (p == NULL || item == NULL || timeout_ms < -1)
        return MP_EINVAL;
    int rc = timed_call(p, "put", mp_tuple1(mp_obj_ref(item)), timeout_ms, NULL);
    return rc > 0 ? MP_EPROTO : rc;
}

int mp_proxy_get(mp_proxy *p, mp_obj **item, int timeout_ms)
{
    if (p == NULL || item == NULL || timeout_ms < -1)
        return MP_EINVAL;
    int rc = timed_call(p, "get", mp_tuple_new(0), timeout_ms, item);
    if (rc > 0) {
        mp_obj_unref(*item);
        *item = NULL;
        rc = MP_EPROTO;
    }
    return rc;
}

long mp_proxy_qsize(mp_proxy *p)
{
    mp_obj *r = NULL;
    int rc = mp_proxy_call(p, "qsize", NULL, NULL, 0, &r);
    int64_t v = 0;
    if (rc == 0 && mp_int_value(r, &v) < 0)
        rc = MP_EPROTO;
    mp_obj_unref(r);
    return rc < 0 ? rc : rc > 0 ? MP_EPROTO : (long)v;
}

const char *mp_proxy_typeid(const mp_proxy *p)
{
    return p ? p->typeid : NULL;
}

const char *mp_proxy_ident(const mp_proxy *p)
{
    return p ? p->ident : NULL;
}

bool mp_proxy_exposes(const mp_proxy *p, const char *method)
{
    if (p == NULL || method == NULL)
        return false;
    int64_t n = mp_obj_len(p->exposed);
    for (int64_t i = 0; i < n; i++) {
        const char *e = mp_str_cstr(mp_seq_item(p->exposed, (size_t)i));
        if (e != NULL && strcmp(e, method) == 0)
            return true;
    }
    return false;
}

void mp_proxy_destroy(mp_proxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->m->lock);
    bool connected = p->m->connected, mproc_server = p->m->mproc_server;
    pthread_mutex_unlock(&p->m->lock);
    if (p->ident != NULL && p->typeid != NULL && connected) {
        mp_obj *args = mp_tuple1(mp_str_c(p->ident));
        /* A proxy made by a '#PROXY' reply on a mproc server holds a reference of
         * the calling thread's channel, which the server gives back when that
         * channel closes. */
        if (args != NULL && (p->via_ctl || !mproc_server)) {
            bool via_ctl;
            int saved = errno;
            ref_request(p->m, "decref", args, NULL, NULL, &via_ctl);
            errno = saved;
        }
        mp_obj_unref(args);
        mp__mgr_set_remote_error(NULL, NULL);
    }
    free(p->typeid);
    free(p->ident);
    mp_obj_unref(p->exposed);
    free(p);
}
