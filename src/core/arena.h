/* core/arena.h — the shared arena: process-shared memory for every shared
 * object (locks, queues, values, pools' shared state).
 *
 * Memory from mp__shm_alloc is MAP_SHARED and anonymous: a block allocated before
 * fork() is the same memory in the parent and in every child forked afterwards.
 * Nothing is ever created in /dev/shm; the kernel releases the memory when the
 * last process mapping it unmaps it or exits. Safe from any thread of any process
 * that shares the block's chunk. */
#ifndef MPROC_INTERNAL_ARENA_H
#define MPROC_INTERNAL_ARENA_H

#include <stddef.h>

#include "core/util.h"

#define MP__SHM_ALIGN 64 /* every block starts on a cache line */

/* size bytes of zeroed shared memory aligned to MP__SHM_ALIGN, or NULL (out of
 * memory, or size == 0). Blocks up to a quarter of a chunk come from shared
 * chunks; larger ones get a mapping of their own. */
MP__HIDDEN void *mp__shm_alloc(size_t size);

/* Returns p to the arena. Any process that shares p may free it, but only once,
 * and only when no process uses it any more (the callers' object protocols decide
 * who frees). NULL is a no-op. */
MP__HIDDEN void mp__shm_free(void *p);

/* Bytes of small blocks this process's view of the arena holds as allocated,
 * headers included; for tests that check a destroy really freed. */
MP__HIDDEN size_t mp__shm_bytes_in_use(void);

#endif /* MPROC_INTERNAL_ARENA_H */
