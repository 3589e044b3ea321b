/* request.c — the manager's messages: requests (ident, funcname, args, kwds) and
 * replies (kind, result), as pickles, plus the Token and traceback texts CPython
 * clients expect. Request bytes come from an authenticated but untrusted peer: the
 * decoder checks every shape and reports, in CPython's words, what it refused. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/mgr.h"
#include "mproc/pickle.h"

static const mp_pickle_limits request_limits = {
    .max_depth = 200,
    .max_size = 0, /* the frame size was already bounded by the server */
    .max_memo = 1 << 16,
    .max_items = 1 << 22,
};

__attribute__((format(printf, 2, 3))) static int fail(mp_obj_error *err, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
        err->position = 0;
    }
    return MP_EPROTO;
}

static bool is_seq(const mp_obj *o)
{
    return mp_obj_is_tuple(o) || mp_obj_is_list(o);
}

int mp__mgr_request_decode(const void *buf, size_t len, mp__mgr_request *req, mp_obj_error *err)
{
    memset(req, 0, sizeof *req);
    mp_obj *root = NULL;
    mp_obj_error perr;
    int rc = mp_pickle_loads(buf, len, &request_limits, &root, &perr);
    if (rc == MP_ENOMEM)
        return rc;
    if (rc < 0) {
        if (err != NULL) {
            snprintf(err->text, sizeof err->text, "_pickle.UnpicklingError: %.170s", perr.text);
            err->position = 1;
        }
        return MP_EPROTO;
    }
    if (!is_seq(root)) {
        rc = fail(err, "TypeError: cannot unpack non-iterable %s object", mp_obj_type_name(root));
        goto out_bad;
    }
    int64_t n = mp_obj_len(root);
    if (n < 4) {
        rc = fail(err, "ValueError: not enough values to unpack (expected 4, got %ld)", (long)n);
        goto out_bad;
    }
    if (n > 4) {
        rc = fail(err, "ValueError: too many values to unpack (expected 4)");
        goto out_bad;
    }
    mp_obj *ident = mp_seq_item(root, 0), *method = mp_seq_item(root, 1);
    mp_obj *args = mp_seq_item(root, 2), *kwds = mp_seq_item(root, 3);
    if (!mp_obj_is_str(method)) {
        char *r = mp_obj_repr(method);
        rc = fail(err, "AssertionError: %.150s unrecognized", r ? r : "?");
        free(r);
        goto out_bad;
    }
    if (!mp_obj_is_none(ident) && !mp_obj_is_str(ident)) {
        char *r = mp_obj_repr(ident);
        rc = fail(err, "KeyError: %.150s", r ? r : "?");
        free(r);
        goto out_bad;
    }
    if (!is_seq(args)) {
        rc = fail(err, "TypeError: argument after * must be an iterable, not %s",
                  mp_obj_type_name(args));
        goto out_bad;
    }
    if (!mp_obj_is_dict(kwds)) {
        rc = fail(err, "TypeError: argument after ** must be a mapping, not %s",
                  mp_obj_type_name(kwds));
        goto out_bad;
    }
    size_t it = 0;
    mp_obj *k;
    while (mp_dict_next(kwds, &it, &k, NULL)) {
        if (!mp_obj_is_str(k)) {
            rc = fail(err, "TypeError: keywords must be strings");
            goto out_bad;
        }
    }
    if (mp_obj_is_list(args)) {
        /* Python accepts any iterable after *; keep one shape for the methods. */
        int64_t na = mp_obj_len(args);
        mp_obj *t = mp_tuple_new((size_t)na);
        if (t == NULL) {
            rc = MP_ENOMEM;
            goto out_bad;
        }
        for (int64_t i = 0; i < na; i++)
            mp_tuple_set(t, (size_t)i, mp_obj_ref(mp_seq_item(args, (size_t)i)));
        mp_obj *fixed = mp_tuple4(mp_obj_ref(ident), mp_obj_ref(method), t, mp_obj_ref(kwds));
        if (fixed == NULL) {
            rc = MP_ENOMEM;
            goto out_bad;
        }
        mp_obj_unref(root);
        root = fixed;
        ident = mp_seq_item(root, 0);
        method = mp_seq_item(root, 1);
        args = mp_seq_item(root, 2);
        kwds = mp_seq_item(root, 3);
    }
    req->root = root;
    req->ident = mp_obj_is_none(ident) ? NULL : mp_str_cstr(ident);
    req->method = mp_str_cstr(method);
    req->args = args;
    req->kwds = kwds;
    return 0;

out_bad:
    mp_obj_unref(root);
    return rc;
}

void mp__mgr_request_free(mp__mgr_request *req)
{
    if (req == NULL)
        return;
    mp_obj_unref(req->root);
    memset(req, 0, sizeof *req);
}

int mp__mgr_request_encode(const char *ident, const char *method, const mp_obj *args,
                           const mp_obj *kwds, void **out, size_t *len)
{
    if (method == NULL || out == NULL || len == NULL)
        return MP_EINVAL;
    if ((args != NULL && !mp_obj_is_tuple(args)) || (kwds != NULL && !mp_obj_is_dict(kwds)))
        return MP_EINVAL;
    mp_obj *req = mp_tuple4(ident ? mp_str_c(ident) : mp_none(), mp_str_c(method),
                            args ? mp_obj_ref(args) : mp_tuple_new(0),
                            kwds ? mp_obj_ref(kwds) : mp_dict_new());
    if (req == NULL)
        return MP_ENOMEM;
    int rc = mp_pickle_dumps(req, 4, out, len);
    mp_obj_unref(req);
    return rc;
}

int mp__mgr_reply_encode(const char *kind, const mp_obj *result, void **out, size_t *len)
{
    mp_obj *r = mp_tuple2(mp_str_c(kind), result ? mp_obj_ref(result) : mp_none());
    if (r == NULL)
        return MP_ENOMEM;
    int rc = mp_pickle_dumps(r, 4, out, len);
    mp_obj_unref(r);
    return rc;
}

static const char *const kinds[] = {
    [MP__REPLY_RETURN] = "#RETURN",       [MP__REPLY_ERROR] = "#ERROR",
    [MP__REPLY_TRACEBACK] = "#TRACEBACK", [MP__REPLY_UNSERIALIZABLE] = "#UNSERIALIZABLE",
    [MP__REPLY_PROXY] = "#PROXY",
};

int mp__mgr_reply_decode(const void *buf, size_t len, int *kind, mp_obj **result)
{
    mp_obj *root = NULL;
    int rc = mp_pickle_loads(buf, len, NULL, &root, NULL);
    if (rc < 0)
        return rc == MP_ENOMEM ? rc : MP_EPROTO;
    rc = MP_EPROTO;
    if (mp_obj_is_tuple(root) && mp_obj_len(root) == 2) {
        const char *k = mp_str_cstr(mp_seq_item(root, 0));
        for (int i = 0; k != NULL && i < (int)(sizeof kinds / sizeof kinds[0]); i++) {
            if (strcmp(k, kinds[i]) == 0) {
                *kind = i;
                *result = mp_obj_ref(mp_seq_item(root, 1));
                rc = 0;
                break;
            }
        }
    }
    mp_obj_unref(root);
    return rc;
}

mp_obj *mp__mgr_token(const char *typeid, const char *address, const char *ident)
{
    mp_obj *addr;
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (address != NULL && address[0] != '/' && address[0] != '.' && address[0] != '@' &&
        colon != NULL) {
        const char *host = address;
        size_t hlen = (size_t)(colon - address);
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
        }
        addr = mp_tuple2(mp_str(host, hlen), mp_int(strtol(colon + 1, NULL, 10)));
    } else {
        addr = mp_str_c(address ? address : "");
    }
    mp_obj *state = mp_tuple3(mp_str_c(typeid), addr, mp_str_c(ident));
    if (state == NULL)
        return NULL;
    return mp_object_new_form("multiprocessing.managers", "Token", MP_OBJECT_NEWOBJ, NULL, NULL,
                              state);
}

char *mp__mgr_traceback_text(const char *where, const char *line)
{
    static const char fmt[] =
        "Traceback (most recent call last):\n  File \"<mproc manager>\", in %s\n%s\n";
    size_t n = sizeof fmt + strlen(where) + strlen(line);
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, fmt, where, line);
    return s;
}
