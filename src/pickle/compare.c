/* compare.c — Python's == and hash() over mp_obj values.
 * Numbers compare by value across bool, int, float and complex, and hash as CPython
 * does (the modulus 2^61 - 1 scheme), so 1, 1.0 and True are one dict key. Tuples
 * hash with CPython's xxHash-style combiner and frozensets with its order-free
 * one; str and bytes use a hash of mproc's own. */
#include <math.h>
#include <string.h>

#include "mproc/error.h"
#include "pickle/obj.h"

#define MAX_DEPTH 10000
#define HASH_MODULUS (((uint64_t)1 << 61) - 1)

static int64_t hash_int64(int64_t v)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int64_t h = (int64_t)(mag % HASH_MODULUS);
    if (v < 0)
        h = -h;
    return h == -1 ? -2 : h;
}

static int64_t hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 0x243f6a8885a308d3ull ^ (n * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w * 0xff51afd7ed558ccdull;
        h = (h << 31 | h >> 33) * 0xc4ceb9fe1a85ec53ull;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h ^= w * 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    int64_t r = (int64_t)h;
    return r == -1 ? -2 : r;
}

/* Python's tuple hash (3.8+). */
#define XXPRIME_1 11400714785074694791ull
#define XXPRIME_2 14029467366897019727ull
#define XXPRIME_5 2870177450012600261ull

static uint64_t shuffle_bits(uint64_t h)
{
    return ((h ^ 89869747ull) ^ (h << 16)) * 3644798167ull;
}

int mp__hash(const mp_obj *o, int64_t *out, int depth)
{
    if (depth > MAX_DEPTH)
        return MP_EINVAL;
    int64_t v;
    switch (mp__kind(o)) {
    case MP_OBJ_NONE:
        *out = 0x5f3759df;
        return 0;
    case MP_OBJ_BOOL:
        *out = o->aux != 0;
        return 0;
    case MP_OBJ_INT:
        if (mp__int64_of(o, &v))
            *out = hash_int64(v);
        else
            *out = mp__bigint_hash((const mp__bigint *)o);
        return 0;
    case MP_OBJ_FLOAT:
        *out = mp__hash_double(((const mp__float *)o)->v);
        return 0;
    case MP_OBJ_COMPLEX: {
        const mp__complex *c = (const mp__complex *)o;
        uint64_t h =
            (uint64_t)mp__hash_double(c->re) + 1000003ull * (uint64_t)mp__hash_double(c->im);
        *out = (int64_t)h == -1 ? -2 : (int64_t)h;
        return 0;
    }
    case MP_OBJ_STR:
    case MP_OBJ_BYTES: {
        mp__bytes *b = (mp__bytes *)o;
        int64_t h = __atomic_load_n(&b->hash, __ATOMIC_RELAXED);
        if (h == -1) {
            h = hash_bytes((const unsigned char *)b->data, b->len) ^ (b->h.kind == MP_OBJ_BYTES);
            if (h == -1)
                h = -2;
            __atomic_store_n(&b->hash, h, __ATOMIC_RELAXED);
        }
        *out = h;
        return 0;
    }
    case MP_OBJ_TUPLE: {
        const mp__tuple *t = (const mp__tuple *)o;
        uint64_t acc = XXPRIME_5;
        for (size_t i = 0; i < t->n; i++) {
            int64_t lane;
            int rc = mp__hash(t->items[i], &lane, depth + 1);
            if (rc < 0)
                return rc;
            acc += (uint64_t)lane * XXPRIME_2;
            acc = (acc << 31) | (acc >> 33);
            acc *= XXPRIME_1;
        }
        acc += t->n ^ (XXPRIME_5 ^ 3527539ull);
        *out = acc == (uint64_t)-1 ? 1546275796 : (int64_t)acc;
        return 0;
    }
    case MP_OBJ_FROZENSET: {
        const mp__table *t = (const mp__table *)o;
        uint64_t h = 0;
        for (size_t i = 0; i < t->used; i++)
            if (t->entries[i].key != NULL)
                h ^= shuffle_bits((uint64_t)t->entries[i].hash);
        h ^= ((uint64_t)t->live + 1) * 1927868237ull;
        h ^= (h >> 11) ^ (h >> 25);
        h = h * 69069u + 907133923ull;
        *out = h == (uint64_t)-1 ? 590923713 : (int64_t)h;
        return 0;
    }
    case MP_OBJ_OBJECT: {
        const mp__object *n = (const mp__object *)o;
        int64_t a, b;
        mp__hash(n->module, &a, depth + 1);
        mp__hash(n->name, &b, depth + 1);
        /* Unsigned: str hashes use all 64 bits, and signed overflow is undefined. */
        int64_t h = (int64_t)((uint64_t)a * 31u + (uint64_t)b);
        *out = h == -1 ? -2 : h;
        return 0;
    }
    default:
        return MP_ETYPE; /* list, dict, set, bytearray */
    }
}

int mp_obj_hash(const mp_obj *o, int64_t *out)
{
    if (o == NULL || out == NULL)
        return MP_EINVAL;
    int rc = mp__hash(o, out, 0);
    return rc == MP_EINVAL ? MP_ETYPE : rc;
}

/* ---- equality ---- */

static bool num_eq(const mp_obj *a, const mp_obj *b);
static bool eq(const mp_obj *a, const mp_obj *b, int depth);

/* An int or bool as int64 when it fits. */
static bool small_int(const mp_obj *o, int64_t *v)
{
    if (mp__kind(o) == MP_OBJ_BOOL) {
        *v = o->aux != 0;
        return true;
    }
    return mp__int64_of(o, v);
}

/* Exact int == double. */
static bool int_eq_double(const mp_obj *i, double d)
{
    int64_t v;
    if (small_int(i, &v)) {
        if (!isfinite(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return false;
        /* integral and equal (no floor(): the library needs no libm) */
        return (double)(int64_t)d == d && (int64_t)d == v;
    }
    if (!isfinite(d))
        return false;
    return mp__bigint_cmp_double((const mp__bigint *)i, d) == 0;
}

static bool num_eq(const mp_obj *a, const mp_obj *b)
{
    mp_obj_kind ka = mp__kind(a), kb = mp__kind(b);
    if (ka == MP_OBJ_COMPLEX || kb == MP_OBJ_COMPLEX) {
        if (ka != MP_OBJ_COMPLEX) {
            const mp_obj *t = a;
            a = b;
            b = t;
        }
        const mp__complex *c = (const mp__complex *)a;
        if (mp__kind(b) == MP_OBJ_COMPLEX) {
            const mp__complex *d = (const mp__complex *)b;
            return c->re == d->re && c->im == d->im;
        }
        if (c->im != 0.0)
            return false;
        if (mp__kind(b) == MP_OBJ_FLOAT)
            return c->re == ((const mp__float *)b)->v;
        return int_eq_double(b, c->re);
    }
    if (ka == MP_OBJ_FLOAT || kb == MP_OBJ_FLOAT) {
        if (ka != MP_OBJ_FLOAT) {
            const mp_obj *t = a;
            a = b;
            b = t;
        }
        double d = ((const mp__float *)a)->v;
        if (mp__kind(b) == MP_OBJ_FLOAT)
            return d == ((const mp__float *)b)->v;
        return int_eq_double(b, d);
    }
    int64_t x, y;
    bool sx = small_int(a, &x), sy = small_int(b, &y);
    if (sx && sy)
        return x == y;
    if (sx || sy)
        return false;
    const mp__bigint *p = (const mp__bigint *)a, *q = (const mp__bigint *)b;
    return p->n == q->n && memcmp(p->b, q->b, p->n) == 0;
}

static bool is_num(mp_obj_kind k)
{
    return k == MP_OBJ_BOOL || k == MP_OBJ_INT || k == MP_OBJ_FLOAT || k == MP_OBJ_COMPLEX;
}

static bool table_eq(const mp__table *a, const mp__table *b, bool dict, int depth)
{
    if (a->live != b->live)
        return false;
    for (size_t i = 0; i < a->used; i++) {
        const mp__entry *e = &a->entries[i];
        if (e->key == NULL)
            continue;
        /* Find e->key in b by its stored hash. */
        bool found = false;
        if (b->bits > 0) {
            size_t mask = ((size_t)1 << b->bits) - 1;
            size_t s = (size_t)(((uint64_t)e->hash * 0x9e3779b97f4a7c15ull) >> (64 - b->bits));
            for (;; s = (s + 1) & mask) {
                uint32_t x = b->index[s];
                if (x == 0xffffffffu)
                    break;
                if (x == 0xfffffffeu)
                    continue;
                const mp__entry *f = &b->entries[x];
                if (f->hash == e->hash && eq(f->key, e->key, depth + 1)) {
                    found = !dict || eq(e->value, f->value, depth + 1);
                    break;
                }
            }
        }
        if (!found)
            return false;
    }
    return true;
}

static bool eq(const mp_obj *a, const mp_obj *b, int depth)
{
    if (a == b) {
        /* Python: x == x is False for a NaN, but containers compare items by
         * identity first, so [x] == [x] is True. */
        if (depth == 0 && a != NULL &&
            (mp__kind(a) == MP_OBJ_FLOAT || mp__kind(a) == MP_OBJ_COMPLEX))
            return num_eq(a, b);
        return true;
    }
    if (a == NULL || b == NULL || depth > MAX_DEPTH)
        return false;
    mp_obj_kind ka = mp__kind(a), kb = mp__kind(b);
    if (is_num(ka) && is_num(kb))
        return num_eq(a, b);
    switch (ka) {
    case MP_OBJ_NONE:
        return kb == MP_OBJ_NONE;
    case MP_OBJ_STR:
        if (kb != MP_OBJ_STR)
            return false;
        /* fall through */
    case MP_OBJ_BYTES:
    case MP_OBJ_BYTEARRAY: {
        if (ka != MP_OBJ_STR && kb != MP_OBJ_BYTES && kb != MP_OBJ_BYTEARRAY)
            return false;
        const mp__bytes *x = (const mp__bytes *)a, *y = (const mp__bytes *)b;
        return x->len == y->len && memcmp(x->data, y->data, x->len) == 0;
    }
    case MP_OBJ_TUPLE:
    case MP_OBJ_LIST: {
        if (kb != ka)
            return false;
        size_t n = ka == MP_OBJ_TUPLE ? ((const mp__tuple *)a)->n : ((const mp__list *)a)->n;
        size_t m = kb == MP_OBJ_TUPLE ? ((const mp__tuple *)b)->n : ((const mp__list *)b)->n;
        if (n != m)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!eq(mp_seq_item(a, i), mp_seq_item(b, i), depth + 1))
                return false;
        return true;
    }
    case MP_OBJ_DICT:
        return kb == MP_OBJ_DICT &&
               table_eq((const mp__table *)a, (const mp__table *)b, true, depth);
    case MP_OBJ_SET:
    case MP_OBJ_FROZENSET:
        return (kb == MP_OBJ_SET || kb == MP_OBJ_FROZENSET) &&
               table_eq((const mp__table *)a, (const mp__table *)b, false, depth);
    case MP_OBJ_OBJECT: {
        if (kb != MP_OBJ_OBJECT || a->aux != b->aux)
            return false;
        const mp__object *x = (const mp__object *)a, *y = (const mp__object *)b;
        return eq(x->module, y->module, depth + 1) && eq(x->name, y->name, depth + 1) &&
               eq(x->args, y->args, depth + 1) && eq(x->kwargs, y->kwargs, depth + 1) &&
               eq(x->state, y->state, depth + 1) && eq(x->listitems, y->listitems, depth + 1) &&
               eq(x->dictitems, y->dictitems, depth + 1);
    }
    default:
        return false;
    }
}

bool mp_obj_equal(const mp_obj *a, const mp_obj *b)
{
    return eq(a, b, 0);
}
