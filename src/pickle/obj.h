/* pickle/obj.h — the layout of mp_obj values, shared by the files of src/pickle/.
 *
 * Representation:
 * - Ints in [-2^62, 2^62) are tagged pointers: (v << 1) | 1. They allocate nothing
 *   and their reference counting is a no-op. Other int64 values are boxed
 *   (struct mp__int64); larger ones are struct mp__bigint, holding the minimal
 *   little-endian two's complement bytes (more than 8 of them).
 * - None, True, False and the empty tuple are static and immortal
 *   (MP__IMMORTAL: reference counting skips them).
 * - Every other value is one malloc block: a header, then the kind's fields, with
 *   str/bytes/bytearray bytes and tuple items inline.
 * - dict, set and frozenset share one hash table (struct mp__table): an array of
 *   entries in insertion order plus an open-addressing index of entry numbers, as
 *   CPython's compact dict.
 */
#ifndef MPROC_PICKLE_OBJ_H
#define MPROC_PICKLE_OBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/object.h"

#define MP__IMMORTAL 0x01u /* static: never counted, never freed */

/* aux of an MP_OBJ_INT header */
#define MP__INT_BOX 0
#define MP__INT_BIG 1

struct mp_obj {
    uint32_t refs; /* atomic; ignored when MP__IMMORTAL */
    uint8_t kind;  /* mp_obj_kind */
    uint8_t flags;
    uint16_t block; /* in a block of loads: offset from its start in 8-byte units; 0: malloc'd */
    uint16_t aux;   /* int: MP__INT_BOX/BIG; object node: mp_object_form */
    uint16_t depth; /* nesting below this value, saturating (bounds loads) */
    uint32_t mark;  /* scratch for loads' cycle check (an epoch number) */
};

#define MP__DEPTH_MAX 0xffffu

static inline uint16_t mp__sat16(uint32_t d)
{
    return d > MP__DEPTH_MAX ? MP__DEPTH_MAX : (uint16_t)d;
}

/* Blocks: loads carves the values of a pickle of 1 KiB or more out of blocks of up
 * to 512 KiB (one malloc for many small values; a smaller pickle's values are
 * malloc'd one by one, so a value kept from a small message pins nothing else). A block counts its
 * live values (atomically: they may be freed by any thread) plus one while loads still fills it,
 * and is freed when the count drops to zero. */
typedef struct mp__block {
    uint32_t live;
    uint32_t size;
    uint64_t pad;
} mp__block;

typedef struct mp__arena {
    mp__block *blk; /* the block being filled (holds one count) or NULL */
    size_t used;    /* bytes of blk in use, header included */
    size_t next;    /* size of the next block */
} mp__arena;

/* The arena mp__alloc takes values from on this thread (set by loads while it runs). */
MP__HIDDEN extern __thread mp__arena *mp__cur_arena __attribute__((tls_model("initial-exec")));

/* Releases the arena's hold on its current block. */
MP__HIDDEN void mp__arena_release(mp__arena *a);

/* Frees the memory of a value (not its items). */
MP__HIDDEN void mp__free_mem(mp_obj *o);

typedef struct mp__int64 {
    mp_obj h;
    int64_t v;
} mp__int64;

typedef struct mp__bigint {
    mp_obj h;
    size_t n;    /* > 8 */
    uint8_t b[]; /* minimal two's complement, little-endian */
} mp__bigint;

typedef struct mp__float {
    mp_obj h;
    double v;
} mp__float;

typedef struct mp__complex {
    mp_obj h;
    double re, im;
} mp__complex;

/* str, bytes, bytearray */
typedef struct mp__bytes {
    mp_obj h;
    size_t len;
    int64_t hash; /* -1 until mp__hash computes it; accessed atomically (relaxed): threads
                   * sharing a str may hash it at once, and all compute the same value */
    char data[];  /* len bytes and a NUL */
} mp__bytes;

typedef struct mp__tuple {
    mp_obj h;
    size_t n;
    mp_obj *items[];
} mp__tuple;

typedef struct mp__list {
    mp_obj h;
    size_t n, cap;
    mp_obj **items;
} mp__list;

typedef struct mp__entry {
    int64_t hash;
    mp_obj *key;   /* NULL: deleted */
    mp_obj *value; /* NULL for sets */
} mp__entry;

typedef struct mp__table {
    mp_obj h;
    size_t used; /* entries[0, used) have been filled (some may be deleted) */
    size_t live; /* entries not deleted: the len() */
    size_t cap;  /* entries allocated */
    mp__entry *entries;
    uint32_t *index; /* 1 << bits slots: entry number, or EMPTY / DUMMY */
    uint8_t bits;    /* 0: no index yet (small tables are scanned) */
} mp__table;

typedef struct mp__object {
    mp_obj h;
    mp_obj *module;    /* str */
    mp_obj *name;      /* str */
    mp_obj *args;      /* tuple */
    mp_obj *kwargs;    /* dict or NULL */
    mp_obj *state;     /* NULL: no BUILD */
    mp_obj *listitems; /* list or NULL */
    mp_obj *dictitems; /* dict or NULL */
} mp__object;

/* ---- tagged ints ---- */
#define MP__TAG_MIN (-((int64_t)1 << 62))
#define MP__TAG_MAX (((int64_t)1 << 62) - 1)

static inline bool mp__is_tagged(const mp_obj *o)
{
    return ((uintptr_t)o & 1u) != 0;
}
static inline int64_t mp__untag(const mp_obj *o)
{
    return (int64_t)(intptr_t)o >> 1;
}
static inline mp_obj *mp__tag(int64_t v)
{
    return (mp_obj *)(((uintptr_t)v << 1) | 1u);
}

static inline mp_obj_kind mp__kind(const mp_obj *o)
{
    return mp__is_tagged(o) ? MP_OBJ_INT : (mp_obj_kind)o->kind;
}

/* Whether an int value (tagged, boxed or big) fits int64; *v gets it. */
static inline bool mp__int64_of(const mp_obj *o, int64_t *v)
{
    if (mp__is_tagged(o)) {
        *v = mp__untag(o);
        return true;
    }
    if (o->aux == MP__INT_BOX) {
        *v = ((const mp__int64 *)o)->v;
        return true;
    }
    return false;
}

/* Allocates a value of size bytes with refs 1 and the given kind. NULL on OOM.
 * The common case, room in the current block of a running loads, is inline. */
MP__HIDDEN mp_obj *mp__alloc_slow(size_t size, mp_obj_kind kind);

static inline mp_obj *mp__alloc(size_t size, mp_obj_kind kind)
{
    mp__arena *a = mp__cur_arena;
    size_t s8 = (size + 7) & ~(size_t)7;
    if (a == NULL || a->blk == NULL || a->used + s8 > a->blk->size)
        return mp__alloc_slow(size, kind);
    mp_obj *o = (mp_obj *)((char *)a->blk + a->used);
    o->block = (uint16_t)(a->used / 8);
    a->used += s8;
    __atomic_store_n(&a->blk->live, __atomic_load_n(&a->blk->live, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    o->refs = 1;
    o->kind = (uint8_t)kind;
    o->flags = 0;
    o->aux = 0;
    o->depth = 0;
    o->mark = 0;
    return o;
}

/* A str/bytes/bytearray of len bytes, uninitialised (NUL written at the end). */
MP__HIDDEN mp_obj *mp__bytes_alloc(mp_obj_kind kind, size_t len);

/* A str from bytes already known to be valid (surrogatepass) UTF-8. */
MP__HIDDEN mp_obj *mp__str_trusted(const char *utf8, size_t len);

/* Whether len bytes are UTF-8 as Python's surrogatepass decoder accepts. */
MP__HIDDEN bool mp__utf8_valid(const unsigned char *s, size_t len);

/* Decodes one code point of valid UTF-8 at s (len > 0 left); returns its length. */
MP__HIDDEN size_t mp__utf8_decode(const unsigned char *s, uint32_t *cp);

/* Encodes a code point (may be a surrogate) as UTF-8 into out[4]; returns length. */
MP__HIDDEN size_t mp__utf8_encode(uint32_t cp, char *out);

/* A tuple of n items taken from items[] (the references move). */
MP__HIDDEN mp_obj *mp__tuple_from(mp_obj **items, size_t n);

/* Appends without checks; takes item. 0 or MP_ENOMEM (item dropped). */
MP__HIDDEN int mp__list_append(mp_obj *l, mp_obj *item);

/* Table operations (dict, set, frozenset). set: value NULL. Take the references. */
MP__HIDDEN mp_obj *mp__table_new(mp_obj_kind kind, size_t hint);
MP__HIDDEN int mp__table_set(mp_obj *t, mp_obj *key, mp_obj *value);

/* An object node with module/name given as str values (taken). */
MP__HIDDEN mp_obj *mp__object_make(mp_obj *module, mp_obj *name, int form, mp_obj *args,
                                   mp_obj *kwargs, mp_obj *state);

/* Hash with a depth guard; MP_ETYPE for unhashable. */
MP__HIDDEN int mp__hash(const mp_obj *o, int64_t *out, int depth);

/* ---- big ints (bigint.c) ---- */

/* Normalizes len bytes of LE two's complement to the minimal form and returns the
 * value (tagged, boxed or big). */
MP__HIDDEN mp_obj *mp__int_from_le(const uint8_t *le, size_t len);

/* The minimal LE two's complement of an int64 (0 gives 0 bytes). out[8]. */
MP__HIDDEN size_t mp__int64_to_le(int64_t v, uint8_t *out);

/* |value| mod (2^61 - 1) with Python's sign rule: Python's hash(int). */
MP__HIDDEN int64_t mp__bigint_hash(const mp__bigint *b);

/* Compares a big int with a finite double: <0, 0, >0. */
MP__HIDDEN int mp__bigint_cmp_double(const mp__bigint *b, double d);

/* The big int as a double (may be +-inf when too large). */
MP__HIDDEN double mp__bigint_to_double(const mp__bigint *b);

/* Decimal text of a big int into a new malloc'd string. NULL on OOM. */
MP__HIDDEN char *mp__bigint_decimal(const mp__bigint *b);

/* Parses [sign]digits (no underscores/space; the caller strips them) into an int.
 * NULL on OOM or a bad digit. */
MP__HIDDEN mp_obj *mp__int_from_decimal(const char *s, size_t len);

/* Python's hash of a double. */
MP__HIDDEN int64_t mp__hash_double(double v);

/* Python's repr of a double into buf (at least 32 bytes); add_dot_0: "1.0" rather
 * than "1" (repr of float; complex parts have none). always_sign: "+" for
 * non-negatives. Returns the length. */
MP__HIDDEN size_t mp__format_double(double v, char *buf, bool add_dot_0, bool always_sign);

#endif /* MPROC_PICKLE_OBJ_H */
