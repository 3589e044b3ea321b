/* queue_type.c — Python's queue.Queue as a served type (mp_manager_queue_type).
 *
 * State: a ring of item references, guarded by mu; not_empty, not_full and
 * all_done are signalled as in Python's queue.py. A get that has to wait does so
 * with mp_manager_call_wait, so it ends when its caller goes, and it checks that
 * its caller is still there right before taking an item; if the reply carrying the
 * item cannot be sent, the undelivered hook puts the item back at the front. So a
 * client killed in the middle of a get never takes an item with it. */
#include <stdlib.h>
#include <string.h>

#include "manager/mgr.h"

typedef struct squeue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, all_done;
    mp_obj **ring; /* cap slots; items at head .. head+count-1 (mod cap) */
    size_t cap, head, count;
    long maxsize;     /* <= 0: unbounded */
    long unfinished;  /* puts not yet matched by task_done */
    bool is_shutdown; /* 3.13 shutdown() */
} squeue;

static int grow(squeue *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 16;
    mp_obj **r = malloc(ncap * sizeof *r);
    if (r == NULL)
        return MP_ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        r[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = r;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

static int push_back(squeue *q, mp_obj *item)
{
    if (q->count == q->cap && grow(q) < 0)
        return MP_ENOMEM;
    q->ring[(q->head + q->count) % q->cap] = item;
    q->count++;
    return 0;
}

static int push_front(squeue *q, mp_obj *item)
{
    if (q->count == q->cap && grow(q) < 0)
        return MP_ENOMEM;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->ring[q->head] = item;
    q->count++;
    return 0;
}

static mp_obj *pop_front(squeue *q)
{
    mp_obj *item = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return item;
}

static bool is_full(const squeue *q)
{
    return q->maxsize > 0 && (long)q->count >= q->maxsize;
}

static void squeue_free(void *self)
{
    squeue *q = self;
    if (q == NULL)
        return;
    while (q->count > 0)
        mp_obj_unref(pop_front(q));
    free(q->ring);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->all_done);
    free(q);
}

static int squeue_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    static const char *const names[] = {"maxsize", NULL};
    const mp_obj *a[1];
    int rc;
    if (call != NULL) {
        if ((rc = mp_manager_call_args(call, args, kwds, names, 0, a)) < 0)
            return rc;
    } else {
        a[0] = args && mp_obj_len(args) > 0 ? mp_seq_item(args, 0)
                                            : (kwds ? mp_dict_get_str(kwds, "maxsize") : NULL);
        if (args && mp_obj_len(args) > 1)
            return MP_EINVAL;
    }
    int64_t maxsize = 0;
    if (a[0] != NULL && mp_int_value(a[0], &maxsize) < 0) {
        if (call == NULL)
            return MP_ETYPE;
        return mp_manager_call_raisef(call, "builtins", "TypeError",
                                      "'>' not supported between instances of '%s' and 'int'",
                                      mp_obj_type_name(a[0]));
    }
    squeue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return MP_ENOMEM;
    q->maxsize = (long)maxsize;
    pthread_mutex_init(&q->mu, NULL);
    mp_manager_cond_init(&q->not_empty);
    mp_manager_cond_init(&q->not_full);
    mp_manager_cond_init(&q->all_done);
    *self = q;
    return 0;
}

int mp_served_queue_new(mp_served **out, long maxsize)
{
    if (out == NULL)
        return MP_EINVAL;
    mp_obj *args = mp_tuple1(mp_int(maxsize));
    if (args == NULL)
        return MP_ENOMEM;
    int rc = mp_served_new(out, &mp_manager_queue_type, args, NULL);
    mp_obj_unref(args);
    return rc;
}

/* What a wait that ended early answers: the caller has gone (nobody reads the
 * reply) or the server is stopping. */
static int wait_failed(mp_manager_call *call, int rc)
{
    if (rc == MP_ECLOSED)
        return mp_manager_call_raisef(call, "builtins", "EOFError", "the manager is shutting down");
    return rc;
}

static int shut_down(mp_manager_call *call)
{
    return mp_manager_call_raise(call, mp_exception_new("queue", "ShutDown", NULL));
}

static int do_put(squeue *q, mp_manager_call *call, const mp_obj *item, bool block,
                  int64_t deadline, mp_obj **result)
{
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->is_shutdown) {
        rc = shut_down(call);
        goto out_unlock;
    }
    while (is_full(q)) {
        if (!block) {
            rc = mp_manager_call_raise(call, mp_exception_new("queue", "Full", NULL));
            goto out_unlock;
        }
        rc = mp_manager_call_wait(call, &q->mu, &q->not_full, deadline);
        if (rc == MP_ETIMEDOUT) {
            rc = mp_manager_call_raise(call, mp_exception_new("queue", "Full", NULL));
            goto out_unlock;
        }
        if (rc < 0) {
            rc = wait_failed(call, rc);
            goto out_unlock;
        }
        if (q->is_shutdown) {
            rc = shut_down(call);
            goto out_unlock;
        }
    }
    if ((rc = push_back(q, mp_obj_ref(item))) < 0) {
        mp_obj_unref((mp_obj *)item);
        goto out_unlock;
    }
    q->unfinished++;
    pthread_cond_signal(&q->not_empty);
    *result = mp_none();
out_unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void give_back(void *self, const mp_obj *result, void *arg)
{
    (void)arg;
    squeue *q = self;
    pthread_mutex_lock(&q->mu);
    if (push_front(q, mp_obj_ref(result)) == 0)
        pthread_cond_signal(&q->not_empty);
    else
        mp_obj_unref((mp_obj *)result);
    pthread_mutex_unlock(&q->mu);
}

static int do_get(squeue *q, mp_manager_call *call, bool block, int64_t deadline, mp_obj **result)
{
    /* No item for a caller that has gone. Before taking one at once, the loop's
     * word on the channel is enough (a leader saw its hang-up event: no system
     * call; a send to a closed TCP peer succeeds, so the reply's send could not
     * tell, and the item would be lost). After a wait, when the peer may have
     * gone meanwhile with no leader looking yet, it is checked with poll()
     * under q->mu (so that a put's wake-up cannot hand it to a dead one). */
    if (mp__mgr_call_peer_hung_up(call))
        return MP_EEOF;
    int rc = 0;
    bool waited = false;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->count > 0) {
            if (waited && mp_manager_call_peer_gone(call)) {
                rc = MP_EEOF;
                break;
            }
            *result = pop_front(q);
            mp_manager_call_on_undelivered(call, give_back, NULL);
            pthread_cond_signal(&q->not_full);
            break;
        }
        if (q->is_shutdown) {
            rc = shut_down(call);
            break;
        }
        if (!block) {
            rc = mp_manager_call_raise(call, mp_exception_new("_queue", "Empty", NULL));
            break;
        }
        rc = mp_manager_call_wait(call, &q->mu, &q->not_empty, deadline);
        waited = true;
        if (rc == MP_ETIMEDOUT) {
            rc = mp_manager_call_raise(call, mp_exception_new("_queue", "Empty", NULL));
            break;
        }
        if (rc < 0) {
            rc = wait_failed(call, rc);
            break;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* The methods without arguments (Python's def m(self)): 0, or the TypeError raised. */
static int no_args(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    return mp_manager_call_args(call, args, kwds, (const char *const[]){NULL}, 0, NULL);
}

static int m_put(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                 mp_obj **result)
{
    static const char *const names[] = {"item", "block", "timeout", NULL};
    const mp_obj *a[3];
    int64_t deadline;
    int rc = mp_manager_call_args(call, args, kwds, names, 1, a);
    if (rc < 0)
        return rc;
    bool block = mp_manager_truthy(a[1], true);
    if (block && (rc = mp_manager_call_timeout(call, a[2], &deadline)) < 0)
        return rc;
    return do_put(self, call, a[0], block, block ? deadline : -1, result);
}

static int m_put_nowait(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    static const char *const names[] = {"item", NULL};
    const mp_obj *a[1];
    int rc = mp_manager_call_args(call, args, kwds, names, 1, a);
    return rc < 0 ? rc : do_put(self, call, a[0], false, -1, result);
}

static int m_get(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                 mp_obj **result)
{
    static const char *const names[] = {"block", "timeout", NULL};
    const mp_obj *a[2];
    int64_t deadline;
    int rc = mp_manager_call_args(call, args, kwds, names, 0, a);
    if (rc < 0)
        return rc;
    bool block = mp_manager_truthy(a[0], true);
    if (block && (rc = mp_manager_call_timeout(call, a[1], &deadline)) < 0)
        return rc;
    return do_get(self, call, block, block ? deadline : -1, result);
}

static int m_get_nowait(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    int rc = no_args(call, args, kwds);
    return rc < 0 ? rc : do_get(self, call, false, -1, result);
}

/* qsize, empty and full: a value read from the queue under its lock. */
static int read_locked(squeue *q, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj *(*read)(const squeue *q), mp_obj **result)
{
    int rc = no_args(call, args, kwds);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&q->mu);
    *result = read(q);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static mp_obj *qsize_of(const squeue *q)
{
    return mp_int((int64_t)q->count);
}

static mp_obj *empty_of(const squeue *q)
{
    return mp_bool(q->count == 0);
}

static mp_obj *full_of(const squeue *q)
{
    return mp_bool(is_full(q));
}

static int m_qsize(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                   mp_obj **result)
{
    return read_locked(self, call, args, kwds, qsize_of, result);
}

static int m_empty(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                   mp_obj **result)
{
    return read_locked(self, call, args, kwds, empty_of, result);
}

static int m_full(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                  mp_obj **result)
{
    return read_locked(self, call, args, kwds, full_of, result);
}

static int m_task_done(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    int rc = no_args(call, args, kwds);
    if (rc < 0)
        return rc;
    squeue *q = self;
    pthread_mutex_lock(&q->mu);
    if (q->unfinished <= 0) {
        rc = mp_manager_call_raisef(call, "builtins", "ValueError",
                                    "task_done() called too many times");
    } else {
        if (--q->unfinished == 0)
            pthread_cond_broadcast(&q->all_done);
        *result = mp_none();
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int m_join(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                  mp_obj **result)
{
    int rc = no_args(call, args, kwds);
    if (rc < 0)
        return rc;
    squeue *q = self;
    pthread_mutex_lock(&q->mu);
    while (q->unfinished > 0) {
        rc = mp_manager_call_wait(call, &q->mu, &q->all_done, -1);
        if (rc < 0) {
            rc = wait_failed(call, rc);
            break;
        }
    }
    if (rc == 0)
        *result = mp_none();
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int m_shutdown(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    static const char *const names[] = {"immediate", NULL};
    const mp_obj *a[1];
    int rc = mp_manager_call_args(call, args, kwds, names, 0, a);
    if (rc < 0)
        return rc;
    squeue *q = self;
    pthread_mutex_lock(&q->mu);
    q->is_shutdown = true;
    if (mp_manager_truthy(a[0], false)) {
        while (q->count > 0) {
            mp_obj_unref(pop_front(q));
            if (q->unfinished > 0)
                q->unfinished--;
        }
        pthread_cond_broadcast(&q->all_done);
    }
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    *result = mp_none();
    return 0;
}

/* In dir() order, as CPython's create reply lists them. */
static const mp_manager_method queue_methods[] = {
    {"empty", m_empty, 0},           {"full", m_full, 0},   {"get", m_get, 0},
    {"get_nowait", m_get_nowait, 0}, {"join", m_join, 0},   {"put", m_put, 0},
    {"put_nowait", m_put_nowait, 0}, {"qsize", m_qsize, 0}, {"shutdown", m_shutdown, 313},
    {"task_done", m_task_done, 0},   {NULL, NULL, 0},
};

const mp_manager_type mp_manager_queue_type = {
    .name = "queue.Queue",
    .create = squeue_create,
    .destroy = squeue_free,
    .methods = queue_methods,
};
