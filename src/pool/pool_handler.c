/* pool_handler.c — the pool's handler thread: it starts the workers (the only place
 * that forks), and then, in a loop of named steps, sleeps in poll, drains the
 * inbox, services the workers (pool_settle.c), replaces those that ended, sends
 * pending tasks, completes jobs, shuts the workers down once a closed pool is idle,
 * and runs callbacks, until the pool is closed or terminated and idle. It also
 * frees the pool (mp__pool_free), at its end when a callback destroyed the pool.
 * The protocol is described at the top of pool.c. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "linux/futex.h"
#include "linux/pidfd.h"
#include "linux/proc.h"
#include "linux/sys.h"
#include "pool/pool_parent.h"

/* ---- workers ---- */

static void *thread_main(void *arg)
{
    struct mp__worker_ctx *c = arg;
    mp__pool_worker_main(c);
    /* The parent learns of our end from EOF on its end. A child forked without exec
     * holds a copy of our descriptor, so closing it is not enough: shutdown ends
     * the connection itself. */
    shutdown(c->fd, SHUT_RDWR);
    mp__close_fd(c->fd);
    return NULL;
}

/* In the child just after fork (pool lock held by the forking thread in the
 * parent; the child never takes it). Never returns. */
static _Noreturn void child_main(mp_pool *p, int i, int fd, int parent_end, pid_t ppid)
{
    sigprocmask(SIG_SETMASK, &p->child_mask, NULL);
    mp__stdio_discard(stdout); /* the parent's unflushed output is the parent's to print */
    mp__stdio_discard(stderr);
    mp__set_parent_death_signal(SIGKILL); /* tied to the handler thread, which outlives us */
    if (getppid() != ppid)
        _exit(1);
    mp__close_fd(p->efd);
    mp__close_fd(parent_end);
    for (int k = 0; k < p->n; k++) {
        if (k != i && p->w[k].up) {
            mp__close_fd(p->w[k].sock);
            mp__close_fd(p->w[k].pidfd);
        }
    }
    struct mp__worker_ctx c = {.fd = fd,
                               .running = &p->slots[i].running,
                               .maxtasks = p->maxtasks,
                               .initializer = p->initializer,
                               .initarg = p->initarg,
                               .batch = p->batches ? p->batches + (size_t)i * MP__BATCH_CAP : NULL,
                               .batch_len = &p->slots[i].batch_len};
    mp__pool_worker_main(&c);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* Starts worker i, and has it join the jobs that still have chunks to claim. */
static int spawn_locked(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int rc = 0;
    char *stage = malloc(MP__POOL_STAGE_CAP);
    if (stage == NULL || fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
        rc = stage == NULL ? MP_ENOMEM : -errno;
        goto out_close;
    }
    struct mp__worker nw = {.up = true, .sock = sv[0], .pidfd = -1, .stage = stage};
    atomic_store(&p->slots[i].running, 0);
    atomic_store(&p->slots[i].batch_len, 0);
    if (p->threads) {
        nw.thread_ctx = malloc(sizeof *nw.thread_ctx);
        if (nw.thread_ctx == NULL) {
            rc = MP_ENOMEM;
            goto out_close;
        }
        *nw.thread_ctx = (struct mp__worker_ctx){.fd = sv[1],
                                                 .running = &p->slots[i].running,
                                                 .maxtasks = p->maxtasks,
                                                 .initializer = p->initializer,
                                                 .initarg = p->initarg};
        int e = pthread_create(&nw.thread, NULL, thread_main, nw.thread_ctx);
        if (e != 0) {
            free(nw.thread_ctx);
            rc = -e;
            goto out_close;
        }
    } else {
        pid_t ppid = mp__self_pid();
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            goto out_close;
        }
        if (pid == 0)
            child_main(p, i, sv[1], sv[0], ppid);
        mp__close_fd(sv[1]);
        nw.pid = pid;
        nw.pidfd = mp__pidfd_open(pid);
        if (nw.pidfd < 0) {
            rc = nw.pidfd;
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            mp__close_fd(sv[0]);
            free(stage);
            return rc;
        }
    }
    *w = nw;
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed && atomic_load(&r->job->next_chunk) < r->n_chunks)
            mp__pool_job_send_locked(p, r, i);
    return 0;

out_close:
    free(stage);
    mp__close_fd(sv[0]);
    mp__close_fd(sv[1]);
    return rc;
}

/* Starts every worker; on a failure stops those started. Returns the first error. */
static int start_workers_locked(mp_pool *p)
{
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++)
        rc = spawn_locked(p, i);
    if (rc != 0) {
        for (int i = 0; i < p->n; i++) {
            if (p->w[i].up) {
                mp__pool_kill_worker_locked(p, &p->w[i]);
                mp__pool_worker_down_locked(p, i);
            }
        }
    }
    return rc;
}

static bool has_work(const mp_pool *p)
{
    if (p->pend != NULL)
        return true;
    for (int i = 0; i < p->n; i++)
        if (p->w[i].up && p->w[i].n_out > 0)
            return true;
    for (const mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed)
            return true;
    return false;
}

/* Stops every worker and fails every task and job not yet completed. */
static void terminate_locked(mp_pool *p)
{
    for (int i = 0; i < p->n; i++) {
        struct mp__worker *w = &p->w[i];
        if (!w->up)
            continue;
        mp__pool_kill_worker_locked(p, w);
        for (struct mp__unit *u = w->head; u != NULL; u = u->next)
            if (u->kind != MP__UNIT_JOB)
                mp__pool_fail_unit_locked(p, u, MP_ETERMINATED, "the pool was terminated");
    }
    mp__pool_fail_pending_locked(p, MP_ETERMINATED, "the pool was terminated");
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next) {
        atomic_store(&r->job->cancel, 1);
        if (!r->completed)
            mp__pool_job_finish_locked(p, r, MP_ETERMINATED, "the pool was terminated");
    }
}

/* Runs callbacks, then marks each result ready. Handler thread, no lock held. */
static void run_callbacks(mp_async_result *list)
{
    while (list != NULL) {
        mp_async_result *r = list;
        list = r->cb_next;
        mp_result_callback cb = r->status == 0 ? r->cb.callback : r->cb.error_callback;
        if (cb != NULL)
            cb(r, r->cb.cb_arg);
        _Atomic uint32_t *word = r->ready_word;
        if (atomic_exchange(&r->ready, MP__READY) == MP__PENDING_WAITED)
            mp__futex_wake(&r->ready, INT32_MAX);
        if (word != &r->ready && atomic_exchange(word, MP__READY) == MP__PENDING_WAITED)
            mp__futex_wake(word, INT32_MAX);
        mp__result_drop(r, MP__HOLDER_COMPLETION);
    }
}

/* ---- the steps of the handler's loop ---- */

/* Fills pfd: the eventfd, then per worker its socket (POLLOUT while it has unsent
 * frames) and its pidfd. Returns the number of entries. */
static int poll_set_locked(mp_pool *p, struct pollfd *pfd)
{
    int nfd = 1;
    pfd[0] = (struct pollfd){.fd = p->efd, .events = POLLIN};
    for (int i = 0; i < p->n; i++) {
        struct mp__worker *w = &p->w[i];
        pfd[nfd++] = (struct pollfd){.fd = w->up && !w->eof ? w->sock : -1,
                                     .events = (short)(POLLIN | (w->unsent ? POLLOUT : 0))};
        pfd[nfd++] = (struct pollfd){.fd = w->up && !p->threads ? w->pidfd : -1, .events = POLLIN};
    }
    return nfd;
}

/* How long poll may sleep: 0 when kicked or the inbox has units, 100 ms while a
 * slot waits to be started again, else forever. Before a sleep it announces it
 * (asleep) and then looks at the inbox: a submitter either sees asleep == 1 (and
 * wakes us) or pushed before we looked. */
static int sleep_timeout_locked(mp_pool *p)
{
    bool waiting = p->spawn_failed;
    for (int i = 0; i < p->n; i++)
        waiting |= !p->w[i].up && p->w[i].respawn_at != 0;
    int timeout = p->kicked ? 0 : waiting ? 100 : -1;
    p->kicked = false;
    if (timeout != 0) {
        atomic_store(&p->asleep, 1);
        pthread_mutex_lock(&p->inbox_mu);
        bool inbox = p->inbox != NULL;
        pthread_mutex_unlock(&p->inbox_mu);
        if (inbox) {
            atomic_store(&p->asleep, 0);
            timeout = 0;
        }
    }
    return timeout;
}

/* Appends u to the pending queue, giving it the next id. */
static void pend_push_locked(mp_pool *p, struct mp__unit *u)
{
    ((struct mp__task_hdr *)u->frame)->id = u->id = ++p->next_id;
    u->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = u;
    else
        p->pend = u;
    p->pend_tail = u;
    p->n_pending++;
}

/* Moves what was submitted to the pending queue, in submission order, and
 * consumes the eventfd's count when poll saw it readable. */
static void drain_inbox_locked(mp_pool *p, bool efd_readable)
{
    atomic_store(&p->asleep, 0);
    pthread_mutex_lock(&p->inbox_mu);
    struct mp__unit *in = p->inbox;
    p->inbox = p->inbox_tail = NULL;
    pthread_mutex_unlock(&p->inbox_mu);
    while (in != NULL) {
        struct mp__unit *next = in->next;
        pend_push_locked(p, in);
        in = next;
    }
    if (efd_readable) {
        uint64_t v;
        while (read(p->efd, &v, sizeof v) < 0 && errno == EINTR)
            ;
    }
}

/* Per worker, as poll reported: writes what its socket takes, reads its results,
 * and settles it once it ended. */
static void service_workers_locked(mp_pool *p, const struct pollfd *pfd)
{
    for (int i = 0; i < p->n; i++) {
        struct mp__worker *w = &p->w[i];
        if (!w->up)
            continue;
        short sock_ev = pfd[1 + 2 * i].revents, pidfd_ev = pfd[2 + 2 * i].revents;
        if (sock_ev & POLLOUT)
            mp__pool_write_units_locked(w);
        if (sock_ev & (POLLIN | POLLHUP | POLLERR))
            mp__pool_read_results_locked(p, i);
        if ((pidfd_ev & POLLIN) || (p->threads && w->eof))
            mp__pool_worker_down_locked(p, i);
    }
}

/* Starts a worker in each empty slot while the pool runs, or is closed with work
 * left, except slots waiting out their delay (*delayed then). Records in
 * spawn_failed whether a start failed. Returns how many workers are up. */
static int respawn_locked(mp_pool *p, bool *delayed)
{
    bool work = has_work(p);
    *delayed = false;
    p->spawn_failed = false;
    int up = 0;
    for (int i = 0; i < p->n; i++) {
        if (!p->w[i].up && p->w[i].respawn_at > mp__now_ns()) {
            *delayed = true;
        } else if (!p->w[i].up && (p->state == MP__RUN || (p->state == MP__CLOSE && work))) {
            if (spawn_locked(p, i) != 0)
                p->spawn_failed = true;
        }
        up += p->w[i].up;
    }
    return up;
}

/* No worker is up and none could be started: the pending tasks and the jobs that
 * nobody is in fail rather than hang. */
static void fail_without_workers_locked(mp_pool *p)
{
    mp__pool_fail_pending_locked(p, MP_EAGAIN, "no worker could be started");
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed && r->parts == 0)
            mp__pool_job_finish_locked(p, r, MP_EAGAIN, "no worker could be started");
}

/* A closed pool with nothing left to do: each worker gets SHUT_WR, reads EOF
 * after its last task and exits. */
static void shut_down_when_idle_locked(mp_pool *p)
{
    if (p->state != MP__CLOSE || has_work(p))
        return;
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].up && !p->w[i].shut) {
            p->w[i].shut = true;
            shutdown(p->w[i].sock, SHUT_WR);
        }
    }
}

/* The handler's work is over: closed or terminated, no worker, nothing pending,
 * no callback left to run. */
static bool finished_locked(const mp_pool *p, int up, const mp_async_result *callbacks)
{
    bool done = p->state != MP__RUN && up == 0 && callbacks == NULL && p->pend == NULL;
    for (int i = 0; i < p->n && done; i++)
        done = !p->w[i].up;
    return done;
}

/* A pool destroyed from a callback: waits for the calls still inside the pool
 * (mp__pool_enter), such as the one that submitted the task of that callback, or a
 * join in another thread, which returns now that the handler has finished. They
 * leave without waking us (a wake would touch the pool after their decrement), so
 * the wait sleeps in short slices. */
static void wait_for_no_calls(mp_pool *p)
{
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    uint32_t calls;
    while ((calls = atomic_load_explicit(&p->calls, memory_order_acquire)) != 0)
        mp__futex_wait_slice(&p->calls, calls, &forever, 1);
}

/* The handler has finished: tells the joiners, or, when a callback destroyed the
 * pool (nobody joins us then), frees the pool once no call is inside it. */
static void handler_end(mp_pool *p)
{
    mp__pool_lock(p);
    bool free_at_end = p->free_at_end;
    mp__pool_unlock(p);
    if (free_at_end)
        pthread_detach(pthread_self());
    atomic_store(&p->finished, 1);
    mp__futex_wake(&p->finished, INT32_MAX);
    if (free_at_end) {
        wait_for_no_calls(p);
        mp__pool_free(p);
    }
}

void *mp__pool_handler_main(void *arg)
{
    mp_pool *p = arg;
    struct pollfd *pfd = calloc(1 + 2 * (size_t)p->n, sizeof *pfd);
    mp__pool_lock(p);
    int rc = pfd == NULL ? MP_ENOMEM : start_workers_locked(p);
    p->start_rc = rc;
    mp__pool_unlock(p);
    atomic_store(&p->started, 1);
    mp__futex_wake(&p->started, INT32_MAX);
    if (rc != 0) {
        free(pfd);
        return NULL;
    }
    bool terminated = false;
    for (;;) {
        mp__pool_lock(p);
        int nfd = poll_set_locked(p, pfd);
        int timeout = sleep_timeout_locked(p);
        mp__pool_unlock(p);
        if (poll(pfd, (nfds_t)nfd, timeout) < 0) {
            for (int i = 0; i < nfd; i++)
                pfd[i].revents = 0;
        }
        mp__pool_lock(p);
        drain_inbox_locked(p, pfd[0].revents & POLLIN);
        if (p->state == MP__TERMINATE && !terminated) {
            terminated = true;
            terminate_locked(p);
        }
        service_workers_locked(p, pfd);
        bool delayed;
        int up = respawn_locked(p, &delayed);
        if (up == 0 && p->spawn_failed && !delayed)
            fail_without_workers_locked(p);
        mp__pool_dispatch_locked(p);
        mp__pool_check_jobs_locked(p);
        shut_down_when_idle_locked(p);
        mp_async_result *callbacks = p->cbq;
        p->cbq = p->cbq_tail = NULL;
        bool done = finished_locked(p, up, callbacks);
        mp__pool_unlock(p);
        run_callbacks(callbacks);
        if (done)
            break;
        if (callbacks != NULL) { /* they may have changed things: look again before sleeping */
            mp__pool_lock(p);
            p->kicked = true;
            mp__pool_unlock(p);
        }
    }
    free(pfd);
    handler_end(p);
    return NULL;
}

/* ---- the teardown ---- */

void mp__pool_free(mp_pool *p)
{
    while (p->jobs != NULL) { /* detach: results outlive the region */
        mp_async_result *r = p->jobs;
        p->jobs = r->job_next;
        atomic_store(&r->items_done, atomic_load(&r->job->done_items));
        r->completed = true;
        atomic_store(&r->ready, MP__READY);
        mp__result_job_unpublish(r); /* a pool freed from a callback: the caller may read r */
        mp__pool_job_detach_locked(p, r);
        mp__result_drop(r, MP__HOLDER_JOB_LIST);
    }
    if (p->region != NULL)
        munmap(p->region, p->region_size);
    free(p->free_ext);
    free(p->w);
    mp__close_fd(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->inbox_mu);
    free(p);
}
