/* event.c — mp_event: a flag processes wait for.
 *
 * Shared state and who guards it:
 *   flag      futex word, 0 or 1; set by exchange, cleared by store
 *   nwaiters  threads in (or about to enter) a wait; ++ before their last look
 *             at flag, -- after waking
 *
 * Set: exchange flag with 1; if it was 0 and nwaiters > 0, FUTEX_WAKE all.
 * Wait: if flag is 1, return. Else spin briefly (MP__SPINS) watching flag,
 * then nwaiters++ and FUTEX_WAIT on flag expecting 0 until flag is 1 or the
 * deadline passes; nwaiters--.
 * Sequentially consistent operations on both sides ("flag then nwaiters" in
 * set, "nwaiters then flag" in wait) mean that either set sees the waiter and
 * wakes it, or the waiter (or the kernel's check inside FUTEX_WAIT) sees 1.
 * A waiter sees the event as set if flag was 1 at any moment it looked: a set
 * quickly followed by a clear still wakes the sleepers, but they then find 0
 * and sleep again, as Python's Event does between set and clear.
 */
#include <limits.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/sync.h"
#include "sync/sync.h"

struct mp_event {
    _Atomic uint32_t flag;     /* 0 or 1; futex word */
    _Atomic uint32_t nwaiters; /* waiters, see above */
    uint64_t creator;          /* mp__self_id of the process that may free it; set once */
};

int mp_event_new(mp_event **out, const mp_event_options *opt)
{
    if (out == NULL || (opt != NULL && opt->reserved != 0))
        return MP_EINVAL;
    mp_event *ev = mp__shm_alloc(sizeof *ev);
    if (ev == NULL)
        return MP_ENOMEM;
    ev->creator = mp__self_id();
    *out = ev;
    return 0;
}

int mp_event_set(mp_event *ev)
{
    if (ev == NULL)
        return MP_EINVAL;
    if (atomic_exchange(&ev->flag, 1) == 0 && atomic_load(&ev->nwaiters) > 0)
        mp__futex_wake(&ev->flag, INT_MAX);
    return 0;
}

int mp_event_clear(mp_event *ev)
{
    if (ev == NULL)
        return MP_EINVAL;
    atomic_store(&ev->flag, 0);
    return 0;
}

bool mp_event_is_set(mp_event *ev)
{
    return ev != NULL && atomic_load(&ev->flag) != 0;
}

int mp_event_wait(mp_event *ev, int timeout_ms)
{
    if (ev == NULL || timeout_ms < -1)
        return MP_EINVAL;
    if (atomic_load(&ev->flag) != 0)
        return 0;
    if (timeout_ms == 0)
        return MP_ETIMEDOUT;
    for (int i = 0; i < MP__SPINS; i++) {
        mp__cpu_relax();
        if (atomic_load(&ev->flag) != 0)
            return 0;
    }
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    int rc = MP_ETIMEDOUT;
    atomic_fetch_add(&ev->nwaiters, 1);
    while (atomic_load(&ev->flag) == 0) {
        int r = mp__futex_wait(&ev->flag, 0, &d);
        if (r == MP_ETIMEDOUT)
            break;
    }
    if (atomic_load(&ev->flag) != 0)
        rc = 0;
    atomic_fetch_sub(&ev->nwaiters, 1);
    return rc;
}

void mp_event_destroy(mp_event *ev)
{
    if (ev != NULL && ev->creator == mp__self_id())
        mp__shm_free(ev);
}
