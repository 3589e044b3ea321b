/* pool/pool_parent.h — the pool's private state in the process that owns it, and
 * the hidden functions its files share.
 *
 * The files are layers, listed bottom up; each calls only the files listed before
 * it (the sections of this header in the same order), never one after it:
 *   pool_worker.c    the workers' loop; it shares only pool/pool.h
 *   pool_region.c    the shared region's allocator, mp_pool_shared_alloc/free
 *   pool_dispatch.c  waking the handler, task units, writing frames to workers
 *   async_result.c   results: their references, completion, the public calls
 *   pool_settle.c    what comes back: result frames, worker deaths, zero-copy jobs
 *   pool_handler.c   the handler thread (the only one that forks) and the teardown
 *   pool_submit.c    apply / map / starmap / map_shared
 *   pool.c           the protocol's description; new, close, terminate, join, destroy
 *
 * Locks: pool->mu ("the pool lock") guards the pool's state below unless a field
 * says otherwise; inbox_mu (taken after mu, never the other way) guards the inbox
 * and, with mu, the state. A function whose name ends in _locked expects the pool
 * lock held by the caller; every other function takes what it needs itself.
 */
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

/* A result handle: an apply (data, len), a map (the map block) or a zero-copy map
 * (the map block's n, chunksize, n_chunks and the job block). Who writes what:
 *   kind, owner, handler, cb, and the map block's sizes (n .. unordered, out)
 *             the submitting call, before the result is published; constant after.
 *   refs      one per holder (enum mp__result_holder), each dropping its own.
 *   status, task_code, msg, data, len, the contents of out and chunks[]
 *             the handler under the pool lock, before it sets completed (for a
 *             chunk: before its done); readers look after ready (or done).
 *   completed the handler, under the pool lock, when the fields above are final.
 *   ready     (enum mp__ready_state) a waiter sets PENDING_WAITED; the handler sets
 *             READY after the callback ran (mp__pool_free: for a job detached from
 *             a freed pool).
 *   ready_word  &ready, or &job->state while the job is attached: a zero-copy map
 *             may be completed by the worker finishing its last chunk. Set at
 *             creation, back to &ready once the job is detached, which happens only
 *             after both words were READY or the caller destroyed r.
 *   job_readers  the caller's threads, around each read of job, ready_word or pool
 *             of a job result (async_result.c): a pool freed from a callback
 *             detaches the job only once no such read is in progress.
 *   seq, items_done, order, n_order, chunks_left  the handler, per chunk done
 *             (chunks_left under the pool lock); seq is the futex word imap sleeps on.
 *   cur, cur_k, emitted  the one iterating thread (mp_imap_next).
 *   job, pool  set at creation; cleared once, when the job is detached (by the
 *             handler under the pool lock, or by mp__pool_free after
 *             mp__result_job_unpublish).
 *   parts, died, death_msg, orphan, job_next, cb_next  pool lock. */
struct mp_async_result {
    _Atomic uint32_t ready;
    _Atomic uint32_t *_Atomic ready_word;
    _Atomic uint32_t seq;
    _Atomic int refs;
    _Atomic bool completed;
    pthread_t handler; /* the pool's handler thread (get from a callback) */
    pid_t owner;       /* the pool's process: results do not cross fork */
    enum mp__rkind kind;
    int status, task_code;
    char *msg; /* malloc'd; NULL means "" */
    /* apply */
    char *data; /* malloc'd result */
    size_t len;
    /* map (and a zero-copy map's n, chunksize, n_chunks) */
    size_t n, chunksize, n_chunks, out_size;
    bool var;  /* variable-size results, in chunks[].buf */
    char *out; /* fixed-size results: n * out_size bytes */
    bool out_owned;
    struct mp__chunk_res *chunks;
    size_t chunks_left;
    _Atomic size_t items_done;
    size_t *order; /* chunks in completion order (imap_unordered) */
    _Atomic size_t n_order;
    bool unordered;
    size_t cur, cur_k, emitted; /* iterator position */
    struct mp__feed_kick *kick; /* a streamed map's wake word (its completion's reference), or
                                 * NULL; bumped per chunk done; pool lock */
    /* zero-copy map */
    struct mp__job *_Atomic job;  /* in the pool's region; NULL once detached */
    struct mp_pool *_Atomic pool; /* set while job is attached */
    _Atomic uint32_t job_readers;
    int parts;                        /* workers sent the job and not yet out of it */
    bool orphan;                      /* the caller destroyed it: free the job once parts == 0 */
    char *death_msg;                  /* first worker death during the job */
    bool died;                        /* a participant died in the job */
    struct mp_async_result *job_next; /* pool->jobs list */
    /* callbacks */
    mp_async_options cb;
    struct mp_async_result *cb_next; /* pool->cbq list */
};

#define MP__POOL_MAX_OUT 32             /* tasks in flight per worker with a long backlog */
#define MP__POOL_REGION_MIN (64u << 10) /* payloads this large go through the region */
#define MP__POOL_STREAM_BYTES ((size_t)64 << 20) /* a streamed map's payloads in flight */
#define MP__POOL_REGION_DEFAULT ((size_t)1 << 30)
#define MP__POOL_STAGE_CAP (64u << 10)
#define MP__POOL_FEED_RING ((size_t)2 << 20) /* a feed's ring, unless an item is larger */
#define MP__POOL_SMALL_COUNT                                                                       \
    64 /* units of more items get at most one queued behind the running                            \
        */
#define MP__POOL_MAX_WORKERS 4096

enum mp__pstate { MP__RUN, MP__CLOSE, MP__TERMINATE };

/* A task on its way to a worker: in the inbox, the pending queue, or a worker's
 * outstanding list. */
struct mp__unit {
    struct mp__unit *next;
    uint64_t id;
    uint32_t kind;
    mp_async_result *r; /* NULL once the result no longer wants this task's answer */
    size_t chunk;
    char *frame; /* header + inline payload */
    size_t frame_len;
    void *region;          /* region block holding the payload, or NULL */
    void *out_region;      /* region block the worker writes a fixed map chunk's results into */
    struct mp__feed *feed; /* the chunk's feed (MP__UNIT_FEED): the unit's reference to it */
};

/* A worker slot, in the parent; pool lock. */
struct mp__worker {
    bool up;
    bool eof;  /* socket at EOF: stop reading, wait for the end */
    bool shut; /* SHUT_WR sent: no more tasks */
    pid_t pid;
    int pidfd, sock;
    pthread_t thread;
    struct mp__worker_ctx *thread_ctx; /* thread workers: their context */
    unsigned sent;                     /* non-job tasks sent, for maxtasksperchild */
    /* Outstanding units, in send order: sent (or being sent) and not yet answered.
     * unsent is the first one not completely written, unsent_off its bytes written. */
    struct mp__unit *head, *tail, *unsent;
    size_t unsent_off, n_out;
    /* Reading result frames: whole frames are parsed in stage (MP__POOL_STAGE_CAP
     * bytes); a frame larger than that is read into a buffer of its own, large_body,
     * while reading_large. */
    char *stage;
    size_t stage_len;
    bool reading_large;
    struct mp__result_hdr large_hdr;
    char *large_body;
    size_t large_len, large_got;
    uint64_t respawn_at; /* a slot whose worker died in its initializer waits (mp__now_ns) */
};

struct mp__extent {
    size_t off, len;
};

/* A pool, in its process. Who writes what:
 *   owner, n, threads, maxtasks, initializer, initarg, w (the array), efd, handler,
 *   child_mask, region, region_size, slots, batches
 *             mp_pool_new, before the handler starts; constant after.
 *   state     under mu and inbox_mu both; read under either.
 *   inbox, inbox_tail  under inbox_mu: submitters append, the handler takes all.
 *   asleep    the handler sets 1 before its last look at the inbox ahead of a
 *             sleep, and 0 after poll; a waker exchanges it for 0 and writes efd
 *             only when it was 1 (mp__pool_wake).
 *   started   the handler, once, after start_rc: mp_pool_new waits on it.
 *   finished  the handler, once, as it ends: join, terminate and destroy wait on it.
 *   calls     each public call, +1 on entry and -1 (release) as it leaves.
 *   everything else: under mu. */
struct mp_pool {
    pthread_mutex_t mu;
    pid_t owner;
    int n;
    bool threads;
    unsigned maxtasks;
    void (*initializer)(void *);
    void *initarg;
    struct mp__worker *w;
    int efd; /* the handler's eventfd, written to wake it */
    pthread_t handler;
    sigset_t child_mask;
    enum mp__pstate state;             /* read under mu or inbox_mu; written under both */
    struct mp__unit *pend, *pend_tail; /* pending: for the first worker with room */
    size_t n_pending;
    uint64_t next_id;
    mp_async_result *jobs;           /* zero-copy results with their job attached */
    mp_async_result *cbq, *cbq_tail; /* completed, waiting for callbacks */
    char *region;
    size_t region_size;
    struct mp__wslot *slots;     /* n, in the region */
    char *batches;               /* n * MP__BATCH_CAP in the region (process pools), or NULL */
    struct mp__extent *free_ext; /* free extents of the region, by offset */
    size_t n_free, cap_free;
    size_t populated;         /* region offset: below it, blocks were populated or touched */
    _Atomic uint32_t started; /* futex word: the handler started the workers */
    int start_rc;
    _Atomic uint32_t finished; /* futex word: the handler has ended */
    bool joined;
    bool free_at_end; /* destroyed from a callback: the handler frees the pool */
    bool spawn_failed;
    bool kicked;                         /* something happened since the handler last looked */
    _Atomic uint32_t asleep;             /* 1: the handler is in (or about to enter) poll */
    pthread_mutex_t inbox_mu;            /* guards inbox; held (after mu) to change state */
    struct mp__unit *inbox, *inbox_tail; /* submitted, not yet seen by the handler */
    _Atomic uint32_t calls; /* public calls inside the pool's API now (mp__pool_enter) */
};

static inline void mp__pool_lock(mp_pool *p)
{
    pthread_mutex_lock(&p->mu);
}

static inline void mp__pool_unlock(mp_pool *p)
{
    pthread_mutex_unlock(&p->mu);
}

/* True on the pool's handler thread: in a callback. */
static inline bool mp__pool_on_handler(const mp_pool *p)
{
    return pthread_equal(pthread_self(), p->handler);
}

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

/* ---- pool_region.c: the region's allocator ---- */

/* A block of size bytes of the region (64-byte aligned), or NULL when none is free. */
MP__HIDDEN void *mp__pool_region_alloc_locked(mp_pool *p, size_t size);

/* The part of block (size bytes, from mp__pool_region_alloc_locked) above the
 * region's populated mark, which it raises past the block: *len bytes at the
 * returned (page-aligned) address, or NULL when the block lies below the mark. The
 * caller populates it with mp__pool_region_populate before its first write. */
MP__HIDDEN char *mp__pool_region_fresh_locked(mp_pool *p, void *block, size_t size, size_t *len);

/* Faults in the len bytes at addr (page-aligned) for writing in one system call
 * (MADV_POPULATE_WRITE) rather than one page fault per 4 KiB page; contents are
 * kept. Without kernel support (before Linux 5.14) the pages fault in on first
 * write, as before. No lock. */
MP__HIDDEN void mp__pool_region_populate(char *addr, size_t len);

/* Gives back a block from mp__pool_region_alloc_locked; NULL is ignored. */
MP__HIDDEN void mp__pool_region_free_locked(mp_pool *p, void *ptr);

/* True when the len bytes at ptr lie inside the region. No lock: the region is fixed. */
MP__HIDDEN bool mp__pool_in_region(const mp_pool *p, const void *ptr, size_t len);

/* ---- pool_dispatch.c: waking the handler, units, sending them ---- */

/* 0, MP_EINVAL (p NULL) or MP_ECHILD (a copy of the pool in a forked child). */
MP__HIDDEN int mp__pool_check_pool(const mp_pool *p);

/* Wakes the handler if it sleeps in poll (or is about to). No lock: submitters call
 * it while holding only inbox_mu. */
MP__HIDDEN void mp__pool_wake(mp_pool *p);

/* Tells the handler that something changed (a result to complete, a job, a state):
 * it looks at everything again before it sleeps. */
MP__HIDDEN void mp__pool_kick_locked(mp_pool *p);

/* Sets the pool's state (under inbox_mu too, which submitters read it under). */
MP__HIDDEN void mp__pool_set_state_locked(mp_pool *p, enum mp__pstate s);

/* A unit with a frame of header + payload_len bytes of room for its payload (the
 * caller fills both, and sets id via the queue it joins), or NULL. No lock. */
MP__HIDDEN struct mp__unit *mp__pool_make_unit(uint32_t kind, uint32_t flags, uint64_t fn,
                                               size_t count, size_t in_size, size_t out_size,
                                               size_t payload_len);

/* Drop one reference to feed f / kick word k (pool_submit.c), freeing it at zero;
 * a feed's last reference drops its kick word's. */
MP__HIDDEN void mp__pool_feed_drop_locked(mp_pool *p, struct mp__feed *f);
MP__HIDDEN void mp__pool_kick_drop_locked(mp_pool *p, struct mp__feed_kick *k);

/* Tells the worker reading feed f that no more items come, and wakes it. No lock. */
MP__HIDDEN void mp__pool_feed_abandon(struct mp__feed *f);

/* Bumps k's seq and wakes its sleeper, if any. No lock. */
MP__HIDDEN void mp__pool_kick_wake(struct mp__feed_kick *k);

/* Frees unit u and its region block. */
MP__HIDDEN void mp__pool_free_unit_locked(mp_pool *p, struct mp__unit *u);

/* Writes as much of w's unsent frames as its socket takes, without blocking. */
MP__HIDDEN void mp__pool_write_units_locked(struct mp__worker *w);

/* Moves pending units to workers with room and writes them (handler thread; on
 * another thread it only kicks the handler). */
MP__HIDDEN void mp__pool_dispatch_locked(mp_pool *p);

/* Sends zero-copy job r to worker i: MP_ENOMEM leaves the job with one participant
 * fewer. */
MP__HIDDEN int mp__pool_job_send_locked(mp_pool *p, mp_async_result *r, int i);

/* Sends job r to every worker that can still take one. */
MP__HIDDEN void mp__pool_job_offer_locked(mp_pool *p, mp_async_result *r);

/* ---- async_result.c: results' references and completion ---- */

/* The holders of a result's references. A result starts with one reference per
 * holder named when it is made, and each holder drops its own. */
enum mp__result_holder {
    MP__HOLDER_CALLER = 1u << 0,     /* the handle in *out, until mp_async_result_destroy */
    MP__HOLDER_COMPLETION = 1u << 1, /* the pool, until the handler marked it ready */
    MP__HOLDER_JOB_LIST = 1u << 2,   /* pool->jobs, until the job is detached */
};

/* A new result with a reference for each of holders (enum mp__result_holder), or
 * NULL. No lock. */
MP__HIDDEN mp_async_result *mp__result_new(enum mp__rkind kind, unsigned holders);

/* The holders drop their references (one each); r is freed at zero. No lock. */
MP__HIDDEN void mp__result_drop(mp_async_result *r, unsigned holders);

/* The pool is being freed with job result r still attached: from now on the
 * caller's threads find r's own ready word and no pool; returns once none of them
 * is still reading the job or the pool through r. The caller then detaches it. */
MP__HIDDEN void mp__result_job_unpublish(mp_async_result *r);

/* r's fields are final: queues it for its callback, after which the handler marks
 * it ready. */
MP__HIDDEN void mp__result_complete_locked(mp_pool *p, mp_async_result *r);

/* Every chunk of map r is done: its status is the first failed chunk's, in item
 * order; completes r. */
MP__HIDDEN void mp__result_map_finish_locked(mp_pool *p, mp_async_result *r);

/* ---- pool_settle.c: result frames, worker deaths, zero-copy jobs ---- */

/* Reads and delivers whatever worker i has sent, without blocking; kills a worker
 * that breaks the protocol. */
MP__HIDDEN void mp__pool_read_results_locked(mp_pool *p, int i);

/* Worker i has ended (or, a thread, is ending: its socket is at EOF): settles its
 * outstanding units (the one it ran fails, the others run again) and frees the slot. */
MP__HIDDEN void mp__pool_worker_down_locked(mp_pool *p, int i);

/* Stops worker w: SIGKILL for a process, shutdown of the socket for a thread. */
MP__HIDDEN void mp__pool_kill_worker_locked(mp_pool *p, struct mp__worker *w);

/* Ends unit u (not a job) with status and msg; its result no longer waits for it. */
MP__HIDDEN void mp__pool_fail_unit_locked(mp_pool *p, struct mp__unit *u, int status,
                                          const char *msg);

/* Fails and frees every pending unit, with status and msg. */
MP__HIDDEN void mp__pool_fail_pending_locked(mp_pool *p, int status, const char *msg);

/* Completes job result r: forced_status (with forced_msg) when non-zero, else
 * from its chunks. */
MP__HIDDEN void mp__pool_job_finish_locked(mp_pool *p, mp_async_result *r, int forced_status,
                                           const char *forced_msg);

/* Completes the jobs that are over, offers again those that nobody could join, and
 * frees the jobs of results the caller destroyed once no worker is in them. */
MP__HIDDEN void mp__pool_check_jobs_locked(mp_pool *p);

/* Frees r's job in the region and points r at its own ready word. */
MP__HIDDEN void mp__pool_job_detach_locked(mp_pool *p, mp_async_result *r);

/* ---- pool_handler.c: the handler thread and the teardown ---- */

/* The handler thread's body (arg: the pool): starts the workers, then serves the
 * pool until it is closed or terminated and idle. */
MP__HIDDEN void *mp__pool_handler_main(void *arg);

/* Frees the pool and everything it owns; results still held stay valid. The caller
 * is the last one to use p: no handler runs, no call is inside. */
MP__HIDDEN void mp__pool_free(mp_pool *p);

#endif /* MPROC_INTERNAL_POOL_PARENT_H */
