/* repr.c — Python's repr() of mp_obj values, and Python's shortest round-trip float
 * formatting. str escapes follow CPython's unicode_repr: non-printable code points
 * (pickle/printable.h, generated from Python's str.isprintable) become \x, \u or \U
 * escapes, everything else is kept as UTF-8. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/object.h"
#include "pickle/obj.h"
#include "pickle/printable.h"

#define MAX_DEPTH 10000

typedef struct sb {
    char *p;
    size_t len, cap;
    bool failed;
} sb;

static void sb_grow(sb *s, size_t more)
{
    if (s->failed)
        return;
    if (s->len + more + 1 <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + more + 1)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (p == NULL) {
        s->failed = true;
        return;
    }
    s->p = p;
    s->cap = cap;
}

static void sb_add(sb *s, const char *t, size_t n)
{
    sb_grow(s, n);
    if (s->failed)
        return;
    memcpy(s->p + s->len, t, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_cstr(sb *s, const char *t)
{
    sb_add(s, t, strlen(t));
}
static void sb_ch(sb *s, char c)
{
    sb_add(s, &c, 1);
}

static bool printable(uint32_t cp)
{
    size_t lo = 0, hi = sizeof nonprintable_ranges / sizeof nonprintable_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nonprintable_ranges[mid][0])
            hi = mid;
        else if (cp > nonprintable_ranges[mid][1])
            lo = mid + 1;
        else
            return false;
    }
    return true;
}

/* ---- floats ---- */

size_t mp__format_double(double v, char *buf, bool add_dot_0, bool always_sign)
{
    char *p = buf;
    if (isnan(v)) {
        if (always_sign)
            *p++ = '+';
        strcpy(p, "nan");
        return (size_t)(p - buf) + 3;
    }
    if (signbit(v))
        *p++ = '-';
    else if (always_sign)
        *p++ = '+';
    v = fabs(v);
    if (isinf(v)) {
        strcpy(p, "inf");
        return (size_t)(p - buf) + 3;
    }
    /* Shortest digits that read back as v. */
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp is d[.ddd]e[+-]XX */
    char digits[20];
    size_t nd = 0;
    const char *q = tmp;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (v == 0.0) {
        nd = 1;
        exp10 = 0;
    }
    int decpt = exp10 + 1;
    if (decpt <= -4 || decpt > 16) {
        *p++ = digits[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, nd - 1);
            p += nd - 1;
        }
        p += sprintf(p, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -decpt; i++)
            *p++ = '0';
        memcpy(p, digits, nd);
        p += nd;
    } else if ((size_t)decpt >= nd) {
        memcpy(p, digits, nd);
        p += nd;
        for (size_t i = nd; i < (size_t)decpt; i++)
            *p++ = '0';
        if (add_dot_0) {
            *p++ = '.';
            *p++ = '0';
        }
    } else {
        memcpy(p, digits, (size_t)decpt);
        p += decpt;
        *p++ = '.';
        memcpy(p, digits + decpt, nd - (size_t)decpt);
        p += nd - (size_t)decpt;
    }
    *p = '\0';
    return (size_t)(p - buf);
}

/* ---- str and bytes ---- */

static void repr_str(sb *s, const char *data, size_t len)
{
    bool squote = memchr(data, '\'', len) != NULL, dquote = memchr(data, '"', len) != NULL;
    char quote = squote && !dquote ? '"' : '\'';
    sb_grow(s, len + 2);
    sb_ch(s, quote);
    const unsigned char *u = (const unsigned char *)data;
    size_t i = 0;
    char esc[16];
    while (i < len) {
        uint32_t cp;
        size_t n = mp__utf8_decode(u + i, &cp);
        if (cp == (uint32_t)quote || cp == '\\') {
            sb_ch(s, '\\');
            sb_ch(s, (char)cp);
        } else if (cp == '\t') {
            sb_cstr(s, "\\t");
        } else if (cp == '\n') {
            sb_cstr(s, "\\n");
        } else if (cp == '\r') {
            sb_cstr(s, "\\r");
        } else if (cp < ' ' || cp == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            sb_cstr(s, esc);
        } else if (cp < 0x7f) {
            sb_ch(s, (char)cp);
        } else if (printable(cp)) {
            sb_add(s, data + i, n);
        } else {
            if (cp <= 0xff)
                snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp <= 0xffff)
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            else
                snprintf(esc, sizeof esc, "\\U%08x", cp);
            sb_cstr(s, esc);
        }
        i += n;
    }
    sb_ch(s, quote);
}

static void repr_bytes(sb *s, const char *data, size_t len, bool always_escape_squote)
{
    bool squote = memchr(data, '\'', len) != NULL, dquote = memchr(data, '"', len) != NULL;
    char quote = squote && !dquote ? '"' : '\'';
    sb_grow(s, len + 3);
    sb_ch(s, 'b');
    sb_ch(s, quote);
    char esc[8];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == (unsigned char)quote || c == '\\' || (always_escape_squote && c == '\'')) {
            sb_ch(s, '\\');
            sb_ch(s, (char)c);
        } else if (c == '\t') {
            sb_cstr(s, "\\t");
        } else if (c == '\n') {
            sb_cstr(s, "\\n");
        } else if (c == '\r') {
            sb_cstr(s, "\\r");
        } else if (c < ' ' || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            sb_cstr(s, esc);
        } else {
            sb_ch(s, (char)c);
        }
    }
    sb_ch(s, quote);
}

/* ---- values ---- */

static void repr(sb *s, const mp_obj *o, int depth);

static void repr_items(sb *s, const mp_obj *seq, int depth)
{
    int64_t n = mp_obj_len(seq);
    for (int64_t i = 0; i < n; i++) {
        if (i > 0)
            sb_cstr(s, ", ");
        repr(s, mp_seq_item(seq, (size_t)i), depth + 1);
    }
}

static void repr_set_items(sb *s, const mp_obj *o, int depth)
{
    const mp__table *t = (const mp__table *)o;
    sb_ch(s, '{');
    bool first = true;
    for (size_t i = 0; i < t->used; i++) {
        if (t->entries[i].key == NULL)
            continue;
        if (!first)
            sb_cstr(s, ", ");
        first = false;
        repr(s, t->entries[i].key, depth + 1);
    }
    sb_ch(s, '}');
}

static bool exception_like(const char *name)
{
    static const char *const suffixes[] = {"Error", "Exception", "Warning",
                                           "Exit",  "Interrupt", "Iteration"};
    static const char *const names[] = {"Empty", "Full", "GeneratorExit", "BaseException"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0)
            return true;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static void repr_object(sb *s, const mp_obj *o, int depth)
{
    const mp__object *n = (const mp__object *)o;
    const char *module = ((const mp__bytes *)n->module)->data;
    const char *name = ((const mp__bytes *)n->name)->data;
    const char *dot = strrchr(name, '.');
    const char *short_name = dot ? dot + 1 : name;
    size_t nargs = ((const mp__tuple *)n->args)->n;
    if (o->aux == MP_OBJECT_REDUCE && exception_like(short_name) && n->kwargs == NULL &&
        n->listitems == NULL && n->dictitems == NULL) {
        /* BaseException.__repr__ */
        sb_cstr(s, short_name);
        if (nargs == 1) {
            sb_ch(s, '(');
            repr(s, ((const mp__tuple *)n->args)->items[0], depth + 1);
            sb_ch(s, ')');
        } else {
            repr(s, n->args, depth + 1);
        }
        return;
    }
    if (strcmp(module, "multiprocessing.managers") == 0 && strcmp(name, "Token") == 0 &&
        n->state != NULL && mp__kind(n->state) == MP_OBJ_TUPLE &&
        ((const mp__tuple *)n->state)->n == 3) {
        const mp__tuple *st = (const mp__tuple *)n->state;
        sb_cstr(s, "Token(typeid=");
        repr(s, st->items[0], depth + 1);
        sb_cstr(s, ", address=");
        repr(s, st->items[1], depth + 1);
        sb_cstr(s, ", id=");
        repr(s, st->items[2], depth + 1);
        sb_ch(s, ')');
        return;
    }
    sb_cstr(s, module);
    sb_ch(s, '.');
    sb_cstr(s, name);
    if (o->aux == MP_OBJECT_GLOBAL && n->state == NULL)
        return;
    sb_ch(s, '(');
    repr_items(s, n->args, depth);
    bool more = nargs > 0;
    if (n->kwargs != NULL) {
        size_t it = 0;
        mp_obj *k, *v;
        while (mp_dict_next(n->kwargs, &it, &k, &v)) {
            if (more)
                sb_cstr(s, ", ");
            more = true;
            if (mp__kind(k) == MP_OBJ_STR)
                sb_cstr(s, ((const mp__bytes *)k)->data);
            else
                repr(s, k, depth + 1);
            sb_ch(s, '=');
            repr(s, v, depth + 1);
        }
    }
    const mp_obj *extra[] = {n->listitems, n->dictitems, n->state};
    const char *label[] = {"listitems=", "dictitems=", "state="};
    for (int i = 0; i < 3; i++) {
        if (extra[i] == NULL)
            continue;
        if (more)
            sb_cstr(s, ", ");
        more = true;
        sb_cstr(s, label[i]);
        repr(s, extra[i], depth + 1);
    }
    sb_ch(s, ')');
}

static void repr(sb *s, const mp_obj *o, int depth)
{
    if (s->failed)
        return;
    if (depth > MAX_DEPTH) {
        s->failed = true;
        return;
    }
    char num[64];
    int64_t v;
    switch (mp__kind(o)) {
    case MP_OBJ_NONE:
        sb_cstr(s, "None");
        break;
    case MP_OBJ_BOOL:
        sb_cstr(s, o->aux ? "True" : "False");
        break;
    case MP_OBJ_INT:
        if (mp__int64_of(o, &v)) {
            snprintf(num, sizeof num, "%lld", (long long)v);
            sb_cstr(s, num);
        } else {
            char *d = mp__bigint_decimal((const mp__bigint *)o);
            if (d == NULL) {
                s->failed = true;
                return;
            }
            sb_cstr(s, d);
            free(d);
        }
        break;
    case MP_OBJ_FLOAT:
        mp__format_double(((const mp__float *)o)->v, num, true, false);
        sb_cstr(s, num);
        break;
    case MP_OBJ_COMPLEX: {
        const mp__complex *c = (const mp__complex *)o;
        if (c->re == 0.0 && !signbit(c->re)) {
            mp__format_double(c->im, num, false, false);
            sb_cstr(s, num);
            sb_ch(s, 'j');
        } else {
            sb_ch(s, '(');
            mp__format_double(c->re, num, false, false);
            sb_cstr(s, num);
            mp__format_double(c->im, num, false, true);
            sb_cstr(s, num);
            sb_cstr(s, "j)");
        }
        break;
    }
    case MP_OBJ_STR:
        repr_str(s, ((const mp__bytes *)o)->data, ((const mp__bytes *)o)->len);
        break;
    case MP_OBJ_BYTES:
        repr_bytes(s, ((const mp__bytes *)o)->data, ((const mp__bytes *)o)->len, false);
        break;
    case MP_OBJ_BYTEARRAY:
        /* CPython's bytearray repr escapes ' even inside double quotes. */
        sb_cstr(s, "bytearray(");
        repr_bytes(s, ((const mp__bytes *)o)->data, ((const mp__bytes *)o)->len, true);
        sb_ch(s, ')');
        break;
    case MP_OBJ_TUPLE:
        sb_ch(s, '(');
        repr_items(s, o, depth);
        if (((const mp__tuple *)o)->n == 1)
            sb_ch(s, ',');
        sb_ch(s, ')');
        break;
    case MP_OBJ_LIST:
        sb_ch(s, '[');
        repr_items(s, o, depth);
        sb_ch(s, ']');
        break;
    case MP_OBJ_DICT: {
        sb_ch(s, '{');
        size_t it = 0;
        mp_obj *k, *val;
        bool first = true;
        while (mp_dict_next(o, &it, &k, &val)) {
            if (!first)
                sb_cstr(s, ", ");
            first = false;
            repr(s, k, depth + 1);
            sb_cstr(s, ": ");
            repr(s, val, depth + 1);
        }
        sb_ch(s, '}');
        break;
    }
    case MP_OBJ_SET:
        if (((const mp__table *)o)->live == 0)
            sb_cstr(s, "set()");
        else
            repr_set_items(s, o, depth);
        break;
    case MP_OBJ_FROZENSET:
        sb_cstr(s, "frozenset(");
        if (((const mp__table *)o)->live > 0)
            repr_set_items(s, o, depth);
        sb_ch(s, ')');
        break;
    case MP_OBJ_OBJECT:
        repr_object(s, o, depth);
        break;
    }
}

char *mp_obj_repr(const mp_obj *o)
{
    sb s = {0};
    if (o == NULL) {
        sb_cstr(&s, "NULL");
        return s.p;
    }
    repr(&s, o, 0);
    if (!s.failed && s.p == NULL)
        sb_add(&s, "", 0);
    if (s.failed) {
        free(s.p);
        return NULL;
    }
    return s.p;
}
