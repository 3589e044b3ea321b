/* object.c — reference counting, scalars, str/bytes, tuples, lists and object
 * nodes. Layout: pickle/obj.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "mproc/object.h"
#include "pickle/obj.h"

static mp_obj none_obj = {.kind = MP_OBJ_NONE, .flags = MP__IMMORTAL};
static mp_obj true_obj = {.kind = MP_OBJ_BOOL, .flags = MP__IMMORTAL, .aux = 1};
static mp_obj false_obj = {.kind = MP_OBJ_BOOL, .flags = MP__IMMORTAL, .aux = 0};
static mp__tuple empty_tuple = {.h = {.kind = MP_OBJ_TUPLE, .flags = MP__IMMORTAL}, .n = 0};

__thread mp__arena *mp__cur_arena __attribute__((tls_model("initial-exec")));

#define BLOCK_MAX ((size_t)512 << 10)

void mp__arena_release(mp__arena *a)
{
    if (a->blk != NULL && __atomic_sub_fetch(&a->blk->live, 1, __ATOMIC_ACQ_REL) == 0)
        free(a->blk);
    a->blk = NULL;
}

static void *arena_alloc(mp__arena *a, size_t size, uint16_t *off)
{
    size = (size + 7) & ~(size_t)7;
    if (size > BLOCK_MAX / 4)
        return NULL;
    if (a->blk == NULL || a->used + size > a->blk->size) {
        size_t bs = a->next;
        while (bs < size + sizeof(mp__block))
            bs *= 2;
        if (bs > BLOCK_MAX)
            bs = BLOCK_MAX;
        mp__block *b = malloc(bs);
        if (b == NULL)
            return NULL;
        mp__arena_release(a);
        b->live = 1; /* the arena's hold */
        b->size = (uint32_t)bs;
        a->blk = b;
        a->used = sizeof(mp__block);
        a->next = bs * 2 > BLOCK_MAX ? BLOCK_MAX : bs * 2;
    }
    char *p = (char *)a->blk + a->used;
    *off = (uint16_t)(a->used / 8);
    a->used += size;
    __atomic_store_n(&a->blk->live, __atomic_load_n(&a->blk->live, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    return p;
}

void mp__free_mem(mp_obj *o)
{
    if (o->block == 0) {
        free(o);
        return;
    }
    mp__block *b = (mp__block *)((char *)o - (size_t)o->block * 8);
    if (__atomic_sub_fetch(&b->live, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

mp_obj *mp__alloc_slow(size_t size, mp_obj_kind kind)
{
    mp_obj *o = NULL;
    uint16_t off = 0;
    mp__arena *a = mp__cur_arena;
    if (a != NULL)
        o = arena_alloc(a, size, &off);
    if (o == NULL) {
        off = 0;
        o = malloc(size);
    }
    if (o == NULL)
        return NULL;
    o->block = off;
    o->refs = 1;
    o->kind = (uint8_t)kind;
    o->flags = 0;
    o->aux = 0;
    o->depth = 0;
    o->mark = 0;
    return o;
}

mp_obj *mp_obj_ref(const mp_obj *o)
{
    mp_obj *m = (mp_obj *)o;
    if (m != NULL && !mp__is_tagged(m) && !(m->flags & MP__IMMORTAL))
        __atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

/* Drops one reference; true when it was the last (the caller frees). */
static inline bool drop(mp_obj *o)
{
    if (o == NULL || mp__is_tagged(o) || (o->flags & MP__IMMORTAL))
        return false;
    /* The last reference: nobody else can add one. An acquire load (not a relaxed
     * load and a fence: ThreadSanitizer does not model fences) orders every other
     * holder's earlier reads of o before the free. */
    if (__atomic_load_n(&o->refs, __ATOMIC_ACQUIRE) == 1)
        return true;
    return __atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) == 0;
}

/* Frees without recursion: a value's children whose last reference goes are pushed
 * on a work stack, so a list nested a million deep does not overflow the C stack. */
typedef struct free_stack {
    mp_obj **v;
    size_t n, cap;
    mp__block *blk; /* values freed from blk and not yet subtracted from its count */
    uint32_t blk_n;
    mp_obj *inline_v[64];
} free_stack;

static void flush_block(free_stack *s)
{
    if (s->blk != NULL && __atomic_sub_fetch(&s->blk->live, s->blk_n, __ATOMIC_ACQ_REL) == 0)
        free(s->blk);
    s->blk = NULL;
    s->blk_n = 0;
}

/* Frees o's memory, batching the count updates of consecutive values of one block. */
static inline void free_mem_batched(free_stack *s, mp_obj *o)
{
    if (o->block == 0) {
        free(o);
        return;
    }
    mp__block *b = (mp__block *)((char *)o - (size_t)o->block * 8);
    if (b != s->blk) {
        flush_block(s);
        s->blk = b;
    }
    s->blk_n++;
}

static inline void push_dead(free_stack *s, mp_obj *o)
{
    if (!drop(o))
        return;
    if (o->kind < MP_OBJ_TUPLE) { /* a scalar, str or bytes: nothing inside */
        free_mem_batched(s, o);
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        mp_obj **v = s->v == s->inline_v ? malloc(cap * sizeof *v) : realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            /* No memory for the work stack: leak this subtree rather than crash. */
            return;
        }
        if (s->v == s->inline_v)
            memcpy(v, s->inline_v, sizeof s->inline_v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = o;
}

static void free_one(free_stack *s, mp_obj *o)
{
    switch ((mp_obj_kind)o->kind) {
    case MP_OBJ_TUPLE: {
        mp__tuple *t = (mp__tuple *)o;
        for (size_t i = 0; i < t->n; i++)
            push_dead(s, t->items[i]);
        break;
    }
    case MP_OBJ_LIST: {
        mp__list *l = (mp__list *)o;
        for (size_t i = 0; i < l->n; i++)
            push_dead(s, l->items[i]);
        free(l->items);
        break;
    }
    case MP_OBJ_DICT:
    case MP_OBJ_SET:
    case MP_OBJ_FROZENSET: {
        mp__table *t = (mp__table *)o;
        for (size_t i = 0; i < t->used; i++) {
            if (t->entries[i].key != NULL) {
                push_dead(s, t->entries[i].key);
                push_dead(s, t->entries[i].value);
            }
        }
        free(t->entries);
        free(t->index);
        break;
    }
    case MP_OBJ_OBJECT: {
        mp__object *n = (mp__object *)o;
        push_dead(s, n->module);
        push_dead(s, n->name);
        push_dead(s, n->args);
        push_dead(s, n->kwargs);
        push_dead(s, n->state);
        push_dead(s, n->listitems);
        push_dead(s, n->dictitems);
        break;
    }
    default:
        break;
    }
    free_mem_batched(s, o);
}

void mp_obj_unref(mp_obj *o)
{
    if (!drop(o))
        return;
    mp_obj_kind k = (mp_obj_kind)o->kind;
    if (k < MP_OBJ_TUPLE) {
        mp__free_mem(o);
        return;
    }
    free_stack s; /* inline_v stays uninitialised: only s.v[0, n) is read */
    s.v = s.inline_v;
    s.n = 0;
    s.cap = 64;
    s.blk = NULL;
    s.blk_n = 0;
    s.v[s.n++] = o;
    while (s.n > 0)
        free_one(&s, s.v[--s.n]);
    flush_block(&s);
    if (s.v != s.inline_v)
        free(s.v);
}

/* ---- kinds ---- */

mp_obj_kind mp_obj_kind_of(const mp_obj *o)
{
    return mp__kind(o);
}

const char *mp_obj_type_name(const mp_obj *o)
{
    static const char *const names[] = {
        "NoneType",  "bool",  "int",  "float", "complex", "str",       "bytes",
        "bytearray", "tuple", "list", "dict",  "set",     "frozenset",
    };
    if (o == NULL)
        return "NULL";
    mp_obj_kind k = mp__kind(o);
    if (k == MP_OBJ_OBJECT) {
        const char *name = mp_object_name(o);
        const char *dot = strrchr(name, '.');
        return dot ? dot + 1 : name;
    }
    return names[k];
}

#define KIND_IS(fn, k)                                                                             \
    bool fn(const mp_obj *o)                                                                       \
    {                                                                                              \
        return o != NULL && mp__kind(o) == (k);                                                    \
    }
KIND_IS(mp_obj_is_none, MP_OBJ_NONE)
KIND_IS(mp_obj_is_bool, MP_OBJ_BOOL)
KIND_IS(mp_obj_is_int, MP_OBJ_INT)
KIND_IS(mp_obj_is_float, MP_OBJ_FLOAT)
KIND_IS(mp_obj_is_complex, MP_OBJ_COMPLEX)
KIND_IS(mp_obj_is_str, MP_OBJ_STR)
KIND_IS(mp_obj_is_bytes, MP_OBJ_BYTES)
KIND_IS(mp_obj_is_bytearray, MP_OBJ_BYTEARRAY)
KIND_IS(mp_obj_is_tuple, MP_OBJ_TUPLE)
KIND_IS(mp_obj_is_list, MP_OBJ_LIST)
KIND_IS(mp_obj_is_dict, MP_OBJ_DICT)
KIND_IS(mp_obj_is_set, MP_OBJ_SET)
KIND_IS(mp_obj_is_frozenset, MP_OBJ_FROZENSET)
KIND_IS(mp_obj_is_object, MP_OBJ_OBJECT)

bool mp_obj_is_number(const mp_obj *o)
{
    if (o == NULL)
        return false;
    mp_obj_kind k = mp__kind(o);
    return k == MP_OBJ_BOOL || k == MP_OBJ_INT || k == MP_OBJ_FLOAT || k == MP_OBJ_COMPLEX;
}

/* ---- scalars ---- */

mp_obj *mp_none(void)
{
    return &none_obj;
}
mp_obj *mp_bool(bool b)
{
    return b ? &true_obj : &false_obj;
}

mp_obj *mp_int(int64_t v)
{
    if (v >= MP__TAG_MIN && v <= MP__TAG_MAX)
        return mp__tag(v);
    mp__int64 *o = (mp__int64 *)mp__alloc(sizeof *o, MP_OBJ_INT);
    if (o == NULL)
        return NULL;
    o->h.aux = MP__INT_BOX;
    o->v = v;
    return &o->h;
}

mp_obj *mp_uint(uint64_t v)
{
    if (v <= INT64_MAX)
        return mp_int((int64_t)v);
    uint8_t le[9];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    le[8] = 0;
    return mp__int_from_le(le, 9);
}

mp_obj *mp_int_from_bytes(const void *le, size_t len)
{
    if (le == NULL && len > 0)
        return NULL;
    return mp__int_from_le(le, len);
}

mp_obj *mp_int_from_str(const char *text)
{
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *clean = malloc(n + 1);
    if (clean == NULL)
        return NULL;
    size_t i = 0, j = 0;
    while (i < n && strchr(" \t\n\r\f\v", text[i]))
        i++;
    while (n > i && strchr(" \t\n\r\f\v", text[n - 1]))
        n--;
    if (i < n && (text[i] == '+' || text[i] == '-'))
        clean[j++] = text[i++];
    size_t digits = 0;
    bool ok = i < n;
    for (; i < n && ok; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9') {
            clean[j++] = c;
            digits++;
        } else if (c == '_' && digits > 0 && i + 1 < n && text[i + 1] >= '0' &&
                   text[i + 1] <= '9') {
            continue;
        } else {
            ok = false;
        }
    }
    mp_obj *r = NULL;
    if (ok && digits > 0 && digits <= 4300)
        r = mp__int_from_decimal(clean, j);
    free(clean);
    return r;
}

mp_obj *mp_float(double v)
{
    mp__float *o = (mp__float *)mp__alloc(sizeof *o, MP_OBJ_FLOAT);
    if (o == NULL)
        return NULL;
    o->v = v;
    return &o->h;
}

mp_obj *mp_complex(double re, double im)
{
    mp__complex *o = (mp__complex *)mp__alloc(sizeof *o, MP_OBJ_COMPLEX);
    if (o == NULL)
        return NULL;
    o->re = re;
    o->im = im;
    return &o->h;
}

int mp_bool_value(const mp_obj *o, bool *out)
{
    if (o == NULL || out == NULL)
        return MP_EINVAL;
    if (mp__kind(o) != MP_OBJ_BOOL)
        return MP_ETYPE;
    *out = o->aux != 0;
    return 0;
}

int mp_int_value(const mp_obj *o, int64_t *out)
{
    if (o == NULL || out == NULL)
        return MP_EINVAL;
    mp_obj_kind k = mp__kind(o);
    if (k == MP_OBJ_BOOL) {
        *out = o->aux != 0;
        return 0;
    }
    if (k != MP_OBJ_INT)
        return MP_ETYPE;
    return mp__int64_of(o, out) ? 0 : MP_ERANGE;
}

int mp_uint_value(const mp_obj *o, uint64_t *out)
{
    if (o == NULL || out == NULL)
        return MP_EINVAL;
    int64_t v;
    int rc = mp_int_value(o, &v);
    if (rc == 0) {
        if (v < 0)
            return MP_ERANGE;
        *out = (uint64_t)v;
        return 0;
    }
    if (rc != MP_ERANGE)
        return rc;
    const mp__bigint *b = (const mp__bigint *)o;
    if (b->n != 9 || b->b[8] != 0)
        return MP_ERANGE;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)b->b[i] << (8 * i);
    *out = u;
    return 0;
}

int mp_int_to_bytes(const mp_obj *o, void *buf, size_t cap, size_t *len)
{
    if (o == NULL || len == NULL || (buf == NULL && cap > 0))
        return MP_EINVAL;
    mp_obj_kind k = mp__kind(o);
    if (k != MP_OBJ_INT && k != MP_OBJ_BOOL)
        return MP_ETYPE;
    uint8_t tmp[8];
    const uint8_t *src = tmp;
    size_t n;
    int64_t v;
    if (k == MP_OBJ_BOOL) {
        n = mp__int64_to_le(o->aux != 0, tmp);
    } else if (mp__int64_of(o, &v)) {
        n = mp__int64_to_le(v, tmp);
    } else {
        src = ((const mp__bigint *)o)->b;
        n = ((const mp__bigint *)o)->n;
    }
    *len = n;
    if (cap < n)
        return MP_ETOOSHORT;
    if (n > 0)
        memcpy(buf, src, n);
    return 0;
}

int mp_float_value(const mp_obj *o, double *out)
{
    if (o == NULL || out == NULL)
        return MP_EINVAL;
    int64_t v;
    switch (mp__kind(o)) {
    case MP_OBJ_FLOAT:
        *out = ((const mp__float *)o)->v;
        return 0;
    case MP_OBJ_BOOL:
        *out = o->aux != 0;
        return 0;
    case MP_OBJ_INT:
        if (mp__int64_of(o, &v)) {
            *out = (double)v;
            return 0;
        } else {
            double d = mp__bigint_to_double((const mp__bigint *)o);
            if (isinf(d))
                return MP_ERANGE;
            *out = d;
            return 0;
        }
    default:
        return MP_ETYPE;
    }
}

int mp_complex_value(const mp_obj *o, double *re, double *im)
{
    if (o == NULL || re == NULL || im == NULL)
        return MP_EINVAL;
    if (mp__kind(o) == MP_OBJ_COMPLEX) {
        *re = ((const mp__complex *)o)->re;
        *im = ((const mp__complex *)o)->im;
        return 0;
    }
    int rc = mp_float_value(o, re);
    if (rc == 0)
        *im = 0.0;
    return rc;
}

/* ---- str, bytes ---- */

bool mp__utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* Fast path: eight ASCII bytes at a time. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n > len)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms and values past U+10FFFF; surrogates pass (surrogatepass). */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n;
    }
    return true;
}

size_t mp__utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xe0) {
        *cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (c < 0xf0) {
        *cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return 3;
    }
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
          ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    return 4;
}

size_t mp__utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

mp_obj *mp__bytes_alloc(mp_obj_kind kind, size_t len)
{
    if (len > SIZE_MAX - sizeof(mp__bytes) - 1)
        return NULL;
    mp__bytes *b = (mp__bytes *)mp__alloc(sizeof *b + len + 1, kind);
    if (b == NULL)
        return NULL;
    b->len = len;
    b->hash = -1;
    b->data[len] = '\0';
    return &b->h;
}

static mp_obj *bytes_make(mp_obj_kind kind, const void *data, size_t len)
{
    mp_obj *o = mp__bytes_alloc(kind, len);
    if (o != NULL && len > 0)
        memcpy(((mp__bytes *)o)->data, data, len);
    return o;
}

mp_obj *mp__str_trusted(const char *utf8, size_t len)
{
    return bytes_make(MP_OBJ_STR, utf8, len);
}

mp_obj *mp_str(const char *utf8, size_t len)
{
    if (utf8 == NULL && len > 0)
        return NULL;
    if (len > 0 && !mp__utf8_valid((const unsigned char *)utf8, len))
        return NULL;
    return bytes_make(MP_OBJ_STR, utf8, len);
}

mp_obj *mp_str_c(const char *utf8)
{
    return utf8 == NULL ? NULL : mp_str(utf8, strlen(utf8));
}

mp_obj *mp_bytes(const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return NULL;
    return bytes_make(MP_OBJ_BYTES, data, len);
}

mp_obj *mp_bytearray(const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return NULL;
    return bytes_make(MP_OBJ_BYTEARRAY, data, len);
}

int mp_str_value(const mp_obj *o, const char **utf8, size_t *len)
{
    if (o == NULL || utf8 == NULL)
        return MP_EINVAL;
    if (mp__kind(o) != MP_OBJ_STR)
        return MP_ETYPE;
    *utf8 = ((const mp__bytes *)o)->data;
    if (len != NULL)
        *len = ((const mp__bytes *)o)->len;
    return 0;
}

const char *mp_str_cstr(const mp_obj *o)
{
    return o != NULL && mp__kind(o) == MP_OBJ_STR ? ((const mp__bytes *)o)->data : NULL;
}

int mp_bytes_value(const mp_obj *o, const void **data, size_t *len)
{
    if (o == NULL || data == NULL)
        return MP_EINVAL;
    mp_obj_kind k = mp__kind(o);
    if (k != MP_OBJ_BYTES && k != MP_OBJ_BYTEARRAY)
        return MP_ETYPE;
    *data = ((const mp__bytes *)o)->data;
    if (len != NULL)
        *len = ((const mp__bytes *)o)->len;
    return 0;
}

/* ---- tuple, list ---- */

mp_obj *mp_tuple_new(size_t n)
{
    if (n == 0)
        return &empty_tuple.h;
    if (n > (SIZE_MAX - sizeof(mp__tuple)) / sizeof(mp_obj *))
        return NULL;
    mp__tuple *t = (mp__tuple *)mp__alloc(sizeof *t + n * sizeof(mp_obj *), MP_OBJ_TUPLE);
    if (t == NULL)
        return NULL;
    t->n = n;
    for (size_t i = 0; i < n; i++)
        t->items[i] = &none_obj;
    return &t->h;
}

mp_obj *mp__tuple_from(mp_obj **items, size_t n)
{
    if (n == 0)
        return &empty_tuple.h;
    mp__tuple *t = (mp__tuple *)mp__alloc(sizeof *t + n * sizeof(mp_obj *), MP_OBJ_TUPLE);
    if (t == NULL) {
        for (size_t i = 0; i < n; i++)
            mp_obj_unref(items[i]);
        return NULL;
    }
    t->n = n;
    uint32_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        t->items[i] = items[i];
        if (!mp__is_tagged(items[i]) && items[i]->depth >= depth)
            depth = (uint32_t)items[i]->depth + 1;
    }
    t->h.depth = mp__sat16(depth);
    return &t->h;
}

int mp_tuple_set(mp_obj *t, size_t i, mp_obj *item)
{
    int rc = 0;
    if (t == NULL)
        rc = MP_EINVAL;
    else if (item == NULL)
        rc = MP_ENOMEM;
    else if (mp__kind(t) != MP_OBJ_TUPLE)
        rc = MP_ETYPE;
    else if (i >= ((mp__tuple *)t)->n)
        rc = MP_ERANGE;
    else if (item == t)
        rc = MP_EINVAL;
    if (rc < 0) {
        if (item != t)
            mp_obj_unref(item);
        return rc;
    }
    mp__tuple *tp = (mp__tuple *)t;
    mp_obj *old = tp->items[i];
    tp->items[i] = item;
    mp_obj_unref(old);
    return 0;
}

static mp_obj *tuple_of(mp_obj **items, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && items[i] != NULL;
    if (!ok) {
        for (size_t i = 0; i < n; i++)
            mp_obj_unref(items[i]);
        return NULL;
    }
    return mp__tuple_from(items, n);
}

mp_obj *mp_tuple1(mp_obj *a)
{
    return tuple_of((mp_obj *[]){a}, 1);
}
mp_obj *mp_tuple2(mp_obj *a, mp_obj *b)
{
    return tuple_of((mp_obj *[]){a, b}, 2);
}
mp_obj *mp_tuple3(mp_obj *a, mp_obj *b, mp_obj *c)
{
    return tuple_of((mp_obj *[]){a, b, c}, 3);
}
mp_obj *mp_tuple4(mp_obj *a, mp_obj *b, mp_obj *c, mp_obj *d)
{
    return tuple_of((mp_obj *[]){a, b, c, d}, 4);
}

mp_obj *mp_list_new(void)
{
    mp__list *l = (mp__list *)mp__alloc(sizeof *l, MP_OBJ_LIST);
    if (l == NULL)
        return NULL;
    l->n = l->cap = 0;
    l->items = NULL;
    return &l->h;
}

int mp__list_append(mp_obj *o, mp_obj *item)
{
    mp__list *l = (mp__list *)o;
    if (l->n == l->cap) {
        size_t cap = l->cap < 4 ? 4 : l->cap + l->cap / 2 + 1;
        if (cap > SIZE_MAX / sizeof(mp_obj *)) {
            mp_obj_unref(item);
            return MP_ENOMEM;
        }
        mp_obj **items = realloc(l->items, cap * sizeof *items);
        if (items == NULL) {
            mp_obj_unref(item);
            return MP_ENOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = item;
    if (!mp__is_tagged(item) && item->depth >= o->depth)
        o->depth = mp__sat16((uint32_t)item->depth + 1);
    return 0;
}

int mp_list_append(mp_obj *l, mp_obj *item)
{
    if (l == NULL || item == l) {
        if (item != l)
            mp_obj_unref(item);
        return MP_EINVAL;
    }
    if (item == NULL)
        return MP_ENOMEM;
    if (mp__kind(l) != MP_OBJ_LIST) {
        mp_obj_unref(item);
        return MP_ETYPE;
    }
    return mp__list_append(l, item);
}

int mp_list_set(mp_obj *l, size_t i, mp_obj *item)
{
    int rc = 0;
    if (l == NULL || item == l)
        rc = MP_EINVAL;
    else if (item == NULL)
        rc = MP_ENOMEM;
    else if (mp__kind(l) != MP_OBJ_LIST)
        rc = MP_ETYPE;
    else if (i >= ((mp__list *)l)->n)
        rc = MP_ERANGE;
    if (rc < 0) {
        if (item != l)
            mp_obj_unref(item);
        return rc;
    }
    mp__list *lp = (mp__list *)l;
    mp_obj *old = lp->items[i];
    lp->items[i] = item;
    mp_obj_unref(old);
    return 0;
}

int mp_list_pop(mp_obj *l, size_t i, mp_obj **out)
{
    if (l == NULL)
        return MP_EINVAL;
    if (mp__kind(l) != MP_OBJ_LIST)
        return MP_ETYPE;
    mp__list *lp = (mp__list *)l;
    if (i >= lp->n)
        return MP_ERANGE;
    mp_obj *item = lp->items[i];
    memmove(lp->items + i, lp->items + i + 1, (lp->n - i - 1) * sizeof(mp_obj *));
    lp->n--;
    if (out != NULL)
        *out = item;
    else
        mp_obj_unref(item);
    return 0;
}

int64_t mp_obj_len(const mp_obj *o)
{
    if (o == NULL)
        return MP_EINVAL;
    switch (mp__kind(o)) {
    case MP_OBJ_STR:
    case MP_OBJ_BYTES:
    case MP_OBJ_BYTEARRAY:
        return (int64_t)((const mp__bytes *)o)->len;
    case MP_OBJ_TUPLE:
        return (int64_t)((const mp__tuple *)o)->n;
    case MP_OBJ_LIST:
        return (int64_t)((const mp__list *)o)->n;
    case MP_OBJ_DICT:
    case MP_OBJ_SET:
    case MP_OBJ_FROZENSET:
        return (int64_t)((const mp__table *)o)->live;
    default:
        return MP_ETYPE;
    }
}

mp_obj *mp_seq_item(const mp_obj *o, size_t i)
{
    if (o == NULL)
        return NULL;
    mp_obj_kind k = mp__kind(o);
    if (k == MP_OBJ_TUPLE && i < ((const mp__tuple *)o)->n)
        return ((const mp__tuple *)o)->items[i];
    if (k == MP_OBJ_LIST && i < ((const mp__list *)o)->n)
        return ((const mp__list *)o)->items[i];
    return NULL;
}

/* ---- object nodes ---- */

mp_obj *mp__object_make(mp_obj *module, mp_obj *name, int form, mp_obj *args, mp_obj *kwargs,
                        mp_obj *state)
{
    mp__object *n = NULL;
    if (module != NULL && name != NULL && args != NULL)
        n = (mp__object *)mp__alloc(sizeof *n, MP_OBJ_OBJECT);
    if (n == NULL) {
        mp_obj_unref(module);
        mp_obj_unref(name);
        mp_obj_unref(args);
        mp_obj_unref(kwargs);
        mp_obj_unref(state);
        return NULL;
    }
    n->h.aux = (uint16_t)form;
    n->module = module;
    n->name = name;
    n->args = args;
    n->kwargs = kwargs;
    n->state = state;
    n->listitems = NULL;
    n->dictitems = NULL;
    uint32_t d = 0;
    mp_obj *parts[] = {args, kwargs, state};
    for (int i = 0; i < 3; i++)
        if (parts[i] != NULL && !mp__is_tagged(parts[i]) && parts[i]->depth >= d)
            d = (uint32_t)parts[i]->depth + 1;
    n->h.depth = mp__sat16(d);
    return &n->h;
}

mp_obj *mp_object_new_form(const char *module, const char *qualname, mp_object_form form,
                           mp_obj *args, mp_obj *kwargs, mp_obj *state)
{
    bool ok = module != NULL && qualname != NULL && (unsigned)form <= MP_OBJECT_GLOBAL &&
              (args == NULL || mp__kind(args) == MP_OBJ_TUPLE) &&
              (kwargs == NULL || (form == MP_OBJECT_NEWOBJ_EX && mp__kind(kwargs) == MP_OBJ_DICT));
    if (!ok) {
        mp_obj_unref(args);
        mp_obj_unref(kwargs);
        mp_obj_unref(state);
        return NULL;
    }
    if (args == NULL)
        args = &empty_tuple.h;
    if (form == MP_OBJECT_NEWOBJ_EX && kwargs == NULL) {
        kwargs = mp_dict_new();
        if (kwargs == NULL) {
            mp_obj_unref(args);
            mp_obj_unref(state);
            return NULL;
        }
    }
    mp_obj *m = mp_str_c(module);
    mp_obj *q = mp_str_c(qualname);
    return mp__object_make(m, q, form, args, kwargs, state);
}

mp_obj *mp_object_new(const char *module, const char *qualname, mp_obj *args, mp_obj *state)
{
    return mp_object_new_form(module, qualname, MP_OBJECT_REDUCE, args, NULL, state);
}

static const mp__object *as_object(const mp_obj *o)
{
    return o != NULL && mp__kind(o) == MP_OBJ_OBJECT ? (const mp__object *)o : NULL;
}

const char *mp_object_module(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? ((const mp__bytes *)n->module)->data : NULL;
}

const char *mp_object_name(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? ((const mp__bytes *)n->name)->data : NULL;
}

int mp_object_form_of(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->h.aux : -1;
}

mp_obj *mp_object_args(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->args : NULL;
}

mp_obj *mp_object_kwargs(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->kwargs : NULL;
}

mp_obj *mp_object_state(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->state : NULL;
}

mp_obj *mp_object_listitems(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->listitems : NULL;
}

mp_obj *mp_object_dictitems(const mp_obj *o)
{
    const mp__object *n = as_object(o);
    return n ? n->dictitems : NULL;
}

int mp_object_set_state(mp_obj *o, mp_obj *state)
{
    if (o == NULL || state == o) {
        if (state != o)
            mp_obj_unref(state);
        return MP_EINVAL;
    }
    if (state == NULL)
        return MP_ENOMEM;
    if (mp__kind(o) != MP_OBJ_OBJECT) {
        mp_obj_unref(state);
        return MP_ETYPE;
    }
    mp__object *n = (mp__object *)o;
    mp_obj *old = n->state;
    n->state = state;
    if (!mp__is_tagged(state) && state->depth >= o->depth)
        o->depth = mp__sat16((uint32_t)state->depth + 1);
    mp_obj_unref(old);
    return 0;
}

bool mp_object_is(const mp_obj *o, const char *module, const char *qualname)
{
    const mp__object *n = as_object(o);
    if (n == NULL || qualname == NULL)
        return false;
    if (strcmp(((const mp__bytes *)n->name)->data, qualname) != 0)
        return false;
    return module == NULL || strcmp(((const mp__bytes *)n->module)->data, module) == 0;
}

mp_obj *mp_exception_new(const char *module, const char *name, mp_obj *args)
{
    return mp_object_new_form(module, name, MP_OBJECT_REDUCE, args, NULL, NULL);
}

mp_obj *mp_exception_msg(const char *module, const char *name, const char *message)
{
    mp_obj *args = NULL;
    if (message != NULL) {
        args = mp_tuple1(mp_str_c(message));
        if (args == NULL)
            return NULL;
    }
    return mp_exception_new(module, name, args);
}

bool mp_obj_is_exception(const mp_obj *o, const char *module, const char *name)
{
    return mp_object_is(o, module, name) && o->aux == MP_OBJECT_REDUCE;
}
