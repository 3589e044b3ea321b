/* internal/pool_parent.h — the pool's private state in the process that owns it,
 * shared by pool.c (workers, dispatch, handler thread) and async_result.c. */
#ifndef MPROC_INTERNAL_POOL_PARENT_H
#define MPROC_INTERNAL_POOL_PARENT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "internal/pool.h"

enum mp__rkind { MP__R_APPLY, MP__R_MAP, MP__R_JOB };

/* One chunk of a map result. The handler fills the fields under the pool lock,
 * then sets done (release); readers check done (acquire) first. */
struct mp__chunk_res {
    _Atomic uint8_t done;
    int status, task_code;
    char *msg;    /* malloc'd */
    char *buf;    /* variable-size results: count u64 lengths, then the bytes */
    size_t *offs; /* variable-size results: offset of each item's bytes in buf */
};

struct mp_async_result {
    _Atomic uint32_t ready;        /* futex word: 1 once complete and the callback ran */
    _Atomic uint32_t *ready_word;  /* &ready, or &job->state for a zero-copy map */
    _Atomic uint32_t seq;          /* futex word: bumped each time a chunk is done */
    _Atomic int refs;              /* the caller's handle + the pool's until ready */
    bool completed;                /* fields final; set under the pool lock before callbacks */
    pthread_t handler;             /* the pool's handler thread (get from a callback) */
    enum mp__rkind kind;
    int status, task_code;
    char *msg;                     /* malloc'd; NULL means "" */
    char *data;                    /* apply: malloc'd result */
    size_t len;
    /* maps */
    size_t n, chunksize, n_chunks, out_size;
    bool var;
    char *out;                     /* fixed-size results */
    bool out_owned;
    struct mp__chunk_res *chunks;
    size_t chunks_left;            /* under the pool lock */
    _Atomic size_t items_done;
    size_t *order;                 /* chunks in completion order (imap_unordered) */
    _Atomic size_t n_order;
    bool unordered;
    size_t cur, cur_k, emitted;    /* iterator position; one iterating thread */
    /* zero-copy maps */
    struct mp__job *job;           /* in the pool's region; NULL once detached */
    struct mp_pool *pool;          /* set while job is attached */
    int parts;                     /* workers sent the job and not yet out of it; pool lock */
    bool orphan;                   /* the caller destroyed it; free the job once parts == 0 */
    char *death_msg;               /* first worker death during the job */
    struct mp_async_result *job_next; /* pool->jobs list */
    /* callbacks */
    mp_async_options cb;
    struct mp_async_result *cb_next; /* pool->cbq list */
};

/* Drops one reference; frees r at zero. */
MP__HIDDEN void mp__result_release(mp_async_result *r);

/* A new result with refs references, or NULL. */
MP__HIDDEN mp_async_result *mp__result_new(enum mp__rkind kind, int refs);

/* Frees the zero-copy job of r in pool (pool lock held). */
MP__HIDDEN void mp__pool_job_free(struct mp_pool *pool, mp_async_result *r);

/* Unlinks a destroyed job result from its pool (takes the pool lock); true when
 * the caller may free r's job memory itself (never: the pool frees it). */
MP__HIDDEN void mp__pool_job_orphan(mp_async_result *r);

#endif /* MPROC_INTERNAL_POOL_PARENT_H */
