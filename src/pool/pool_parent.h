/* pool/pool_parent.h — the pool's private state in the process that owns it,
 * shared by pool.c (workers, dispatch, handler thread) and async_result.c. */
#ifndef MPROC_INTERNAL_POOL_PARENT_H
#define MPROC_INTERNAL_POOL_PARENT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "core/identity.h"
#include "mproc/process.h"
#include "pool/pool.h"

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
    _Atomic uint32_t ready;       /* futex word: 1 once complete and the callback ran */
    _Atomic uint32_t *ready_word; /* &ready, or &job->state for a zero-copy map */
    _Atomic uint32_t seq;         /* futex word: bumped each time a chunk is done */
    _Atomic int refs;             /* the caller's handle + the pool's until ready */
    _Atomic bool completed;       /* fields final; set under the pool lock before callbacks */
    pthread_t handler;            /* the pool's handler thread (get from a callback) */
    pid_t owner;                  /* the pool's process: results do not cross fork */
    enum mp__rkind kind;
    int status, task_code;
    char *msg;  /* malloc'd; NULL means "" */
    char *data; /* apply: malloc'd result */
    size_t len;
    /* maps */
    size_t n, chunksize, n_chunks, out_size;
    bool var;
    char *out; /* fixed-size results */
    bool out_owned;
    struct mp__chunk_res *chunks;
    size_t chunks_left; /* under the pool lock */
    _Atomic size_t items_done;
    size_t *order; /* chunks in completion order (imap_unordered) */
    _Atomic size_t n_order;
    bool unordered;
    size_t cur, cur_k, emitted; /* iterator position; one iterating thread */
    /* zero-copy maps */
    struct mp__job *job;              /* in the pool's region; NULL once detached */
    struct mp_pool *pool;             /* set while job is attached */
    int parts;                        /* workers sent the job and not yet out of it; pool lock */
    bool orphan;                      /* the caller destroyed it; free the job once parts == 0 */
    char *death_msg;                  /* first worker death during the job */
    bool died;                        /* a participant died in the job; pool lock */
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

/* The caller destroyed job result r: the pool frees the job once no worker is in
 * it (takes the pool lock). */
MP__HIDDEN void mp__pool_job_orphan(mp_async_result *r);

/* ---- the pool (pool.c, pool_submit.c, pool_handler.c) ---- */

#define MP__POOL_MAX_OUT 32             /* tasks in flight per worker with a long backlog */
#define MP__POOL_REGION_MIN (64u << 10) /* payloads this large go through the region */
#define MP__POOL_REGION_DEFAULT ((size_t)1 << 30)
#define MP__POOL_STAGE_CAP (64u << 10)
#define MP__POOL_MAX_WORKERS 4096

enum mp__pstate { MP__RUN, MP__CLOSE, MP__TERMINATE };

struct mp__unit {
    struct mp__unit *next;
    uint64_t id;
    uint32_t kind;
    mp_async_result *r; /* NULL once the result no longer wants this task's answer */
    size_t chunk;
    char *frame; /* header + inline payload */
    size_t frame_len;
    void *region; /* region block holding the payload, or NULL */
};

struct mp__worker {
    bool up;
    bool eof;  /* socket at EOF: stop reading, wait for the end */
    bool shut; /* SHUT_WR sent: no more tasks */
    pid_t pid;
    int pidfd, sock;
    pthread_t thread;
    struct mp__worker_ctx *tctx; /* thread workers: their context */
    unsigned sent;               /* non-job tasks sent, for maxtasksperchild */
    struct mp__unit *head, *tail, *wcur;
    size_t woff, n_out;
    char *st; /* staging buffer for reads */
    size_t st_len;
    struct mp__result_hdr bh; /* a large frame being read into body */
    char *body;
    size_t body_len, body_got;
    bool big;
    uint64_t respawn_at; /* a slot whose worker died in its initializer waits (mp__now_ns) */
};

struct mp__extent {
    size_t off, len;
};

struct mp_pool {
    pthread_mutex_t mu;
    pid_t owner;
    int n;
    bool threads;
    unsigned maxtasks;
    void (*initializer)(void *);
    void *initarg;
    struct mp__worker *w;
    int efd;
    pthread_t handler;
    sigset_t child_mask;
    enum mp__pstate state;             /* read under mu or inbox_mu; written under both */
    struct mp__unit *pend, *pend_tail; /* under mu */
    size_t n_pending;
    uint64_t next_id;
    mp_async_result *jobs;           /* zero-copy results with their job attached; under mu */
    mp_async_result *cbq, *cbq_tail; /* completed, waiting for callbacks; under mu */
    char *region;
    size_t region_size;
    struct mp__wslot *slots;     /* n, in the region */
    char *batches;               /* n * MP__BATCH_CAP in the region (process pools), or NULL */
    struct mp__extent *free_ext; /* free extents of the region, by offset; under mu */
    size_t n_free, cap_free;
    _Atomic uint32_t started; /* futex word: the handler started the workers */
    int start_rc;
    _Atomic uint32_t finished; /* futex word: the handler has ended */
    bool joined;
    bool free_at_end; /* destroyed from a callback: the handler frees the pool; under mu */
    bool spawn_failed;
    bool kicked;              /* something happened since the handler last looked; under mu */
    _Atomic uint32_t asleep;  /* 1: the handler is in (or about to enter) poll */
    pthread_mutex_t inbox_mu; /* guards inbox; held (after mu) to change state */
    struct mp__unit *inbox, *inbox_tail; /* submitted, not yet seen by the handler */
    _Atomic uint32_t calls; /* public calls inside the pool's API now (mp__pool_enter) */
};

/* Every public call on a pool runs between these two. A pool destroyed from a
 * callback is freed by its handler thread once the handler ends, and only when no
 * call is inside: the apply_async that submitted the task whose callback destroys
 * the pool may still be waking the handler when that callback runs. The leaving
 * call's last access to the pool is the release decrement; the handler reads the
 * count with acquire before it frees. */
static inline void mp__pool_enter(mp_pool *p)
{
    atomic_fetch_add(&p->calls, 1);
}

static inline void mp__pool_leave(mp_pool *p)
{
    atomic_fetch_sub_explicit(&p->calls, 1, memory_order_release);
}

/* Shared by the pool's files, defined in pool.c (handler_main in pool_handler.c,
 * job_send in pool_submit.c). All but lock/unlock/check_pool/handler_main expect
 * pool->mu held; each is documented at its definition. */
MP__HIDDEN void mp__pool_lock(mp_pool *p);
MP__HIDDEN void mp__pool_unlock(mp_pool *p);
MP__HIDDEN void mp__pool_kick(mp_pool *p);
MP__HIDDEN void *mp__pool_region_alloc(mp_pool *p, size_t size);
MP__HIDDEN void mp__pool_region_free(mp_pool *p, void *ptr);
MP__HIDDEN bool mp__pool_in_region(const mp_pool *p, const void *ptr, size_t len);
MP__HIDDEN void mp__pool_complete(mp_pool *p, mp_async_result *r);
MP__HIDDEN void mp__pool_free_unit(mp_pool *p, struct mp__unit *u);
MP__HIDDEN void mp__pool_map_finish(mp_pool *p, mp_async_result *r);
MP__HIDDEN void mp__pool_chunk_done(mp_pool *p, mp_async_result *r, size_t c, int status, int code,
                                    const char *msg, const char *payload, size_t payload_len);
MP__HIDDEN void mp__pool_fail_unit(mp_pool *p, struct mp__unit *u, int status, const char *msg);
MP__HIDDEN void mp__pool_job_finish(mp_pool *p, mp_async_result *r, int forced_status,
                                    const char *forced_msg);
MP__HIDDEN void mp__pool_job_leave(mp_async_result *r, int slot, const char *death);
MP__HIDDEN void mp__pool_check_jobs(mp_pool *p);
MP__HIDDEN void mp__pool_job_offer(mp_pool *p, mp_async_result *r);
MP__HIDDEN void mp__pool_out_push(struct mp__worker *w, struct mp__unit *u);
MP__HIDDEN void mp__pool_write_units(struct mp__worker *w);
MP__HIDDEN void mp__pool_dispatch(mp_pool *p);
MP__HIDDEN struct mp__unit *mp__pool_make_unit(uint32_t kind, uint32_t flags, uint64_t fn,
                                               size_t count, size_t in_size, size_t out_size,
                                               size_t payload_len);
MP__HIDDEN void mp__pool_pend_push(mp_pool *p, struct mp__unit *u);
MP__HIDDEN int mp__pool_check_pool(const mp_pool *p);
MP__HIDDEN int mp__pool_job_send(mp_pool *p, mp_async_result *r, int i);
MP__HIDDEN void *mp__pool_handler_main(void *arg);
MP__HIDDEN void mp__pool_wake_if_asleep(mp_pool *p);
MP__HIDDEN void mp__pool_set_state(mp_pool *p, enum mp__pstate s);
MP__HIDDEN void mp__pool_free(mp_pool *p);

#endif /* MPROC_INTERNAL_POOL_PARENT_H */
