/* pool_settle.c — what comes back from the workers, and what becomes of the tasks
 * of a worker that ended: result frames read from the sockets and handed to their
 * results, the recovery of a dead worker's batched results, tasks failed or run
 * again, and the completion of zero-copy jobs. The handler thread calls these,
 * with the pool lock held. The protocol is described at the top of pool.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "linux/futex.h"
#include "linux/pidfd.h"
#include "pool/pool_parent.h"

static char *dup_msg(const char *m)
{
    return m ? strdup(m) : NULL;
}

/* Records chunk c of map r. payload (not owned) holds its results on success. */
static void chunk_done_locked(mp_pool *p, mp_async_result *r, size_t c, int status, int code,
                              const char *msg, const char *payload, size_t payload_len)
{
    struct mp__chunk_res *ch = &r->chunks[c];
    struct mp__span s = mp__chunk_span(r->n, r->chunksize, c);
    if (status == 0 && !r->var && payload_len != s.count * r->out_size)
        status = MP_EPROTO;
    if (status == 0 && r->var) {
        ch->buf = malloc(payload_len ? payload_len : 1);
        ch->offs = malloc(s.count * sizeof *ch->offs);
        if (ch->buf == NULL || ch->offs == NULL || payload_len < 8 * s.count) {
            status = ch->buf == NULL || ch->offs == NULL ? MP_ENOMEM : MP_EPROTO;
        } else {
            memcpy(ch->buf, payload, payload_len);
            size_t off = 8 * s.count;
            for (size_t k = 0; k < s.count && status == 0; k++) {
                uint64_t l;
                memcpy(&l, ch->buf + 8 * k, 8);
                ch->offs[k] = off;
                if (l > payload_len - off) /* lengths past the payload: not from our worker */
                    status = MP_EPROTO;
                off += l;
            }
        }
    } else if (status == 0 && s.count > 0) {
        memcpy(r->out + s.first * r->out_size, payload, payload_len);
    }
    ch->status = status;
    ch->task_code = code;
    ch->msg = dup_msg(msg);
    r->order[atomic_load(&r->n_order)] = c;
    atomic_store_explicit(&ch->done, 1, memory_order_release);
    atomic_store_explicit(&r->n_order, atomic_load(&r->n_order) + 1, memory_order_release);
    atomic_fetch_add(&r->items_done, s.count);
    atomic_fetch_add(&r->seq, 1);
    mp__futex_wake(&r->seq, INT32_MAX);
    if (r->kick != NULL)
        mp__pool_kick_wake(r->kick); /* a streaming submitter may wait for this answer */
    if (--r->chunks_left == 0) {
        mp__pool_kick_drop_locked(p, r->kick);
        r->kick = NULL;
        mp__result_map_finish_locked(p, r);
    }
}

void mp__pool_fail_unit_locked(mp_pool *p, struct mp__unit *u, int status, const char *msg)
{
    if (u->feed != NULL) /* a thread still in the chunk must not wait for its items */
        mp__pool_feed_abandon(u->feed);
    mp_async_result *r = u->r;
    if (r == NULL)
        return;
    u->r = NULL;
    if (r->kind == MP__R_APPLY) {
        r->status = status;
        r->msg = dup_msg(msg);
        mp__result_complete_locked(p, r);
    } else {
        chunk_done_locked(p, r, u->chunk, status, 0, msg, NULL, 0);
    }
}

void mp__pool_fail_pending_locked(mp_pool *p, int status, const char *msg)
{
    while (p->pend != NULL) {
        struct mp__unit *u = p->pend;
        p->pend = u->next;
        mp__pool_fail_unit_locked(p, u, status, msg);
        mp__pool_free_unit_locked(p, u);
    }
    p->pend_tail = NULL;
    p->n_pending = 0;
}

/* ---- zero-copy jobs ---- */

void mp__pool_job_finish_locked(mp_pool *p, mp_async_result *r, int forced_status,
                                const char *forced_msg)
{
    struct mp__job *j = r->job;
    if (atomic_load(&j->state) == MP__READY) { /* the fast path completed it: status 0 */
        mp__result_complete_locked(p, r);
        return;
    }
    if (forced_status != 0) {
        r->status = forced_status;
        r->msg = dup_msg(forced_msg);
    } else {
        for (size_t c = 0; c < j->n_chunks; c++) {
            int st = atomic_load(&j->chunk_state[c]);
            if (st == MP__CHUNK_DONE)
                continue;
            struct mp__span s = mp__chunk_span(j->n, j->chunksize, c);
            size_t a = s.first, b = s.first + s.count;
            char buf[512];
            if (st == MP__CHUNK_FAILED) {
                r->status = MP_ETASKFAILED;
                r->task_code = j->chunk_code[c];
                snprintf(buf, sizeof buf, "kernel returned %d on items [%zu, %zu)", r->task_code, a,
                         b);
            } else {
                r->status = MP_EWORKERDIED;
                snprintf(buf, sizeof buf, "%s while running items [%zu, %zu)",
                         r->death_msg ? r->death_msg : "a worker died", a, b);
            }
            r->msg = strdup(buf);
            break;
        }
    }
    mp__result_complete_locked(p, r);
}

/* A participant leaves job r: it answered its JOB frame (death NULL), or it died
 * (death: how), leaving the chunk it had claimed, if any, OPEN: that chunk fails. */
static void job_leave_locked(mp_async_result *r, const char *death)
{
    if (death != NULL) {
        r->died = true;
        if (r->death_msg == NULL)
            r->death_msg = strdup(death);
    }
    r->parts--;
}

void mp__pool_job_detach_locked(mp_pool *p, mp_async_result *r)
{
    mp__pool_region_free_locked(p, r->job);
    r->job = NULL;
    r->pool = NULL;
    r->ready_word = &r->ready;
}

/* A job is over once every chunk finished, or once no participant is left and
 * either no chunk is left to claim (an open one was claimed by a worker that died)
 * or a participant died (the job fails: it need not wait for a replacement). With
 * chunks unclaimed and no participant only because no worker could take the job
 * (each had its last task under maxtasksperchild, or was ending), it waits for the
 * replacements, which join it when they start. */
void mp__pool_check_jobs_locked(mp_pool *p)
{
    for (mp_async_result **pp = &p->jobs, *r; (r = *pp) != NULL;) {
        struct mp__job *j = r->job;
        if (!r->completed && r->parts == 0 && !r->died && atomic_load(&j->next_chunk) < j->n_chunks)
            mp__pool_job_offer_locked(p, r);
        if (!r->completed &&
            (atomic_load(&j->finished_chunks) == j->n_chunks ||
             (r->parts == 0 && (atomic_load(&j->next_chunk) >= j->n_chunks || r->died))))
            mp__pool_job_finish_locked(p, r, 0, NULL);
        if (r->orphan && r->parts == 0 && atomic_load(&r->ready) == MP__READY) {
            *pp = r->job_next;
            mp__pool_job_detach_locked(p, r);
            mp__result_drop(r, MP__HOLDER_JOB_LIST);
            continue;
        }
        pp = &r->job_next;
    }
}

/* ---- result frames ---- */

/* Hands one result frame of worker i to its task. body holds the message then the
 * payload; owned: body is malloc'd and may be kept. False: protocol violation. */
static bool deliver_locked(mp_pool *p, int i, const struct mp__result_hdr *h, char *body,
                           bool owned)
{
    struct mp__worker *w = &p->w[i];
    struct mp__unit *u = w->head;
    if (u == NULL || u->id != h->id || u == w->unsent) {
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
        mp__result_complete_locked(p, r);
    } else if (r != NULL && u->kind == MP__UNIT_JOB) {
        job_leave_locked(r, NULL);
    } else if (r != NULL && u->out_region != NULL && h->status == 0 && h->payload_len == 0) {
        /* the worker wrote the chunk's results into the unit's region block */
        struct mp__span s = mp__chunk_span(r->n, r->chunksize, u->chunk);
        chunk_done_locked(p, r, u->chunk, 0, 0, msg, u->out_region, s.count * r->out_size);
    } else if (r != NULL) {
        chunk_done_locked(p, r, u->chunk, h->status, h->task_code, msg, payload, h->payload_len);
    }
    free(msg);
    if (owned)
        free(body);
    mp__pool_free_unit_locked(p, u);
    return true;
}

void mp__pool_kill_worker_locked(mp_pool *p, struct mp__worker *w)
{
    if (p->threads) {
        /* the thread ends after its task, which must not wait for items of a
         * feed while the handler joins it under the pool lock */
        uint64_t running = atomic_load(&p->slots[w - p->w].running);
        for (struct mp__unit *u = w->head; u != NULL; u = u->next)
            if (u->feed != NULL && u->id == running)
                mp__pool_feed_abandon(u->feed);
        shutdown(w->sock, SHUT_RDWR);
    } else
        mp__pidfd_signal(w->pidfd, SIGKILL);
}

void mp__pool_read_results_locked(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    const size_t hs = sizeof(struct mp__result_hdr);
    while (!w->eof) {
        ssize_t n;
        if (w->reading_large) {
            n = read(w->sock, w->large_body + w->large_got, w->large_len - w->large_got);
            if (n > 0 && (w->large_got += (size_t)n) == w->large_len) {
                w->reading_large = false;
                char *b = w->large_body;
                w->large_body = NULL;
                if (!deliver_locked(p, i, &w->large_hdr, b, true))
                    goto broken;
            }
        } else {
            size_t off = 0;
            while (w->stage_len - off >= hs) {
                struct mp__result_hdr h;
                memcpy(&h, w->stage + off, hs);
                if (h.msg_len > SIZE_MAX / 4 || h.payload_len > SIZE_MAX / 4)
                    goto broken;
                size_t total = h.msg_len + h.payload_len;
                if (w->stage_len - off - hs >= total) {
                    if (!deliver_locked(p, i, &h, w->stage + off + hs, false))
                        goto broken;
                    off += hs + total;
                } else if (total > MP__POOL_STAGE_CAP - hs) {
                    w->large_body = malloc(total);
                    if (w->large_body == NULL)
                        goto broken;
                    w->large_hdr = h;
                    w->large_len = total;
                    w->large_got = w->stage_len - off - hs;
                    memcpy(w->large_body, w->stage + off + hs, w->large_got);
                    w->reading_large = true;
                    off = w->stage_len;
                } else {
                    break;
                }
            }
            memmove(w->stage, w->stage + off, w->stage_len - off);
            w->stage_len -= off;
            if (w->reading_large)
                continue;
            n = read(w->sock, w->stage + w->stage_len, MP__POOL_STAGE_CAP - w->stage_len);
            if (n > 0)
                w->stage_len += (size_t)n;
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
    mp__pool_kill_worker_locked(p, w);
}

/* ---- a worker ended ---- */

/* Worker i has ended: delivers the results it had finished and batched but not
 * written whole to its socket, from its batch in the region. The batch holds whole
 * frames in task order; those already delivered from the socket come first. */
static void recover_batch_locked(mp_pool *p, int i)
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
        if (w->head != NULL && w->head != w->unsent && w->head->id == h.id) {
            deliver_locked(p, i, &h, b + off + hs, false);
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

void mp__pool_worker_down_locked(mp_pool *p, int i)
{
    struct mp__worker *w = &p->w[i];
    mp__pool_read_results_locked(p, i);
    char msg[256];
    if (p->threads) {
        pthread_join(w->thread, NULL);
        free(w->thread_ctx);
        snprintf(msg, sizeof msg, "worker thread %d ended", i);
    } else {
        int status = 0;
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
        describe_end(msg, sizeof msg, w->pid, status);
        if (p->batches != NULL)
            recover_batch_locked(p, i);
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
                job_leave_locked(u->r, u->id == running ? msg : NULL);
            mp__pool_free_unit_locked(p, u);
        } else if (u->r == NULL) {
            mp__pool_free_unit_locked(p, u);
        } else if (u->id == running || (u->feed != NULL && atomic_load(&u->feed->consumed) != 0)) {
            /* (a chunk whose feed the worker consumed from cannot run again: the
             * submitter wrote later items over its first ones) */
            mp__pool_fail_unit_locked(p, u, MP_EWORKERDIED, msg);
            mp__pool_free_unit_locked(p, u);
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
    free(w->stage);
    free(w->large_body);
    *w = (struct mp__worker){.sock = -1, .pidfd = -1, .respawn_at = respawn_at};
}
