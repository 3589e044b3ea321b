/* pool/pool.h — what the pool's parent side (pool.c) and its workers
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
};

/* Worker -> parent, one per task, in the order the tasks were sent. Followed by
 * msg_len bytes of message, then payload_len bytes: the result (apply), count *
 * out_size bytes (fixed map), count u64 lengths then the results (variable map). */
struct mp__result_hdr {
    uint64_t id;
    int32_t status;    /* 0, MP_ETASKFAILED, MP_EMSGSIZE, MP_ENOMEM */
    int32_t task_code; /* the task's own return value when it failed */
    uint64_t msg_len;
    uint64_t payload_len;
};

enum { MP__CHUNK_OPEN = 0, MP__CHUNK_DONE = 1, MP__CHUNK_FAILED = 2 };

/* A zero-copy map in the pool's shared region. Workers claim chunks with
 * next_chunk; see pool.c for who writes what. */
struct mp__job {
    uint64_t kernel;
    void *ctx;
    const char *in;
    char *out;
    size_t in_size, out_size, n, chunksize, n_chunks;
    int n_slots;
    _Atomic uint64_t next_chunk;      /* next chunk to claim; fetch_add by workers */
    _Atomic uint64_t finished_chunks; /* chunks done or failed by the kernel */
    _Atomic uint64_t done_items;      /* progress */
    _Atomic uint32_t failed;          /* 1 once a kernel failed */
    _Atomic uint32_t cancel;          /* 1: terminated, claim no more chunks; by the parent */
    _Atomic uint32_t fast;            /* 1: the worker finishing the last chunk completes */
    _Atomic uint32_t state;           /* futex word: 0 running, 1 complete */
    _Atomic int64_t *current;         /* per worker slot: chunk being run, -1 none */
    _Atomic uint8_t *chunk_state;     /* MP__CHUNK_* per chunk; set by the chunk's runner */
    int32_t *chunk_code;              /* a failed kernel's code, written before chunk_state */
};

#define MP__RUNNING_INIT UINT64_MAX /* `running` while the initializer runs */

/* Bytes of a process worker's result batch in the shared region: the worker
 * flushes before the batch reaches 64 KiB and batches frames of at most 32 KiB. */
#define MP__BATCH_CAP (96u << 10)

/* Per worker, in the pool's shared region, one cache line each. */
struct mp__wslot {
    _Atomic uint64_t running;   /* id of the task the worker runs, 0 between tasks; by the worker */
    _Atomic uint64_t batch_len; /* bytes of whole result frames in its batch, not yet known
                                 * written to the socket; by the worker (release after the
                                 * frame's bytes); the parent reads it after the worker ended */
    char pad[48];
};

/* What a worker (process or thread) needs; the loop never touches the parent's
 * locks, so it is safe in a child forked while other threads held them. */
struct mp__worker_ctx {
    int fd;                      /* the worker's end of its socket */
    int slot;                    /* index of the worker in the pool, for job->current */
    _Atomic uint64_t *running;   /* shared: id of the task being run, 0 between tasks */
    char *batch;                 /* shared: MP__BATCH_CAP bytes for batched results, or NULL */
    _Atomic uint64_t *batch_len; /* shared: see struct mp__wslot */
    unsigned maxtasks;
    void (*initializer)(void *);
    void *initarg;
};

/* Runs tasks from c->fd until EOF or maxtasks; returns when the worker should end. */
MP__HIDDEN void mp__pool_worker_main(const struct mp__worker_ctx *c);

#endif /* MPROC_INTERNAL_POOL_H */
