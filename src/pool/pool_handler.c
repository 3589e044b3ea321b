/* pool_handler.c — the pool's handler thread: starting workers (the only place that
 * forks), reading results, settling the tasks of workers that ended, terminate, and
 * running callbacks. The protocol is described at the top of pool.c. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
                               .slot = i,
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

/* Starts worker i (handler thread, pool lock held). */
static int spawn(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int rc = 0;
    char *st = malloc(MP__POOL_STAGE_CAP);
    if (st == NULL || fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
        rc = st == NULL ? MP_ENOMEM : -errno;
        goto out_close;
    }
    struct mp__worker nw = {.up = true, .sock = sv[0], .pidfd = -1, .st = st};
    atomic_store(&p->slots[i].running, 0);
    atomic_store(&p->slots[i].batch_len, 0);
    if (p->threads) {
        nw.tctx = malloc(sizeof *nw.tctx);
        if (nw.tctx == NULL) {
            rc = MP_ENOMEM;
            goto out_close;
        }
        *nw.tctx = (struct mp__worker_ctx){.fd = sv[1],
                                           .slot = i,
                                           .running = &p->slots[i].running,
                                           .maxtasks = p->maxtasks,
                                           .initializer = p->initializer,
                                           .initarg = p->initarg};
        int e = pthread_create(&nw.thread, NULL, thread_main, nw.tctx);
        if (e != 0) {
            free(nw.tctx);
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
            free(st);
            return rc;
        }
    }
    *w = nw;
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
        if (!r->completed && atomic_load(&r->job->next_chunk) < r->n_chunks)
            mp__pool_job_send(p, r, i);
    return 0;

out_close:
    free(st);
    mp__close_fd(sv[0]);
    mp__close_fd(sv[1]);
    return rc;
}

/* Hands one result frame of worker i to its task. body holds the message then the
 * payload; owned: body is malloc'd and may be kept. False: protocol violation. */
static bool deliver(mp_pool *p, int i, const struct mp__result_hdr *h, char *body, bool owned)
{
    struct mp__worker *w = &p->w[i];
    struct mp__unit *u = w->head;
    if (u == NULL || u->id != h->id || u == w->wcur) {
        if (owned)
            free(body);
        return false;
    }
    w->head = u->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->n_out--;
    char *msg = h->msg_len ? strndup(body, h->msg_len) : NULL;
    const char *payload = body + h->msg_len;
    mp_async_result *r = u->r;
    if (r != NULL && u->kind == MP__UNIT_APPLY) {
        r->status = h->status;
        r->task_code = h->task_code;
        r->msg = msg;
        msg = NULL;
        if (h->status == 0 && h->payload_len > 0) {
            if (owned && h->msg_len == 0) {
                r->data = body;
                body = NULL;
            } else if ((r->data = malloc(h->payload_len)) != NULL) {
                memcpy(r->data, payload, h->payload_len);
            } else {
                r->status = MP_ENOMEM;
            }
            r->len = h->payload_len;
        }
        mp__pool_complete(p, r);
    } else if (r != NULL && u->kind == MP__UNIT_JOB) {
        mp__pool_job_leave(r, i, NULL);
    } else if (r != NULL) {
        mp__pool_chunk_done(p, r, u->chunk, h->status, h->task_code, msg, payload, h->payload_len);
    }
    free(msg);
    if (owned)
        free(body);
    mp__pool_free_unit(p, u);
    return true;
}

static void kill_worker(mp_pool *p, struct mp__worker *w)
{
    if (p->threads)
        shutdown(w->sock, SHUT_RDWR);
    else
        mp__pidfd_signal(w->pidfd, SIGKILL);
}

/* Reads and delivers whatever worker i has sent, without blocking. */
static void read_results(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    const size_t hs = sizeof(struct mp__result_hdr);
    while (!w->eof) {
        ssize_t n;
        if (w->big) {
            n = read(w->sock, w->body + w->body_got, w->body_len - w->body_got);
            if (n > 0 && (w->body_got += (size_t)n) == w->body_len) {
                w->big = false;
                char *b = w->body;
                w->body = NULL;
                if (!deliver(p, i, &w->bh, b, true))
                    goto broken;
            }
        } else {
            size_t off = 0;
            while (w->st_len - off >= hs) {
                struct mp__result_hdr h;
                memcpy(&h, w->st + off, hs);
                if (h.msg_len > SIZE_MAX / 4 || h.payload_len > SIZE_MAX / 4)
                    goto broken;
                size_t total = h.msg_len + h.payload_len;
                if (w->st_len - off - hs >= total) {
                    if (!deliver(p, i, &h, w->st + off + hs, false))
                        goto broken;
                    off += hs + total;
                } else if (total > MP__POOL_STAGE_CAP - hs) {
                    w->body = malloc(total);
                    if (w->body == NULL)
                        goto broken;
                    w->bh = h;
                    w->body_len = total;
                    w->body_got = w->st_len - off - hs;
                    memcpy(w->body, w->st + off + hs, w->body_got);
                    w->big = true;
                    off = w->st_len;
                } else {
                    break;
                }
            }
            memmove(w->st, w->st + off, w->st_len - off);
            w->st_len -= off;
            if (w->big)
                continue;
            n = read(w->sock, w->st + w->st_len, MP__POOL_STAGE_CAP - w->st_len);
            if (n > 0)
                w->st_len += (size_t)n;
        }
        if (n == 0) {
            w->eof = true;
        } else if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                w->eof = true;
            return;
        }
    }
    return;
broken: /* a worker that breaks the protocol is not trusted further */
    w->eof = true;
    kill_worker(p, w);
}

/* Worker i has ended: delivers the results it had finished and batched but not
 * written whole to its socket, from its batch in the region. The batch holds whole
 * frames in task order; those already delivered from the socket come first. */
static void recover_batch(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    const size_t hs = sizeof(struct mp__result_hdr);
    size_t len = atomic_load_explicit(&p->slots[i].batch_len, memory_order_acquire);
    char *b = p->batches + (size_t)i * MP__BATCH_CAP;
    if (len > MP__BATCH_CAP)
        return; /* not a length the worker wrote */
    bool matched = false;
    for (size_t off = 0; len - off >= hs;) {
        struct mp__result_hdr h;
        memcpy(&h, b + off, hs);
        size_t left = len - off - hs;
        if (h.msg_len > left || h.payload_len > left - h.msg_len)
            return;
        if (w->head != NULL && w->head != w->wcur && w->head->id == h.id) {
            deliver(p, i, &h, b + off + hs, false);
            matched = true;
        } else if (matched) {
            return;
        }
        off += hs + h.msg_len + h.payload_len;
    }
}

static void describe_end(char *buf, size_t size, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "worker %d was killed by signal %d (%s)", (int)pid, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "worker %d exited with status %d", (int)pid, WEXITSTATUS(status));
}

/* Worker i has ended (or is ending: thread at EOF): settle its tasks. */
static void worker_down(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    read_results(p, i);
    char msg[256];
    if (p->threads) {
        pthread_join(w->thread, NULL);
        free(w->tctx);
        snprintf(msg, sizeof msg, "worker thread %d ended", i);
    } else {
        int status = 0;
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
        describe_end(msg, sizeof msg, w->pid, status);
        if (p->batches != NULL)
            recover_batch(p, i);
    }
    /* The task the worker was running fails; the others it had (not started, or
     * finished with their results neither written nor in its batch) run again
     * elsewhere. */
    uint64_t running = atomic_load(&p->slots[i].running);
    uint64_t respawn_at = 0;
    if (running == MP__RUNNING_INIT) {
        /* The initializer killed it: the first task (or zero-copy job) given to it
         * fails in its place (so a broken initializer fails tasks rather than
         * hanging them), and the slot waits a little before the next attempt. */
        strncat(msg, " in the initializer", sizeof msg - strlen(msg) - 1);
        for (struct mp__unit *u = w->head; u != NULL; u = u->next) {
            if (u->r != NULL) {
                running = u->id;
                break;
            }
        }
        respawn_at = mp__now_ns() + 100000000u;
    }
    struct mp__unit *requeue = NULL, *last = NULL;
    size_t n_requeue = 0;
    for (struct mp__unit *u = w->head, *next; u != NULL; u = next) {
        next = u->next;
        if (u->kind == MP__UNIT_JOB) {
            if (u->r != NULL)
                mp__pool_job_leave(u->r, i, u->id == running ? msg : NULL);
            mp__pool_free_unit(p, u);
        } else if (u->r == NULL) {
            mp__pool_free_unit(p, u);
        } else if (u->id == running) {
            mp__pool_fail_unit(p, u, MP_EWORKERDIED, msg);
            mp__pool_free_unit(p, u);
        } else {
            u->next = NULL;
            if (last)
                last->next = u;
            else
                requeue = u;
            last = u;
            n_requeue++;
        }
    }
    if (requeue != NULL) { /* back to the front of the queue, in their order */
        last->next = p->pend;
        if (p->pend == NULL)
            p->pend_tail = last;
        p->pend = requeue;
        p->n_pending += n_requeue;
    }
    mp__close_fd(w->sock);
    mp__close_fd(w->pidfd);
    free(w->st);
    free(w->body);
    *w = (struct mp__worker){.sock = -1, .pidfd = -1, .respawn_at = respawn_at};
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

static void do_terminate(mp_pool *p)
{
    for (int i = 0; i < p->n; i++) {
        struct mp__worker *w = &p->w[i];
        if (!w->up)
            continue;
        kill_worker(p, w);
        for (struct mp__unit *u = w->head; u != NULL; u = u->next)
            if (u->kind != MP__UNIT_JOB)
                mp__pool_fail_unit(p, u, MP_ETERMINATED, "the pool was terminated");
    }
    while (p->pend != NULL) {
        struct mp__unit *u = p->pend;
        p->pend = u->next;
        mp__pool_fail_unit(p, u, MP_ETERMINATED, "the pool was terminated");
        mp__pool_free_unit(p, u);
    }
    p->pend_tail = NULL;
    p->n_pending = 0;
    for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next) {
        atomic_store(&r->job->cancel, 1);
        if (!r->completed)
            mp__pool_job_finish(p, r, MP_ETERMINATED, "the pool was terminated");
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
        /* 2 means a waiter sleeps on the word: only then is a wake needed. */
        if (atomic_exchange(&r->ready, 1) == 2)
            mp__futex_wake(&r->ready, INT32_MAX);
        if (word != &r->ready && atomic_exchange(word, 1) == 2)
            mp__futex_wake(word, INT32_MAX);
        mp__result_release(r);
    }
}

/* A pool destroyed from a callback: waits for the calls still inside the pool
 * (mp__pool_enter), such as the one that submitted the task of that callback, or a
 * join in another thread, which returns now that the handler has finished. They
 * leave without waking us: a wake would touch the pool after their decrement, so
 * the wait sleeps in short slices. */
static void wait_for_no_calls(mp_pool *p)
{
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    uint32_t calls;
    while ((calls = atomic_load_explicit(&p->calls, memory_order_acquire)) != 0)
        mp__futex_wait_slice(&p->calls, calls, &forever, 1);
}

void *mp__pool_handler_main(void *arg)
{
    mp_pool *p = arg;
    struct pollfd *pfd = calloc(1 + 2 * (size_t)p->n, sizeof *pfd);
    mp__pool_lock(p);
    int rc = pfd == NULL ? MP_ENOMEM : 0;
    for (int i = 0; i < p->n && rc == 0; i++)
        rc = spawn(p, i);
    p->start_rc = rc;
    if (rc != 0) {
        for (int i = 0; i < p->n; i++) {
            if (p->w[i].up) {
                kill_worker(p, &p->w[i]);
                worker_down(p, i);
            }
        }
    }
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
        int nfd = 1;
        pfd[0] = (struct pollfd){.fd = p->efd, .events = POLLIN};
        for (int i = 0; i < p->n; i++) {
            struct mp__worker *w = &p->w[i];
            pfd[nfd++] = (struct pollfd){.fd = w->up && !w->eof ? w->sock : -1,
                                         .events = (short)(POLLIN | (w->wcur ? POLLOUT : 0))};
            pfd[nfd++] =
                (struct pollfd){.fd = w->up && !p->threads ? w->pidfd : -1, .events = POLLIN};
        }
        bool waiting = p->spawn_failed;
        for (int i = 0; i < p->n; i++)
            waiting |= !p->w[i].up && p->w[i].respawn_at != 0;
        int timeout = p->kicked ? 0 : waiting ? 100 : -1;
        p->kicked = false;
        if (timeout != 0) {
            /* Announce the sleep, then look at the inbox: a submitter either sees
             * asleep == 1 (and wakes us) or pushed before we looked. */
            atomic_store(&p->asleep, 1);
            pthread_mutex_lock(&p->inbox_mu);
            bool inbox = p->inbox != NULL;
            pthread_mutex_unlock(&p->inbox_mu);
            if (inbox) {
                atomic_store(&p->asleep, 0);
                timeout = 0;
            }
        }
        mp__pool_unlock(p);
        if (poll(pfd, (nfds_t)nfd, timeout) < 0) {
            for (int i = 0; i < nfd; i++)
                pfd[i].revents = 0;
        }
        mp__pool_lock(p);
        atomic_store(&p->asleep, 0);
        pthread_mutex_lock(&p->inbox_mu);
        struct mp__unit *in = p->inbox;
        p->inbox = p->inbox_tail = NULL;
        pthread_mutex_unlock(&p->inbox_mu);
        while (in != NULL) {
            struct mp__unit *next = in->next;
            mp__pool_pend_push(p, in);
            in = next;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            while (read(p->efd, &v, sizeof v) < 0 && errno == EINTR)
                ;
        }
        if (p->state == MP__TERMINATE && !terminated) {
            terminated = true;
            do_terminate(p);
        }
        for (int i = 0; i < p->n; i++) {
            struct mp__worker *w = &p->w[i];
            if (!w->up)
                continue;
            short sre = pfd[1 + 2 * i].revents, pre = pfd[2 + 2 * i].revents;
            if (sre & POLLOUT)
                mp__pool_write_units(w);
            if (sre & (POLLIN | POLLHUP | POLLERR))
                read_results(p, i);
            if ((pre & POLLIN) || (p->threads && w->eof))
                worker_down(p, i);
        }
        bool work = has_work(p), delayed = false;
        p->spawn_failed = false;
        int up = 0;
        for (int i = 0; i < p->n; i++) {
            if (!p->w[i].up && p->w[i].respawn_at > mp__now_ns()) {
                delayed = true;
            } else if (!p->w[i].up && (p->state == MP__RUN || (p->state == MP__CLOSE && work))) {
                int src = spawn(p, i);
                if (src != 0)
                    p->spawn_failed = true;
            }
            up += p->w[i].up;
        }
        if (up == 0 && p->spawn_failed && !delayed) { /* no worker can run them: fail, never hang */
            while (p->pend != NULL) {
                struct mp__unit *u = p->pend;
                p->pend = u->next;
                mp__pool_fail_unit(p, u, MP_EAGAIN, "no worker could be started");
                mp__pool_free_unit(p, u);
            }
            p->pend_tail = NULL;
            p->n_pending = 0;
            for (mp_async_result *r = p->jobs; r != NULL; r = r->job_next)
                if (!r->completed && r->parts == 0)
                    mp__pool_job_finish(p, r, MP_EAGAIN, "no worker could be started");
        }
        mp__pool_dispatch(p);
        mp__pool_check_jobs(p);
        if (p->state == MP__CLOSE && !has_work(p)) {
            for (int i = 0; i < p->n; i++) {
                if (p->w[i].up && !p->w[i].shut) {
                    p->w[i].shut = true;
                    shutdown(p->w[i].sock, SHUT_WR);
                }
            }
        }
        mp_async_result *cbs = p->cbq;
        p->cbq = p->cbq_tail = NULL;
        bool done = p->state != MP__RUN && up == 0 && cbs == NULL && p->pend == NULL;
        for (int i = 0; i < p->n && done; i++)
            done = !p->w[i].up;
        mp__pool_unlock(p);
        run_callbacks(cbs);
        if (done)
            break;
        if (cbs != NULL) { /* callbacks may have changed things: look again before sleeping */
            mp__pool_lock(p);
            p->kicked = true;
            mp__pool_unlock(p);
        }
    }
    free(pfd);
    mp__pool_lock(p);
    bool free_at_end = p->free_at_end;
    mp__pool_unlock(p);
    if (free_at_end) /* nobody joins us: destroy ran in a callback and returned */
        pthread_detach(pthread_self());
    atomic_store(&p->finished, 1);
    mp__futex_wake(&p->finished, INT32_MAX);
    if (free_at_end) {
        wait_for_no_calls(p);
        mp__pool_free(p);
    }
    return NULL;
}
