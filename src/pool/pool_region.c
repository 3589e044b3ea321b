/* pool_region.c — the pool's shared region: MAP_SHARED memory mapped before any
 * worker was forked, so its addresses are valid in every worker. Only the pool's
 * process allocates from it, first fit over a parent-private list of free extents
 * sorted by offset (pool->free_ext), under the pool lock. It holds the workers'
 * slots and result batches, large task payloads, zero-copy jobs and what callers
 * get from mp_pool_shared_alloc. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "linux/sys.h"
#include "pool/pool_parent.h"

#define RHEAD 64 /* each block starts with its length, one cache line before it */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

void *mp__pool_region_alloc_locked(mp_pool *p, size_t size)
{
    if (size == 0 || size > p->region_size)
        return NULL;
    size_t need = RHEAD + ((size + 63) & ~(size_t)63);
    for (size_t i = 0; i < p->n_free; i++) {
        struct mp__extent *e = &p->free_ext[i];
        if (e->len < need)
            continue;
        char *block = p->region + e->off;
        e->off += need;
        e->len -= need;
        if (e->len == 0) {
            memmove(e, e + 1, (p->n_free - i - 1) * sizeof *e);
            p->n_free--;
        }
        *(size_t *)block = need;
        return block + RHEAD;
    }
    return NULL;
}

char *mp__pool_region_fresh_locked(mp_pool *p, void *block, size_t size, size_t *len)
{
    size_t off = (size_t)((char *)block - p->region), end = off + size;
    *len = 0;
    if (end <= p->populated)
        return NULL;
    size_t from = (off > p->populated ? off : p->populated) & ~(size_t)4095;
    end = (end + 4095) & ~(size_t)4095;
    if (end > p->region_size)
        end = p->region_size;
    p->populated = end;
    *len = end - from;
    return p->region + from;
}

void mp__pool_region_populate(char *addr, size_t len)
{
    if (addr != NULL && len > 0)
        (void)madvise(addr, len, MADV_POPULATE_WRITE); /* EINVAL on old kernels: faults */
}

void mp__pool_region_free_locked(mp_pool *p, void *ptr)
{
    if (ptr == NULL)
        return;
    char *block = (char *)ptr - RHEAD;
    size_t off = (size_t)(block - p->region), len = *(size_t *)block;
    if (len >= ((size_t)64 << 20)) {
        mp__release_pages(block, len); /* give large blocks' pages back */
        if (off < p->populated)
            p->populated = off; /* populating pages still in use again keeps them as they are */
    }
    size_t i = 0;
    while (i < p->n_free && p->free_ext[i].off < off)
        i++;
    bool join_prev = i > 0 && p->free_ext[i - 1].off + p->free_ext[i - 1].len == off;
    bool join_next = i < p->n_free && off + len == p->free_ext[i].off;
    if (join_prev && join_next) {
        p->free_ext[i - 1].len += len + p->free_ext[i].len;
        memmove(&p->free_ext[i], &p->free_ext[i + 1], (p->n_free - i - 1) * sizeof *p->free_ext);
        p->n_free--;
    } else if (join_prev) {
        p->free_ext[i - 1].len += len;
    } else if (join_next) {
        p->free_ext[i].off = off;
        p->free_ext[i].len += len;
    } else {
        if (p->n_free == p->cap_free) {
            size_t cap = p->cap_free * 2;
            struct mp__extent *e = realloc(p->free_ext, cap * sizeof *e);
            if (e == NULL)
                return; /* leak the block rather than corrupt the list */
            p->free_ext = e;
            p->cap_free = cap;
        }
        memmove(&p->free_ext[i + 1], &p->free_ext[i], (p->n_free - i) * sizeof *p->free_ext);
        p->free_ext[i] = (struct mp__extent){off, len};
        p->n_free++;
    }
}

bool mp__pool_in_region(const mp_pool *p, const void *ptr, size_t len)
{
    const char *c = ptr;
    return c >= p->region && len <= p->region_size &&
           c - p->region <= (ptrdiff_t)(p->region_size - len);
}

void *mp_pool_shared_alloc(mp_pool *pool, size_t size)
{
    if (pool == NULL || pool->owner != mp__self_pid())
        return NULL;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    void *ptr = mp__pool_region_alloc_locked(pool, size);
    size_t fresh_len = 0;
    char *fresh = ptr != NULL ? mp__pool_region_fresh_locked(pool, ptr, size, &fresh_len) : NULL;
    mp__pool_unlock(pool);
    mp__pool_region_populate(fresh, fresh_len);
    if (ptr != NULL)
        memset(ptr, 0, size);
    mp__pool_leave(pool);
    return ptr;
}

void mp_pool_shared_free(mp_pool *pool, void *ptr)
{
    if (pool == NULL || ptr == NULL || pool->owner != mp__self_pid())
        return;
    mp__pool_enter(pool);
    if (mp__pool_in_region(pool, ptr, 1)) {
        mp__pool_lock(pool);
        mp__pool_region_free_locked(pool, ptr);
        mp__pool_unlock(pool);
    }
    mp__pool_leave(pool);
}
