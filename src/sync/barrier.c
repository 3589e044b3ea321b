/* barrier.c — mp_barrier: parties wait for each other, as Python's Barrier.
 *
 * The state machine is Python's (threading.Barrier):
 *   FILLING    parties arrive and wait; the last to arrive runs the action and
 *              moves to DRAINING
 *   DRAINING   the released parties leave; the last to leave moves to FILLING.
 *              New arrivals wait for FILLING, so a fast party entering the next
 *              round cannot mix with the round still leaving
 *   RESETTING  reset was called with parties inside: they leave with
 *              MP_EBROKEN; the last to leave moves to FILLING
 *   BROKEN     abort, a timeout, a failed action or a dead party; every wait
 *              fails with MP_EBROKEN until reset
 *
 * Shared state and who guards it:
 *   lock     a lock word (lock.c) guarding state and slots
 *   seq      futex word; bumped (under lock) at every change of state, and the
 *            waiters sleep on it (releasing lock first, as a condition variable)
 *   state    one of the above; under lock
 *   slots    one per party: the process id (mp__self_id: pid and start time) of
 *            each thread inside wait (0: free); the
 *            number of non-zero slots is the count of Python's Barrier. Under
 *            lock. A slot is claimed on arrival and freed on leaving.
 *
 * Deaths. Waiters sleep in slices of MP__DEATH_SLICE_MS; after each slice they
 * look whether the process of every occupied slot is alive. A dead one's slot is
 * freed (it will never leave by itself) and, while FILLING, the barrier breaks:
 * the dead party can never be released, so the others must not wait for it. The
 * last party to arrive looks too before it releases the round (a party that died
 * waiting with nobody asleep beside it would otherwise pass, and the survivors
 * would wait for it in the next round). A
 * process that died holding lock (MP_EOWNERDEAD to the next taker) may have left
 * the state half-changed: the barrier breaks too, and reset makes it usable.
 * A party that dies before arriving cannot be told from a slow one: only a
 * timeout helps there.
 */
#include <limits.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/sync.h"
#include "sync/sync.h"

enum { FILLING = 0, DRAINING = 1, RESETTING = -1, BROKEN = -2 };

struct mp_barrier {
    mp__lockword lock;        /* lock word (lock.c) guarding state and slots */
    _Atomic uint32_t seq;     /* futex word; bumped under lock at each state change */
    int32_t state;            /* FILLING, DRAINING, RESETTING or BROKEN; under lock */
    uint32_t parties;         /* set once */
    int default_timeout_ms;   /* for waits given -1; -1 forever; set once */
    uint64_t creator;         /* mp__self_id of the process that may free it; set once */
    mp_barrier_action action; /* set once; run in the last arriving party's process */
    void *action_arg;
    uint64_t slots[]; /* [parties]: mp__self_id of each party inside wait; under lock */
};

int mp_barrier_new(mp_barrier **out, int parties, const mp_barrier_options *opt)
{
    /* An options field: 0 and -1 none (Python's None), MP_TIMEOUT_NOW zero. */
    int t = opt != NULL ? opt->timeout_ms : 0;
    if (out == NULL || parties < 1 || (t < -1 && t != MP_TIMEOUT_NOW))
        return MP_EINVAL;
    mp_barrier *b = mp__shm_alloc(sizeof *b + (size_t)parties * sizeof b->slots[0]);
    if (b == NULL)
        return MP_ENOMEM;
    b->parties = (uint32_t)parties;
    b->default_timeout_ms = t == MP_TIMEOUT_NOW ? 0 : t > 0 ? t : -1;
    b->action = opt != NULL ? opt->action : NULL;
    b->action_arg = opt != NULL ? opt->action_arg : NULL;
    b->creator = mp__self_id();
    *out = b;
    return 0;
}

static void changed(mp_barrier *b)
{
    atomic_fetch_add(&b->seq, 1);
    mp__futex_wake(&b->seq, INT_MAX);
}

static uint32_t count(const mp_barrier *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->parties; i++)
        n += b->slots[i] != 0;
    return n;
}

/* The last party out of DRAINING or RESETTING reopens the barrier. */
static void maybe_reopen(mp_barrier *b)
{
    if ((b->state == DRAINING || b->state == RESETTING) && count(b) == 0) {
        b->state = FILLING;
        changed(b);
    }
}

/* Frees the slots of dead processes; breaks a FILLING barrier that had one. */
static void reap_dead(mp_barrier *b)
{
    bool found = false;
    for (uint32_t i = 0; i < b->parties; i++) {
        if (b->slots[i] != 0 && b->slots[i] != mp__self_id() && !mp__id_alive(b->slots[i])) {
            b->slots[i] = 0;
            found = true;
        }
    }
    if (!found)
        return;
    if (b->state == FILLING) {
        b->state = BROKEN;
        changed(b);
    }
    maybe_reopen(b);
}

static void lock_barrier(mp_barrier *b)
{
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    if (mp__lockword_acquire(&b->lock, &forever) == MP_EOWNERDEAD) {
        b->state = BROKEN;
        reap_dead(b);
        changed(b);
    }
}

static void unlock_barrier(mp_barrier *b)
{
    mp__lockword_release(&b->lock);
}

/* With the lock held: sleeps until the state may have changed, or a slice or
 * the deadline ends; returns with the lock held. MP_ETIMEDOUT once d passed. */
static int sleep_on(mp_barrier *b, const mp__deadline *d)
{
    uint32_t s = atomic_load(&b->seq);
    unlock_barrier(b);
    int rc = mp__futex_wait_slice(&b->seq, s, d, MP__DEATH_SLICE_MS);
    lock_barrier(b);
    if (rc == MP_ETIMEDOUT) {
        reap_dead(b);
        if (mp__deadline_passed(d))
            return MP_ETIMEDOUT;
    }
    return 0;
}

int mp_barrier_wait(mp_barrier *b, int timeout_ms)
{
    if (b == NULL || timeout_ms < -1)
        return MP_EINVAL;
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms == -1 ? b->default_timeout_ms : timeout_ms);
    lock_barrier(b);
    while (b->state == DRAINING || b->state == RESETTING) {
        if (sleep_on(b, &d) == MP_ETIMEDOUT && (b->state == DRAINING || b->state == RESETTING)) {
            unlock_barrier(b);
            return MP_ETIMEDOUT;
        }
    }
    if (b->state != BROKEN && count(b) + 1 == b->parties)
        reap_dead(b); /* the last to arrive: a dead party must not pass */
    if (b->state == BROKEN) {
        unlock_barrier(b);
        return MP_EBROKEN;
    }
    int index = (int)count(b);
    uint32_t slot = 0;
    while (b->slots[slot] != 0)
        slot++;
    b->slots[slot] = mp__self_id();

    int rc = index;
    if ((uint32_t)index + 1 == b->parties) {
        if (b->action != NULL && b->action(b->action_arg) != 0) {
            b->state = BROKEN;
            rc = MP_EBROKEN;
        } else {
            b->state = DRAINING;
        }
        changed(b);
    } else {
        while (b->state == FILLING) {
            if (sleep_on(b, &d) == MP_ETIMEDOUT && b->state == FILLING) {
                b->state = BROKEN;
                changed(b);
                rc = MP_ETIMEDOUT;
            }
        }
        if (rc >= 0 && b->state != DRAINING)
            rc = MP_EBROKEN;
    }
    b->slots[slot] = 0;
    maybe_reopen(b);
    unlock_barrier(b);
    return rc;
}

int mp_barrier_reset(mp_barrier *b)
{
    if (b == NULL)
        return MP_EINVAL;
    lock_barrier(b);
    if (count(b) == 0)
        b->state = FILLING;
    else if (b->state == FILLING || b->state == BROKEN)
        b->state = RESETTING;
    changed(b);
    unlock_barrier(b);
    return 0;
}

int mp_barrier_abort(mp_barrier *b)
{
    if (b == NULL)
        return MP_EINVAL;
    lock_barrier(b);
    b->state = BROKEN;
    changed(b);
    unlock_barrier(b);
    return 0;
}

int mp_barrier_parties(mp_barrier *b)
{
    return b == NULL ? MP_EINVAL : (int)b->parties;
}

int mp_barrier_n_waiting(mp_barrier *b)
{
    if (b == NULL)
        return MP_EINVAL;
    lock_barrier(b);
    int n = b->state == FILLING ? (int)count(b) : 0;
    unlock_barrier(b);
    return n;
}

bool mp_barrier_broken(mp_barrier *b)
{
    if (b == NULL)
        return false;
    lock_barrier(b);
    bool broken = b->state == BROKEN;
    unlock_barrier(b);
    return broken;
}

void mp_barrier_destroy(mp_barrier *b)
{
    if (b != NULL && b->creator == mp__self_id())
        mp__shm_free(b);
}
