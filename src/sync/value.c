/* value.c — mp_value and mp_array: typed storage in the shared arena.
 *
 * One arena block holds the header below (with the default RLock in it) and,
 * 16-byte aligned after it, the items. Everything in the header is set once at creation; the items
 * are guarded by the RLock when the object has one (get/set/read/write take it), by nothing for
 * direct access through the pointer, and by the processor for the atomic helpers. A Value is an
 * Array of one item.
 */
#include <string.h>

#include "core/arena.h"
#include "mproc/shared.h"
#include "sync/sync.h"

#define MAX_ITEM_SIZE ((size_t)1 << 20)
#define DATA_ALIGN 16

enum kind { KIND_BYTES, KIND_SIGNED, KIND_UNSIGNED, KIND_FLOAT };

struct block {
    struct mp_rlock own_lock; /* the default lock, embedded: with the header in 48
                                 bytes, a small value shares its cache line. Its
                                 creator field holds the block's creator, with
                                 MP__EMBEDDED set */
    uint32_t item_size;       /* at most MAX_ITEM_SIZE */
    char typecode;            /* 0 when made by size */
    unsigned char kind;       /* enum kind: how the atomic helpers read the items */
    size_t length;
    mp_rlock *lock; /* &own_lock, a given RLock, or NULL (lock=False) */
};

static uint64_t creator_of(const struct block *b)
{
    return b->own_lock.creator & ~MP__EMBEDDED;
}

struct mp_value {
    struct block b;
};
struct mp_array {
    struct block b;
};

#define HEADER_SIZE ((sizeof(struct block) + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN)
_Static_assert(sizeof(void *) != 8 || HEADER_SIZE <= 48,
               "a small value shares the lock's cache line");

static void *data_of(struct block *b)
{
    return (char *)b + HEADER_SIZE;
}

static bool typecode_info(char tc, size_t *size, enum kind *kind)
{
    switch (tc) {
    case 'c':
        *size = sizeof(char);
        *kind = (char)-1 < 0 ? KIND_SIGNED : KIND_UNSIGNED;
        return true;
    case 'b':
        *size = sizeof(signed char);
        *kind = KIND_SIGNED;
        return true;
    case 'B':
        *size = sizeof(unsigned char);
        *kind = KIND_UNSIGNED;
        return true;
    case 'h':
        *size = sizeof(short);
        *kind = KIND_SIGNED;
        return true;
    case 'H':
        *size = sizeof(unsigned short);
        *kind = KIND_UNSIGNED;
        return true;
    case 'i':
        *size = sizeof(int);
        *kind = KIND_SIGNED;
        return true;
    case 'I':
        *size = sizeof(unsigned int);
        *kind = KIND_UNSIGNED;
        return true;
    case 'l':
        *size = sizeof(long);
        *kind = KIND_SIGNED;
        return true;
    case 'L':
        *size = sizeof(unsigned long);
        *kind = KIND_UNSIGNED;
        return true;
    case 'q':
        *size = sizeof(long long);
        *kind = KIND_SIGNED;
        return true;
    case 'Q':
        *size = sizeof(unsigned long long);
        *kind = KIND_UNSIGNED;
        return true;
    case 'f':
        *size = sizeof(float);
        *kind = KIND_FLOAT;
        return true;
    case 'd':
        *size = sizeof(double);
        *kind = KIND_FLOAT;
        return true;
    default:
        return false;
    }
}

/* The new block, or NULL with the error in *rc. */
static struct block *block_new(int *rc, char tc, enum kind kind, size_t item_size, size_t length,
                               const void *init, const mp_value_options *opt)
{
    *rc = MP_EINVAL;
    if (length == 0 || item_size == 0 || item_size > MAX_ITEM_SIZE)
        return NULL;
    *rc = MP_ENOMEM;
    if (length > (SIZE_MAX / 2 - HEADER_SIZE) / item_size)
        return NULL;
    struct block *b = mp__shm_alloc(HEADER_SIZE + item_size * length);
    if (b == NULL)
        return NULL;
    *b = (struct block){.own_lock.creator = mp__self_id() | MP__EMBEDDED,
                        .typecode = tc,
                        .kind = (unsigned char)kind,
                        .item_size = (uint32_t)item_size,
                        .length = length};
    if (opt == NULL || !opt->no_lock)
        b->lock = opt != NULL && opt->lock != NULL ? opt->lock : &b->own_lock;
    if (init != NULL)
        memcpy(data_of(b), init, item_size * length);
    *rc = 0;
    return b;
}

static void block_destroy(struct block *b)
{
    if (b != NULL && creator_of(b) == mp__self_id())
        mp__shm_free(b);
}

/* Copies under the lock; 0 or MP_EOWNERDEAD, as the lock said. */
static int locked_copy(struct block *b, void *dst, const void *src, size_t len)
{
    int rc = b->lock != NULL ? mp_rlock_acquire(b->lock, -1) : 0;
    if (rc != 0 && rc != MP_EOWNERDEAD)
        return rc;
    memcpy(dst, src, len);
    if (b->lock != NULL)
        mp_rlock_release(b->lock);
    return rc;
}

/* ---- Value ----------------------------------------------------------------- */

int mp_value_new(mp_value **out, char typecode, const void *initial, const mp_value_options *opt)
{
    size_t size;
    enum kind kind;
    if (out == NULL || !typecode_info(typecode, &size, &kind))
        return MP_EINVAL;
    int rc;
    struct block *b = block_new(&rc, typecode, kind, size, 1, initial, opt);
    if (b != NULL)
        *out = (mp_value *)b;
    return rc;
}

int mp_value_new_sized(mp_value **out, size_t size, const void *initial,
                       const mp_value_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    int rc;
    struct block *b = block_new(&rc, 0, KIND_BYTES, size, 1, initial, opt);
    if (b != NULL)
        *out = (mp_value *)b;
    return rc;
}

void *mp_value_ptr(mp_value *v)
{
    return v != NULL ? data_of(&v->b) : NULL;
}
char mp_value_typecode(const mp_value *v)
{
    return v != NULL ? v->b.typecode : 0;
}
size_t mp_value_size(const mp_value *v)
{
    return v != NULL ? v->b.item_size : 0;
}
mp_rlock *mp_value_get_lock(mp_value *v)
{
    return v != NULL ? v->b.lock : NULL;
}

int mp_value_get(mp_value *v, void *out)
{
    if (v == NULL || out == NULL)
        return MP_EINVAL;
    return locked_copy(&v->b, out, data_of(&v->b), v->b.item_size);
}

int mp_value_set(mp_value *v, const void *in)
{
    if (v == NULL || in == NULL)
        return MP_EINVAL;
    return locked_copy(&v->b, data_of(&v->b), in, v->b.item_size);
}

static bool is_integer(const mp_value *v)
{
    return v != NULL && (v->b.kind == KIND_SIGNED || v->b.kind == KIND_UNSIGNED);
}

/* x, read as an item of v's width, sign- or zero-extended to 64 bits. */
static int64_t widen(const mp_value *v, uint64_t x)
{
    unsigned bits = (unsigned)v->b.item_size * 8;
    if (bits == 64)
        return (int64_t)x;
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    x &= mask;
    if (v->b.kind == KIND_SIGNED && (x >> (bits - 1)) != 0)
        x |= ~mask;
    return (int64_t)x;
}

#define ATOMIC_ON_WIDTH(v, OP)                                                                     \
    switch ((v)->b.item_size) {                                                                    \
    case 1: {                                                                                      \
        uint8_t *p = data_of(&(v)->b);                                                             \
        OP(uint8_t);                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case 2: {                                                                                      \
        uint16_t *p = data_of(&(v)->b);                                                            \
        OP(uint16_t);                                                                              \
        break;                                                                                     \
    }                                                                                              \
    case 4: {                                                                                      \
        uint32_t *p = data_of(&(v)->b);                                                            \
        OP(uint32_t);                                                                              \
        break;                                                                                     \
    }                                                                                              \
    default: {                                                                                     \
        uint64_t *p = data_of(&(v)->b);                                                            \
        OP(uint64_t);                                                                              \
        break;                                                                                     \
    }                                                                                              \
    }

int mp_value_add(mp_value *v, int64_t delta, int64_t *old)
{
    if (!is_integer(v))
        return MP_EINVAL;
    uint64_t prev;
#define ADD(T) prev = __atomic_fetch_add(p, (T)delta, __ATOMIC_SEQ_CST)
    ATOMIC_ON_WIDTH(v, ADD)
#undef ADD
    if (old != NULL)
        *old = widen(v, prev);
    return 0;
}

int mp_value_load(mp_value *v, int64_t *out)
{
    if (!is_integer(v) || out == NULL)
        return MP_EINVAL;
    uint64_t x;
#define LOAD(T) x = __atomic_load_n(p, __ATOMIC_SEQ_CST)
    ATOMIC_ON_WIDTH(v, LOAD)
#undef LOAD
    *out = widen(v, x);
    return 0;
}

int mp_value_store(mp_value *v, int64_t val)
{
    if (!is_integer(v))
        return MP_EINVAL;
#define STORE(T) __atomic_store_n(p, (T)val, __ATOMIC_SEQ_CST)
    ATOMIC_ON_WIDTH(v, STORE)
#undef STORE
    return 0;
}

int mp_value_compare_exchange(mp_value *v, int64_t *expected, int64_t desired)
{
    if (!is_integer(v) || expected == NULL)
        return MP_EINVAL;
    bool done;
    uint64_t seen;
#define CAS(T)                                                                                     \
    T e = (T)*expected;                                                                            \
    done =                                                                                         \
        __atomic_compare_exchange_n(p, &e, (T)desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
    seen = e
    ATOMIC_ON_WIDTH(v, CAS)
#undef CAS
    if (done)
        return 0;
    *expected = widen(v, seen);
    return MP_EAGAIN;
}

void mp_value_destroy(mp_value *v)
{
    block_destroy(v != NULL ? &v->b : NULL);
}

/* ---- Array ----------------------------------------------------------------- */

int mp_array_new(mp_array **out, char typecode, size_t length, const void *init,
                 const mp_value_options *opt)
{
    size_t size;
    enum kind kind;
    if (out == NULL || !typecode_info(typecode, &size, &kind))
        return MP_EINVAL;
    int rc;
    struct block *b = block_new(&rc, typecode, kind, size, length, init, opt);
    if (b != NULL)
        *out = (mp_array *)b;
    return rc;
}

int mp_array_new_sized(mp_array **out, size_t item_size, size_t length, const void *init,
                       const mp_value_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    int rc;
    struct block *b = block_new(&rc, 0, KIND_BYTES, item_size, length, init, opt);
    if (b != NULL)
        *out = (mp_array *)b;
    return rc;
}

void *mp_array_ptr(mp_array *a)
{
    return a != NULL ? data_of(&a->b) : NULL;
}
size_t mp_array_len(const mp_array *a)
{
    return a != NULL ? a->b.length : 0;
}
size_t mp_array_item_size(const mp_array *a)
{
    return a != NULL ? a->b.item_size : 0;
}
char mp_array_typecode(const mp_array *a)
{
    return a != NULL ? a->b.typecode : 0;
}
mp_rlock *mp_array_get_lock(mp_array *a)
{
    return a != NULL ? a->b.lock : NULL;
}

static int check_range(const mp_array *a, size_t start, size_t count, const void *buf)
{
    if (a == NULL || (buf == NULL && count > 0))
        return MP_EINVAL;
    if (start > a->b.length || count > a->b.length - start)
        return MP_ERANGE;
    return 0;
}

int mp_array_read(mp_array *a, size_t start, size_t count, void *out)
{
    int rc = check_range(a, start, count, out);
    if (rc != 0 || count == 0)
        return rc;
    return locked_copy(&a->b, out, (char *)data_of(&a->b) + start * a->b.item_size,
                       count * a->b.item_size);
}

int mp_array_write(mp_array *a, size_t start, size_t count, const void *in)
{
    int rc = check_range(a, start, count, in);
    if (rc != 0 || count == 0)
        return rc;
    return locked_copy(&a->b, (char *)data_of(&a->b) + start * a->b.item_size, in,
                       count * a->b.item_size);
}

void mp_array_destroy(mp_array *a)
{
    block_destroy(a != NULL ? &a->b : NULL);
}
