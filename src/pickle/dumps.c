/* dumps.c — the pickle encoder, protocols 2 to 5.
 *
 * It writes what CPython's pickler writes for these kinds, minus FRAME (advisory)
 * and minus MEMOIZE for values referenced once: a value whose reference count is 1
 * cannot occur twice in the graph, so only values with more references go through
 * the memo (a pointer-keyed hash table made on first need). Output goes to a
 * buffer that grows geometrically; small pickles are built in the caller's buffer
 * (mp_pickle_dumps: on the stack) and copied out once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "mproc/pickle.h"
#include "pickle/codec.h"
#include "pickle/obj.h"

#define MAX_DEPTH 10000
#define BATCH 1000

typedef struct memo_slot {
    const mp_obj *key;
    uint32_t index;
} memo_slot;

typedef struct pickler {
    mp__wbuf *w;
    int proto;
    memo_slot *memo; /* NULL until a shared value is seen */
    size_t memo_n, memo_cap;
} pickler;

void mp__wbuf_free(mp__wbuf *w)
{
    if (w->owned)
        free(w->p);
    w->owned = false;
    w->p = NULL;
    w->len = w->cap = 0;
}

static int grow(mp__wbuf *w, size_t more)
{
    if (more > SIZE_MAX / 2 - w->len)
        return MP_ENOMEM;
    size_t cap = w->cap < 256 ? 256 : w->cap;
    while (cap < w->len + more)
        cap *= 2;
    uint8_t *p;
    if (w->owned) {
        p = realloc(w->p, cap);
    } else {
        p = malloc(cap);
        if (p != NULL && w->len > 0)
            memcpy(p, w->p, w->len);
    }
    if (p == NULL)
        return MP_ENOMEM;
    w->p = p;
    w->cap = cap;
    w->owned = true;
    return 0;
}

#define NEED(p, n)                                                                                 \
    do {                                                                                           \
        if ((p)->w->cap - (p)->w->len < (size_t)(n)) {                                             \
            int rc_ = grow((p)->w, (n));                                                           \
            if (rc_ < 0)                                                                           \
                return rc_;                                                                        \
        }                                                                                          \
    } while (0)

static inline void put1(pickler *p, uint8_t b)
{
    p->w->p[p->w->len++] = b;
}
static inline void putn(pickler *p, const void *s, size_t n)
{
    memcpy(p->w->p + p->w->len, s, n);
    p->w->len += n;
}
static inline void put_le(pickler *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p->w->p[p->w->len++] = (uint8_t)(v >> (8 * i));
}

static int op(pickler *p, uint8_t b)
{
    NEED(p, 1);
    put1(p, b);
    return 0;
}

/* ---- memo ---- */

static size_t memo_hash(const mp_obj *o, size_t mask)
{
    return (size_t)(((uintptr_t)o * 0x9e3779b97f4a7c15ull) >> 20) & mask;
}

/* The memo index of o, or -1. */
static int64_t memo_find(const pickler *p, const mp_obj *o)
{
    if (p->memo == NULL)
        return -1;
    size_t mask = p->memo_cap - 1;
    for (size_t i = memo_hash(o, mask);; i = (i + 1) & mask) {
        if (p->memo[i].key == NULL)
            return -1;
        if (p->memo[i].key == o)
            return p->memo[i].index;
    }
}

static int memo_put(pickler *p, const mp_obj *o)
{
    if (p->memo_n >= 0xffffffffu)
        return MP_ENOMEM;
    if ((p->memo_n + 1) * 2 > p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap * 2 : 64;
        memo_slot *m = calloc(cap, sizeof *m);
        if (m == NULL)
            return MP_ENOMEM;
        for (size_t i = 0; i < p->memo_cap; i++) {
            if (p->memo[i].key == NULL)
                continue;
            size_t j = memo_hash(p->memo[i].key, cap - 1);
            while (m[j].key != NULL)
                j = (j + 1) & (cap - 1);
            m[j] = p->memo[i];
        }
        free(p->memo);
        p->memo = m;
        p->memo_cap = cap;
    }
    size_t mask = p->memo_cap - 1;
    size_t i = memo_hash(o, mask);
    while (p->memo[i].key != NULL)
        i = (i + 1) & mask;
    p->memo[i] = (memo_slot){.key = o, .index = (uint32_t)p->memo_n};
    uint32_t idx = (uint32_t)p->memo_n++;
    if (p->proto >= 4)
        return op(p, 0x94); /* MEMOIZE */
    NEED(p, 5);
    if (idx < 256) {
        put1(p, 'q'); /* BINPUT */
        put1(p, (uint8_t)idx);
    } else {
        put1(p, 'r'); /* LONG_BINPUT */
        put_le(p, idx, 4);
    }
    return 0;
}

static inline bool shared(const mp_obj *o)
{
    return !(o->flags & MP__IMMORTAL) && __atomic_load_n(&o->refs, __ATOMIC_RELAXED) > 1;
}

/* Writes a memo get for o when it was already written; 1 then, else 0. */
static int memo_get(pickler *p, const mp_obj *o)
{
    int64_t idx = memo_find(p, o);
    if (idx < 0)
        return 0;
    NEED(p, 5);
    if (idx < 256) {
        put1(p, 'h'); /* BINGET */
        put1(p, (uint8_t)idx);
    } else {
        put1(p, 'j'); /* LONG_BINGET */
        put_le(p, (uint64_t)idx, 4);
    }
    return 1;
}

/* ---- scalars ---- */

static int save_int64(pickler *p, int64_t v)
{
    NEED(p, 10);
    if (v >= 0 && v <= 0xff) {
        put1(p, 'K');
        put1(p, (uint8_t)v);
    } else if (v >= 0 && v <= 0xffff) {
        put1(p, 'M');
        put_le(p, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        put1(p, 'J');
        put_le(p, (uint64_t)v, 4);
    } else {
        uint8_t le[8];
        size_t n = mp__int64_to_le(v, le);
        put1(p, 0x8a); /* LONG1 */
        put1(p, (uint8_t)n);
        putn(p, le, n);
    }
    return 0;
}

static int save_bigint(pickler *p, const mp__bigint *b)
{
    NEED(p, b->n + 5);
    if (b->n < 256) {
        put1(p, 0x8a);
        put1(p, (uint8_t)b->n);
    } else {
        if (b->n > INT32_MAX)
            return MP_EINVAL;
        put1(p, 0x8b); /* LONG4 */
        put_le(p, b->n, 4);
    }
    putn(p, b->b, b->n);
    return 0;
}

static int save_float(pickler *p, double d)
{
    NEED(p, 9);
    uint64_t u;
    memcpy(&u, &d, 8);
    put1(p, 'G');
    for (int i = 7; i >= 0; i--)
        put1(p, (uint8_t)(u >> (8 * i)));
    return 0;
}

static int save_unicode(pickler *p, const char *s, size_t n)
{
    NEED(p, n + 9);
    if (n < 256 && p->proto >= 4) {
        put1(p, 0x8c); /* SHORT_BINUNICODE */
        put1(p, (uint8_t)n);
    } else if (n <= 0xffffffffu) {
        put1(p, 'X'); /* BINUNICODE */
        put_le(p, n, 4);
    } else if (p->proto >= 4) {
        put1(p, 0x8d); /* BINUNICODE8 */
        put_le(p, n, 8);
    } else {
        return MP_EINVAL;
    }
    putn(p, s, n);
    return 0;
}

static int save_global(pickler *p, const char *mod, size_t ml, const char *name, size_t nl)
{
    int rc;
    if (p->proto >= 4) {
        if ((rc = save_unicode(p, mod, ml)) < 0 || (rc = save_unicode(p, name, nl)) < 0)
            return rc;
        return op(p, 0x93); /* STACK_GLOBAL */
    }
    if (memchr(mod, '\n', ml) || memchr(name, '\n', nl))
        return MP_EINVAL;
    /* Below protocol 3 CPython renames these Python 2 modules when loading
     * (fix_imports), so a global in one of them cannot be written faithfully. */
    if (p->proto < 3) {
        static const char *const py2[] = {"__builtin__", "copy_reg", "exceptions", "Queue"};
        for (size_t i = 0; i < sizeof py2 / sizeof py2[0]; i++)
            if (ml == strlen(py2[i]) && memcmp(mod, py2[i], ml) == 0)
                return MP_EINVAL;
    }
    NEED(p, ml + nl + 3);
    put1(p, 'c'); /* GLOBAL */
    putn(p, mod, ml);
    put1(p, '\n');
    putn(p, name, nl);
    put1(p, '\n');
    return 0;
}

#define GLOBAL(p, m, n) save_global(p, m, sizeof m - 1, n, sizeof n - 1)

static int save(pickler *p, const mp_obj *o, int depth);

static int save_bytes(pickler *p, const mp__bytes *b)
{
    size_t n = b->len;
    if (p->proto >= 3) {
        NEED(p, n + 9);
        if (n < 256) {
            put1(p, 'C'); /* SHORT_BINBYTES */
            put1(p, (uint8_t)n);
        } else if (n <= 0xffffffffu) {
            put1(p, 'B'); /* BINBYTES */
            put_le(p, n, 4);
        } else if (p->proto >= 4) {
            put1(p, 0x8e); /* BINBYTES8 */
            put_le(p, n, 8);
        } else {
            return MP_EINVAL;
        }
        putn(p, b->data, n);
        return 0;
    }
    /* Protocol 2 has no bytes opcode: CPython writes _codecs.encode(latin1, 'latin1'),
     * and bytes() for b''. */
    int rc;
    if (n == 0) {
        if ((rc = GLOBAL(p, "builtins", "bytes")) < 0 || (rc = op(p, ')')) < 0)
            return rc;
        return op(p, 'R');
    }
    if ((rc = GLOBAL(p, "_codecs", "encode")) < 0)
        return rc;
    if (n > (SIZE_MAX - 16) / 2)
        return MP_ENOMEM;
    NEED(p, 2 * n + 16);
    put1(p, 'X');
    size_t at = p->w->len;
    p->w->len += 4;
    size_t start = p->w->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c < 0x80) {
            put1(p, c);
        } else {
            put1(p, (uint8_t)(0xc0 | (c >> 6)));
            put1(p, (uint8_t)(0x80 | (c & 0x3f)));
        }
    }
    size_t ulen = p->w->len - start;
    if (ulen > 0xffffffffu)
        return MP_EINVAL;
    for (int i = 0; i < 4; i++)
        p->w->p[at + (size_t)i] = (uint8_t)(ulen >> (8 * i));
    if ((rc = save_unicode(p, "latin1", 6)) < 0 || (rc = op(p, 0x86)) < 0)
        return rc;
    return op(p, 'R');
}

/* ---- containers ---- */

static int save_items(pickler *p, mp_obj *const *items, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        int rc = save(p, items[i], depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int save_appends(pickler *p, mp_obj *const *items, size_t n, int depth)
{
    for (size_t i = 0; i < n; i += BATCH) {
        size_t k = n - i < BATCH ? n - i : BATCH;
        int rc;
        if (k == 1) {
            if ((rc = save(p, items[i], depth + 1)) < 0 || (rc = op(p, 'a')) < 0)
                return rc;
            continue;
        }
        if ((rc = op(p, '(')) < 0 || (rc = save_items(p, items + i, k, depth)) < 0 ||
            (rc = op(p, 'e')) < 0)
            return rc;
    }
    return 0;
}

/* Entries of a table: for dicts key/value pairs with SETITEM(S); for sets the keys
 * with ADDITEMS (closing opcode close, in batches), or all keys in one mark for
 * FROZENSET. */
static int save_setitems(pickler *p, const mp__table *t, int depth)
{
    size_t i = 0;
    while (i < t->used) {
        size_t first = i, k = 0;
        /* Count up to BATCH live entries from i. */
        size_t j = i;
        for (; j < t->used && k < BATCH; j++)
            k += t->entries[j].key != NULL;
        if (k == 0)
            break;
        int rc;
        if (k > 1 && (rc = op(p, '(')) < 0)
            return rc;
        for (size_t e = first; e < j; e++) {
            const mp__entry *en = &t->entries[e];
            if (en->key == NULL)
                continue;
            if ((rc = save(p, en->key, depth + 1)) < 0 || (rc = save(p, en->value, depth + 1)) < 0)
                return rc;
        }
        if ((rc = op(p, k > 1 ? 'u' : 's')) < 0)
            return rc;
        i = j;
    }
    return 0;
}

static int save_keys(pickler *p, const mp__table *t, int depth, uint8_t close, size_t batch)
{
    size_t i = 0;
    int rc;
    do {
        if ((rc = op(p, '(')) < 0)
            return rc;
        size_t k = 0;
        for (; i < t->used && k < batch; i++) {
            if (t->entries[i].key == NULL)
                continue;
            if ((rc = save(p, t->entries[i].key, depth + 1)) < 0)
                return rc;
            k++;
        }
        if ((rc = op(p, close)) < 0)
            return rc;
    } while (i < t->used);
    return 0;
}

/* set / frozenset below protocol 4: builtins.set([items]) by REDUCE. */
static int save_set_reduce(pickler *p, const mp__table *t, bool frozen, int depth)
{
    int rc = frozen ? GLOBAL(p, "builtins", "frozenset") : GLOBAL(p, "builtins", "set");
    if (rc < 0 || (rc = op(p, ']')) < 0)
        return rc;
    if (t->live > 0 && (rc = save_keys(p, t, depth, 'e', BATCH)) < 0)
        return rc;
    if ((rc = op(p, 0x85)) < 0) /* TUPLE1 */
        return rc;
    return op(p, 'R');
}

static int save_object(pickler *p, const mp__object *n, int depth)
{
    const mp__bytes *m = (const mp__bytes *)n->module, *q = (const mp__bytes *)n->name;
    int rc = save_global(p, m->data, m->len, q->data, q->len);
    if (rc < 0)
        return rc;
    switch (n->h.aux) {
    case MP_OBJECT_REDUCE:
        if ((rc = save(p, n->args, depth + 1)) < 0 || (rc = op(p, 'R')) < 0)
            return rc;
        break;
    case MP_OBJECT_NEWOBJ:
        if ((rc = save(p, n->args, depth + 1)) < 0 || (rc = op(p, 0x81)) < 0)
            return rc;
        break;
    case MP_OBJECT_NEWOBJ_EX:
        if (p->proto < 4)
            return MP_EINVAL;
        if ((rc = save(p, n->args, depth + 1)) < 0 || (rc = save(p, n->kwargs, depth + 1)) < 0 ||
            (rc = op(p, 0x92)) < 0)
            return rc;
        break;
    default:
        break;
    }
    return 0;
}

static int save_object_tail(pickler *p, const mp__object *n, int depth)
{
    int rc;
    if (n->listitems != NULL) {
        const mp__list *l = (const mp__list *)n->listitems;
        if ((rc = save_appends(p, l->items, l->n, depth)) < 0)
            return rc;
    }
    if (n->dictitems != NULL && (rc = save_setitems(p, (const mp__table *)n->dictitems, depth)) < 0)
        return rc;
    if (n->state != NULL) {
        if ((rc = save(p, n->state, depth + 1)) < 0 || (rc = op(p, 'b')) < 0)
            return rc;
    }
    return 0;
}

static int save(pickler *p, const mp_obj *o, int depth)
{
    if (mp__is_tagged(o))
        return save_int64(p, mp__untag(o));
    if (depth > MAX_DEPTH)
        return MP_EINVAL;
    bool memo = shared(o);
    int rc;
    if (memo && (rc = memo_get(p, o)) != 0)
        return rc < 0 ? rc : 0;
    switch ((mp_obj_kind)o->kind) {
    case MP_OBJ_NONE:
        return op(p, 'N');
    case MP_OBJ_BOOL:
        return op(p, o->aux ? 0x88 : 0x89);
    case MP_OBJ_INT:
        if (o->aux == MP__INT_BOX)
            return save_int64(p, ((const mp__int64 *)o)->v);
        return save_bigint(p, (const mp__bigint *)o);
    case MP_OBJ_FLOAT:
        return save_float(p, ((const mp__float *)o)->v);
    case MP_OBJ_COMPLEX: {
        const mp__complex *c = (const mp__complex *)o;
        if ((rc = GLOBAL(p, "builtins", "complex")) < 0 || (rc = save_float(p, c->re)) < 0 ||
            (rc = save_float(p, c->im)) < 0 || (rc = op(p, 0x86)) < 0 || (rc = op(p, 'R')) < 0)
            return rc;
        break;
    }
    case MP_OBJ_STR:
        rc = save_unicode(p, ((const mp__bytes *)o)->data, ((const mp__bytes *)o)->len);
        if (rc < 0)
            return rc;
        break;
    case MP_OBJ_BYTES:
        if ((rc = save_bytes(p, (const mp__bytes *)o)) < 0)
            return rc;
        break;
    case MP_OBJ_BYTEARRAY: {
        const mp__bytes *b = (const mp__bytes *)o;
        if (p->proto >= 5) {
            NEED(p, b->len + 9);
            put1(p, 0x96); /* BYTEARRAY8 */
            put_le(p, b->len, 8);
            putn(p, b->data, b->len);
            break;
        }
        /* builtins.bytearray(bytes) by REDUCE */
        if ((rc = GLOBAL(p, "builtins", "bytearray")) < 0)
            return rc;
        if (b->len == 0) {
            if ((rc = op(p, ')')) < 0)
                return rc;
        } else {
            /* save_bytes reads only len and data: a bytearray has the same layout. */
            if ((rc = save_bytes(p, b)) < 0 || (rc = op(p, 0x85)) < 0)
                return rc;
        }
        if ((rc = op(p, 'R')) < 0)
            return rc;
        break;
    }
    case MP_OBJ_TUPLE: {
        const mp__tuple *t = (const mp__tuple *)o;
        if (t->n == 0)
            return op(p, ')');
        if (t->n <= 3) {
            if ((rc = save_items(p, t->items, t->n, depth)) < 0 ||
                (rc = op(p, (uint8_t)(0x84 + t->n))) < 0)
                return rc;
        } else if ((rc = op(p, '(')) < 0 || (rc = save_items(p, t->items, t->n, depth)) < 0 ||
                   (rc = op(p, 't')) < 0) {
            return rc;
        }
        break;
    }
    case MP_OBJ_LIST: {
        const mp__list *l = (const mp__list *)o;
        if ((rc = op(p, ']')) < 0 || (memo && (rc = memo_put(p, o)) < 0))
            return rc;
        return save_appends(p, l->items, l->n, depth);
    }
    case MP_OBJ_DICT:
        if ((rc = op(p, '}')) < 0 || (memo && (rc = memo_put(p, o)) < 0))
            return rc;
        return save_setitems(p, (const mp__table *)o, depth);
    case MP_OBJ_SET: {
        const mp__table *t = (const mp__table *)o;
        if (p->proto < 4) {
            if ((rc = save_set_reduce(p, t, false, depth)) < 0)
                return rc;
            break;
        }
        if ((rc = op(p, 0x8f)) < 0 || (memo && (rc = memo_put(p, o)) < 0))
            return rc;
        if (t->live == 0)
            return 0;
        return save_keys(p, t, depth, 0x90, BATCH); /* ADDITEMS */
    }
    case MP_OBJ_FROZENSET: {
        const mp__table *t = (const mp__table *)o;
        if (p->proto < 4)
            rc = save_set_reduce(p, t, true, depth);
        else
            rc = save_keys(p, t, depth, 0x91, SIZE_MAX); /* FROZENSET */
        if (rc < 0)
            return rc;
        break;
    }
    case MP_OBJ_OBJECT: {
        const mp__object *n = (const mp__object *)o;
        if ((rc = save_object(p, n, depth)) < 0 || (memo && (rc = memo_put(p, o)) < 0))
            return rc;
        return save_object_tail(p, n, depth);
    }
    }
    if (memo)
        return memo_put(p, o);
    return 0;
}

int mp__pickle_dump(const mp_obj *o, int protocol, mp__wbuf *w)
{
    if (o == NULL || w == NULL)
        return MP_EINVAL;
    if (protocol == 0)
        protocol = MP_PICKLE_DEFAULT_PROTOCOL;
    if (protocol < 2 || protocol > MP_PICKLE_HIGHEST_PROTOCOL)
        return MP_EINVAL;
    pickler p = {.w = w, .proto = protocol};
    size_t start = w->len;
    int rc = 0;
    if (w->cap - w->len < 3)
        rc = grow(w, 3);
    if (rc == 0) {
        put1(&p, 0x80);
        put1(&p, (uint8_t)protocol);
        rc = save(&p, o, 0);
    }
    if (rc == 0)
        rc = op(&p, '.');
    free(p.memo);
    if (rc < 0)
        w->len = start;
    return rc;
}

int mp_pickle_dumps(const mp_obj *o, int protocol, void **out, size_t *len)
{
    if (o == NULL || out == NULL || len == NULL)
        return MP_EINVAL;
    uint8_t stack[512];
    mp__wbuf w = {.p = stack, .len = 0, .cap = sizeof stack, .owned = false};
    int rc = mp__pickle_dump(o, protocol, &w);
    if (rc < 0) {
        mp__wbuf_free(&w);
        return rc;
    }
    if (!w.owned) {
        void *copy = malloc(w.len);
        if (copy == NULL)
            return MP_ENOMEM;
        memcpy(copy, w.p, w.len);
        *out = copy;
    } else {
        *out = w.p;
    }
    *len = w.len;
    return 0;
}
