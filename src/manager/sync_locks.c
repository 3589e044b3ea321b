/* manager/sync_locks.c — the SyncManager's synchronisation types, served to
 * CPython's proxies exactly as CPython's server serves threading's: Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event and Barrier.
 *
 * Every object has one mutex (mu) guarding all its fields and one CLOCK_MONOTONIC
 * condition variable (cv) on which its waiters sleep through
 * mp_manager_call_wait, which also wakes them when their own peer goes or the
 * server stops. Every state change that can let a waiter through broadcasts cv;
 * each waiter rechecks its own condition.
 *
 * Ownership follows the connection (mp_manager_call_conn_id): CPython's proxies
 * make every call of one client thread on one connection, and CPython's server runs
 * each connection in one thread, so "the owning thread" of threading's RLock and
 * Condition is "the owning connection" here, as it is there. Beyond CPython, when a
 * connection closes (conn_closed), whatever it held is given back: a Lock or RLock
 * it acquired is released, the Semaphore units it took are returned, a Condition's
 * lock it held is released, and a Barrier it was waiting at is broken (its party
 * can never arrive, so the others get BrokenBarrierError instead of waiting
 * forever). A waiter whose own peer went takes nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/sync_types.h"
#include "manager/sync_util.h"

static int init_sync(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    if (pthread_mutex_init(mu, NULL) != 0)
        return MP_ENOMEM;
    int rc = mp_manager_cond_init(cv);
    if (rc < 0)
        pthread_mutex_destroy(mu);
    return rc;
}

static int ret_bool(mp_obj **result, bool b)
{
    *result = mp_bool(b);
    return 0;
}

static int ret_none(mp_obj **result)
{
    *result = mp_none();
    return 0;
}

/* A wait ended by the peer going (MP_EEOF) or the server stopping (MP_ECLOSED):
 * the reply (a traceback) reaches nobody, or tells a living peer that the server is
 * going away. */
static bool wait_failed(int rc)
{
    return rc == MP_EEOF || rc == MP_ECLOSED;
}

/* A threading-style timeout argument: None or absent (forever), or a number of
 * seconds. *forever or *secs. TypeError text as the given Python expression. */
static int timeout_arg(mp_manager_call *call, const mp_obj *t, bool *forever, double *secs,
                       const char *typeerror_fmt)
{
    *forever = (t == NULL || mp_obj_is_none(t));
    *secs = 0;
    if (*forever)
        return 0;
    if (!sm_number(t, secs))
        return sm_raise(call, "TypeError", typeerror_fmt, mp_obj_type_name(t));
    return 0;
}

static int64_t deadline_of(bool forever, double secs)
{
    if (forever)
        return -1;
    return mp_manager_deadline_ns(secs < 0 ? 0 : secs);
}

/* Who holds a Lock, RLock or a Condition's RLock, and how deep: guarded by the
 * object's mu, waited for on its cv. */
typedef struct sm_owner {
    uint64_t conn;       /* connection that acquired it, 0 when free */
    unsigned long count; /* recursion depth (RLock), 1 for a held Lock */
} sm_owner;

/* Takes o for conn (mu held), waiting on cv until deadline_ns; a recursive one is
 * taken again by its holder. 1 acquired, 0 not, or a negative code (peer gone,
 * server stopping). */
static int owner_take(sm_owner *o, bool recursive, pthread_mutex_t *mu, pthread_cond_t *cv,
                      mp_manager_call *call, uint64_t conn, bool blocking, int64_t deadline_ns)
{
    if (recursive && o->conn == conn) {
        o->count++;
        return 1;
    }
    while (o->conn != 0) {
        if (!blocking)
            return 0;
        int rc = mp_manager_call_wait(call, mu, cv, deadline_ns);
        if (rc == MP_ETIMEDOUT && o->conn != 0)
            return 0;
        if (wait_failed(rc))
            return rc;
    }
    o->conn = conn;
    o->count = 1;
    return 1;
}

/* Frees o (mu held) and wakes the waiters on cv. */
static void owner_clear(sm_owner *o, pthread_cond_t *cv)
{
    o->conn = 0;
    o->count = 0;
    pthread_cond_broadcast(cv);
}

/* A connection that closed gives back what it held (conn_closed; mu held). */
static void owner_drop(sm_owner *o, pthread_cond_t *cv, uint64_t conn)
{
    if (o->conn == conn)
        owner_clear(o, cv);
}

/* ======================================================================== */
/* Lock and RLock (threading.Lock is _thread.lock; threading.RLock _thread.RLock) */

typedef struct sm_lock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool recursive;
    sm_owner own; /* guarded by mu */
} sm_lock;

static int lock_make(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     bool recursive)
{
    if (!recursive && (sm_nargs(args) || sm_has_kwds(kwds)))
        return sm_raise(call, "TypeError", "lock expected 0 arguments, got %zu",
                        sm_nargs(args) + (size_t)(kwds ? mp_obj_len(kwds) : 0));
    /* RLock(*args, **kwargs) ignores its arguments (deprecated in 3.13). */
    sm_lock *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MP_ENOMEM;
    int rc = init_sync(&l->mu, &l->cv);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->recursive = recursive;
    *self = l;
    return 0;
}

static int lock_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    return lock_make(self, call, args, kwds, false);
}

static int rlock_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    return lock_make(self, call, args, kwds, true);
}

static void lock_destroy(void *self)
{
    sm_lock *l = self;
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* Parses acquire(blocking=True, timeout=-1) as CPython's Lock.acquire does, with
 * its errors; the deadline for owner_take. 0, or the raised error. */
static int acquire_args(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        bool *blocking, int64_t *deadline_ns)
{
    static const char *const names[] = {"blocking", "timeout", NULL};
    const mp_obj *a[2] = {NULL, NULL};
    if (sm_nargs(args) > 2)
        return sm_raise(call, "TypeError", "acquire() takes at most 2 arguments (%zu given)",
                        sm_nargs(args));
    int rc = sm_pyargs(call, args, kwds, "acquire", names, 0, a);
    if (rc < 0)
        return rc;
    *blocking = mp_manager_truthy(a[0], true);
    double t = -1;
    if (a[1] != NULL && !sm_number(a[1], &t))
        return sm_raise(call, "TypeError", "'%s' object cannot be interpreted as an integer",
                        mp_obj_type_name(a[1]));
    if (!*blocking && t != -1)
        return sm_raise(call, "ValueError", "can't specify a timeout for a non-blocking call");
    if (t < 0 && t != -1)
        return sm_raise(call, "ValueError", "%s",
                        mp_manager_call_python_version(call) >= 313
                            ? "timeout value must be a non-negative number"
                            : "timeout value must be positive");
    *deadline_ns = deadline_of(t < 0, t);
    return 0;
}

static int lock_acquire(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_lock *l = self;
    bool blocking;
    int64_t deadline_ns;
    int rc = acquire_args(call, args, kwds, &blocking, &deadline_ns);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    rc = owner_take(&l->own, l->recursive, &l->mu, &l->cv, call, mp_manager_call_conn_id(call),
                    blocking, deadline_ns);
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    return ret_bool(result, rc == 1);
}

static int lock_release(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_lock *l = self;
    int rc = sm_noargs(call, args, kwds, l->recursive ? "RLock.release" : "lock.release");
    if (rc < 0)
        return rc;
    uint64_t conn = mp_manager_call_conn_id(call);
    pthread_mutex_lock(&l->mu);
    if (l->own.conn == 0 || (l->recursive && l->own.conn != conn)) {
        pthread_mutex_unlock(&l->mu);
        return sm_raise(call, "RuntimeError", "%s",
                        l->recursive ? "cannot release un-acquired lock" : "release unlocked lock");
    }
    /* A plain Lock may be released by anyone, as threading.Lock. */
    if (!l->recursive || --l->own.count == 0)
        owner_clear(&l->own, &l->cv);
    pthread_mutex_unlock(&l->mu);
    return ret_none(result);
}

static void lock_conn_closed(void *self, uint64_t conn)
{
    sm_lock *l = self;
    pthread_mutex_lock(&l->mu);
    owner_drop(&l->own, &l->cv, conn);
    pthread_mutex_unlock(&l->mu);
}

static char *lock_repr(void *self)
{
    sm_lock *l = self;
    pthread_mutex_lock(&l->mu);
    char *s = l->recursive ? sm_strdupf("<%s _thread.RLock object owner=%llu count=%lu at %p>",
                                        l->own.conn ? "locked" : "unlocked",
                                        (unsigned long long)l->own.conn, l->own.count, self)
                           : sm_strdupf("<%s _thread.lock object at %p>",
                                        l->own.conn ? "locked" : "unlocked", self);
    pthread_mutex_unlock(&l->mu);
    return s;
}

static const mp_manager_method lock_methods[] = {
    {"acquire", lock_acquire, 0},
    {"release", lock_release, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_lock_type = {
    .name = "_thread.lock",
    .create = lock_create,
    .destroy = lock_destroy,
    .methods = lock_methods,
    .conn_closed = lock_conn_closed,
    .repr = lock_repr,
};

const mp_manager_type mp__sm_rlock_type = {
    .name = "_thread.RLock",
    .create = rlock_create,
    .destroy = lock_destroy,
    .methods = lock_methods,
    .conn_closed = lock_conn_closed,
    .repr = lock_repr,
};

/* ======================================================================== */
/* Semaphore and BoundedSemaphore (threading's Python classes)                 */

typedef struct sm_holder {
    uint64_t conn;
    int64_t units;
} sm_holder;

typedef struct sm_sem {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool bounded;
    int64_t value;      /* guarded by mu */
    int64_t initial;    /* the bound of a BoundedSemaphore */
    sm_holder *holders; /* units each connection took and has not given back; mu */
    size_t nholders, capholders;
} sm_sem;

static int sem_make(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    bool bounded)
{
    static const char *const names[] = {"value", NULL};
    const mp_obj *a[1] = {NULL};
    if (sm_nargs(args) > 1)
        return sm_raise(call, "TypeError",
                        "%s.__init__() takes from 1 to 2 positional arguments but %zu were given",
                        bounded ? "BoundedSemaphore" : "Semaphore", sm_nargs(args) + 1);
    int rc = sm_pyargs(call, args, kwds,
                       bounded ? "BoundedSemaphore.__init__" : "Semaphore.__init__", names, 0, a);
    if (rc < 0)
        return rc;
    int64_t v = 1;
    if (a[0] != NULL) {
        if (mp_obj_is_float(a[0]))
            return sm_raise(call, "TypeError", "the mproc server takes an int semaphore value");
        if (!mp_obj_is_int(a[0]) && !mp_obj_is_bool(a[0]))
            return sm_raise(call, "TypeError",
                            "'<' not supported between instances of '%s' and 'int'",
                            mp_obj_type_name(a[0]));
        if (mp_int_value(a[0], &v) != 0)
            return sm_raise(call, "OverflowError", "semaphore value too large");
    }
    if (v < 0)
        return sm_raise(call, "ValueError", "semaphore initial value must be >= 0");
    sm_sem *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MP_ENOMEM;
    rc = init_sync(&s->mu, &s->cv);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->bounded = bounded;
    s->value = s->initial = v;
    *self = s;
    return 0;
}

static int sem_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    return sem_make(self, call, args, kwds, false);
}

static int bsem_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    return sem_make(self, call, args, kwds, true);
}

static void sem_destroy(void *self)
{
    sm_sem *s = self;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->holders);
    free(s);
}

static sm_holder *holder_of(sm_sem *s, uint64_t conn, bool make)
{
    for (size_t i = 0; i < s->nholders; i++)
        if (s->holders[i].conn == conn)
            return &s->holders[i];
    if (!make)
        return NULL;
    if (s->nholders == s->capholders) {
        size_t cap = s->capholders ? s->capholders * 2 : 4;
        sm_holder *h = realloc(s->holders, cap * sizeof *h);
        if (h == NULL)
            return NULL;
        s->holders = h;
        s->capholders = cap;
    }
    s->holders[s->nholders] = (sm_holder){conn, 0};
    return &s->holders[s->nholders++];
}

static void holder_drop(sm_sem *s, sm_holder *h)
{
    *h = s->holders[--s->nholders];
}

/* n units given back by conn: they come off its own holding first, then off the
 * others' (a semaphore used as a signal is released by someone else). */
static void holders_release(sm_sem *s, uint64_t conn, int64_t n)
{
    sm_holder *h = holder_of(s, conn, false);
    while (n > 0 && s->nholders > 0) {
        if (h == NULL)
            h = &s->holders[0];
        int64_t k = h->units < n ? h->units : n;
        h->units -= k;
        n -= k;
        if (h->units == 0)
            holder_drop(s, h);
        h = NULL;
    }
}

static int sem_acquire(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_sem *s = self;
    static const char *const names[] = {"blocking", "timeout", NULL};
    const mp_obj *a[2] = {NULL, NULL};
    int rc = sm_pyargs(call, args, kwds, "Semaphore.acquire", names, 0, a);
    if (rc < 0)
        return rc;
    bool blocking = mp_manager_truthy(a[0], true);
    bool has_timeout = a[1] != NULL && !mp_obj_is_none(a[1]);
    if (!blocking && has_timeout)
        return sm_raise(call, "ValueError", "can't specify timeout for non-blocking acquire");
    uint64_t conn = mp_manager_call_conn_id(call);
    pthread_mutex_lock(&s->mu);
    int64_t deadline = -1;
    bool got = false;
    for (;;) {
        if (s->value > 0) {
            sm_holder *h = holder_of(s, conn, true);
            if (h == NULL) {
                rc = MP_ENOMEM;
                break;
            }
            h->units++;
            s->value--;
            got = true;
            break;
        }
        if (!blocking)
            break;
        if (has_timeout && deadline == -1) {
            bool forever;
            double secs;
            rc = timeout_arg(call, a[1], &forever, &secs,
                             "unsupported operand type(s) for +: 'float' and '%s'");
            if (rc < 0)
                break;
            if (secs <= 0)
                break;
            deadline = mp_manager_deadline_ns(secs);
        }
        rc = mp_manager_call_wait(call, &s->mu, &s->cv, deadline);
        if (wait_failed(rc))
            break;
        if (rc == MP_ETIMEDOUT && s->value <= 0)
            break;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc < 0 && rc != MP_ETIMEDOUT)
        return rc;
    return ret_bool(result, got);
}

static int sem_release(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_sem *s = self;
    static const char *const names[] = {"n", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds,
                       s->bounded ? "BoundedSemaphore.release" : "Semaphore.release", names, 0, a);
    if (rc < 0)
        return rc;
    int64_t n = 1;
    if (a[0] != NULL) {
        if (!mp_obj_is_int(a[0]) && !mp_obj_is_bool(a[0]))
            return sm_raise(call, "TypeError",
                            "'<' not supported between instances of '%s' and 'int'",
                            mp_obj_type_name(a[0]));
        if (mp_int_value(a[0], &n) != 0)
            return sm_raise(call, "OverflowError", "n too large");
    }
    if (n < 1)
        return sm_raise(call, "ValueError", "n must be one or more");
    pthread_mutex_lock(&s->mu);
    if (s->bounded && s->value + n > s->initial) {
        pthread_mutex_unlock(&s->mu);
        return sm_raise(call, "ValueError", "Semaphore released too many times");
    }
    s->value += n;
    holders_release(s, mp_manager_call_conn_id(call), n);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return ret_none(result);
}

static void sem_conn_closed(void *self, uint64_t conn)
{
    sm_sem *s = self;
    pthread_mutex_lock(&s->mu);
    sm_holder *h = holder_of(s, conn, false);
    if (h != NULL) {
        s->value += h->units;
        if (s->bounded && s->value > s->initial)
            s->value = s->initial;
        holder_drop(s, h);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static char *sem_repr(void *self)
{
    sm_sem *s = self;
    pthread_mutex_lock(&s->mu);
    char *r = s->bounded ? sm_strdupf("<threading.BoundedSemaphore at %p: value=%lld/%lld>", self,
                                      (long long)s->value, (long long)s->initial)
                         : sm_strdupf("<threading.Semaphore at %p: value=%lld>", self,
                                      (long long)s->value);
    pthread_mutex_unlock(&s->mu);
    return r;
}

static const mp_manager_method sem_methods[] = {
    {"acquire", sem_acquire, 0},
    {"release", sem_release, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_semaphore_type = {
    .name = "threading.Semaphore",
    .create = sem_create,
    .destroy = sem_destroy,
    .methods = sem_methods,
    .conn_closed = sem_conn_closed,
    .repr = sem_repr,
};

const mp_manager_type mp__sm_bounded_semaphore_type = {
    .name = "threading.BoundedSemaphore",
    .create = bsem_create,
    .destroy = sem_destroy,
    .methods = sem_methods,
    .conn_closed = sem_conn_closed,
    .repr = sem_repr,
};

/* ======================================================================== */
/* Condition (threading.Condition() with its own RLock)                        */

typedef struct sm_waiter {
    struct sm_waiter *next;
    bool notified;
} sm_waiter;

typedef struct sm_cond {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sm_owner own;           /* who holds the condition's RLock; mu */
    sm_waiter *head, *tail; /* waiters in arrival order (notify is FIFO); mu */
} sm_cond;

static int cond_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    static const char *const names[] = {"lock", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds, "Condition.__init__", names, 0, a);
    if (rc < 0)
        return rc;
    if (a[0] != NULL && !mp_obj_is_none(a[0]))
        return sm_raise(call, "TypeError",
                        "Condition(lock): the mproc server makes its own RLock; a lock proxy "
                        "cannot be handed to the server (pass no lock)");
    sm_cond *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MP_ENOMEM;
    rc = init_sync(&c->mu, &c->cv);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *self = c;
    return 0;
}

static void cond_destroy(void *self)
{
    sm_cond *c = self;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void cond_unlink(sm_cond *c, sm_waiter *w)
{
    sm_waiter **p = &c->head, *prev = NULL;
    while (*p && *p != w) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p == NULL)
        return;
    *p = w->next;
    if (c->tail == w)
        c->tail = prev;
}

static int cond_acquire(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_cond *c = self;
    bool blocking;
    int64_t deadline_ns;
    int rc = acquire_args(call, args, kwds, &blocking, &deadline_ns);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = owner_take(&c->own, true, &c->mu, &c->cv, call, mp_manager_call_conn_id(call), blocking,
                    deadline_ns);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0)
        return rc;
    return ret_bool(result, rc == 1);
}

static int cond_release(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_cond *c = self;
    int rc = sm_noargs(call, args, kwds, "RLock.release");
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->own.conn != mp_manager_call_conn_id(call)) {
        pthread_mutex_unlock(&c->mu);
        return sm_raise(call, "RuntimeError", "cannot release un-acquired lock");
    }
    if (--c->own.count == 0)
        owner_clear(&c->own, &c->cv);
    pthread_mutex_unlock(&c->mu);
    return ret_none(result);
}

static int cond_wait(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_cond *c = self;
    static const char *const names[] = {"timeout", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds, "Condition.wait", names, 0, a);
    if (rc < 0)
        return rc;
    uint64_t conn = mp_manager_call_conn_id(call);
    pthread_mutex_lock(&c->mu);
    if (c->own.conn != conn) {
        pthread_mutex_unlock(&c->mu);
        return sm_raise(call, "RuntimeError", "cannot wait on un-acquired lock");
    }
    bool forever;
    double secs;
    rc = timeout_arg(call, a[0], &forever, &secs,
                     "'>' not supported between instances of '%s' and 'int'");
    if (rc < 0) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    /* Release the lock completely, wait to be notified, take it back at its depth. */
    sm_waiter w = {NULL, false};
    if (c->tail)
        c->tail->next = &w;
    else
        c->head = &w;
    c->tail = &w;
    unsigned long depth = c->own.count;
    c->own.conn = 0;
    c->own.count = 0;
    pthread_cond_broadcast(&c->cv);
    int64_t deadline = forever ? -1 : mp_manager_deadline_ns(secs < 0 ? 0 : secs);
    while (!w.notified) {
        if (!forever && secs <= 0)
            break;
        rc = mp_manager_call_wait(call, &c->mu, &c->cv, deadline);
        if (rc == MP_ETIMEDOUT || wait_failed(rc))
            break;
    }
    bool notified = w.notified;
    if (!notified)
        cond_unlink(c, &w);
    if (wait_failed(rc)) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    /* _acquire_restore: blocks without a timeout, as CPython's. */
    rc = owner_take(&c->own, false, &c->mu, &c->cv, call, conn, true, -1);
    if (rc < 0) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    c->own.count = depth;
    pthread_mutex_unlock(&c->mu);
    return ret_bool(result, notified);
}

static int cond_notify_n(sm_cond *c, mp_manager_call *call, int64_t n, mp_obj **result)
{
    pthread_mutex_lock(&c->mu);
    if (c->own.conn != mp_manager_call_conn_id(call)) {
        pthread_mutex_unlock(&c->mu);
        return sm_raise(call, "RuntimeError", "cannot notify on un-acquired lock");
    }
    bool any = false;
    while (n-- > 0 && c->head) {
        sm_waiter *w = c->head;
        c->head = w->next;
        if (c->head == NULL)
            c->tail = NULL;
        w->notified = true;
        any = true;
    }
    if (any)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return ret_none(result);
}

static int cond_notify(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    static const char *const names[] = {"n", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds, "Condition.notify", names, 0, a);
    if (rc < 0)
        return rc;
    int64_t n = 1;
    if (a[0] != NULL) {
        double d;
        if (!sm_number(a[0], &d))
            /* Python's notify(n) slices its waiter deque with n. */
            return sm_raise(call, "TypeError", "'%s' object cannot be interpreted as an integer",
                            mp_obj_type_name(a[0]));
        if (mp_int_value(a[0], &n) != 0)
            n = d > 0 ? INT64_MAX : 0;
    }
    return cond_notify_n(self, call, n, result);
}

static int cond_notify_all(void *self, mp_manager_call *call, const mp_obj *args,
                           const mp_obj *kwds, mp_obj **result)
{
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Condition.notify_all", names, 0, none);
    if (rc < 0)
        return rc;
    return cond_notify_n(self, call, INT64_MAX, result);
}

static void cond_conn_closed(void *self, uint64_t conn)
{
    sm_cond *c = self;
    pthread_mutex_lock(&c->mu);
    owner_drop(&c->own, &c->cv, conn);
    pthread_mutex_unlock(&c->mu);
}

static char *cond_repr(void *self)
{
    sm_cond *c = self;
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    for (sm_waiter *w = c->head; w; w = w->next)
        n++;
    char *r = sm_strdupf("<Condition(<%s _thread.RLock object owner=%llu count=%lu at %p>, %zu)>",
                         c->own.conn ? "locked" : "unlocked", (unsigned long long)c->own.conn,
                         c->own.count, self, n);
    pthread_mutex_unlock(&c->mu);
    return r;
}

static const mp_manager_method cond_methods[] = {
    {"acquire", cond_acquire, 0}, {"notify", cond_notify, 0}, {"notify_all", cond_notify_all, 0},
    {"release", cond_release, 0}, {"wait", cond_wait, 0},     {NULL, NULL, 0},
};

const mp_manager_type mp__sm_condition_type = {
    .name = "threading.Condition",
    .create = cond_create,
    .destroy = cond_destroy,
    .methods = cond_methods,
    .conn_closed = cond_conn_closed,
    .repr = cond_repr,
};

/* ======================================================================== */
/* Event                                                                       */

typedef struct sm_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool flag; /* guarded by mu */
} sm_event;

static int event_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Event.__init__", names, 0, none);
    if (rc < 0)
        return rc;
    sm_event *e = calloc(1, sizeof *e);
    if (e == NULL)
        return MP_ENOMEM;
    rc = init_sync(&e->mu, &e->cv);
    if (rc < 0) {
        free(e);
        return rc;
    }
    *self = e;
    return 0;
}

static void event_destroy(void *self)
{
    sm_event *e = self;
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static int event_is_set(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_event *e = self;
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Event.is_set", names, 0, none);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&e->mu);
    bool f = e->flag;
    pthread_mutex_unlock(&e->mu);
    return ret_bool(result, f);
}

static int event_change(sm_event *e, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        bool flag, mp_obj **result)
{
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, flag ? "Event.set" : "Event.clear", names, 0, none);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&e->mu);
    e->flag = flag;
    if (flag)
        pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return ret_none(result);
}

static int event_set(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    return event_change(self, call, args, kwds, true, result);
}

static int event_clear(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    return event_change(self, call, args, kwds, false, result);
}

static int event_wait(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_event *e = self;
    static const char *const names[] = {"timeout", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds, "Event.wait", names, 0, a);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&e->mu);
    if (e->flag) {
        pthread_mutex_unlock(&e->mu);
        return ret_bool(result, true);
    }
    bool forever;
    double secs;
    rc = timeout_arg(call, a[0], &forever, &secs,
                     "'>' not supported between instances of '%s' and 'int'");
    if (rc == 0 && (forever || secs > 0)) {
        int64_t deadline = deadline_of(forever, secs);
        while (!e->flag) {
            rc = mp_manager_call_wait(call, &e->mu, &e->cv, deadline);
            if (rc == MP_ETIMEDOUT || wait_failed(rc))
                break;
        }
    }
    bool f = e->flag;
    pthread_mutex_unlock(&e->mu);
    if (rc < 0 && rc != MP_ETIMEDOUT)
        return rc;
    return ret_bool(result, f);
}

static char *event_repr(void *self)
{
    sm_event *e = self;
    pthread_mutex_lock(&e->mu);
    char *r = sm_strdupf("<threading.Event at %p: %s>", self, e->flag ? "set" : "unset");
    pthread_mutex_unlock(&e->mu);
    return r;
}

static const mp_manager_method event_methods[] = {
    {"clear", event_clear, 0}, {"is_set", event_is_set, 0},
    {"set", event_set, 0},     {"wait", event_wait, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_event_type = {
    .name = "threading.Event",
    .create = event_create,
    .destroy = event_destroy,
    .methods = event_methods,
    .repr = event_repr,
};

/* ======================================================================== */
/* Barrier (threading.Barrier's state machine: filling, draining, resetting,    */
/* broken)                                                                      */

enum { BAR_FILLING = 0, BAR_DRAINING = 1, BAR_RESETTING = -1, BAR_BROKEN = -2 };

typedef struct sm_barrier_party {
    uint64_t conn;
    struct sm_barrier_party *next;
} sm_barrier_party;

typedef struct sm_barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t parties;
    bool has_timeout;
    double timeout;            /* the default of wait() */
    int state;                 /* BAR_*; mu */
    int64_t count;             /* parties inside wait(); mu */
    sm_barrier_party *waiting; /* connections inside wait(), for conn_closed; mu */
} sm_barrier;

static int barrier_create(void **self, mp_manager_call *call, const mp_obj *args,
                          const mp_obj *kwds)
{
    static const char *const names[] = {"parties", "action", "timeout", NULL};
    const mp_obj *a[3] = {NULL, NULL, NULL};
    int rc = sm_pyargs(call, args, kwds, "Barrier.__init__", names, 1, a);
    if (rc < 0)
        return rc;
    int64_t parties;
    if (!mp_obj_is_int(a[0]) && !mp_obj_is_bool(a[0]))
        return sm_raise(call, "TypeError", "'<' not supported between instances of '%s' and 'int'",
                        mp_obj_type_name(a[0]));
    if (mp_int_value(a[0], &parties) != 0)
        return sm_raise(call, "OverflowError", "parties too large");
    if (parties < 1)
        return sm_raise(call, "ValueError", "parties must be > 0");
    if (a[1] != NULL && !mp_obj_is_none(a[1]))
        return sm_raise(call, "TypeError",
                        "Barrier(action=...): the mproc server cannot call a Python function");
    bool forever;
    double secs;
    rc = timeout_arg(call, a[2], &forever, &secs, "bad timeout type '%s'");
    if (rc < 0)
        return rc;
    sm_barrier *b = calloc(1, sizeof *b);
    if (b == NULL)
        return MP_ENOMEM;
    rc = init_sync(&b->mu, &b->cv);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->parties = parties;
    b->has_timeout = !forever;
    b->timeout = secs;
    *self = b;
    return 0;
}

static void barrier_destroy(void *self)
{
    sm_barrier *b = self;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void barrier_break(sm_barrier *b)
{
    b->state = BAR_BROKEN;
    pthread_cond_broadcast(&b->cv);
}

static int broken_barrier(mp_manager_call *call)
{
    return sm_raise_obj(call, mp_exception_new("threading", "BrokenBarrierError", NULL));
}

static void party_unlink(sm_barrier *b, sm_barrier_party *p)
{
    for (sm_barrier_party **q = &b->waiting; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            return;
        }
}

static int barrier_wait(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_barrier *b = self;
    static const char *const names[] = {"timeout", NULL};
    const mp_obj *a[1] = {NULL};
    int rc = sm_pyargs(call, args, kwds, "Barrier.wait", names, 0, a);
    if (rc < 0)
        return rc;
    bool forever = !b->has_timeout;
    double secs = b->timeout;
    if (a[0] != NULL && !mp_obj_is_none(a[0])) {
        rc = timeout_arg(call, a[0], &forever, &secs,
                         "unsupported operand type(s) for +: 'float' and '%s'");
        if (rc < 0)
            return rc;
    }
    pthread_mutex_lock(&b->mu);
    /* _enter: wait while the barrier drains or resets. */
    while (b->state == BAR_DRAINING || b->state == BAR_RESETTING) {
        rc = mp_manager_call_wait(call, &b->mu, &b->cv, -1);
        if (wait_failed(rc)) {
            pthread_mutex_unlock(&b->mu);
            return rc;
        }
    }
    if (b->state < 0) {
        pthread_mutex_unlock(&b->mu);
        return broken_barrier(call);
    }
    int64_t index = b->count++;
    int out = 0; /* 0 passed, 1 broken, <0 peer gone / server stopping */
    if (index + 1 == b->parties) {
        b->state = BAR_DRAINING; /* _release (no action to run) */
        pthread_cond_broadcast(&b->cv);
    } else {
        sm_barrier_party me = {mp_manager_call_conn_id(call), b->waiting};
        b->waiting = &me;
        int64_t deadline = deadline_of(forever, secs);
        while (b->state == BAR_FILLING) {
            if (!forever && secs <= 0) {
                rc = MP_ETIMEDOUT;
            } else {
                rc = mp_manager_call_wait(call, &b->mu, &b->cv, deadline);
                if (rc == 0)
                    continue;
            }
            if (b->state != BAR_FILLING)
                break;
            /* A timeout breaks the barrier for everyone, as threading's; so does a
             * party whose peer went, since it can never arrive. */
            barrier_break(b);
            out = wait_failed(rc) ? rc : 1;
            break;
        }
        party_unlink(b, &me);
        if (out == 0 && b->state < 0)
            out = 1;
    }
    /* _exit */
    b->count--;
    if (b->count == 0 && (b->state == BAR_RESETTING || b->state == BAR_DRAINING)) {
        b->state = BAR_FILLING;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (out < 0)
        return out;
    if (out == 1)
        return broken_barrier(call);
    *result = mp_int(index);
    return 0;
}

static int barrier_abort(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_barrier *b = self;
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Barrier.abort", names, 0, none);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&b->mu);
    barrier_break(b);
    pthread_mutex_unlock(&b->mu);
    return ret_none(result);
}

static int barrier_reset(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_barrier *b = self;
    static const char *const names[] = {NULL};
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Barrier.reset", names, 0, none);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&b->mu);
    if (b->count > 0) {
        if (b->state == BAR_FILLING || b->state == BAR_BROKEN)
            b->state = BAR_RESETTING;
    } else {
        b->state = BAR_FILLING;
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return ret_none(result);
}

static int barrier_getattr(void *self, mp_manager_call *call, const mp_obj *args,
                           const mp_obj *kwds, mp_obj **result)
{
    sm_barrier *b = self;
    int rc = sm_wrapper(call, args, kwds, "__getattribute__", 1);
    if (rc < 0)
        return rc;
    const mp_obj *n = mp_seq_item(args, 0);
    const char *name = mp_str_cstr(n);
    if (name == NULL)
        return sm_raise(call, "TypeError", "attribute name must be string, not '%s'",
                        mp_obj_type_name(n));
    pthread_mutex_lock(&b->mu);
    if (strcmp(name, "parties") == 0)
        *result = mp_int(b->parties);
    else if (strcmp(name, "n_waiting") == 0)
        *result = mp_int(b->state == BAR_FILLING ? b->count : 0);
    else if (strcmp(name, "broken") == 0)
        *result = mp_bool(b->state == BAR_BROKEN);
    else
        *result = NULL;
    pthread_mutex_unlock(&b->mu);
    if (*result == NULL)
        return sm_raise(call, "AttributeError", "'Barrier' object has no attribute '%s'", name);
    return 0;
}

static void barrier_conn_closed(void *self, uint64_t conn)
{
    sm_barrier *b = self;
    pthread_mutex_lock(&b->mu);
    for (sm_barrier_party *p = b->waiting; p; p = p->next)
        if (p->conn == conn && b->state == BAR_FILLING)
            barrier_break(b);
    pthread_mutex_unlock(&b->mu);
}

static char *barrier_repr(void *self)
{
    sm_barrier *b = self;
    pthread_mutex_lock(&b->mu);
    char *r = b->state == BAR_BROKEN
                  ? sm_strdupf("<threading.Barrier at %p: broken>", self)
                  : sm_strdupf("<threading.Barrier at %p: waiters=%lld/%lld>", self,
                               (long long)(b->state == BAR_FILLING ? b->count : 0),
                               (long long)b->parties);
    pthread_mutex_unlock(&b->mu);
    return r;
}

static const mp_manager_method barrier_methods[] = {
    {"__getattribute__", barrier_getattr, 0},
    {"abort", barrier_abort, 0},
    {"reset", barrier_reset, 0},
    {"wait", barrier_wait, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_barrier_type = {
    .name = "threading.Barrier",
    .create = barrier_create,
    .destroy = barrier_destroy,
    .methods = barrier_methods,
    .conn_closed = barrier_conn_closed,
    .repr = barrier_repr,
};
