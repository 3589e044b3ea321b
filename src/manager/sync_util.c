/* manager/sync_util.c — Python's argument checks, ordering, indices, slices and
 * iteration for the SyncManager types (see sync_util.h). */
#include "manager/sync_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sm_raise_obj(mp_manager_call *call, mp_obj *exc)
{
    if (call == NULL) {
        mp_obj_unref(exc);
        return MP_EINVAL;
    }
    if (exc == NULL)
        return MP_ENOMEM;
    return mp_manager_call_raise(call, exc);
}

int sm_raise(mp_manager_call *call, const char *name, const char *fmt, ...)
{
    if (call == NULL)
        return MP_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    if (text == NULL)
        return MP_ENOMEM;
    mp_obj *exc = mp_exception_msg("builtins", name, text);
    free(text);
    return sm_raise_obj(call, exc);
}

size_t sm_nargs(const mp_obj *args)
{
    int64_t n = args ? mp_obj_len(args) : 0;
    return n > 0 ? (size_t)n : 0;
}

bool sm_has_kwds(const mp_obj *kwds)
{
    return kwds != NULL && mp_obj_len(kwds) > 0;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

int sm_noargs(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds, const char *qual)
{
    if (sm_has_kwds(kwds))
        return sm_raise(call, "TypeError", "%s() takes no keyword arguments", qual);
    size_t n = sm_nargs(args);
    if (n != 0)
        return sm_raise(call, "TypeError", "%s() takes no arguments (%zu given)", qual, n);
    return 0;
}

int sm_onearg(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds, const char *qual)
{
    if (sm_has_kwds(kwds))
        return sm_raise(call, "TypeError", "%s() takes no keyword arguments", qual);
    size_t n = sm_nargs(args);
    if (n != 1)
        return sm_raise(call, "TypeError", "%s() takes exactly one argument (%zu given)", qual, n);
    return 0;
}

int sm_wrapper(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds, const char *slot,
               size_t want)
{
    if (sm_has_kwds(kwds))
        return sm_raise(call, "TypeError", "wrapper %s() takes no keyword arguments", slot);
    size_t n = sm_nargs(args);
    if (n != want)
        /* CPython's two-argument slot wrappers print a leading space. */
        return sm_raise(call, "TypeError", "%sexpected %zu argument%s, got %zu",
                        want == 2 ? " " : "", want, plural(want), n);
    return 0;
}

int sm_range(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds, const char *name,
             const char *qual, size_t min, size_t max)
{
    if (sm_has_kwds(kwds))
        return sm_raise(call, "TypeError", "%s() takes no keyword arguments", qual);
    size_t n = sm_nargs(args);
    if (min == max && n != min)
        return sm_raise(call, "TypeError", "%s expected %zu argument%s, got %zu", name, min,
                        plural(min), n);
    if (n < min)
        return sm_raise(call, "TypeError", "%s expected at least %zu argument%s, got %zu", name,
                        min, plural(min), n);
    if (n > max)
        return sm_raise(call, "TypeError", "%s expected at most %zu argument%s, got %zu", name, max,
                        plural(max), n);
    return 0;
}

int sm_pyargs(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds, const char *qual,
              const char *const *names, size_t nrequired, const mp_obj **out)
{
    size_t np = 0;
    while (names[np])
        np++;
    for (size_t i = 0; i < np; i++)
        out[i] = NULL;
    size_t n = sm_nargs(args);
    if (n > np) {
        if (nrequired == np)
            return sm_raise(call, "TypeError",
                            "%s() takes %zu positional argument%s but %zu %s given", qual, np + 1,
                            plural(np + 1), n + 1, n + 1 == 1 ? "was" : "were");
        return sm_raise(call, "TypeError",
                        "%s() takes from %zu to %zu positional arguments but %zu were given", qual,
                        nrequired + 1, np + 1, n + 1);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = mp_seq_item(args, i);
    if (kwds != NULL) {
        size_t it = 0;
        mp_obj *k, *v;
        while (mp_dict_next(kwds, &it, &k, &v)) {
            const char *key = mp_str_cstr(k);
            if (key == NULL)
                return sm_raise(call, "TypeError", "keywords must be strings");
            size_t i = 0;
            while (i < np && strcmp(names[i], key) != 0)
                i++;
            if (i == np)
                return sm_raise(call, "TypeError", "%s() got an unexpected keyword argument '%s'",
                                qual, key);
            if (out[i] != NULL)
                return sm_raise(call, "TypeError", "%s() got multiple values for argument '%s'",
                                qual, key);
            out[i] = v;
        }
    }
    size_t missing = 0;
    for (size_t i = 0; i < nrequired; i++)
        missing += out[i] == NULL;
    if (missing == 0)
        return 0;
    char list[256] = "";
    size_t done = 0;
    for (size_t i = 0; i < nrequired; i++) {
        if (out[i] != NULL)
            continue;
        size_t l = strlen(list);
        const char *sep =
            done == 0 ? "" : (done + 1 == missing ? (missing > 2 ? ", and " : " and ") : ", ");
        snprintf(list + l, sizeof list - l, "%s'%s'", sep, names[i]);
        done++;
    }
    return sm_raise(call, "TypeError", "%s() missing %zu required positional argument%s: %s", qual,
                    missing, plural(missing), list);
}

/* ---- ordering ---- */

static bool is_intlike(const mp_obj *o)
{
    return mp_obj_is_int(o) || mp_obj_is_bool(o);
}

bool sm_number(const mp_obj *o, double *out)
{
    if (is_intlike(o)) {
        int64_t v;
        if (mp_int_value(o, &v) == 0) {
            *out = (double)v;
            return true;
        }
        return mp_float_value(o, out) == 0 || (*out = NAN, true);
    }
    if (mp_obj_is_float(o))
        return mp_float_value(o, out) == 0;
    return false;
}

/* Sign and magnitude comparison of two ints of any size: -1, 0, 1. */
static int cmp_ints(const mp_obj *a, const mp_obj *b)
{
    int64_t x, y;
    if (mp_int_value(a, &x) == 0 && mp_int_value(b, &y) == 0)
        return x < y ? -1 : x > y;
    size_t la = 0, lb = 0;
    unsigned char sa[1], sb[1];
    mp_int_to_bytes(a, sa, 0, &la);
    mp_int_to_bytes(b, sb, 0, &lb);
    unsigned char *ba = calloc(la + 1, 1), *bb = calloc(lb + 1, 1);
    int r = 0;
    if (ba && bb && mp_int_to_bytes(a, ba, la, &la) == 0 && mp_int_to_bytes(b, bb, lb, &lb) == 0) {
        bool na = la && (ba[la - 1] & 0x80), nb = lb && (bb[lb - 1] & 0x80);
        if (na != nb) {
            r = na ? -1 : 1;
        } else if (la != lb) {
            /* Minimal two's complement: more bytes means a larger magnitude. */
            r = (la > lb) ? (na ? -1 : 1) : (na ? 1 : -1);
        } else {
            for (size_t i = la; i-- > 0;)
                if (ba[i] != bb[i]) {
                    r = ba[i] < bb[i] ? -1 : 1;
                    break;
                }
        }
    }
    free(ba);
    free(bb);
    return r;
}

/* -1, 0 or 1: the sign of an int of any size. */
static int int_sign(const mp_obj *o)
{
    int64_t v;
    if (mp_int_value(o, &v) == 0)
        return v < 0 ? -1 : v > 0;
    size_t len = 0;
    unsigned char probe[1];
    mp_int_to_bytes(o, probe, 0, &len);
    unsigned char *b = calloc(len + 1, 1);
    int s = 1;
    if (b && mp_int_to_bytes(o, b, len, &len) == 0 && len && (b[len - 1] & 0x80))
        s = -1;
    free(b);
    return s;
}

static int lt_numbers(const mp_obj *a, const mp_obj *b)
{
    if (is_intlike(a) && is_intlike(b))
        return cmp_ints(a, b) < 0;
    double x, y;
    int64_t i;
    /* An int too large for a double compares by its sign against any finite float. */
    if (is_intlike(a) && mp_int_value(a, &i) != 0 && mp_float_value(a, &x) != 0) {
        mp_float_value(b, &y);
        if (isnan(y))
            return 0;
        return int_sign(a) < 0 ? (y != -INFINITY) : (y == INFINITY);
    }
    if (is_intlike(b) && mp_int_value(b, &i) != 0 && mp_float_value(b, &y) != 0) {
        mp_float_value(a, &x);
        if (isnan(x))
            return 0;
        return int_sign(b) < 0 ? (x == -INFINITY) : (x != INFINITY);
    }
    sm_number(a, &x);
    sm_number(b, &y);
    return x < y;
}

static int cmp_bytes(const void *a, size_t la, const void *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c)
        return c < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

static bool is_bytes_kind(const mp_obj *o)
{
    return mp_obj_is_bytes(o) || mp_obj_is_bytearray(o);
}
static bool is_set_kind(const mp_obj *o)
{
    return mp_obj_is_set(o) || mp_obj_is_frozenset(o);
}

static int unsupported(mp_manager_call *call, const mp_obj *a, const mp_obj *b)
{
    return sm_raise(call, "TypeError", "'<' not supported between instances of '%s' and '%s'",
                    mp_obj_type_name(a), mp_obj_type_name(b));
}

int sm_lt(mp_manager_call *call, const mp_obj *a, const mp_obj *b)
{
    bool na = is_intlike(a) || mp_obj_is_float(a), nb = is_intlike(b) || mp_obj_is_float(b);
    if (na && nb)
        return lt_numbers(a, b);
    if (mp_obj_is_str(a) && mp_obj_is_str(b)) {
        const char *x, *y;
        size_t lx, ly;
        mp_str_value(a, &x, &lx);
        mp_str_value(b, &y, &ly);
        /* UTF-8 byte order is code point order. */
        return cmp_bytes(x, lx, y, ly) < 0;
    }
    if (is_bytes_kind(a) && is_bytes_kind(b)) {
        const void *x, *y;
        size_t lx, ly;
        mp_bytes_value(a, &x, &lx);
        mp_bytes_value(b, &y, &ly);
        return cmp_bytes(x, lx, y, ly) < 0;
    }
    if ((mp_obj_is_tuple(a) && mp_obj_is_tuple(b)) || (mp_obj_is_list(a) && mp_obj_is_list(b))) {
        size_t la = (size_t)mp_obj_len(a), lb = (size_t)mp_obj_len(b);
        for (size_t i = 0; i < la && i < lb; i++) {
            const mp_obj *x = mp_seq_item(a, i), *y = mp_seq_item(b, i);
            if (!mp_obj_equal(x, y))
                return sm_lt(call, x, y);
        }
        return la < lb;
    }
    if (is_set_kind(a) && is_set_kind(b)) {
        if (mp_obj_len(a) >= mp_obj_len(b))
            return 0;
        size_t it = 0;
        mp_obj *x;
        while (mp_set_next(a, &it, &x))
            if (!mp_set_contains(b, x))
                return 0;
        return 1;
    }
    return unsupported(call, a, b);
}

/* ---- indices and slices ---- */

int sm_index(mp_manager_call *call, const mp_obj *o, bool index, int64_t *out)
{
    if (!is_intlike(o))
        return sm_raise(call, "TypeError", "'%s' object cannot be interpreted as an integer",
                        mp_obj_type_name(o));
    if (mp_int_value(o, out) == 0)
        return 0;
    if (index)
        return sm_raise(call, "IndexError", "cannot fit 'int' into an index-sized integer");
    return sm_raise(call, "OverflowError", "Python int too large to convert to C ssize_t");
}

/* A slice bound: None (absent), or an int clamped to int64 as CPython clamps to
 * Py_ssize_t. */
static int slice_bound(mp_manager_call *call, const mp_obj *o, bool *given, int64_t *out)
{
    *given = false;
    if (o == NULL || mp_obj_is_none(o))
        return 0;
    if (!is_intlike(o))
        return sm_raise(call, "TypeError",
                        "slice indices must be integers or None or have an __index__ method");
    *given = true;
    if (mp_int_value(o, out) != 0)
        *out = int_sign(o) < 0 ? INT64_MIN + 1 : INT64_MAX;
    return 0;
}

int sm_slice(mp_manager_call *call, const mp_obj *o, int64_t len, int64_t *start, int64_t *step,
             int64_t *count)
{
    if (!mp_object_is(o, "builtins", "slice"))
        return 0;
    const mp_obj *a = mp_object_args(o);
    if (a == NULL || mp_obj_len(a) != 3)
        return sm_raise(call, "TypeError", "slice expected 3 arguments");
    bool g1, g2, g3;
    int64_t b, e, s;
    int rc;
    if ((rc = slice_bound(call, mp_seq_item(a, 2), &g3, &s)) < 0 ||
        (rc = slice_bound(call, mp_seq_item(a, 0), &g1, &b)) < 0 ||
        (rc = slice_bound(call, mp_seq_item(a, 1), &g2, &e)) < 0)
        return rc;
    if (!g3)
        s = 1;
    if (s == 0)
        return sm_raise(call, "ValueError", "slice step cannot be zero");
    if (s < -INT64_MAX)
        s = -INT64_MAX;
    if (!g1)
        b = s < 0 ? INT64_MAX : 0;
    if (!g2)
        e = s < 0 ? INT64_MIN : INT64_MAX;
    /* PySlice_AdjustIndices. */
    if (b < 0) {
        b += len;
        if (b < 0)
            b = s < 0 ? -1 : 0;
    } else if (b >= len) {
        b = s < 0 ? len - 1 : len;
    }
    if (e < 0) {
        e = (e < INT64_MIN + len) ? INT64_MIN : e + len;
        if (e < 0)
            e = s < 0 ? -1 : 0;
    } else if (e >= len) {
        e = s < 0 ? len - 1 : len;
    }
    int64_t n = 0;
    if (s < 0) {
        if (e < b)
            n = (b - e - 1) / (-s) + 1;
    } else if (b < e) {
        n = (e - b - 1) / s + 1;
    }
    *start = b;
    *step = s;
    *count = n;
    return 1;
}

/* ---- iteration ---- */

void sm_items_free(mp_obj **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mp_obj_unref(items[i]);
    free(items);
}

static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* range(start, stop, step), as pickle sends it: REDUCE(builtins.range, (a, b, c)). */
static int range_items(mp_manager_call *call, const mp_obj *o, mp_obj ***items, size_t *n)
{
    const mp_obj *a = mp_object_args(o);
    int64_t v[3];
    if (a == NULL || mp_obj_len(a) != 3 || mp_int_value(mp_seq_item(a, 0), &v[0]) != 0 ||
        mp_int_value(mp_seq_item(a, 1), &v[1]) != 0 ||
        mp_int_value(mp_seq_item(a, 2), &v[2]) != 0 || v[2] == 0)
        return sm_raise(call, "TypeError", "the mproc server takes a range of int64 bounds");
    int64_t count = 0;
    if (v[2] > 0 && v[0] < v[1])
        count = (v[1] - v[0] - 1) / v[2] + 1;
    else if (v[2] < 0 && v[0] > v[1])
        count = (v[0] - v[1] - 1) / (-v[2]) + 1;
    if (count > (1 << 28))
        return sm_raise_obj(call, mp_exception_new("builtins", "MemoryError", NULL));
    mp_obj **out = calloc((size_t)count + 1, sizeof *out);
    if (out == NULL)
        return MP_ENOMEM;
    for (int64_t i = 0; i < count; i++)
        if ((out[i] = mp_int(v[0] + i * v[2])) == NULL) {
            sm_items_free(out, (size_t)i);
            return MP_ENOMEM;
        }
    *items = out;
    *n = (size_t)count;
    return 0;
}

int sm_items(mp_manager_call *call, const mp_obj *o, mp_obj ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (mp_object_is(o, "builtins", "range"))
        return range_items(call, o, items, n);
    int64_t len = mp_obj_len(o);
    bool ok = mp_obj_is_tuple(o) || mp_obj_is_list(o) || mp_obj_is_str(o) || is_bytes_kind(o) ||
              is_set_kind(o) || mp_obj_is_dict(o);
    if (!ok || len < 0)
        return sm_raise(call, "TypeError", "'%s' object is not iterable", mp_obj_type_name(o));
    mp_obj **v = calloc((size_t)len + 1, sizeof *v);
    if (v == NULL)
        return MP_ENOMEM;
    size_t k = 0;
    if (mp_obj_is_tuple(o) || mp_obj_is_list(o)) {
        for (; k < (size_t)len; k++)
            v[k] = mp_obj_ref(mp_seq_item(o, k));
    } else if (mp_obj_is_str(o)) {
        const char *s;
        size_t sl;
        mp_str_value(o, &s, &sl);
        for (size_t i = 0; i < sl;) {
            size_t cl = utf8_len((unsigned char)s[i]);
            if (i + cl > sl)
                cl = sl - i;
            v[k] = mp_str(s + i, cl);
            if (v[k++] == NULL) {
                sm_items_free(v, k);
                return MP_ENOMEM;
            }
            i += cl;
        }
    } else if (is_bytes_kind(o)) {
        const void *b;
        size_t bl;
        mp_bytes_value(o, &b, &bl);
        for (; k < bl; k++)
            v[k] = mp_int(((const unsigned char *)b)[k]);
    } else if (is_set_kind(o)) {
        size_t it = 0;
        mp_obj *x;
        while (k < (size_t)len && mp_set_next(o, &it, &x))
            v[k++] = mp_obj_ref(x);
    } else {
        size_t it = 0;
        mp_obj *x;
        while (k < (size_t)len && mp_dict_next(o, &it, &x, NULL))
            v[k++] = mp_obj_ref(x);
    }
    for (size_t i = 0; i < k; i++)
        if (v[i] == NULL) {
            sm_items_free(v, k);
            return MP_ENOMEM;
        }
    *items = v;
    *n = k;
    return 0;
}

int sm_check_hashable(mp_manager_call *call, const mp_obj *key)
{
    int64_t h;
    if (mp_obj_hash(key, &h) == 0)
        return 0;
    const mp_obj *bad = key;
    /* Name the innermost unhashable item of a tuple, as Python's hash() does. */
    while (mp_obj_is_tuple(bad)) {
        const mp_obj *next = NULL;
        for (size_t i = 0; i < (size_t)mp_obj_len(bad); i++)
            if (mp_obj_hash(mp_seq_item(bad, i), &h) != 0) {
                next = mp_seq_item(bad, i);
                break;
            }
        if (next == NULL)
            break;
        bad = next;
    }
    return sm_raise(call, "TypeError", "unhashable type: '%s'", mp_obj_type_name(bad));
}

char *sm_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

char *sm_repr(const mp_obj *o)
{
    char *r = mp_obj_repr(o);
    return r ? r : strdup("?");
}

const char *const sm_no_names[] = {NULL};

int sm_ret(mp_obj **result, mp_obj *value)
{
    *result = value;
    return value ? 0 : MP_ENOMEM;
}

mp_obj *sm_list_of(mp_obj *const *v, size_t n)
{
    mp_obj *l = mp_list_new();
    for (size_t i = 0; l && i < n; i++)
        if (mp_list_append(l, mp_obj_ref(v[i])) < 0) {
            mp_obj_unref(l);
            return NULL;
        }
    return l;
}

mp_obj *sm_dict_copy(const mp_obj *src)
{
    mp_obj *c = mp_dict_new();
    size_t it = 0;
    mp_obj *k, *v;
    while (c && mp_dict_next(src, &it, &k, &v))
        if (mp_dict_set_ref(c, k, v) < 0) {
            mp_obj_unref(c);
            return NULL;
        }
    return c;
}

/* An index for an item of a list of length n, as list_subscript: negative counts
 * from the end. false when out of range. */
bool sm_norm_index(int64_t i, size_t n, size_t *out)
{
    if (i < 0)
        i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n)
        return false;
    *out = (size_t)i;
    return true;
}
