/* arena.c — the shared arena (see core/arena.h for the contract).
 *
 * Small blocks come from chunks of CHUNK_SIZE bytes, each an anonymous MAP_SHARED
 * mapping aligned to CHUNK_SIZE, so the chunk of any block is found by masking its
 * address. A chunk is a header followed by a sequence of blocks that tile it
 * exactly. Every block begins with a 16-byte tag and its payload is 64-byte
 * aligned; block sizes are whole UNITs of 64 bytes, tag included.
 *
 * Shared state and who guards it:
 *   chunk->lock        a robust, process-shared mutex guarding every tag in the chunk
 *   tag.units          size of this block in UNITs; under chunk->lock
 *   tag.prev_units     size of the block before (0 for the first); under chunk->lock
 *   tag.state          TAG_FREE or TAG_USED; under chunk->lock
 *   chunk->used, chunk->free_units   totals of used bytes and free UNITs; under chunk->lock
 * Invariants, true whenever chunk->lock is free: the blocks tile the chunk; no two
 * free blocks are neighbours; each tag's prev_units equals its predecessor's units.
 *
 * Each process keeps its own list of the chunks it can see (private memory): a
 * child forked later inherits the list as it was at fork; a chunk mapped after the
 * fork exists only in the process that mapped it. A process therefore only ever
 * touches chunks that are mapped in it. Blocks larger than LARGE_MIN get a mapping
 * of their own whose tag says TAG_LARGE; freeing one unmaps it in the caller, and
 * the kernel releases it when the last process that maps it unmaps it or exits.
 *
 * If a process dies holding chunk->lock, the next locker gets EOWNERDEAD. Every
 * update below keeps the forward walk (by `units`, from the first tag) whole at
 * each step: a split writes the new tail before shrinking its block, a merge only
 * grows a block over its neighbour. The survivor rebuilds everything else from
 * that walk (chunk_repair) and goes on; at worst the block being allocated leaks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "core/arena.h"
#include "core/fork.h"

#define CHUNK_SIZE ((size_t)1 << 20)
#define UNIT ((size_t)MP__SHM_ALIGN)
#define TAG_SIZE 16
#define LARGE_MIN (CHUNK_SIZE / 4)
#define MAX_CHUNKS 4096

enum { TAG_FREE = 0x46524545u, TAG_USED = 0x55534544u, TAG_LARGE = 0x4c415247u };

struct tag {
    uint32_t units;      /* size of this block in UNITs, tag included */
    uint32_t prev_units; /* size of the previous block; 0 for the first */
    uint32_t state;      /* TAG_FREE, TAG_USED or TAG_LARGE */
    uint32_t pad;
};

struct large_head {
    size_t map_len; /* the whole mapping, this header included */
};

struct chunk {
    pthread_mutex_t lock;        /* robust, process-shared; guards every tag */
    size_t used;                 /* bytes in used blocks; under lock */
    _Atomic uint32_t free_units; /* UNITs in free blocks; written under lock, read
                                    without it as a hint to skip full chunks */
};

/* The first tag sits TAG_SIZE bytes before the first UNIT boundary after the header. */
#define FIRST_TAG_OFFSET (((sizeof(struct chunk) + TAG_SIZE + UNIT - 1) / UNIT) * UNIT - TAG_SIZE)
#define CHUNK_UNITS ((uint32_t)((CHUNK_SIZE - FIRST_TAG_OFFSET) / UNIT))

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *chunks[MAX_CHUNKS]; /* chunks mapped in this process; under list_lock */
static size_t n_chunks;                  /* under list_lock */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void list_lock_acquire(void)
{
    pthread_mutex_lock(&list_lock);
}
static void list_lock_release(void)
{
    pthread_mutex_unlock(&list_lock);
}

/* fork() while another thread holds list_lock would leave it locked forever in the
 * child; holding it across fork keeps the list consistent on both sides. */
static void install_atfork(void)
{
    static const struct mp__fork_handlers h = {.mutex = &list_lock};
    mp__fork_register(MP__FORK_ARENA, &h);
}

static struct tag *first_tag(struct chunk *c)
{
    return (struct tag *)((char *)c + FIRST_TAG_OFFSET);
}
static struct tag *tag_of(void *payload)
{
    return (struct tag *)((char *)payload - TAG_SIZE);
}
static void *payload_of(struct tag *t)
{
    return (char *)t + TAG_SIZE;
}
static struct tag *next_tag(struct tag *t)
{
    return (struct tag *)((char *)t + (size_t)t->units * UNIT);
}
static struct tag *prev_tag(struct tag *t)
{
    return (struct tag *)((char *)t - (size_t)t->prev_units * UNIT);
}
/* The blocks end CHUNK_UNITS whole UNITs after the first tag, a few bytes short
 * of the chunk's end (the header is not a whole number of UNITs). */
static char *blocks_end(struct chunk *c)
{
    return (char *)first_tag(c) + (size_t)CHUNK_UNITS * UNIT;
}
static bool is_last(struct chunk *c, struct tag *t)
{
    return (char *)next_tag(t) >= blocks_end(c);
}

_Static_assert(FIRST_TAG_OFFSET >= sizeof(struct chunk), "the first tag must follow the header");
_Static_assert((FIRST_TAG_OFFSET + TAG_SIZE) % UNIT == 0, "payloads must be UNIT-aligned");
_Static_assert(FIRST_TAG_OFFSET + (size_t)CHUNK_UNITS * UNIT <= CHUNK_SIZE,
               "blocks must fit the chunk");

/* After a process died holding c->lock: the walk by `units` from the first tag is
 * always whole (see the file comment), but a prev_units, a merge of two free
 * neighbours or `used` may have been left half done. Rebuild them from the walk. */
static void chunk_repair(struct chunk *c)
{
    uint32_t prev = 0, free_units = 0;
    c->used = 0;
    for (struct tag *t = first_tag(c);; t = next_tag(t)) {
        while (t->state == TAG_FREE && !is_last(c, t) && next_tag(t)->state == TAG_FREE)
            t->units += next_tag(t)->units;
        t->prev_units = prev;
        prev = t->units;
        if (t->state == TAG_USED)
            c->used += (size_t)t->units * UNIT;
        else
            free_units += t->units;
        if (is_last(c, t))
            break;
    }
    c->free_units = free_units;
}

static void chunk_lock(struct chunk *c)
{
    if (pthread_mutex_lock(&c->lock) == EOWNERDEAD) {
        chunk_repair(c);
        pthread_mutex_consistent(&c->lock);
    }
}

static void chunk_unlock(struct chunk *c)
{
    pthread_mutex_unlock(&c->lock);
}

/* A mapping of len bytes aligned to align (a power of two), or NULL. */
static void *map_aligned(size_t len, size_t align)
{
    size_t span = len + align;
    char *p =
        mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    size_t tail = (size_t)(p + span - (start + len));
    if (tail > 0)
        munmap(start + len, tail);
    return start;
}

static struct chunk *chunk_new(void)
{
    struct chunk *c = map_aligned(CHUNK_SIZE, CHUNK_SIZE);
    if (c == NULL)
        return NULL;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&c->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    struct tag *t = first_tag(c);
    *t = (struct tag){.units = CHUNK_UNITS, .prev_units = 0, .state = TAG_FREE};
    c->free_units = CHUNK_UNITS;
    return c;
}

/* First fit within one chunk; NULL when no free block is large enough. */
static void *chunk_alloc(struct chunk *c, uint32_t units)
{
    if (atomic_load_explicit(&c->free_units, memory_order_relaxed) < units)
        return NULL; /* a stale hint only costs a walk or a fresh chunk */
    void *result = NULL;
    chunk_lock(c);
    for (struct tag *t = first_tag(c);; t = next_tag(t)) {
        if (t->state == TAG_FREE && t->units >= units) {
            if (t->units > units) {
                /* Split: write the new free tail completely before shrinking t. */
                struct tag *rest = (struct tag *)((char *)t + (size_t)units * UNIT);
                *rest =
                    (struct tag){.units = t->units - units, .prev_units = units, .state = TAG_FREE};
                if (!is_last(c, rest))
                    next_tag(rest)->prev_units = rest->units;
                t->units = units;
            }
            t->state = TAG_USED;
            c->used += (size_t)t->units * UNIT;
            c->free_units -= t->units;
            result = payload_of(t);
            break;
        }
        if (is_last(c, t))
            break;
    }
    chunk_unlock(c);
    return result;
}

static void chunk_free(struct chunk *c, struct tag *t)
{
    chunk_lock(c);
    if (t->state != TAG_USED) { /* double free or a stray pointer: leave the arena intact */
        chunk_unlock(c);
        return;
    }
    c->used -= (size_t)t->units * UNIT;
    c->free_units += t->units;
    t->state = TAG_FREE;
    if (!is_last(c, t) && next_tag(t)->state == TAG_FREE) {
        struct tag *n = next_tag(t);
        t->units += n->units;
        if (!is_last(c, t))
            next_tag(t)->prev_units = t->units;
    }
    if (t->prev_units != 0 && prev_tag(t)->state == TAG_FREE) {
        struct tag *p = prev_tag(t);
        p->units += t->units;
        if (!is_last(c, p))
            next_tag(p)->prev_units = p->units;
    }
    chunk_unlock(c);
}

static void *large_alloc(size_t size)
{
    size_t head = UNIT; /* large_head at 0, tag just before the first UNIT boundary */
    size_t len = (head + size + 4095) & ~(size_t)4095;
    if (len < size)
        return NULL;
    char *p =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    ((struct large_head *)p)->map_len = len;
    struct tag *t = (struct tag *)(p + head - TAG_SIZE);
    *t = (struct tag){.state = TAG_LARGE};
    return p + head;
}

void *mp__shm_alloc(size_t size)
{
    if (size == 0 || size > SIZE_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_once(&atfork_once, install_atfork);
    if (size >= LARGE_MIN)
        return large_alloc(size);
    uint32_t units = (uint32_t)((size + TAG_SIZE + UNIT - 1) / UNIT);
    void *p = NULL;
    list_lock_acquire();
    for (size_t i = 0; i < n_chunks && p == NULL; i++)
        p = chunk_alloc(chunks[i], units);
    if (p == NULL && n_chunks < MAX_CHUNKS) {
        struct chunk *c = chunk_new();
        if (c != NULL) {
            chunks[n_chunks++] = c;
            p = chunk_alloc(c, units);
        }
    }
    list_lock_release();
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    memset(p, 0, (size_t)tag_of(p)->units * UNIT - TAG_SIZE);
    return p;
}

void mp__shm_free(void *p)
{
    if (p == NULL)
        return;
    struct tag *t = tag_of(p);
    if (t->state == TAG_LARGE) {
        char *base = (char *)p - UNIT;
        munmap(base, ((struct large_head *)base)->map_len);
        return;
    }
    chunk_free((struct chunk *)((uintptr_t)p & ~(uintptr_t)(CHUNK_SIZE - 1)), t);
}

size_t mp__shm_bytes_in_use(void)
{
    size_t total = 0;
    list_lock_acquire();
    for (size_t i = 0; i < n_chunks; i++) {
        chunk_lock(chunks[i]);
        total += chunks[i]->used;
        chunk_unlock(chunks[i]);
    }
    list_lock_release();
    return total;
}
