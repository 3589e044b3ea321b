/* condition.c — mp_condition: a condition variable over a Lock or an RLock.
 *
 * Shared state and who guards it:
 *   seq       futex word; bumped by every notify that finds a waiter. Changed
 *             only by a notifier holding the lock.
 *   nwaiters  threads registered in a wait; incremented with the lock held,
 *             decremented after waking (without it)
 *
 * Wait, with the lock held: read seq into s, increment nwaiters, release the
 * lock, FUTEX_WAIT on seq expecting s, decrement nwaiters, take the lock back.
 * Notify(n), with the lock held: if nwaiters > 0, bump seq and FUTEX_WAKE n.
 * No notify is lost: a waiter registered (under the lock) before the notifier
 * took the lock, so the notifier sees it; if the waiter has not reached the
 * kernel yet, seq no longer equals s and FUTEX_WAIT returns at once. The price
 * is the one pthread_cond_wait pays too: such a waiter, or one woken by a
 * FUTEX_WAKE meant for an earlier sleeper, can wake beyond n (a spurious
 * wake-up), which is why every wait re-checks its condition.
 *
 * Deaths: a waiter killed in the kernel leaves the futex queue with it and
 * nwaiters one too high, which only costs later notifies a wake system call.
 * A waiter that dies holding the lock is the lock's business (MP_EOWNERDEAD to
 * the next taker, including a waiter taking the lock back).
 */
#include <limits.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/sync.h"
#include "sync/sync.h"

struct mp_condition {
    _Atomic uint32_t seq;      /* futex word; bumped by notifiers holding the lock */
    _Atomic uint32_t nwaiters; /* registered waiters: ++ under the lock, -- after waking */
    mp_lock *lock;             /* exactly one of lock and rlock; set once */
    mp_rlock *rlock;
    bool own_rlock;   /* rlock was created by the condition; set once */
    uint64_t creator; /* mp__self_id of the process that may free it; set once */
};

int mp_condition_new(mp_condition **out, const mp_condition_options *opt)
{
    if (out == NULL || (opt != NULL && opt->lock != NULL && opt->rlock != NULL))
        return MP_EINVAL;
    mp_condition *c = mp__shm_alloc(sizeof *c);
    if (c == NULL)
        return MP_ENOMEM;
    c->lock = opt != NULL ? opt->lock : NULL;
    c->rlock = opt != NULL ? opt->rlock : NULL;
    if (c->lock == NULL && c->rlock == NULL) {
        int rc = mp_rlock_new(&c->rlock, NULL);
        if (rc != 0) {
            mp__shm_free(c);
            return rc;
        }
        c->own_rlock = true;
    }
    c->creator = mp__self_id();
    *out = c;
    return 0;
}

static bool holds_lock(mp_condition *c)
{
    if (c->lock != NULL)
        return mp__lockword_held_by_self(mp__lock_word(c->lock));
    return mp_rlock_is_mine(c->rlock);
}

int mp_condition_acquire(mp_condition *c, int timeout_ms)
{
    if (c == NULL)
        return MP_EINVAL;
    return c->lock != NULL ? mp_lock_acquire(c->lock, timeout_ms)
                           : mp_rlock_acquire(c->rlock, timeout_ms);
}

int mp_condition_release(mp_condition *c)
{
    if (c == NULL)
        return MP_EINVAL;
    return c->lock != NULL ? mp_lock_release(c->lock) : mp_rlock_release(c->rlock);
}

int mp_condition_wait(mp_condition *c, int timeout_ms)
{
    if (c == NULL || timeout_ms < -1)
        return MP_EINVAL;
    if (!holds_lock(c))
        return MP_EPERM;
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    uint32_t s = atomic_load(&c->seq);
    atomic_fetch_add(&c->nwaiters, 1);
    unsigned saved = 0;
    if (c->lock != NULL)
        mp__lockword_release(mp__lock_word(c->lock));
    else
        mp__rlock_release_all(c->rlock, &saved);

    int rc;
    while ((rc = mp__futex_wait(&c->seq, s, &d)) == MP_EINTR)
        ;
    rc = rc == MP_ETIMEDOUT ? MP_ETIMEDOUT : 0;
    atomic_fetch_sub(&c->nwaiters, 1);

    int taken;
    if (c->lock != NULL) {
        mp__deadline forever;
        mp__deadline_init(&forever, -1);
        taken = mp__lockword_acquire(mp__lock_word(c->lock), &forever);
    } else {
        taken = mp__rlock_restore(c->rlock, saved);
    }
    return taken == MP_EOWNERDEAD ? MP_EOWNERDEAD : rc;
}

int mp_condition_wait_for(mp_condition *c, mp_predicate predicate, void *arg, int timeout_ms)
{
    if (c == NULL || predicate == NULL || timeout_ms < -1)
        return MP_EINVAL;
    if (!holds_lock(c))
        return MP_EPERM;
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    for (;;) {
        if (predicate(arg))
            return 0;
        if (mp__deadline_passed(&d))
            return MP_ETIMEDOUT;
        int rc = mp_condition_wait(c, mp__deadline_poll_ms(&d));
        if (rc == MP_EOWNERDEAD)
            return rc;
        if (rc == MP_ETIMEDOUT)
            return predicate(arg) ? 0 : MP_ETIMEDOUT;
    }
}

int mp_condition_notify(mp_condition *c, int n)
{
    if (c == NULL || n < 0)
        return MP_EINVAL;
    if (!holds_lock(c))
        return MP_EPERM;
    if (n == 0 || atomic_load(&c->nwaiters) == 0)
        return 0;
    atomic_fetch_add(&c->seq, 1);
    mp__futex_wake(&c->seq, n);
    return 0;
}

int mp_condition_notify_all(mp_condition *c)
{
    return mp_condition_notify(c, INT_MAX);
}

void mp_condition_destroy(mp_condition *c)
{
    if (c == NULL || c->creator != mp__self_id())
        return;
    if (c->own_rlock)
        mp_rlock_destroy(c->rlock);
    mp__shm_free(c);
}
