/* pool/pool.h — what the pool's parent side (pool_*.c, pool.c) and its workers
 * (pool_worker.c) share: the frames on each worker's socket and the zero-copy map
 * job in shared memory. The protocol is described at the top of pool.c. */
#ifndef MPROC_INTERNAL_POOL_H
#define MPROC_INTERNAL_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/pool.h"

enum {
    MP__UNIT_APPLY = 1, /* payload: the argument */
    MP__UNIT_MAP_FIXED, /* payload: count items of in_size bytes */
    MP__UNIT_MAP_VAR,   /* payload: count u64 lengths, then the items back to back */
    MP__UNIT_JOB,       /* join the zero-copy job at region_off (an address) */
};

#define MP__UNIT_STAR 1u   /* flags: items are packed tuples for an mp_star_fn */
#define MP__UNIT_REGION 2u /* flags: the payload is in shared memory at region_off */
#define MP__UNIT_FEED                                                                              \
    4u /* flags: a map chunk's items arrive through the feed at feed_off;                          \
        * the payload holds only the count u64 lengths (variable items) */

/* Parent -> worker. Followed by payload_len bytes unless MP__UNIT_REGION. */
struct mp__task_hdr {
    uint32_t kind;
    uint32_t flags;
    uint64_t id;
    uint64_t fn;    /* the function's address */
    uint64_t count; /* items in a map chunk */
    uint64_t in_size;
    uint64_t out_size;
    uint64_t payload_len;
    uint64_t region_off; /* address of the payload or job, valid in every worker */
    uint64_t out_off;    /* fixed-size map: address in the region where the chunk's count *
                          * out_size results go (the result frame then has no payload), or 0 */
    uint64_t feed_off;   /* MP__UNIT_FEED: address of the chunk's struct mp__feed */
};

/* A chunk's items streamed through a ring in the region, so that a large chunk
 * holds ring_size bytes of the region rather than its whole payload (pool_submit.c
 * writes, pool_worker.c reads). The items are a stream: an item of len bytes that
 * would start at stream offset v starts at mp__feed_place(v, len, ring_size) (the
 * next lap when it would cross the ring's end) and lies at ring[start % ring_size],
 * whole. Who writes what:
 *   ring_size, kick   the parent, before the unit is submitted; constant after.
 *   written   the parent: stream offset up to which items are in the ring (seq_cst
 *             store after the bytes); it writes an item only once it fits within
 *             ring_size of `consumed`.
 *   consumed  the running worker: stream offset up to which it is done with the
 *             ring (seq_cst store once the tasks of the items before it returned).
 *   abandoned the parent: 0 -> 1 when it will write no more (the chunk was answered
 *             before all its items were written: a failed item, terminate).
 *   wseq      futex word the worker sleeps on, with worker_waits set; the parent
 *             bumps it (and wakes) after a store to written or abandoned that the
 *             worker may be waiting for.
 *   kick      the map's struct mp__feed_kick: after a store to consumed the worker
 *             bumps kick->seq and wakes it when kick->waiting.
 *   parent_refs  the parent only, under the pool lock: the unit and the submitter
 *             each hold one; the block is freed at zero (not before the unit was
 *             freed, so never while a worker may read it).
 * A replacement worker that runs the chunk again (the first one died before it
 * started it) finds every item from `consumed` == 0 still in the ring: the parent
 * writes no further than ring_size past what was consumed. */
struct mp__feed {
    _Atomic uint64_t written;
    _Atomic uint64_t consumed;
    _Atomic uint32_t wseq;
    _Atomic uint32_t worker_waits;
    _Atomic uint32_t abandoned;
    uint32_t parent_refs;
    struct mp__feed_kick *kick;
    uint64_t ring_size; /* a power of two, at least the chunk's largest item */
    char pad[16];
    char ring[];
};

/* The wake word of a streamed map in the region: its submitter sleeps on seq
 * with waiting set; workers (consumed a feed's items) and the handler (answered
 * a chunk) bump it and wake it. parent_refs: the parent only, under the pool lock
 * (the submitter, the map's completion, and each feed block pointing here). */
struct mp__feed_kick {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiting;
    uint32_t parent_refs;
};

static inline uint64_t mp__feed_place(uint64_t v, uint64_t len, uint64_t ring_size)
{
    uint64_t pos = v & (ring_size - 1);
    return pos + len > ring_size ? v + (ring_size - pos) : v;
}

/* Test hooks: points where a worker calls mp__pool_fault_hook when it is not NULL. */
enum mp__pool_fault {
    MP__PF_FEED_WAIT = 1, /* a worker needs items past what it saw written to its feed */
    MP__PF_TASK_DONE = 2, /* a worker finished a task (`running` cleared), before the next */
};
MP__HIDDEN extern void (*mp__pool_fault_hook)(int point);

/* Worker -> parent, one per task, in the order the tasks were sent. Followed by
 * msg_len bytes of message, then payload_len bytes: the result (apply), count *
 * out_size bytes (fixed map; none when the task had an out_off: the results are
 * there), count u64 lengths then the results (variable map). */
struct mp__result_hdr {
    uint64_t id;
    int32_t status;    /* 0, MP_ETASKFAILED, MP_EMSGSIZE, MP_ENOMEM */
    int32_t task_code; /* the task's own return value when it failed */
    uint64_t msg_len;
    uint64_t payload_len;
};

/* Chunk c of a map of n items in chunks of chunksize: its first item and its count. */
struct mp__span {
    size_t first, count;
};

static inline struct mp__span mp__chunk_span(size_t n, size_t chunksize, size_t c)
{
    size_t first = c * chunksize;
    return (struct mp__span){first, n - first < chunksize ? n - first : chunksize};
}

/* The futex words that say "complete" (mp_async_result.ready, mp__job.state). A
 * waiter turns PENDING into PENDING_WAITED before it sleeps; the completer exchanges
 * the word for READY and makes the wake-up system call only when it replaced
 * PENDING_WAITED. READY is final. */
enum mp__ready_state { MP__PENDING = 0, MP__READY = 1, MP__PENDING_WAITED = 2 };

/* A zero-copy map's chunk, in mp__job.chunk_state: written once, by its runner. */
enum mp__chunk_state { MP__CHUNK_OPEN = 0, MP__CHUNK_DONE = 1, MP__CHUNK_FAILED = 2 };

/* A zero-copy map in the pool's shared region (pool.c describes the protocol).
 * Who writes what:
 *   kernel .. n_chunks, chunk_state and chunk_code (the pointers)
 *             the parent, before it sends the first JOB frame; constant after.
 *   fast      the parent, at creation: 1 when no callback waits to run, so the
 *             worker finishing the last chunk may complete the job itself.
 *   cancel    the parent (terminate): 0 -> 1; workers claim no chunk after it.
 *   next_chunk      fetch_add by a participant to claim a chunk (may pass n_chunks).
 *   Then the chunk's runner, in this order:
 *   chunk_code[c]   its kernel's code, when the kernel failed;
 *   failed          0 -> 1, when the kernel failed;
 *   chunk_state[c]  once: OPEN -> DONE or FAILED;
 *   done_items, finished_chunks  fetch_add, last.
 *   state     (enum mp__ready_state) a waiter sets PENDING_WAITED; READY is set by
 *             the worker that finishes the last chunk of a fast job without
 *             failures (fast path), otherwise by the handler after callbacks.
 * The parent reads chunk_state[c] only after finished_chunks counted c, or after
 * every participant left the job (a chunk still OPEN then was claimed by a worker
 * that died). */
struct mp__job {
    uint64_t kernel;
    void *ctx;
    const char *in;
    char *out;
    size_t in_size, out_size, n, chunksize, n_chunks;
    _Atomic uint64_t next_chunk;
    _Atomic uint64_t finished_chunks;
    _Atomic uint64_t done_items;
    _Atomic uint32_t failed;
    _Atomic uint32_t cancel;
    _Atomic uint32_t fast;
    _Atomic uint32_t state;
    _Atomic uint8_t *chunk_state; /* enum mp__chunk_state per chunk */
    int32_t *chunk_code;          /* a failed kernel's code per chunk */
};

#define MP__RUNNING_INIT UINT64_MAX /* `running` while the initializer runs */

/* Bytes of a process worker's result batch in the shared region: the worker
 * flushes before the batch reaches 64 KiB and batches frames of at most 32 KiB. */
#define MP__BATCH_CAP (96u << 10)

/* Per worker slot, in the pool's shared region, one cache line each. Who writes:
 *   running    the slot's worker: the id of the task it runs, 0 between tasks,
 *              MP__RUNNING_INIT during the initializer.
 *   batch_len  the slot's worker: bytes of whole result frames in its batch not yet
 *              known to be in the socket, stored (release) after each frame's bytes
 *              and set to 0 once the batch is written.
 * The parent resets both before it starts the slot's worker, and reads them only
 * after that worker ended (waitpid or pthread_join orders the accesses). */
struct mp__wslot {
    _Atomic uint64_t running;
    _Atomic uint64_t batch_len;
    char pad[48];
};

/* What a worker (process or thread) needs; the loop never touches the parent's
 * locks, so it is safe in a child forked while other threads held them. */
struct mp__worker_ctx {
    int fd;                      /* the worker's end of its socket */
    _Atomic uint64_t *running;   /* shared: see struct mp__wslot */
    char *batch;                 /* shared: MP__BATCH_CAP bytes for batched results, or NULL */
    _Atomic uint64_t *batch_len; /* shared: see struct mp__wslot */
    unsigned maxtasks;
    void (*initializer)(void *);
    void *initarg;
};

/* Runs tasks from c->fd until EOF or maxtasks; returns when the worker should end. */
MP__HIDDEN void mp__pool_worker_main(const struct mp__worker_ctx *c);

#endif /* MPROC_INTERNAL_POOL_H */
