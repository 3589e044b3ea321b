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
#include "pickle/codec.h"

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

/* ---- encoding without building the message's objects ----
 *
 * A request is the tuple (ident, funcname, args, kwds) and a reply (kind, result):
 * per call, a handful of objects made only to be pickled and freed. The fast
 * path writes the same pickle directly: PROTO 4, then for a request MARK, the
 * two strings (SHORT_BINUNICODE), args and kwds, TUPLE; for a reply the string,
 * the result, TUPLE2; then STOP. args, kwds and the result are pickled by the
 * encoder itself, appended in place, with their PROTO and STOP cut out: the
 * strings written here take no memo entry, so the memo indices of what follows
 * are those of a pickle of its own. Two values (args and kwds) are pickled as one
 * fresh pair, whose TUPLE2 is cut off, so that they share one memo as in the
 * whole tuple. Anything unusual (a string that is not short ASCII) takes the
 * general path. */

#define FAST_STR_MAX 255

static bool fast_str(const char *s, size_t *len)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] >= 0x80 || n >= FAST_STR_MAX)
            return false;
    *len = n;
    return true;
}

static int wput(mp__wbuf *w, const void *src, size_t n)
{
    if (w->cap - w->len < n) {
        size_t cap = w->cap < 256 ? 256 : w->cap;
        while (cap - w->len < n)
            cap *= 2;
        uint8_t *p = w->owned ? realloc(w->p, cap) : malloc(cap);
        if (p == NULL)
            return MP_ENOMEM;
        if (!w->owned)
            memcpy(p, w->p, w->len);
        w->p = p;
        w->cap = cap;
        w->owned = true;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
    return 0;
}

/* SHORT_BINUNICODE s (ASCII, at most FAST_STR_MAX bytes), or NONE for NULL. */
static int wstr(mp__wbuf *w, const char *s, size_t n)
{
    if (s == NULL)
        return wput(w, "N", 1);
    uint8_t h[2] = {0x8c, (uint8_t)n};
    int rc = wput(w, h, 2);
    return rc < 0 ? rc : wput(w, s, n);
}

/* Appends the pickle of o without its PROTO and STOP; with strip_tuple2, o is a
 * fresh pair whose TUPLE2 is cut off too (its two items stay, in order). */
static int wbody(mp__wbuf *w, const mp_obj *o, bool strip_tuple2)
{
    size_t at = w->len;
    int rc = mp__pickle_dump(o, 4, w);
    if (rc < 0)
        return rc;
    size_t tail = strip_tuple2 ? 2 : 1;
    if (w->len < at + 2 + tail || w->p[w->len - 1] != '.' ||
        (strip_tuple2 && w->p[w->len - 2] != 0x86)) {
        w->len = at;
        return MP_EPROTO; /* not the shape expected: the caller takes the general path */
    }
    memmove(w->p + at, w->p + at + 2, w->len - at - 2 - tail);
    w->len -= 2 + tail;
    return 0;
}

/* w's bytes as a malloc'd buffer (w's own, or a copy of the caller's stack). */
static int wfinish(mp__wbuf *w, void **out, size_t *len)
{
    if (!w->owned) {
        void *copy = malloc(w->len);
        if (copy == NULL)
            return MP_ENOMEM;
        memcpy(copy, w->p, w->len);
        w->p = copy;
    }
    *out = w->p;
    *len = w->len;
    return 0;
}

static int request_encode_fast(const char *ident, const char *method, const mp_obj *args,
                               const mp_obj *kwds, void **out, size_t *len)
{
    size_t ni = 0, nm = 0;
    if ((ident != NULL && !fast_str(ident, &ni)) || !fast_str(method, &nm))
        return MP_EPROTO;
    bool no_args = args == NULL || mp_obj_len(args) == 0;
    bool no_kwds = kwds == NULL || mp_obj_len(kwds) == 0;
    uint8_t stack[512];
    mp__wbuf w = {.p = stack, .len = 0, .cap = sizeof stack, .owned = false};
    int rc = wput(&w, "\x80\x04(", 3);
    if (rc == 0)
        rc = wstr(&w, ident, ni);
    if (rc == 0)
        rc = wstr(&w, method, nm);
    if (rc == 0 && no_args && no_kwds) {
        rc = wput(&w, ")}", 2);
    } else if (rc == 0 && no_kwds) {
        if ((rc = wbody(&w, args, false)) == 0)
            rc = wput(&w, "}", 1);
    } else if (rc == 0) {
        mp_obj *pair = mp_tuple2(no_args ? mp_tuple_new(0) : mp_obj_ref(args), mp_obj_ref(kwds));
        rc = pair ? wbody(&w, pair, true) : MP_ENOMEM;
        mp_obj_unref(pair);
    }
    if (rc == 0)
        rc = wput(&w, "t.", 2);
    if (rc == 0)
        rc = wfinish(&w, out, len);
    if (rc < 0)
        mp__wbuf_free(&w);
    return rc;
}

static int request_encode_general(const char *ident, const char *method, const mp_obj *args,
                                  const mp_obj *kwds, void **out, size_t *len)
{
    mp_obj *req = mp_tuple4(ident ? mp_str_c(ident) : mp_none(), mp_str_c(method),
                            args ? mp_obj_ref(args) : mp_tuple_new(0),
                            kwds ? mp_obj_ref(kwds) : mp_dict_new());
    if (req == NULL)
        return MP_ENOMEM;
    int rc = mp_pickle_dumps(req, 4, out, len);
    mp_obj_unref(req);
    return rc;
}

int mp__mgr_request_encode(const char *ident, const char *method, const mp_obj *args,
                           const mp_obj *kwds, void **out, size_t *len)
{
    if (method == NULL || out == NULL || len == NULL)
        return MP_EINVAL;
    if ((args != NULL && !mp_obj_is_tuple(args)) || (kwds != NULL && !mp_obj_is_dict(kwds)))
        return MP_EINVAL;
    int rc = request_encode_fast(ident, method, args, kwds, out, len);
    if (rc != MP_EPROTO)
        return rc;
    return request_encode_general(ident, method, args, kwds, out, len);
}

static int reply_encode_fast(const char *kind, const mp_obj *result, void **out, size_t *len)
{
    size_t nk;
    if (!fast_str(kind, &nk))
        return MP_EPROTO;
    uint8_t stack[512];
    mp__wbuf w = {.p = stack, .len = 0, .cap = sizeof stack, .owned = false};
    int rc = wput(&w, "\x80\x04", 2);
    if (rc == 0)
        rc = wstr(&w, kind, nk);
    if (rc == 0)
        rc = result ? wbody(&w, result, false) : wput(&w, "N", 1);
    if (rc == 0)
        rc = wput(&w, "\x86.", 2);
    if (rc == 0)
        rc = wfinish(&w, out, len);
    if (rc < 0)
        mp__wbuf_free(&w);
    return rc;
}

int mp__mgr_reply_encode(const char *kind, const mp_obj *result, void **out, size_t *len)
{
    int rc = reply_encode_fast(kind, result, out, len);
    if (rc != MP_EPROTO)
        return rc;
    mp_obj *r = mp_tuple2(mp_str_c(kind), result ? mp_obj_ref(result) : mp_none());
    if (r == NULL)
        return MP_ENOMEM;
    rc = mp_pickle_dumps(r, 4, out, len);
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
