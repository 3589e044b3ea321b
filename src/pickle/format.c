/* format.c — mp_obj_build / mp_obj_parse: values from and to C variables by a
 * format string, as Py_BuildValue / PyArg_ParseTuple and json_pack / json_unpack.
 * Both are recursive descent over the format; errors carry the format offset and,
 * for parse, the path of the value that did not match. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "mproc/object.h"
#include "pickle/obj.h"

#define MAX_NEST 64

typedef struct fmt_state {
    const char *start;
    const char *p;
    va_list ap;
    mp_obj_error *err;
    int rc;
} fmt_state;

static void set_err(fmt_state *f, int rc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(fmt_state *f, int rc, const char *path, const char *fmt, ...)
{
    if (f->rc < 0)
        return;
    f->rc = rc;
    if (f->err == NULL)
        return;
    f->err->position = (size_t)(f->p - f->start);
    int n = 0;
    if (path != NULL && path[0])
        n = snprintf(f->err->text, sizeof f->err->text, "%s: ", path);
    if (n < 0 || (size_t)n >= sizeof f->err->text)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err->text + n, sizeof f->err->text - (size_t)n, fmt, ap);
    va_end(ap);
}

static void skip_sep(fmt_state *f)
{
    while (*f->p == ' ' || *f->p == ',' || *f->p == ':' || *f->p == '\t' || *f->p == '\n')
        f->p++;
}

/* ---- build ---- */

static mp_obj *build_one(fmt_state *f, int nest);

/* Items up to the closing bracket, into a container made by the caller. */
static int build_items(fmt_state *f, mp_obj *c, char close, int nest)
{
    for (;;) {
        skip_sep(f);
        if (*f->p == close) {
            f->p++;
            return 0;
        }
        if (*f->p == '\0') {
            set_err(f, MP_EINVAL, NULL, "format: missing '%c'", close);
            return f->rc;
        }
        mp_obj *item = build_one(f, nest + 1);
        if (item == NULL)
            return f->rc;
        int rc;
        if (close == '}') {
            skip_sep(f);
            if (*f->p == '}' || *f->p == '\0') {
                mp_obj_unref(item);
                set_err(f, MP_EINVAL, NULL, "format: dict key without a value");
                return f->rc;
            }
            mp_obj *value = build_one(f, nest + 1);
            if (value == NULL) {
                mp_obj_unref(item);
                return f->rc;
            }
            rc = mp_dict_set(c, item, value);
        } else if (close == '>') {
            rc = mp_set_add(c, item);
        } else {
            rc = mp__list_append(c, item);
        }
        if (rc < 0) {
            set_err(f, rc, NULL, rc == MP_ETYPE ? "unhashable key or item" : "out of memory");
            return rc;
        }
    }
}

static mp_obj *oom(fmt_state *f)
{
    set_err(f, MP_ENOMEM, NULL, "out of memory");
    return NULL;
}

static mp_obj *build_one(fmt_state *f, int nest)
{
    if (nest > MAX_NEST) {
        set_err(f, MP_EINVAL, NULL, "format: nested too deeply");
        return NULL;
    }
    char c = *f->p++;
    mp_obj *o = NULL;
    switch (c) {
    case 'n':
        return mp_none();
    case 'b':
        return mp_bool(va_arg(f->ap, int) != 0);
    case 'i':
        return mp_int(va_arg(f->ap, int)) ?: oom(f);
    case 'I':
        return mp_int(va_arg(f->ap, unsigned int)) ?: oom(f);
    case 'l':
        return mp_int(va_arg(f->ap, long)) ?: oom(f);
    case 'L':
        return mp_int(va_arg(f->ap, long long)) ?: oom(f);
    case 'K':
        return mp_uint(va_arg(f->ap, unsigned long long)) ?: oom(f);
    case 'z':
        return mp_uint(va_arg(f->ap, size_t)) ?: oom(f);
    case 'd':
    case 'f':
        return mp_float(va_arg(f->ap, double)) ?: oom(f);
    case 'D': {
        double re = va_arg(f->ap, double);
        double im = va_arg(f->ap, double);
        return mp_complex(re, im) ?: oom(f);
    }
    case 's':
    case 'y':
    case 'Y': {
        const char *s = va_arg(f->ap, const char *);
        size_t n;
        if (*f->p == '#') {
            f->p++;
            n = va_arg(f->ap, size_t);
        } else {
            if (c == 'Y') {
                set_err(f, MP_EINVAL, NULL, "format: 'Y' needs '#'");
                return NULL;
            }
            if (s == NULL && c == 's')
                return mp_none();
            n = s ? strlen(s) : 0;
        }
        if (s == NULL && n > 0) {
            set_err(f, MP_EINVAL, NULL, "format '%c': NULL pointer", c);
            return NULL;
        }
        if (c == 's') {
            o = mp_str(s, n);
            if (o == NULL && (n == 0 || !mp__utf8_valid((const unsigned char *)s, n))) {
                set_err(f, MP_EINVAL, NULL, "format 's': invalid UTF-8");
                return NULL;
            }
        } else {
            o = c == 'y' ? mp_bytes(s, n) : mp_bytearray(s, n);
        }
        return o ? o : oom(f);
    }
    case 'O':
    case 'N':
        o = va_arg(f->ap, mp_obj *);
        if (o == NULL) {
            set_err(f, c == 'N' ? MP_ENOMEM : MP_EINVAL, NULL, "format '%c': NULL value", c);
            return NULL;
        }
        return c == 'O' ? mp_obj_ref(o) : o;
    case '(': {
        mp_obj *l = mp_list_new();
        if (l == NULL)
            return oom(f);
        if (build_items(f, l, ')', nest) < 0) {
            mp_obj_unref(l);
            return NULL;
        }
        /* Move the list's items into a tuple. */
        mp__list *lp = (mp__list *)l;
        o = mp__tuple_from(lp->items, lp->n);
        lp->n = 0;
        mp_obj_unref(l);
        return o ? o : oom(f);
    }
    case '[':
    case '{':
    case '<':
        o = c == '[' ? mp_list_new() : c == '{' ? mp_dict_new() : mp_set_new();
        if (o == NULL)
            return oom(f);
        if (build_items(f, o, c == '[' ? ']' : c == '{' ? '}' : '>', nest) < 0) {
            mp_obj_unref(o);
            return NULL;
        }
        return o;
    default:
        f->p--;
        set_err(f, MP_EINVAL, NULL, "format: unexpected '%c' at offset %zu", c ? c : '?',
                (size_t)(f->p - f->start));
        return NULL;
    }
}

/* After a failure, take the references of the remaining N arguments, so that the
 * caller's N values never leak. Stops at the first format error. */
static void drain(fmt_state *f)
{
    int depth = 0;
    for (; *f->p; f->p++) {
        char c = *f->p;
        switch (c) {
        case 'b':
        case 'i':
        case 'I':
            (void)va_arg(f->ap, int);
            break;
        case 'l':
            (void)va_arg(f->ap, long);
            break;
        case 'L':
        case 'K':
            (void)va_arg(f->ap, long long);
            break;
        case 'z':
            (void)va_arg(f->ap, size_t);
            break;
        case 'd':
        case 'f':
            (void)va_arg(f->ap, double);
            break;
        case 'D':
            (void)va_arg(f->ap, double);
            (void)va_arg(f->ap, double);
            break;
        case 's':
        case 'y':
        case 'Y':
            (void)va_arg(f->ap, const char *);
            if (f->p[1] == '#') {
                f->p++;
                (void)va_arg(f->ap, size_t);
            }
            break;
        case 'O':
            (void)va_arg(f->ap, mp_obj *);
            break;
        case 'N':
            mp_obj_unref(va_arg(f->ap, mp_obj *));
            break;
        case '(':
        case '[':
        case '{':
        case '<':
            depth++;
            break;
        case ')':
        case ']':
        case '}':
        case '>':
            depth--;
            break;
        case 'n':
        case ' ':
        case ',':
        case ':':
        case '\t':
        case '\n':
            break;
        default:
            return;
        }
    }
    (void)depth;
}

int mp_obj_buildv(mp_obj **out, mp_obj_error *err, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->text[0] = '\0';
        err->position = 0;
    }
    if (out == NULL || fmt == NULL)
        return MP_EINVAL;
    *out = NULL;
    fmt_state f = {.start = fmt, .p = fmt, .err = err, .rc = 0};
    va_copy(f.ap, ap);
    mp_obj *items = mp_list_new();
    if (items == NULL) {
        f.rc = MP_ENOMEM;
        drain(&f);
        va_end(f.ap);
        return MP_ENOMEM;
    }
    for (;;) {
        skip_sep(&f);
        if (*f.p == '\0')
            break;
        if (strchr(")]}>", *f.p)) {
            set_err(&f, MP_EINVAL, NULL, "format: unbalanced '%c'", *f.p);
            break;
        }
        mp_obj *o = build_one(&f, 0);
        if (o == NULL)
            break;
        if (mp__list_append(items, o) < 0) {
            set_err(&f, MP_ENOMEM, NULL, "out of memory");
            break;
        }
    }
    if (f.rc < 0) {
        drain(&f);
        va_end(f.ap);
        mp_obj_unref(items);
        return f.rc;
    }
    va_end(f.ap);
    mp__list *lp = (mp__list *)items;
    mp_obj *r;
    if (lp->n == 0) {
        r = mp_none();
    } else if (lp->n == 1) {
        r = lp->items[0];
        lp->n = 0;
    } else {
        r = mp__tuple_from(lp->items, lp->n);
        lp->n = 0;
    }
    mp_obj_unref(items);
    if (r == NULL) {
        if (err)
            snprintf(err->text, sizeof err->text, "out of memory");
        return MP_ENOMEM;
    }
    *out = r;
    return 0;
}

int mp_obj_build_err(mp_obj **out, mp_obj_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mp_obj_buildv(out, err, fmt, ap);
    va_end(ap);
    return rc;
}

int mp_obj_build(mp_obj **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mp_obj_buildv(out, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- parse ---- */

static int parse_one(fmt_state *f, const mp_obj *o, char *path, size_t plen, int nest);

static const char *kind_word(char c)
{
    switch (c) {
    case 'n':
        return "None";
    case 'b':
        return "bool";
    case 'i':
    case 'L':
    case 'K':
    case 'z':
        return "int";
    case 'd':
        return "float";
    case 'D':
        return "complex";
    case 's':
        return "str";
    case 'y':
        return "bytes";
    default:
        return "?";
    }
}

/* Skips one format item without storing (for optional items that are absent):
 * consumes its va_args. */
static int skip_one(fmt_state *f, int nest)
{
    if (nest > MAX_NEST) {
        set_err(f, MP_EINVAL, NULL, "format: nested too deeply");
        return f->rc;
    }
    char c = *f->p++;
    switch (c) {
    case 'n':
        return 0;
    case 'b':
    case 'i':
    case 'L':
    case 'K':
    case 'z':
    case 'd':
        (void)va_arg(f->ap, void *);
        return 0;
    case 'O':
        if (*f->p == '!') {
            f->p++;
            (void)va_arg(f->ap, int);
        }
        (void)va_arg(f->ap, void *);
        return 0;
    case 'D':
        (void)va_arg(f->ap, void *);
        (void)va_arg(f->ap, void *);
        return 0;
    case 's':
    case 'y':
        (void)va_arg(f->ap, void *);
        if (*f->p == '#') {
            f->p++;
            (void)va_arg(f->ap, void *);
        }
        return 0;
    case '(':
    case '[':
    case '{': {
        char close = c == '(' ? ')' : c == '[' ? ']' : '}';
        for (;;) {
            skip_sep(f);
            if (*f->p == close) {
                f->p++;
                return 0;
            }
            if (*f->p == '|' || *f->p == '?') {
                f->p++;
                continue;
            }
            if (*f->p == '\0') {
                set_err(f, MP_EINVAL, NULL, "format: missing '%c'", close);
                return f->rc;
            }
            if (c == '{') {
                if (*f->p != 's') {
                    set_err(f, MP_EINVAL, NULL, "format: dict keys must be 's'");
                    return f->rc;
                }
                f->p++;
                (void)va_arg(f->ap, const char *);
                skip_sep(f);
            }
            if (skip_one(f, nest + 1) < 0)
                return f->rc;
        }
    }
    default:
        f->p--;
        set_err(f, MP_EINVAL, NULL, "format: unexpected '%c'", c ? c : '?');
        return f->rc;
    }
}

static void path_push(char *path, size_t plen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_push(char *path, size_t plen, const char *fmt, ...)
{
    size_t n = strlen(path);
    if (n >= plen - 1)
        return;
    if (n > 0 && n + 2 < plen) {
        strcpy(path + n, ": ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path + n, plen - n, fmt, ap);
    va_end(ap);
}

static int mismatch(fmt_state *f, const char *path, const char *want, const mp_obj *o)
{
    set_err(f, MP_ETYPE, path, "expected %s, got %s", want, mp_obj_type_name(o));
    return f->rc;
}

static int parse_int(fmt_state *f, const mp_obj *o, const char *path, char c)
{
    mp_obj_kind k = mp__kind(o);
    if (k != MP_OBJ_INT && k != MP_OBJ_BOOL)
        return mismatch(f, path, "int", o);
    int64_t v = 0;
    uint64_t u = 0;
    int rc = c == 'K' || c == 'z' ? mp_uint_value(o, &u) : mp_int_value(o, &v);
    bool fits = rc == 0;
    if (fits && c == 'i')
        fits = v >= INT32_MIN && v <= INT32_MAX;
    if (fits && c == 'z')
        fits = u <= SIZE_MAX;
    if (!fits) {
        char *r = mp_obj_repr(o);
        set_err(f, MP_ERANGE, path, "int %s does not fit %s", r ? r : "?",
                c == 'i'   ? "int"
                : c == 'L' ? "int64_t"
                : c == 'K' ? "uint64_t"
                           : "size_t");
        free(r);
        return f->rc;
    }
    switch (c) {
    case 'i':
        *va_arg(f->ap, int *) = (int)v;
        break;
    case 'L':
        *va_arg(f->ap, int64_t *) = v;
        break;
    case 'K':
        *va_arg(f->ap, uint64_t *) = u;
        break;
    default:
        *va_arg(f->ap, size_t *) = (size_t)u;
        break;
    }
    return 0;
}

static int parse_seq(fmt_state *f, const mp_obj *o, char open, char *path, size_t plen, int nest)
{
    char close = open == '(' ? ')' : ']';
    mp_obj_kind want = open == '(' ? MP_OBJ_TUPLE : MP_OBJ_LIST;
    bool kind_ok = mp__kind(o) == want;
    if (!kind_ok) {
        mismatch(f, path, open == '(' ? "tuple" : "list", o);
        return f->rc;
    }
    size_t n = (size_t)mp_obj_len(o);
    size_t i = 0, required = SIZE_MAX;
    size_t saved = strlen(path);
    for (;;) {
        skip_sep(f);
        if (*f->p == '|') {
            f->p++;
            required = i;
            continue;
        }
        if (*f->p == close) {
            f->p++;
            break;
        }
        if (*f->p == '\0') {
            set_err(f, MP_EINVAL, NULL, "format: missing '%c'", close);
            return f->rc;
        }
        if (i >= n) {
            if (required != SIZE_MAX) {
                if (skip_one(f, nest + 1) < 0)
                    return f->rc;
                i++;
                continue;
            }
            /* Count the format's items for the message. */
            size_t want_n = i;
            while (*f->p && *f->p != close) {
                if (skip_one(f, nest + 1) < 0)
                    return f->rc;
                want_n++;
                skip_sep(f);
            }
            set_err(f, MP_ETYPE, path, "expected a %s of %zu items, got %zu",
                    open == '(' ? "tuple" : "list", want_n, n);
            return f->rc;
        }
        path_push(path, plen, "item %zu", i);
        int rc = parse_one(f, mp_seq_item(o, i), path, plen, nest + 1);
        path[saved] = '\0';
        if (rc < 0)
            return rc;
        i++;
    }
    if (i != n && (required == SIZE_MAX || n > i)) {
        set_err(f, MP_ETYPE, path, "expected a %s of %zu items, got %zu",
                open == '(' ? "tuple" : "list", i, n);
        return f->rc;
    }
    return 0;
}

static int parse_dict(fmt_state *f, const mp_obj *o, char *path, size_t plen, int nest)
{
    if (mp__kind(o) != MP_OBJ_DICT)
        return mismatch(f, path, "dict", o);
    size_t saved = strlen(path);
    for (;;) {
        skip_sep(f);
        if (*f->p == '}') {
            f->p++;
            return 0;
        }
        bool optional = false;
        if (*f->p == '?') {
            optional = true;
            f->p++;
        }
        if (*f->p != 's') {
            set_err(f, MP_EINVAL, NULL, "format: dict keys must be 's'");
            return f->rc;
        }
        f->p++;
        const char *key = va_arg(f->ap, const char *);
        if (key == NULL) {
            set_err(f, MP_EINVAL, NULL, "format: NULL dict key");
            return f->rc;
        }
        skip_sep(f);
        mp_obj *v = mp_dict_get_str(o, key);
        if (v == NULL) {
            if (!optional) {
                set_err(f, MP_ETYPE, path, "missing key '%s'", key);
                return f->rc;
            }
            if (skip_one(f, nest + 1) < 0)
                return f->rc;
            continue;
        }
        path_push(path, plen, "key '%s'", key);
        int rc = parse_one(f, v, path, plen, nest + 1);
        path[saved] = '\0';
        if (rc < 0)
            return rc;
    }
}

static int parse_one(fmt_state *f, const mp_obj *o, char *path, size_t plen, int nest)
{
    if (nest > MAX_NEST) {
        set_err(f, MP_EINVAL, NULL, "format: nested too deeply");
        return f->rc;
    }
    char c = *f->p++;
    switch (c) {
    case 'n':
        return mp__kind(o) == MP_OBJ_NONE ? 0 : mismatch(f, path, "None", o);
    case 'b':
        if (mp__kind(o) != MP_OBJ_BOOL)
            return mismatch(f, path, "bool", o);
        *va_arg(f->ap, bool *) = o->aux != 0;
        return 0;
    case 'i':
    case 'L':
    case 'K':
    case 'z':
        return parse_int(f, o, path, c);
    case 'd': {
        double d;
        mp_obj_kind k = mp__kind(o);
        if (k != MP_OBJ_FLOAT && k != MP_OBJ_INT && k != MP_OBJ_BOOL)
            return mismatch(f, path, "float", o);
        if (mp_float_value(o, &d) < 0) {
            set_err(f, MP_ERANGE, path, "int too large for a float");
            return f->rc;
        }
        *va_arg(f->ap, double *) = d;
        return 0;
    }
    case 'D': {
        double re, im;
        if (!mp_obj_is_number(o))
            return mismatch(f, path, "complex", o);
        if (mp_complex_value(o, &re, &im) < 0) {
            set_err(f, MP_ERANGE, path, "int too large for a float");
            return f->rc;
        }
        *va_arg(f->ap, double *) = re;
        *va_arg(f->ap, double *) = im;
        return 0;
    }
    case 's':
    case 'y': {
        mp_obj_kind k = mp__kind(o);
        bool ok = c == 's' ? k == MP_OBJ_STR : (k == MP_OBJ_BYTES || k == MP_OBJ_BYTEARRAY);
        if (c == 'y' && *f->p != '#') {
            set_err(f, MP_EINVAL, NULL, "format: 'y' needs '#'");
            return f->rc;
        }
        if (!ok)
            return mismatch(f, path, kind_word(c), o);
        const mp__bytes *b = (const mp__bytes *)o;
        *va_arg(f->ap, const char **) = b->data;
        if (*f->p == '#') {
            f->p++;
            *va_arg(f->ap, size_t *) = b->len;
        }
        return 0;
    }
    case 'O':
        if (*f->p == '!') {
            f->p++;
            mp_obj_kind want = (mp_obj_kind)va_arg(f->ap, int);
            if (mp__kind(o) != want) {
                static const char *const names[] = {
                    "None",      "bool",  "int",  "float", "complex", "str",       "bytes",
                    "bytearray", "tuple", "list", "dict",  "set",     "frozenset", "object"};
                return mismatch(f, path, (unsigned)want <= MP_OBJ_OBJECT ? names[want] : "?", o);
            }
        }
        *va_arg(f->ap, mp_obj **) = (mp_obj *)o;
        return 0;
    case '(':
    case '[':
        return parse_seq(f, o, c, path, plen, nest);
    case '{':
        return parse_dict(f, o, path, plen, nest);
    default:
        f->p--;
        set_err(f, MP_EINVAL, NULL, "format: unexpected '%c' at offset %zu", c ? c : '?',
                (size_t)(f->p - f->start));
        return f->rc;
    }
}

int mp_obj_parsev(const mp_obj *o, mp_obj_error *err, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->text[0] = '\0';
        err->position = 0;
    }
    if (o == NULL || fmt == NULL)
        return MP_EINVAL;
    fmt_state f = {.start = fmt, .p = fmt, .err = err, .rc = 0};
    va_copy(f.ap, ap);
    char path[160] = "";
    skip_sep(&f);
    int rc = parse_one(&f, o, path, sizeof path, 0);
    if (rc == 0) {
        skip_sep(&f);
        if (*f.p != '\0')
            rc = (set_err(&f, MP_EINVAL, NULL, "format: trailing '%c' (wrap several items in ())",
                          *f.p),
                  f.rc);
    }
    va_end(f.ap);
    return rc;
}

int mp_obj_parse(const mp_obj *o, mp_obj_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mp_obj_parsev(o, err, fmt, ap);
    va_end(ap);
    return rc;
}
