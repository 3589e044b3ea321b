/* pool.c — mp_pool: the protocol between the pool and its workers (below), and the
 * pool's lifecycle: new, close, terminate, join, destroy. The other files and their
 * order are listed at the top of pool/pool_parent.h: pool_submit.c turns calls
 * into tasks, pool_handler.c runs the handler thread, pool_settle.c settles what
 * comes back, pool_worker.c is the workers' loop.
 *
 * Protocol. Each worker has a private stream socket to the pool's process. The
 * parent sends task frames (struct mp__task_hdr + payload, pool/pool.h) and
 * the worker answers each with one result frame, in the order of the tasks. A
 * task's payload travels inline, or, when large, in the pool's shared region:
 * MAP_SHARED memory mapped before any worker was forked, so its addresses are
 * valid in every worker (and in replacements, forked from the same parent). Only
 * the parent allocates from the region (under pool->mu); a block is freed once its
 * task completed.
 *
 * A synchronous map's chunk of large items may instead travel through a feed
 * (struct mp__feed, pool/pool.h): the task frame carries the items' lengths and
 * the feed's address, and the items follow through the feed's ring, written by
 * the map's calling thread as the worker consumes them (pool_submit.c). A feed
 * lives until its unit is freed and the submitter let go of it; the handler
 * abandons the feed of a unit it fails, so no worker waits for items that will
 * not come.
 *
 * Shared words: per worker, struct mp__wslot in the region (`running`: the id of
 * the task the worker runs; `batch_len`); per zero-copy map, struct mp__job; each
 * with its table of who writes what in pool/pool.h. Between the parent's threads:
 * struct mp_async_result, with its table in pool/pool_parent.h.
 *
 * Submitting threads append tasks to pool->inbox under inbox_mu (a few
 * instructions) and wake the handler only if it announced a sleep (`asleep`,
 * set before it last checked the inbox, so no wake-up is lost). The handler moves
 * them to pool->pend and from there to workers: a worker takes a task when it has
 * none outstanding, or up to MP__POOL_MAX_OUT when the backlog is long, and the
 * handler writes many frames with one sendmsg.
 *
 * The parent keeps, per worker, the tasks sent and not yet answered
 * ("outstanding", in send order; `unsent` marks the first one not completely
 * written). Workers batch small results and write them before they would block,
 * so results of finished tasks may wait in the batch for the duration of the
 * worker's next task. A process worker's batch lives in the region (pool->batches,
 * one MP__BATCH_CAP slice per slot) and the worker publishes its length in
 * slots[i].batch_len after each whole frame, clearing it once the batch is in the
 * socket. When a worker ends, the handler reads what is left in its socket, then
 * delivers the outstanding results found whole in the batch (skipping those the
 * socket already brought: the batch is in task order); the task named by
 * `running` (if any) is the one it was running and fails with MP_EWORKERDIED and a
 * message naming the signal or exit status; every other outstanding task (not
 * started; or finished with its result neither read nor in a shared batch: a
 * thread pool, or a region too small to hold the batches) goes back to the front
 * of the pending queue and runs again. Not a chunk that read from its feed: its
 * worker writes that result before it clears `running`, and a chunk found with
 * its feed consumed from fails instead (its ring holds later items now). The
 * worker is replaced. So every task gets exactly one result and no call waits
 * for a dead worker.
 *
 * Zero-copy maps (MP__UNIT_JOB): the job lives in the region; the parent sends a
 * JOB frame to every worker ("participants"). Workers claim chunks with an atomic
 * fetch_add on next_chunk, run it, then set its chunk_state and bump
 * finished_chunks; the one that finishes the last chunk of a job without callbacks
 * or failures sets job->state and wakes the waiter directly (fast path). A
 * participant answers its JOB frame when no chunk is left. A participant that dies
 * leaves the chunk it claimed open: that chunk fails. Replacements join jobs that
 * still have chunks. Once every participant is out and no chunk is left to claim
 * (or a participant died, or every chunk finished), the handler completes the job:
 * a chunk still open was claimed by a worker that died. A job that no worker could
 * join (each had been given its last task under maxtasksperchild) waits for the
 * replacements.
 *
 * Callbacks run on the handler thread, after the result's fields are final and
 * before it is marked ready, so get() returns only after the callback ran.
 *
 * Workers are forked by the handler thread only, with pool->mu held, so the child
 * sees the pool's fd lists whole; the child touches no lock (see pool_worker.c).
 *
 * Freeing. mp_pool_destroy frees the pool after joining the handler; from a
 * callback it only terminates, and the handler frees the pool as it ends, once no
 * public call is inside the pool (mp__pool_enter): a call that published a task
 * may still be waking the handler when that task's callback destroys the pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "linux/futex.h"
#include "linux/pidfd.h"
#include "linux/sys.h"
#include "mproc/process.h"
#include "pool/pool_parent.h"

int mp_pool_new(mp_pool **out, const mp_pool_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    mp_pool_options o = opt ? *opt : (mp_pool_options){0};
    if (o.processes < 0 || o.processes > MP__POOL_MAX_WORKERS ||
        (unsigned)o.start_method > MP_START_FORKSERVER ||
        (o.threads && o.start_method != MP_START_DEFAULT))
        return MP_EINVAL;
    if (!o.threads && o.start_method == MP_START_FORKSERVER)
        return MP_ENOSYS; /* workers need fork's inheritance: see mp_pool_options */
    if (!o.threads && !mp__have_pidfd())
        return MP_ENOSYS;
    mp_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->inbox_mu, NULL);
    p->owner = mp__self_pid();
    p->n = o.processes ? o.processes : mp_cpu_count();
    p->threads = o.threads;
    p->maxtasks = o.maxtasksperchild;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->efd = mp__eventfd_new();
    p->w = calloc((size_t)p->n, sizeof *p->w);
    p->region_size =
        o.shared_size ? (o.shared_size + 4095) & ~(size_t)4095 : MP__POOL_REGION_DEFAULT;
    p->region = mmap(NULL, p->region_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    p->cap_free = 16;
    p->free_ext = malloc(p->cap_free * sizeof *p->free_ext);
    int rc = 0;
    if (p->efd < 0 || p->region == MAP_FAILED) {
        rc = p->efd < 0 ? -errno : MP_ENOMEM;
        if (p->region == MAP_FAILED)
            p->region = NULL;
        goto out_free;
    }
    if (p->w == NULL || p->free_ext == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    p->free_ext[0] = (struct mp__extent){0, p->region_size};
    p->n_free = 1;
    p->slots = mp__pool_region_alloc_locked(p, (size_t)p->n * sizeof *p->slots);
    if (p->slots == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    /* Result batches in shared memory survive their worker; a small region keeps
     * its room for the caller and the workers batch in private memory. */
    if (!p->threads && (size_t)p->n * MP__BATCH_CAP <= p->region_size / 8)
        p->batches = mp__pool_region_alloc_locked(p, (size_t)p->n * MP__BATCH_CAP);
    for (int i = 0; i < p->n; i++)
        p->w[i] = (struct mp__worker){.sock = -1, .pidfd = -1};
    fflush(NULL);
    /* The handler runs with every signal blocked, so signals reach the caller's
     * threads; workers get back the creator's mask. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &p->child_mask);
    int e = pthread_create(&p->handler, NULL, mp__pool_handler_main, p);
    pthread_sigmask(SIG_SETMASK, &p->child_mask, NULL);
    if (e != 0) {
        rc = -e;
        goto out_free;
    }
    mp__deadline d;
    mp__deadline_init(&d, -1);
    while (atomic_load(&p->started) == 0)
        mp__futex_wait(&p->started, 0, &d);
    if (p->start_rc != 0) {
        rc = p->start_rc;
        pthread_join(p->handler, NULL);
        goto out_free;
    }
    *out = p;
    return 0;

out_free:
    mp__pool_free(p);
    return rc;
}

int mp_pool_processes(const mp_pool *pool)
{
    return pool ? pool->n : 0; /* fixed at creation */
}

int mp_pool_worker_pids(mp_pool *pool, int *pids, int max)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    if (max < 0 || (pids == NULL && max > 0))
        return MP_EINVAL;
    int k = 0;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    for (int i = 0; i < pool->n && k < max; i++)
        if (pool->w[i].up && !pool->threads)
            pids[k++] = pool->w[i].pid;
    mp__pool_unlock(pool);
    mp__pool_leave(pool);
    return k;
}

int mp_pool_close(mp_pool *pool)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    if (pool->state == MP__RUN)
        mp__pool_set_state_locked(pool, MP__CLOSE);
    mp__pool_kick_locked(pool);
    mp__pool_unlock(pool);
    mp__pool_leave(pool);
    return 0;
}

static int wait_finished(mp_pool *p, const mp__deadline *d)
{
    while (atomic_load(&p->finished) == 0) {
        int rc = mp__futex_wait(&p->finished, 0, d);
        if (rc == MP_ETIMEDOUT)
            return atomic_load(&p->finished) ? 0 : rc;
    }
    mp__pool_lock(p);
    bool do_join = !p->joined && !p->free_at_end; /* free_at_end: the handler detached */
    p->joined = true;
    mp__pool_unlock(p);
    if (do_join)
        pthread_join(p->handler, NULL);
    return 0;
}

int mp_pool_terminate(mp_pool *pool)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    mp__pool_set_state_locked(pool, MP__TERMINATE);
    mp__pool_kick_locked(pool);
    mp__pool_unlock(pool);
    if (!mp__pool_on_handler(pool)) { /* from a callback: the handler finishes after it returns */
        mp__deadline d;
        mp__deadline_init(&d, -1);
        rc = wait_finished(pool, &d);
    }
    mp__pool_leave(pool);
    return rc;
}

int mp_pool_join(mp_pool *pool, int timeout_ms)
{
    int rc = mp__pool_check_pool(pool);
    if (rc != 0)
        return rc;
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return MP_EINVAL;
    mp__pool_enter(pool);
    mp__pool_lock(pool);
    bool running = pool->state == MP__RUN;
    mp__pool_unlock(pool);
    if (running)
        rc = MP_EBUSY;
    else if (mp__pool_on_handler(pool))
        rc = MP_EBUSY; /* a callback cannot wait for its own thread */
    else
        rc = wait_finished(pool, &d);
    mp__pool_leave(pool);
    return rc;
}

void mp_pool_destroy(mp_pool *pool)
{
    if (pool == NULL || pool->owner != mp__self_pid())
        return;
    if (mp__pool_on_handler(pool)) { /* from a callback: the handler frees the pool as it ends */
        mp__pool_lock(pool);
        pool->free_at_end = true;
        mp__pool_unlock(pool);
        mp_pool_terminate(pool);
        return;
    }
    mp_pool_terminate(pool);
    mp__deadline d;
    mp__deadline_init(&d, -1);
    wait_finished(pool, &d);
    mp__pool_free(pool);
}
