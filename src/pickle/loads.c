/* loads.c — the pickle decoder, protocols 0 to 5, for hostile input.
 *
 * A stack machine as CPython's _pickle.c: a value stack, a stack of mark positions
 * and a memo array. Invariants that make it safe:
 * - every length read from the input is checked against the bytes that remain
 *   before anything is allocated for it, so a short pickle cannot ask for a large
 *   allocation; counts of items come from the stack, which the input itself filled;
 * - a memo index may only grow the memo array to about twice its filled size
 *   (CPython's pickles number their memo densely), bounded by max_memo;
 * - pops never reach below the innermost mark (CPython: "unpickling stack
 *   underflow");
 * - nesting is bounded by max_depth through each value's depth field, and the
 *   number of values made by max_items;
 * - a mutation that would close a cycle (APPEND of a list into itself, the
 *   recursive-tuple trick) is found by a search from the inserted value, done only
 *   once the pickle has fetched a container from the memo (the only way to refer
 *   back to one), and refused;
 * - nothing is imported or called: globals are data (object nodes), except the few
 *   builtins that stand for plain values (set, frozenset, bytearray, complex,
 *   _codecs.encode for bytes), which are built directly.
 */
#include <endian.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "mproc/pickle.h"
#include "pickle/obj.h"

#define INLINE_STACK 64
#define INLINE_MARKS 16
#define INLINE_MEMO 32
/* Pickles shorter than this get no arena: their values are malloc'd one by one. */
#define LOADS_ARENA_MIN 1024

typedef struct unpickler {
    const uint8_t *buf, *p, *end;
    const uint8_t *op_at; /* start of the current opcode */
    int proto;
    mp_obj **stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    mp_obj **memo;
    size_t memo_cap, memo_count; /* memo[0, memo_cap) allocated, memo_count entries set */
    size_t memo_hi;              /* memo[0, memo_hi) initialised (NULL: unset) */
    size_t max_depth, max_memo, max_items, items;
    bool fetched_container; /* a container came from the memo: check for cycles */
    uint32_t epoch;
    mp_obj_error *err;
    int rc;
    mp_obj *stack_inline[INLINE_STACK];
    size_t marks_inline[INLINE_MARKS];
    mp_obj *memo_inline[INLINE_MEMO];
} unpickler;

static const char *const opnames[256] = {
    ['('] = "MARK",
    ['.'] = "STOP",
    ['0'] = "POP",
    ['1'] = "POP_MARK",
    ['2'] = "DUP",
    ['F'] = "FLOAT",
    ['I'] = "INT",
    ['J'] = "BININT",
    ['K'] = "BININT1",
    ['L'] = "LONG",
    ['M'] = "BININT2",
    ['N'] = "NONE",
    ['P'] = "PERSID",
    ['Q'] = "BINPERSID",
    ['R'] = "REDUCE",
    ['S'] = "STRING",
    ['T'] = "BINSTRING",
    ['U'] = "SHORT_BINSTRING",
    ['V'] = "UNICODE",
    ['X'] = "BINUNICODE",
    ['a'] = "APPEND",
    ['b'] = "BUILD",
    ['c'] = "GLOBAL",
    ['d'] = "DICT",
    ['}'] = "EMPTY_DICT",
    ['e'] = "APPENDS",
    ['g'] = "GET",
    ['h'] = "BINGET",
    ['i'] = "INST",
    ['j'] = "LONG_BINGET",
    ['l'] = "LIST",
    [']'] = "EMPTY_LIST",
    ['o'] = "OBJ",
    ['p'] = "PUT",
    ['q'] = "BINPUT",
    ['r'] = "LONG_BINPUT",
    ['s'] = "SETITEM",
    ['t'] = "TUPLE",
    [')'] = "EMPTY_TUPLE",
    ['u'] = "SETITEMS",
    ['G'] = "BINFLOAT",
    [0x80] = "PROTO",
    [0x81] = "NEWOBJ",
    [0x82] = "EXT1",
    [0x83] = "EXT2",
    [0x84] = "EXT4",
    [0x85] = "TUPLE1",
    [0x86] = "TUPLE2",
    [0x87] = "TUPLE3",
    [0x88] = "NEWTRUE",
    [0x89] = "NEWFALSE",
    [0x8a] = "LONG1",
    [0x8b] = "LONG4",
    ['B'] = "BINBYTES",
    ['C'] = "SHORT_BINBYTES",
    [0x8c] = "SHORT_BINUNICODE",
    [0x8d] = "BINUNICODE8",
    [0x8e] = "BINBYTES8",
    [0x8f] = "EMPTY_SET",
    [0x90] = "ADDITEMS",
    [0x91] = "FROZENSET",
    [0x92] = "NEWOBJ_EX",
    [0x93] = "STACK_GLOBAL",
    [0x94] = "MEMOIZE",
    [0x95] = "FRAME",
    [0x96] = "BYTEARRAY8",
    [0x97] = "NEXT_BUFFER",
    [0x98] = "READONLY_BUFFER",
};

static int fail(unpickler *u, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(unpickler *u, int rc, const char *fmt, ...)
{
    if (u->rc < 0)
        return u->rc;
    u->rc = rc;
    if (u->err == NULL)
        return rc;
    size_t off = (size_t)(u->op_at - u->buf);
    u->err->position = off;
    const char *name = u->op_at < u->end ? opnames[*u->op_at] : NULL;
    int n;
    if (name != NULL)
        n = snprintf(u->err->text, sizeof u->err->text, "%s at offset %zu: ", name, off);
    else if (u->op_at < u->end)
        n = snprintf(u->err->text, sizeof u->err->text, "opcode 0x%02x at offset %zu: ", *u->op_at,
                     off);
    else
        n = snprintf(u->err->text, sizeof u->err->text, "at offset %zu: ", off);
    if (n < 0 || (size_t)n >= sizeof u->err->text)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->err->text + n, sizeof u->err->text - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(unpickler *u)
{
    return fail(u, MP_ENOMEM, "out of memory");
}

#define NEED(u, n)                                                                                 \
    do {                                                                                           \
        if ((size_t)((u)->end - (u)->p) < (size_t)(n))                                             \
            return fail((u), MP_EPROTO, "truncated: needs %zu bytes, %zu left", (size_t)(n),       \
                        (size_t)((u)->end - (u)->p));                                              \
    } while (0)

/* n of 1, 2, 4 or 8 little-endian bytes. */
static inline uint64_t rd_le(const uint8_t *p, int n)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (n) {
    case 1:
        return p[0];
    case 2:
        memcpy(&v16, p, 2);
        return le16toh(v16);
    case 4:
        memcpy(&v32, p, 4);
        return le32toh(v32);
    default:
        memcpy(&v64, p, 8);
        return le64toh(v64);
    }
}

/* ---- references ----
 * Every value a loads makes is private to it until it returns, so the memo's and
 * the stack's extra references are counted without atomics. */

static inline mp_obj *lref(mp_obj *o)
{
    if (!mp__is_tagged(o) && !(o->flags & MP__IMMORTAL))
        o->refs++;
    return o;
}

static inline void lunref(mp_obj *o)
{
    if (o == NULL || mp__is_tagged(o) || (o->flags & MP__IMMORTAL))
        return;
    if (o->refs > 1)
        o->refs--;
    else
        mp_obj_unref(o);
}

/* ---- stack ---- */

static size_t base(const unpickler *u)
{
    return u->mn ? u->marks[u->mn - 1] : 0;
}

static int grow_stack(unpickler *u)
{
    size_t cap = u->scap * 2;
    mp_obj **s =
        u->stack == u->stack_inline ? malloc(cap * sizeof *s) : realloc(u->stack, cap * sizeof *s);
    if (s == NULL)
        return oom(u);
    if (u->stack == u->stack_inline)
        memcpy(s, u->stack_inline, sizeof u->stack_inline);
    u->stack = s;
    u->scap = cap;
    return 0;
}

/* Pushes o (taking it); NULL o means out of memory. */
static inline int push(unpickler *u, mp_obj *o)
{
    if (o == NULL)
        return oom(u);
    if (u->sn == u->scap && grow_stack(u) < 0) {
        mp_obj_unref(o);
        return u->rc;
    }
    u->stack[u->sn++] = o;
    return 0;
}

/* Counts a new value against max_items. */
static inline int count(unpickler *u, size_t n)
{
    u->items += n;
    if (u->items > u->max_items)
        return fail(u, MP_EPROTO, "more than %zu values (limit)", u->max_items);
    return 0;
}

static inline int check_depth(unpickler *u, const mp_obj *o)
{
    if (!mp__is_tagged(o) && o->depth > u->max_depth)
        return fail(u, MP_EPROTO, "nested deeper than %zu (limit)", u->max_depth);
    return 0;
}

static int underflow(unpickler *u)
{
    return fail(u, MP_EPROTO, "stack underflow");
}

/* Pops the top value (the caller takes the reference), or NULL on underflow. */
static inline mp_obj *pop(unpickler *u)
{
    if (u->sn <= base(u)) {
        underflow(u);
        return NULL;
    }
    return u->stack[--u->sn];
}

/* Index on the stack of the innermost mark; pops the mark. */
static int pop_mark(unpickler *u, size_t *k)
{
    if (u->mn == 0)
        return fail(u, MP_EPROTO, "no MARK before it");
    *k = u->marks[--u->mn];
    return 0;
}

/* ---- memo ---- */

static int memo_set(unpickler *u, size_t idx, mp_obj *o)
{
    if (idx >= u->max_memo)
        return fail(u, MP_EPROTO, "memo index %zu over the limit %zu", idx, u->max_memo);
    if (idx >= u->memo_cap) {
        if (idx > 2 * u->memo_count + 1024)
            return fail(u, MP_EPROTO, "memo index %zu too sparse (%zu entries)", idx,
                        u->memo_count);
        size_t cap = u->memo_cap * 2;
        while (cap <= idx)
            cap *= 2;
        mp_obj **m =
            u->memo == u->memo_inline ? malloc(cap * sizeof *m) : realloc(u->memo, cap * sizeof *m);
        if (m == NULL)
            return oom(u);
        if (u->memo == u->memo_inline)
            memcpy(m, u->memo_inline, u->memo_hi * sizeof *m);
        u->memo = m;
        u->memo_cap = cap;
    }
    if (idx >= u->memo_hi) {
        for (size_t i = u->memo_hi; i < idx; i++)
            u->memo[i] = NULL;
        u->memo[idx] = NULL;
        u->memo_hi = idx + 1;
    }
    if (u->memo[idx] == NULL)
        u->memo_count++;
    else
        lunref(u->memo[idx]);
    u->memo[idx] = lref(o);
    return 0;
}

static int memo_put_top(unpickler *u, size_t idx)
{
    if (u->sn <= base(u))
        return underflow(u);
    return memo_set(u, idx, u->stack[u->sn - 1]);
}

static bool is_container(const mp_obj *o)
{
    return !mp__is_tagged(o) && o->kind >= MP_OBJ_TUPLE;
}

static int memo_get(unpickler *u, size_t idx)
{
    if (idx >= u->memo_hi || u->memo[idx] == NULL)
        return fail(u, MP_EPROTO, "memo key %zu not found", idx);
    mp_obj *o = u->memo[idx];
    if (is_container(o))
        u->fetched_container = true;
    return push(u, lref(o));
}

/* A MEMOIZE right after an opcode that pushed a value (CPython writes one after
 * every str, bytes, tuple, list, dict, set, global and object) is done here,
 * without a trip through the dispatch. */
static inline int fused_memoize(unpickler *u)
{
    if (u->p >= u->end || *u->p != 0x94)
        return 0;
    u->op_at = u->p++;
    size_t idx = u->memo_count;
    if (idx == u->memo_hi && idx < u->memo_cap && idx < u->max_memo) {
        u->memo[idx] = lref(u->stack[u->sn - 1]);
        u->memo_hi++;
        u->memo_count++;
        return 0;
    }
    return memo_put_top(u, idx);
}

/* ---- cycle check ---- */

/* Whether target can be reached from o through container items. */
static int reaches(unpickler *u, mp_obj *o, const mp_obj *target, bool *found)
{
    *found = false;
    if (!is_container(o))
        return 0;
    if (++u->epoch == 0)
        u->epoch = 1;
    size_t n = 0, cap = 64;
    mp_obj *inl[64];
    mp_obj **st = inl;
    st[n++] = o;
    o->mark = u->epoch;
    int rc = 0;
    while (n > 0 && !*found) {
        mp_obj *x = st[--n];
        if (x == target) {
            *found = true;
            break;
        }
        mp_obj *kids[7];
        mp_obj *const *items = kids;
        size_t nk = 0;
        const mp__table *t = NULL;
        switch ((mp_obj_kind)x->kind) {
        case MP_OBJ_TUPLE:
            items = ((mp__tuple *)x)->items;
            nk = ((mp__tuple *)x)->n;
            break;
        case MP_OBJ_LIST:
            items = ((mp__list *)x)->items;
            nk = ((mp__list *)x)->n;
            break;
        case MP_OBJ_DICT:
        case MP_OBJ_SET:
        case MP_OBJ_FROZENSET:
            t = (const mp__table *)x;
            break;
        case MP_OBJ_OBJECT: {
            mp__object *ob = (mp__object *)x;
            mp_obj *parts[] = {ob->args, ob->kwargs, ob->state, ob->listitems, ob->dictitems};
            for (int i = 0; i < 5; i++)
                if (parts[i] != NULL)
                    kids[nk++] = parts[i];
            break;
        }
        default:
            break;
        }
        size_t total = t ? t->used * 2 : nk;
        for (size_t i = 0; i < total; i++) {
            mp_obj *c;
            if (t) {
                const mp__entry *e = &t->entries[i / 2];
                if (e->key == NULL)
                    continue;
                c = i % 2 ? e->value : e->key;
                if (c == NULL)
                    continue;
            } else {
                c = items[i];
            }
            if (!is_container(c) || c->mark == u->epoch)
                continue;
            c->mark = u->epoch;
            if (n == cap) {
                size_t nc = cap * 2;
                mp_obj **ns = st == inl ? malloc(nc * sizeof *ns) : realloc(st, nc * sizeof *ns);
                if (ns == NULL) {
                    rc = oom(u);
                    goto out;
                }
                if (st == inl)
                    memcpy(ns, inl, sizeof inl);
                st = ns;
                cap = nc;
            }
            st[n++] = c;
        }
    }
out:
    if (st != inl)
        free(st);
    return rc;
}

/* Refuses inserting item into container when that would make a cycle. */
static int check_cycle(unpickler *u, mp_obj *item, const mp_obj *container)
{
    if (!u->fetched_container)
        return 0;
    if (item == container)
        return fail(u, MP_EPROTO,
                    "recursive structure (a container inside itself) is not supported");
    bool found;
    int rc = reaches(u, item, container, &found);
    if (rc < 0)
        return rc;
    if (found)
        return fail(u, MP_EPROTO,
                    "recursive structure (a container inside itself) is not supported");
    return 0;
}

/* ---- values ---- */

static int push_str(unpickler *u, const uint8_t *s, size_t n)
{
    uint64_t high = 0;
    if (n <= 64) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            high |= w;
        }
        for (; i < n; i++)
            high |= s[i];
    }
    if ((n > 64 || (high & 0x8080808080808080ull)) && !mp__utf8_valid(s, n))
        return fail(u, MP_EPROTO, "invalid UTF-8 in a %zu-byte string", n);
    if (count(u, 1) < 0)
        return u->rc;
    mp_obj *o = mp__bytes_alloc(MP_OBJ_STR, n);
    if (o != NULL)
        memcpy(((mp__bytes *)o)->data, s, n);
    return push(u, o);
}

static int push_bytes(unpickler *u, mp_obj_kind kind, const uint8_t *s, size_t n)
{
    if (count(u, 1) < 0)
        return u->rc;
    mp_obj *o = mp__bytes_alloc(kind, n);
    if (o != NULL && n > 0)
        memcpy(((mp__bytes *)o)->data, s, n);
    return push(u, o);
}

/* A line ending in '\n' (protocol 0 arguments); *len excludes the newline. */
static int read_line(unpickler *u, const uint8_t **line, size_t *len)
{
    const uint8_t *nl = memchr(u->p, '\n', (size_t)(u->end - u->p));
    if (nl == NULL)
        return fail(u, MP_EPROTO, "truncated: no end of line");
    *line = u->p;
    *len = (size_t)(nl - u->p);
    u->p = nl + 1;
    return 0;
}

static int push_decimal(unpickler *u, const uint8_t *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    while (n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    if (n == 0 || n > 4301)
        return fail(u, MP_EPROTO, "bad integer text (%zu bytes)", n);
    mp_obj *o = mp__int_from_decimal((const char *)s, n);
    if (o == NULL) {
        /* Distinguish a bad digit from out-of-memory. */
        for (size_t i = 0; i < n; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && (s[i] == '-' || s[i] == '+'))))
                return fail(u, MP_EPROTO, "bad integer text");
        if (n == 1 && (s[0] == '-' || s[0] == '+'))
            return fail(u, MP_EPROTO, "bad integer text");
        return oom(u);
    }
    return push(u, o);
}

/* Python 2 str (STRING, BINSTRING, SHORT_BINSTRING): decoded as ASCII, which is
 * Python 3's default for pickle.loads. */
static int push_ascii(unpickler *u, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80)
            return fail(u, MP_EPROTO, "non-ASCII Python 2 string (encoding='ASCII')");
    return push_str(u, s, n);
}

/* STRING's argument: a quoted Python 2 literal with backslash escapes. */
static int push_quoted(unpickler *u, const uint8_t *s, size_t n)
{
    while (n > 0 && s[n - 1] == '\r')
        n--;
    if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
        return fail(u, MP_EPROTO, "the STRING opcode argument must be quoted");
    s++;
    n -= 2;
    uint8_t *out = malloc(n + 1);
    if (out == NULL)
        return oom(u);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            out[j++] = s[i];
            continue;
        }
        uint8_t c = s[++i];
        switch (c) {
        case 'n':
            out[j++] = '\n';
            break;
        case 't':
            out[j++] = '\t';
            break;
        case 'r':
            out[j++] = '\r';
            break;
        case 'a':
            out[j++] = 7;
            break;
        case 'b':
            out[j++] = 8;
            break;
        case 'f':
            out[j++] = 12;
            break;
        case 'v':
            out[j++] = 11;
            break;
        case '\\':
        case '\'':
        case '"':
            out[j++] = c;
            break;
        case 'x': {
            unsigned v = 0, k = 0;
            for (; k < 2 && i + 1 < n; k++) {
                uint8_t h = s[i + 1];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0)
                    break;
                v = v * 16 + (unsigned)d;
                i++;
            }
            if (k != 2) {
                free(out);
                return fail(u, MP_EPROTO, "bad \\x escape in STRING");
            }
            out[j++] = (uint8_t)v;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned v = c - '0';
                for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
                    v = v * 8 + (unsigned)(s[++i] - '0');
                out[j++] = (uint8_t)v;
            } else {
                out[j++] = '\\';
                out[j++] = c;
            }
        }
    }
    int rc = push_ascii(u, out, j);
    free(out);
    return rc;
}

/* UNICODE's argument: raw-unicode-escape (latin-1 bytes, \uXXXX and \UXXXXXXXX). */
static int push_raw_unicode(unpickler *u, const uint8_t *s, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4)
        return oom(u);
    char *out = malloc(n * 4 + 1);
    if (out == NULL)
        return oom(u);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            /* An escape only after an even number of backslashes. */
            size_t bs = 0;
            while (bs < i && s[i - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0) {
                size_t digits = s[i + 1] == 'u' ? 4 : 8;
                if (i + 2 + digits > n) {
                    free(out);
                    return fail(u, MP_EPROTO, "truncated \\u escape in UNICODE");
                }
                uint32_t cp = 0;
                for (size_t k = 0; k < digits; k++) {
                    uint8_t h = s[i + 2 + k];
                    int d = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
                    if (d < 0) {
                        free(out);
                        return fail(u, MP_EPROTO, "bad \\u escape in UNICODE");
                    }
                    cp = cp * 16 + (uint32_t)d;
                }
                if (cp > 0x10ffff) {
                    free(out);
                    return fail(u, MP_EPROTO, "\\U escape beyond U+10FFFF in UNICODE");
                }
                j += mp__utf8_encode(cp, out + j);
                i += 2 + digits;
                continue;
            }
        }
        j += mp__utf8_encode(s[i], out + j);
        i++;
    }
    int rc = count(u, 1);
    if (rc == 0)
        rc = push(u, mp__str_trusted(out, j));
    free(out);
    return rc;
}

/* ---- globals and reduce ---- */

static mp_obj *str_of(const char *s)
{
    return mp__str_trusted(s, strlen(s));
}

/* A global (module, name str values, taken) as a GLOBAL-form object node. Applies
 * CPython's fix_imports renames of Python 2 modules below protocol 3. */
static int push_global(unpickler *u, mp_obj *module, mp_obj *name)
{
    /* No module or attribute name holds a NUL (CPython's import refuses one), and
     * the renames and global_is compare C strings: an embedded NUL would let
     * "__builtin__\0x" pass for "__builtin__" (found by fuzz_pickle_loads). */
    const mp__bytes *mb = (const mp__bytes *)module, *nb = (const mp__bytes *)name;
    if (memchr(mb->data, '\0', mb->len) != NULL || memchr(nb->data, '\0', nb->len) != NULL) {
        mp_obj_unref(module);
        mp_obj_unref(name);
        return fail(u, MP_EPROTO, "a global's module or name contains a NUL byte");
    }
    if (u->proto < 3) {
        static const char *const renames[][2] = {{"__builtin__", "builtins"},
                                                 {"copy_reg", "copyreg"},
                                                 {"exceptions", "builtins"},
                                                 {"Queue", "queue"}};
        const char *m = ((mp__bytes *)module)->data;
        for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
            if (strcmp(m, renames[i][0]) == 0) {
                mp_obj_unref(module);
                module = str_of(renames[i][1]);
                break;
            }
        }
    }
    if (count(u, 1) < 0) {
        mp_obj_unref(module);
        mp_obj_unref(name);
        return u->rc;
    }
    return push(u, mp__object_make(module, name, MP_OBJECT_GLOBAL, mp_tuple_new(0), NULL, NULL));
}

static bool global_is(const mp__object *g, const char *module, const char *name)
{
    return strcmp(((mp__bytes *)g->module)->data, module) == 0 &&
           strcmp(((mp__bytes *)g->name)->data, name) == 0;
}

static bool is_latin1_name(const mp_obj *o)
{
    const char *s = mp_str_cstr(o);
    /* (strlen: an embedded NUL names another codec) */
    return s && strlen(s) == (size_t)mp_obj_len(o) &&
           (strcmp(s, "latin1") == 0 || strcmp(s, "latin-1") == 0 || strcmp(s, "iso-8859-1") == 0 ||
            strcmp(s, "iso8859-1") == 0);
}

/* str (UTF-8) to latin-1 bytes; NULL with *bad when a code point is over 255. */
static mp_obj *latin1_bytes(const mp_obj *s, mp_obj_kind kind, bool *bad)
{
    const mp__bytes *b = (const mp__bytes *)s;
    mp_obj *o = mp__bytes_alloc(kind, b->len);
    if (o == NULL)
        return NULL;
    mp__bytes *ob = (mp__bytes *)o;
    size_t j = 0;
    for (size_t i = 0; i < b->len;) {
        uint32_t cp;
        i += mp__utf8_decode((const unsigned char *)b->data + i, &cp);
        if (cp > 0xff) {
            mp_obj_unref(o);
            *bad = true;
            return NULL;
        }
        ob->data[j++] = (char)cp;
    }
    ob->len = j;
    ob->data[j] = '\0';
    return o;
}

/* The value a known builtin call stands for, or NULL (*handled false) for an
 * ordinary object node. Takes nothing. */
static int known_call(unpickler *u, const mp__object *g, const mp__tuple *args, mp_obj **out)
{
    *out = NULL;
    /* Protocols 0 and 1 write plain objects as copyreg._reconstructor(cls, object,
     * None) + BUILD; protocol 2 and later as cls.__new__(cls) by NEWOBJ. Keep the
     * latter form, so a Token reads the same from either. */
    if (global_is(g, "copyreg", "_reconstructor") && args->n == 3 &&
        mp__kind(args->items[2]) == MP_OBJ_NONE) {
        const mp_obj *cls = args->items[0], *basecls = args->items[1];
        if (mp__kind(cls) == MP_OBJ_OBJECT && cls->aux == MP_OBJECT_GLOBAL &&
            mp__kind(basecls) == MP_OBJ_OBJECT && basecls->aux == MP_OBJECT_GLOBAL &&
            global_is((const mp__object *)basecls, "builtins", "object")) {
            const mp__object *c = (const mp__object *)cls;
            *out = mp__object_make(mp_obj_ref(c->module), mp_obj_ref(c->name), MP_OBJECT_NEWOBJ,
                                   mp_tuple_new(0), NULL, NULL);
            return *out ? 0 : oom(u);
        }
    }
    const char *mod = ((mp__bytes *)g->module)->data;
    if (strcmp(mod, "builtins") != 0 && strcmp(mod, "_codecs") != 0)
        return 0;
    size_t n = args->n;
    mp_obj *a0 = n > 0 ? args->items[0] : NULL;
    bool bad = false;
    if (global_is(g, "builtins", "set") || global_is(g, "builtins", "frozenset")) {
        mp_obj_kind k = global_is(g, "builtins", "set") ? MP_OBJ_SET : MP_OBJ_FROZENSET;
        if (n > 1)
            return 0;
        mp_obj *s = mp__table_new(k, 0);
        if (s == NULL)
            return oom(u);
        if (n == 1) {
            mp_obj_kind ak = mp__kind(a0);
            int rc = 0;
            if (ak == MP_OBJ_LIST || ak == MP_OBJ_TUPLE) {
                size_t m = (size_t)mp_obj_len(a0);
                for (size_t i = 0; i < m && rc == 0; i++)
                    rc = mp__table_set(s, mp_obj_ref(mp_seq_item(a0, i)), NULL);
            } else if (ak == MP_OBJ_SET || ak == MP_OBJ_FROZENSET) {
                size_t it = 0;
                mp_obj *item;
                while (rc == 0 && mp_set_next(a0, &it, &item))
                    rc = mp__table_set(s, mp_obj_ref(item), NULL);
            } else {
                mp_obj_unref(s);
                return 0;
            }
            if (rc < 0) {
                mp_obj_unref(s);
                return rc == MP_ETYPE ? fail(u, MP_EPROTO, "unhashable set item") : oom(u);
            }
        }
        *out = s;
        return 0;
    }
    if (global_is(g, "builtins", "bytearray") || global_is(g, "builtins", "bytes")) {
        mp_obj_kind k = global_is(g, "builtins", "bytes") ? MP_OBJ_BYTES : MP_OBJ_BYTEARRAY;
        if (n == 0) {
            *out = mp__bytes_alloc(k, 0);
        } else if (n == 1 && (mp__kind(a0) == MP_OBJ_BYTES || mp__kind(a0) == MP_OBJ_BYTEARRAY)) {
            const mp__bytes *b = (const mp__bytes *)a0;
            *out = mp__bytes_alloc(k, b->len);
            if (*out != NULL)
                memcpy(((mp__bytes *)*out)->data, b->data, b->len);
        } else if (n == 2 && mp__kind(a0) == MP_OBJ_STR && is_latin1_name(args->items[1])) {
            *out = latin1_bytes(a0, k, &bad);
        } else {
            return 0;
        }
        if (*out == NULL)
            return bad ? fail(u, MP_EPROTO, "code point over 255 in latin-1 text") : oom(u);
        return 0;
    }
    if (global_is(g, "_codecs", "encode")) {
        if (n != 2 || mp__kind(a0) != MP_OBJ_STR || !is_latin1_name(args->items[1]))
            return 0;
        *out = latin1_bytes(a0, MP_OBJ_BYTES, &bad);
        if (*out == NULL)
            return bad ? fail(u, MP_EPROTO, "code point over 255 in latin-1 text") : oom(u);
        return 0;
    }
    if (global_is(g, "builtins", "complex")) {
        double re = 0, im = 0;
        if (n > 2)
            return 0;
        for (size_t i = 0; i < n; i++) {
            mp_obj_kind k = mp__kind(args->items[i]);
            if (k != MP_OBJ_FLOAT && k != MP_OBJ_INT && k != MP_OBJ_BOOL)
                return 0;
            if (mp_float_value(args->items[i], i ? &im : &re) < 0)
                return 0;
        }
        *out = mp_complex(re, im);
        return *out ? 0 : oom(u);
    }
    return 0;
}

/* REDUCE / NEWOBJ / NEWOBJ_EX: callable and args (and kwargs) popped by the caller
 * and taken here. */
static int push_call(unpickler *u, mp_obj *callable, mp_obj *args, mp_obj *kwargs, int form)
{
    int rc = 0;
    if (mp__kind(callable) != MP_OBJ_OBJECT || callable->aux != MP_OBJECT_GLOBAL ||
        ((mp__object *)callable)->state != NULL)
        rc = fail(u, MP_EPROTO, "the callable is not a global (only globals are accepted)");
    else if (mp__kind(args) != MP_OBJ_TUPLE)
        rc = fail(u, MP_EPROTO, "arguments are a %s, not a tuple", mp_obj_type_name(args));
    else if (kwargs != NULL && mp__kind(kwargs) != MP_OBJ_DICT)
        rc = fail(u, MP_EPROTO, "keyword arguments are a %s, not a dict", mp_obj_type_name(kwargs));
    mp_obj *value = NULL;
    if (rc == 0 && form == MP_OBJECT_REDUCE)
        rc = known_call(u, (mp__object *)callable, (mp__tuple *)args, &value);
    if (rc == 0 && value == NULL) {
        mp__object *g = (mp__object *)callable;
        value =
            mp__object_make(mp_obj_ref(g->module), mp_obj_ref(g->name), form, args, kwargs, NULL);
        args = kwargs = NULL;
        if (value == NULL)
            rc = oom(u);
    }
    mp_obj_unref(callable);
    mp_obj_unref(args);
    mp_obj_unref(kwargs);
    if (rc < 0) {
        mp_obj_unref(value);
        return rc;
    }
    if ((rc = count(u, 1)) < 0 || (rc = check_depth(u, value)) < 0) {
        mp_obj_unref(value);
        return rc;
    }
    return push(u, value);
}

/* ---- container opcodes ---- */

/* Appends stack[k, sn) to the list or object node at stack[k - 1]. */
static int do_appends(unpickler *u, size_t k)
{
    if (k == 0 || k - 1 < base(u))
        return underflow(u);
    mp_obj *target = u->stack[k - 1];
    size_t n = u->sn - k;
    mp_obj *list = target;
    if (mp__kind(target) == MP_OBJ_OBJECT) {
        /* No items leave the node as it was: an empty listitems would not survive
         * dumps, which writes none (as CPython's extend([]) changes nothing). */
        if (n == 0)
            return 0;
        mp__object *ob = (mp__object *)target;
        if (ob->listitems == NULL && (ob->listitems = mp_list_new()) == NULL)
            return oom(u);
        list = ob->listitems;
    } else if (mp__kind(target) != MP_OBJ_LIST) {
        return fail(u, MP_EPROTO, "cannot append to a %s", mp_obj_type_name(target));
    }
    for (size_t i = k; i < u->sn; i++)
        if (check_cycle(u, u->stack[i], target) < 0)
            return u->rc;
    mp__list *l = (mp__list *)list;
    if (l->cap - l->n < n) {
        size_t cap = l->n + n;
        if (cap < l->cap * 2)
            cap = l->cap * 2;
        mp_obj **items = realloc(l->items, cap * sizeof *items);
        if (items == NULL)
            return oom(u);
        l->items = items;
        l->cap = cap;
    }
    uint32_t d = list->depth;
    for (size_t i = k; i < u->sn; i++) {
        mp_obj *item = u->stack[i];
        l->items[l->n++] = item;
        if (!mp__is_tagged(item) && item->depth >= d)
            d = (uint32_t)item->depth + 1;
    }
    list->depth = mp__sat16(d);
    if (list != target && d >= target->depth)
        target->depth = mp__sat16(d + 1);
    u->sn = k;
    return check_depth(u, target);
}

/* Sets stack[k, sn) pairs into the dict or object node at stack[k - 1]. */
static int do_setitems(unpickler *u, size_t k)
{
    if (k == 0 || k - 1 < base(u))
        return underflow(u);
    if ((u->sn - k) % 2)
        return fail(u, MP_EPROTO, "odd number of items for SETITEMS");
    mp_obj *target = u->stack[k - 1];
    mp_obj *dict = target;
    if (mp__kind(target) == MP_OBJ_OBJECT) {
        if (u->sn == k)
            return 0; /* as in do_appends */
        mp__object *ob = (mp__object *)target;
        if (ob->dictitems == NULL && (ob->dictitems = mp_dict_new()) == NULL)
            return oom(u);
        dict = ob->dictitems;
    } else if (mp__kind(target) != MP_OBJ_DICT) {
        return fail(u, MP_EPROTO, "cannot set items of a %s", mp_obj_type_name(target));
    }
    for (size_t i = k; i < u->sn; i++)
        if (check_cycle(u, u->stack[i], target) < 0)
            return u->rc;
    size_t i = k;
    int rc = 0;
    for (; i < u->sn; i += 2) {
        rc = mp__table_set(dict, u->stack[i], u->stack[i + 1]);
        if (rc < 0) {
            i += 2;
            break;
        }
    }
    /* Items not consumed (after a failure) are still ours. */
    for (; i < u->sn; i++)
        mp_obj_unref(u->stack[i]);
    u->sn = k;
    if (rc == MP_ETYPE)
        return fail(u, MP_EPROTO, "unhashable dict key");
    if (rc < 0)
        return oom(u);
    if (dict != target && dict->depth >= target->depth)
        target->depth = mp__sat16((uint32_t)dict->depth + 1);
    return check_depth(u, target);
}

static int do_additems(unpickler *u, size_t k)
{
    if (k == 0 || k - 1 < base(u))
        return underflow(u);
    mp_obj *target = u->stack[k - 1];
    if (mp__kind(target) != MP_OBJ_SET)
        return fail(u, MP_EPROTO, "cannot add items to a %s", mp_obj_type_name(target));
    for (size_t i = k; i < u->sn; i++)
        if (check_cycle(u, u->stack[i], target) < 0)
            return u->rc;
    size_t i = k;
    int rc = 0;
    for (; i < u->sn && rc == 0; i++)
        rc = mp__table_set(target, u->stack[i], NULL);
    for (; i < u->sn; i++)
        mp_obj_unref(u->stack[i]);
    u->sn = k;
    if (rc == MP_ETYPE)
        return fail(u, MP_EPROTO, "unhashable set item");
    if (rc < 0)
        return oom(u);
    return check_depth(u, target);
}

/* A new table (dict, set, frozenset) from stack[k, sn), which it takes. */
static int build_table(unpickler *u, size_t k, mp_obj_kind kind)
{
    size_t n = u->sn - k;
    if (kind == MP_OBJ_DICT && n % 2)
        return fail(u, MP_EPROTO, "odd number of items for DICT");
    if (count(u, 1) < 0)
        return u->rc;
    mp_obj *t = mp__table_new(kind, kind == MP_OBJ_DICT ? n / 2 : n);
    if (t == NULL)
        return oom(u);
    size_t i = k;
    int rc = 0;
    size_t step = kind == MP_OBJ_DICT ? 2 : 1;
    for (; i < u->sn && rc == 0; i += step)
        rc = mp__table_set(t, u->stack[i], kind == MP_OBJ_DICT ? u->stack[i + 1] : NULL);
    for (; i < u->sn; i++)
        mp_obj_unref(u->stack[i]);
    u->sn = k;
    if (rc < 0) {
        mp_obj_unref(t);
        return rc == MP_ETYPE ? fail(u, MP_EPROTO, "unhashable key or item") : oom(u);
    }
    if ((rc = check_depth(u, t)) < 0) {
        mp_obj_unref(t);
        return rc;
    }
    return push(u, t);
}

static int build_tuple(unpickler *u, size_t k)
{
    if (count(u, 1) < 0)
        return u->rc;
    size_t n = u->sn - k;
    mp_obj *t = mp__tuple_from(u->stack + k, n);
    u->sn = k;
    if (t == NULL)
        return oom(u);
    int rc = check_depth(u, t);
    if (rc < 0) {
        mp_obj_unref(t);
        return rc;
    }
    return push(u, t);
}

static int build_list(unpickler *u, size_t k)
{
    if (count(u, 1) < 0)
        return u->rc;
    mp_obj *l = mp_list_new();
    if (l == NULL)
        return oom(u);
    if (push(u, l) < 0)
        return u->rc;
    /* The list is now above the items: move it below them. */
    memmove(u->stack + k + 1, u->stack + k, (u->sn - 1 - k) * sizeof(mp_obj *));
    u->stack[k] = l;
    return do_appends(u, k + 1);
}

static int do_build(unpickler *u)
{
    mp_obj *state = pop(u);
    if (state == NULL)
        return u->rc;
    if (u->sn <= base(u)) {
        mp_obj_unref(state);
        return underflow(u);
    }
    mp_obj *target = u->stack[u->sn - 1];
    if (mp__kind(target) != MP_OBJ_OBJECT) {
        mp_obj_unref(state);
        return fail(u, MP_EPROTO, "BUILD on a %s", mp_obj_type_name(target));
    }
    if (check_cycle(u, state, target) < 0) {
        mp_obj_unref(state);
        return u->rc;
    }
    mp_object_set_state(target, state);
    return check_depth(u, target);
}

/* ---- the machine ---- */

static int run(unpickler *u, mp_obj **out)
{
    size_t k = 0;
    uint64_t n;
    int rc;
    for (;;) {
        if (u->p >= u->end) {
            u->op_at = u->p;
            return fail(u, MP_EPROTO, "truncated: no STOP opcode");
        }
        u->op_at = u->p;
        uint8_t opc = *u->p++;
        const uint8_t *line = NULL;
        size_t ll = 0;
        mp_obj *a, *b, *c;
        switch (opc) {
        case 0x80: /* PROTO */
            NEED(u, 1);
            if (*u->p > MP_PICKLE_HIGHEST_PROTOCOL)
                return fail(u, MP_EPROTO, "unsupported pickle protocol %d", *u->p);
            u->proto = *u->p++;
            break;
        case 0x95: /* FRAME: advisory */
            NEED(u, 8);
            n = rd_le(u->p, 8);
            u->p += 8;
            if (n > (uint64_t)(u->end - u->p))
                return fail(u, MP_EPROTO, "frame of %llu bytes, %zu left", (unsigned long long)n,
                            (size_t)(u->end - u->p));
            break;
        case '.': /* STOP */
            a = pop(u);
            if (a == NULL)
                return u->rc;
            *out = a;
            return 0;
        case '(':
            if (u->mn == u->mcap) {
                size_t cap = u->mcap * 2;
                size_t *m = u->marks == u->marks_inline ? malloc(cap * sizeof *m)
                                                        : realloc(u->marks, cap * sizeof *m);
                if (m == NULL)
                    return oom(u);
                if (u->marks == u->marks_inline)
                    memcpy(m, u->marks_inline, sizeof u->marks_inline);
                u->marks = m;
                u->mcap = cap;
            }
            if (u->mn >= u->max_depth)
                return fail(u, MP_EPROTO, "more than %zu open MARKs (limit)", u->max_depth);
            u->marks[u->mn++] = u->sn;
            break;
        case '0': /* POP */
            if (u->sn > base(u)) {
                mp_obj_unref(u->stack[--u->sn]);
            } else if (u->mn > 0) {
                u->mn--; /* CPython: POP of an empty frame pops the mark */
            } else {
                return underflow(u);
            }
            break;
        case '1': /* POP_MARK */
            if ((rc = pop_mark(u, &k)) < 0)
                return rc;
            while (u->sn > k)
                mp_obj_unref(u->stack[--u->sn]);
            break;
        case '2': /* DUP */
            if (u->sn <= base(u))
                return underflow(u);
            /* A second reference to a container, like a memo get. */
            if (is_container(u->stack[u->sn - 1]))
                u->fetched_container = true;
            if ((rc = push(u, lref(u->stack[u->sn - 1]))) < 0)
                return rc;
            break;
        /* ---- scalars ---- */
        case 'N':
            if ((rc = push(u, mp_none())) < 0)
                return rc;
            break;
        case 0x88:
        case 0x89:
            if ((rc = push(u, mp_bool(opc == 0x88))) < 0)
                return rc;
            break;
        case 'K':
            NEED(u, 1);
            if ((rc = push(u, mp__tag(*u->p++))) < 0)
                return rc;
            break;
        case 'M':
            NEED(u, 2);
            if ((rc = push(u, mp__tag((int64_t)rd_le(u->p, 2)))) < 0)
                return rc;
            u->p += 2;
            break;
        case 'J':
            NEED(u, 4);
            if ((rc = push(u, mp__tag((int32_t)(uint32_t)rd_le(u->p, 4)))) < 0)
                return rc;
            u->p += 4;
            break;
        case 0x8a: /* LONG1 */
        case 0x8b: /* LONG4 */
            if (opc == 0x8a) {
                NEED(u, 1);
                n = *u->p++;
            } else {
                NEED(u, 4);
                int32_t sn = (int32_t)(uint32_t)rd_le(u->p, 4);
                if (sn < 0)
                    return fail(u, MP_EPROTO, "negative byte count");
                n = (uint64_t)sn;
                u->p += 4;
            }
            NEED(u, n);
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp__int_from_le(u->p, n))) < 0)
                return rc;
            u->p += n;
            break;
        case 'I':
        case 'L':
            if ((rc = read_line(u, &line, &ll)) < 0)
                return rc;
            if (opc == 'I' && ll == 2 && line[0] == '0' && (line[1] == '0' || line[1] == '1')) {
                rc = push(u, mp_bool(line[1] == '1'));
            } else {
                if (opc == 'L' && ll > 0 && line[ll - 1] == 'L')
                    ll--;
                rc = count(u, 1);
                if (rc == 0)
                    rc = push_decimal(u, line, ll);
            }
            if (rc < 0)
                return rc;
            break;
        case 'G': { /* BINFLOAT */
            NEED(u, 8);
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = bits << 8 | u->p[i];
            u->p += 8;
            double d;
            memcpy(&d, &bits, 8);
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp_float(d))) < 0)
                return rc;
            break;
        }
        case 'F': {
            if ((rc = read_line(u, &line, &ll)) < 0)
                return rc;
            char tmp[64];
            if (ll == 0 || ll >= sizeof tmp)
                return fail(u, MP_EPROTO, "bad float text");
            memcpy(tmp, line, ll);
            tmp[ll] = '\0';
            char *endp;
            double d = strtod(tmp, &endp);
            while (*endp == ' ' || *endp == '\r')
                endp++;
            if (*endp != '\0')
                return fail(u, MP_EPROTO, "bad float text");
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp_float(d))) < 0)
                return rc;
            break;
        }
        /* ---- str, bytes ---- */
        case 0x8c:  /* SHORT_BINUNICODE */
        case 'X':   /* BINUNICODE */
        case 0x8d:  /* BINUNICODE8 */
        case 'C':   /* SHORT_BINBYTES */
        case 'B':   /* BINBYTES */
        case 0x8e:  /* BINBYTES8 */
        case 0x96:  /* BYTEARRAY8 */
        case 'U':   /* SHORT_BINSTRING */
        case 'T': { /* BINSTRING */
            int w = opc == 0x8c || opc == 'C' || opc == 'U'  ? 1
                    : opc == 'X' || opc == 'B' || opc == 'T' ? 4
                                                             : 8;
            NEED(u, w);
            n = rd_le(u->p, w);
            if (opc == 'T' && (int32_t)(uint32_t)n < 0)
                return fail(u, MP_EPROTO, "negative byte count");
            u->p += w;
            NEED(u, n);
            const uint8_t *s = u->p;
            u->p += n;
            if (opc == 0x8c || opc == 'X' || opc == 0x8d)
                rc = push_str(u, s, n);
            else if (opc == 'U' || opc == 'T')
                rc = push_ascii(u, s, n);
            else
                rc = push_bytes(u, opc == 0x96 ? MP_OBJ_BYTEARRAY : MP_OBJ_BYTES, s, n);
            if (rc < 0 || (rc = fused_memoize(u)) < 0)
                return rc;
            break;
        }
        case 'S':
            if ((rc = read_line(u, &line, &ll)) < 0 || (rc = push_quoted(u, line, ll)) < 0)
                return rc;
            break;
        case 'V':
            if ((rc = read_line(u, &line, &ll)) < 0 || (rc = push_raw_unicode(u, line, ll)) < 0)
                return rc;
            break;
        /* ---- containers ---- */
        case ')':
            if ((rc = push(u, mp_tuple_new(0))) < 0)
                return rc;
            break;
        case 0x85:
        case 0x86:
        case 0x87:
            k = (size_t)(opc - 0x84);
            if (u->sn - base(u) < k)
                return underflow(u);
            if ((rc = build_tuple(u, u->sn - k)) < 0 || (rc = fused_memoize(u)) < 0)
                return rc;
            break;
        case 't':
            if ((rc = pop_mark(u, &k)) < 0 || (rc = build_tuple(u, k)) < 0 ||
                (rc = fused_memoize(u)) < 0)
                return rc;
            break;
        case ']':
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp_list_new())) < 0 ||
                (rc = fused_memoize(u)) < 0)
                return rc;
            break;
        case 'l':
            if ((rc = pop_mark(u, &k)) < 0 || (rc = build_list(u, k)) < 0)
                return rc;
            break;
        case 'a':
            if (u->sn - base(u) < 2)
                return underflow(u);
            if ((rc = do_appends(u, u->sn - 1)) < 0)
                return rc;
            break;
        case 'e':
            if ((rc = pop_mark(u, &k)) < 0 || (rc = do_appends(u, k)) < 0)
                return rc;
            break;
        case '}':
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp_dict_new())) < 0 ||
                (rc = fused_memoize(u)) < 0)
                return rc;
            break;
        case 'd':
            if ((rc = pop_mark(u, &k)) < 0 || (rc = build_table(u, k, MP_OBJ_DICT)) < 0)
                return rc;
            break;
        case 's':
            if (u->sn - base(u) < 3)
                return underflow(u);
            if ((rc = do_setitems(u, u->sn - 2)) < 0)
                return rc;
            break;
        case 'u':
            if ((rc = pop_mark(u, &k)) < 0 || (rc = do_setitems(u, k)) < 0)
                return rc;
            break;
        case 0x8f: /* EMPTY_SET */
            if ((rc = count(u, 1)) < 0 || (rc = push(u, mp_set_new())) < 0)
                return rc;
            break;
        case 0x90: /* ADDITEMS */
            if ((rc = pop_mark(u, &k)) < 0 || (rc = do_additems(u, k)) < 0)
                return rc;
            break;
        case 0x91: /* FROZENSET */
            if ((rc = pop_mark(u, &k)) < 0 || (rc = build_table(u, k, MP_OBJ_FROZENSET)) < 0)
                return rc;
            break;
        /* ---- memo ---- */
        case 0x94: /* MEMOIZE */
            if ((rc = memo_put_top(u, u->memo_count)) < 0)
                return rc;
            break;
        case 'q':
            NEED(u, 1);
            if ((rc = memo_put_top(u, *u->p++)) < 0)
                return rc;
            break;
        case 'r':
            NEED(u, 4);
            n = rd_le(u->p, 4);
            u->p += 4;
            if ((rc = memo_put_top(u, (size_t)n)) < 0)
                return rc;
            break;
        case 'h':
            NEED(u, 1);
            if ((rc = memo_get(u, *u->p++)) < 0)
                return rc;
            break;
        case 'j':
            NEED(u, 4);
            n = rd_le(u->p, 4);
            u->p += 4;
            if ((rc = memo_get(u, (size_t)n)) < 0)
                return rc;
            break;
        case 'p':
        case 'g': {
            if ((rc = read_line(u, &line, &ll)) < 0)
                return rc;
            size_t idx = 0;
            if (ll == 0 || ll > 12)
                return fail(u, MP_EPROTO, "bad memo key text");
            for (size_t i = 0; i < ll; i++) {
                if (line[i] < '0' || line[i] > '9')
                    return fail(u, MP_EPROTO, "bad memo key text");
                idx = idx * 10 + (size_t)(line[i] - '0');
            }
            rc = opc == 'p' ? memo_put_top(u, idx) : memo_get(u, idx);
            if (rc < 0)
                return rc;
            break;
        }
        /* ---- globals, objects ---- */
        case 'c': {
            const uint8_t *ml = NULL, *nl = NULL;
            size_t mlen = 0, nlen = 0;
            if ((rc = read_line(u, &ml, &mlen)) < 0 || (rc = read_line(u, &nl, &nlen)) < 0)
                return rc;
            if (!mp__utf8_valid(ml, mlen) || !mp__utf8_valid(nl, nlen) || mlen == 0 || nlen == 0)
                return fail(u, MP_EPROTO, "bad module or name");
            a = mp__str_trusted((const char *)ml, mlen);
            b = mp__str_trusted((const char *)nl, nlen);
            if (a == NULL || b == NULL) {
                mp_obj_unref(a);
                mp_obj_unref(b);
                return oom(u);
            }
            if ((rc = push_global(u, a, b)) < 0)
                return rc;
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if (u->sn - base(u) < 2)
                return underflow(u);
            b = u->stack[--u->sn];
            a = u->stack[--u->sn];
            if (mp__kind(a) != MP_OBJ_STR || mp__kind(b) != MP_OBJ_STR) {
                mp_obj_unref(a);
                mp_obj_unref(b);
                return fail(u, MP_EPROTO, "module and name must be str");
            }
            if ((rc = push_global(u, a, b)) < 0)
                return rc;
            break;
        case 'R':  /* REDUCE */
        case 0x81: /* NEWOBJ */
            if (u->sn - base(u) < 2)
                return underflow(u);
            b = u->stack[--u->sn];
            a = u->stack[--u->sn];
            if ((rc = push_call(u, a, b, NULL, opc == 'R' ? MP_OBJECT_REDUCE : MP_OBJECT_NEWOBJ)) <
                0)
                return rc;
            break;
        case 0x92: /* NEWOBJ_EX */
            if (u->sn - base(u) < 3)
                return underflow(u);
            c = u->stack[--u->sn];
            b = u->stack[--u->sn];
            a = u->stack[--u->sn];
            if ((rc = push_call(u, a, b, c, MP_OBJECT_NEWOBJ_EX)) < 0)
                return rc;
            break;
        case 'b':
            if ((rc = do_build(u)) < 0)
                return rc;
            break;
        /* ---- refused ---- */
        case 'P':
        case 'Q':
            return fail(u, MP_EPROTO, "persistent ids are not supported");
        case 0x82:
        case 0x83:
        case 0x84:
            return fail(u, MP_EPROTO, "the extension registry is not supported");
        case 0x97:
        case 0x98:
            return fail(u, MP_EPROTO, "out-of-band buffers are not supported");
        case 'i':
        case 'o':
            return fail(u, MP_EPROTO, "old-style instances are not supported");
        default:
            return fail(u, MP_EPROTO, "unknown opcode");
        }
    }
}

int mp_pickle_loads(const void *buf, size_t len, const mp_pickle_limits *limits, mp_obj **out,
                    mp_obj_error *err)
{
    if (err != NULL) {
        err->text[0] = '\0';
        err->position = 0;
    }
    if (out == NULL || (buf == NULL && len > 0))
        return MP_EINVAL;
    *out = NULL;
    mp_pickle_limits lim = limits ? *limits : (mp_pickle_limits){0};
    if (lim.max_depth == 0)
        lim.max_depth = 1000;
    if (lim.max_depth > MP__DEPTH_MAX - 1)
        lim.max_depth = MP__DEPTH_MAX - 1;
    if (lim.max_size == 0)
        lim.max_size = (size_t)1 << 30;
    if (lim.max_memo == 0)
        lim.max_memo = (size_t)1 << 20;
    if (lim.max_items == 0)
        lim.max_items = (size_t)1 << 26;
    unpickler u;
    u.buf = u.p = u.op_at = buf;
    u.end = u.buf + len;
    u.proto = 0;
    u.stack = u.stack_inline;
    u.sn = 0;
    u.scap = INLINE_STACK;
    u.marks = u.marks_inline;
    u.mn = 0;
    u.mcap = INLINE_MARKS;
    u.memo = u.memo_inline;
    u.memo_cap = INLINE_MEMO;
    u.memo_count = 0;
    u.memo_hi = 0;
    u.max_depth = lim.max_depth;
    u.max_memo = lim.max_memo;
    u.max_items = lim.max_items;
    u.items = 0;
    u.fetched_container = false;
    u.epoch = 0;
    u.err = err;
    u.rc = 0;
    int rc;
    if (len > lim.max_size) {
        rc = fail(&u, MP_EPROTO, "pickle of %zu bytes is over the limit of %zu", len, lim.max_size);
    } else {
        /* The values of a large pickle come from blocks sized for the input (a few
         * values per byte). A block lives while any of its values does, so a small
         * pickle's values are malloc'd one by one: a server keeping one small value
         * of each small message (a queue's item) keeps only that value. */
        size_t first = len < ((size_t)1 << 20) ? len * 8 : (size_t)8 << 20;
        mp__arena arena = {.blk = NULL, .used = 0, .next = first};
        mp__arena *saved = mp__cur_arena;
        mp__cur_arena = len < LOADS_ARENA_MIN ? NULL : &arena;
        rc = run(&u, out);
        mp__cur_arena = saved;
        mp__arena_release(&arena);
    }
    for (size_t i = 0; i < u.sn; i++)
        mp_obj_unref(u.stack[i]);
    for (size_t i = 0; i < u.memo_hi; i++)
        lunref(u.memo[i]);
    if (u.stack != u.stack_inline)
        free(u.stack);
    if (u.marks != u.marks_inline)
        free(u.marks);
    if (u.memo != u.memo_inline)
        free(u.memo);
    if (rc < 0) {
        mp_obj_unref(*out);
        *out = NULL;
    }
    return rc;
}
