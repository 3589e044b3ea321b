/* semaphore.c — mp_semaphore: Semaphore and BoundedSemaphore.
 *
 * Shared state and who guards it:
 *   value     the futex word: units available; changed only by CAS (acquire,
 *             release)
 *   nwaiters  how many threads are in (or about to enter) a futex wait on value;
 *             each waiter increments it before its last look at value and
 *             decrements it after waking
 *   max       the largest value: the initial one when bounded, else INT32_MAX;
 *             set once
 *
 * Acquire: CAS value v -> v-1 while v > 0; no system call. Otherwise
 * increment nwaiters, and FUTEX_WAIT on value expecting 0.
 * Release: CAS value v -> v+1 while v < max, then wake one sleeper if
 * nwaiters > 0.
 * Why no wake-up is lost: both sides use sequentially consistent operations, a
 * waiter "nwaiters++ then read value", a releaser "value++ then read nwaiters".
 * Either the releaser sees the waiter and wakes it, or the waiter's read (and
 * then the kernel's own check of value in FUTEX_WAIT) sees the new unit.
 * A process killed while waiting leaves nwaiters one too high: releases then
 * make a needless wake system call, nothing worse.
 */
#include <limits.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/sync.h"
#include "sync/sync.h"

struct mp_semaphore {
    _Atomic uint32_t value;    /* units available; futex word */
    _Atomic uint32_t nwaiters; /* sleepers on value, see above */
    uint32_t max;              /* the initial value if bounded, else INT32_MAX; set once */
    bool bounded;              /* BoundedSemaphore; set once */
    uint64_t creator;          /* mp__self_id of the process that may free it; set once */
};

int mp_semaphore_new(mp_semaphore **out, int value, const mp_semaphore_options *opt)
{
    if (out == NULL || value < 0)
        return MP_EINVAL;
    mp_semaphore *s = mp__shm_alloc(sizeof *s);
    if (s == NULL)
        return MP_ENOMEM;
    atomic_init(&s->value, (uint32_t)value);
    s->bounded = opt != NULL && opt->bounded;
    s->max = s->bounded ? (uint32_t)value : (uint32_t)INT32_MAX;
    s->creator = mp__self_id();
    *out = s;
    return 0;
}

int mp_bounded_semaphore_new(mp_semaphore **out, int value)
{
    return mp_semaphore_new(out, value, &(mp_semaphore_options){.bounded = true});
}

static bool try_take(mp_semaphore *s)
{
    uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    while (v > 0)
        if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
            return true;
    return false;
}

int mp_semaphore_acquire(mp_semaphore *s, int timeout_ms)
{
    if (s == NULL || timeout_ms < -1)
        return MP_EINVAL;
    if (try_take(s))
        return 0;
    if (timeout_ms == 0)
        return MP_ETIMEDOUT;
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    int rc = 0;
    atomic_fetch_add(&s->nwaiters, 1);
    for (;;) {
        if (try_take(s))
            break;
        rc = mp__futex_wait(&s->value, 0, &d);
        if (rc == MP_ETIMEDOUT) {
            rc = try_take(s) ? 0 : MP_ETIMEDOUT;
            break;
        }
        rc = 0;
    }
    atomic_fetch_sub(&s->nwaiters, 1);
    return rc;
}

int mp_semaphore_release(mp_semaphore *s)
{
    if (s == NULL)
        return MP_EINVAL;
    uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    do {
        if (v >= s->max)
            return s->bounded ? MP_EPERM : MP_EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + 1));
    if (atomic_load(&s->nwaiters) > 0)
        mp__futex_wake(&s->value, 1);
    return 0;
}

int mp_semaphore_get_value(mp_semaphore *s)
{
    return s == NULL ? MP_EINVAL : (int)atomic_load(&s->value);
}

void mp_semaphore_destroy(mp_semaphore *s)
{
    if (s != NULL && s->creator == mp__self_id())
        mp__shm_free(s);
}
