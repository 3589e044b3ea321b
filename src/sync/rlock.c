/* rlock.c — mp_rlock: a recursive lock owned by one thread of one process.
 *
 * Shared state and who guards it:
 *   word       the lock word of lock.c: the owning process (| WAITERS)
 *   owner_tid  the owning thread's tid, 0 while free; written only by the owner,
 *              after taking word and before releasing it
 *   count      recursion levels; read and written only by the owner
 *
 * Ownership test: word names our process (pid and start time) and owner_tid is
 * our tid. Only threads of the owning process can pass the first half (not
 * those of a new process given the pid of an owner that died: their start time
 * differs), and among them only the owner can read its own tid in owner_tid: a
 * thread that owned the lock before wrote 0 there (in its own program order)
 * before releasing, so it can never read its tid back once it has released.
 * The uncontended path is the Lock's compare-and-swap plus two plain stores,
 * with no system call.
 *
 * Holder death is detected on word exactly as for a Lock; the taker resets
 * owner_tid and count to its own.
 *
 * The struct is in sync/sync.h so that Value and Array can embed their
 * default lock next to their data (creator with MP__EMBEDDED: not freed by
 * mp_rlock_destroy).
 */
#include "core/arena.h"
#include "mproc/sync.h"
#include "sync/sync.h"

int mp_rlock_new(mp_rlock **out, const mp_rlock_options *opt)
{
    if (out == NULL || (opt != NULL && opt->reserved != 0))
        return MP_EINVAL;
    mp_rlock *rl = mp__shm_alloc(sizeof *rl);
    if (rl == NULL)
        return MP_ENOMEM;
    rl->creator = mp__self_id();
    *out = rl;
    return 0;
}

static bool is_mine(mp_rlock *rl)
{
    return mp__lockword_held_by_self(&rl->word) &&
           atomic_load_explicit(&rl->owner_tid, memory_order_relaxed) == mp__self_tid();
}

static void become_owner(mp_rlock *rl, uint32_t count)
{
    atomic_store_explicit(&rl->owner_tid, mp__self_tid(), memory_order_relaxed);
    rl->count = count;
}

int mp_rlock_acquire(mp_rlock *rl, int timeout_ms)
{
    if (rl == NULL || timeout_ms < -1)
        return MP_EINVAL;
    uint64_t v = 0;
    if (__builtin_expect(atomic_compare_exchange_strong(&rl->word, &v, mp__self_id()), 1)) {
        become_owner(rl, 1);
        return 0;
    }
    if (is_mine(rl)) {
        if (rl->count == UINT32_MAX)
            return MP_EOVERFLOW;
        rl->count++;
        return 0;
    }
    int rc;
    if (timeout_ms == 0) {
        rc = mp__lockword_acquire(&rl->word, NULL);
    } else {
        mp__deadline d;
        mp__deadline_init(&d, timeout_ms);
        rc = mp__lockword_acquire(&rl->word, &d);
    }
    if (rc == 0 || rc == MP_EOWNERDEAD)
        become_owner(rl, 1);
    return rc;
}

int mp_rlock_release(mp_rlock *rl)
{
    if (rl == NULL)
        return MP_EINVAL;
    if (!is_mine(rl))
        return MP_EPERM;
    if (--rl->count > 0)
        return 0;
    atomic_store_explicit(&rl->owner_tid, 0, memory_order_relaxed);
    return mp__lockword_release(&rl->word);
}

unsigned mp_rlock_count(mp_rlock *rl)
{
    return rl != NULL && is_mine(rl) ? rl->count : 0;
}

bool mp_rlock_is_mine(mp_rlock *rl)
{
    return rl != NULL && is_mine(rl);
}

void mp_rlock_destroy(mp_rlock *rl)
{
    if (rl != NULL && rl->creator == mp__self_id())
        mp__shm_free(rl);
}

int mp__rlock_release_all(mp_rlock *rl, unsigned *saved)
{
    if (!is_mine(rl))
        return MP_EPERM;
    *saved = rl->count;
    rl->count = 0;
    atomic_store_explicit(&rl->owner_tid, 0, memory_order_relaxed);
    return mp__lockword_release(&rl->word);
}

int mp__rlock_restore(mp_rlock *rl, unsigned saved)
{
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    int rc = mp__lockword_acquire(&rl->word, &forever);
    become_owner(rl, saved); /* the caller still unwinds all its levels */
    return rc;
}
