/* lock.c — mp_lock, and the lock word that RLock, Condition and Barrier build on.
 *
 * The lock word is 64 bits in shared memory whose low half is a futex word:
 *   0                              unlocked
 *   tag << 32 | pid                held by (some thread of) process pid; nobody
 *                                  sleeps on it
 *   tag << 32 | pid | WAITERS      held, and a waiter may be asleep in the kernel
 * pid fits in MP__LOCK_PID_MASK (the kernel caps pid_max at 2^22). tag is the
 * low half of the holder's start time (mp__self_id), so that a holder whose pid
 * the system has given to a new process is still recognized as dead. Holder
 * and tag change together, in one atomic operation: a waiter never sees a pid
 * with another process's tag.
 *
 * Acquire: compare-and-swap 0 -> id. That is the whole uncontended path: no
 * system call (the id comes from a per-thread cache). On failure the acquirer
 * sets the WAITERS bit (CAS v -> v|WAITERS) and sleeps with FUTEX_WAIT on the low
 * half expecting low(v|WAITERS); woken, it retries, now taking the word with
 * CAS 0 -> id|WAITERS, since other sleepers may remain and the next release
 * must wake one of them (Drepper, "Futexes are tricky", mutex 2). The kernel
 * compares only the low half, which changes whenever the holder changes.
 * There is no spinning before the sleep: a spinner takes the lock the moment it
 * is released, so two busy processes pass the lock's cache line back and forth
 * at every acquire; sleeping lets the holder run on, and measured twice as fast
 * (bench value_locked_increment_2proc), as fast as a pthread mutex.
 *
 * Release: exchange the word with 0; if the old value had WAITERS, FUTEX_WAKE
 * one sleeper. Only then does release enter the kernel. An old value of 0 means
 * the lock was not held: MP_EPERM, and the word is unchanged (it was 0). Any
 * process may release (Python's Lock is not owned), so release does not look at
 * the holder.
 *
 * Holder death: the kernel's robust-futex list belongs to the C library, so it is
 * not used. Instead a sleeper never sleeps longer than MP__DEATH_SLICE_MS; after
 * each slice that ends without a wake-up (and before a try or a timed wait gives
 * up) it asks whether the holder in the word is still alive (mp__id_alive). If
 * that process has ended, it takes the word over with CAS v -> id|WAITERS (v the
 * value it saw, naming the dead holder): exactly one waiter wins, the others see
 * a new value and go on waiting. The winner returns MP_EOWNERDEAD. A holder
 * with the waiter's own pid is alive only if its start time is the waiter's too
 * (else it is an earlier process that had the pid and died). A holder that
 * died inside release after clearing the word but before waking is covered too:
 * sleepers wake at the end of their slice, see 0 and take the lock.
 *
 * Ordering: every CAS and the exchange are sequentially consistent, so what the
 * holder wrote before release is visible to the next acquirer.
 */
#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/sync.h"
#include "sync/sync.h"

struct mp_lock {
    mp__lockword word; /* the lock word: see above */
    uint64_t creator;  /* mp__self_id of the process that may free it; set once */
};

/* ---- the lock word --------------------------------------------------------- */

/* The holder this thread last found alive, and when (mp__now_ns). A try (no
 * deadline) that meets the same holder again within MP__DEATH_SLICE_MS trusts
 * that answer instead of asking the kernel again (pidfd_open, poll, and a read
 * of /proc/<pid>/stat for the start time: six system calls), so a loop of tries
 * on a busy lock costs a compare-and-swap and a clock read per try. A dead
 * holder is still noticed within a slice of its death, as a sleeping waiter
 * notices it. Waits with a deadline always ask: they slept first. Fork copies
 * the cache with the thread; what it says stays true in the child. */
static MP__TLS mp__proc_id alive_holder;
static MP__TLS uint64_t alive_since_ns;

/* If the holder recorded in v has ended, takes the word over (true). A holder
 * with our pid but another start time is an earlier process, dead. trust_recent:
 * a holder this thread found alive less than a slice ago counts as alive. */
static bool take_from_dead(mp__lockword *w, uint64_t v, uint64_t me, bool trust_recent)
{
    uint64_t holder = v & ~(uint64_t)MP__LOCK_WAITERS;
    if ((v & MP__LOCK_PID_MASK) == 0 || holder == me)
        return false;
    if (trust_recent && holder == alive_holder &&
        mp__now_ns() - alive_since_ns < (uint64_t)MP__DEATH_SLICE_MS * 1000000)
        return false;
    if (mp__id_alive(holder)) {
        alive_holder = holder;
        alive_since_ns = mp__now_ns();
        return false;
    }
    return atomic_compare_exchange_strong(w, &v, me | MP__LOCK_WAITERS);
}

int mp__lockword_acquire(mp__lockword *w, const mp__deadline *d)
{
    uint64_t me = mp__self_id();
    uint64_t v = 0;
    if (atomic_compare_exchange_strong(w, &v, me))
        return 0;
    if (d == NULL)
        return take_from_dead(w, v, me, true) ? MP_EOWNERDEAD : MP_ETIMEDOUT;
    for (;;) {
        v = atomic_load(w);
        if (v == 0) {
            if (atomic_compare_exchange_strong(w, &v, me | MP__LOCK_WAITERS))
                return 0;
            continue;
        }
        if ((v & MP__LOCK_WAITERS) == 0) {
            if (!atomic_compare_exchange_strong(w, &v, v | MP__LOCK_WAITERS))
                continue;
            v |= MP__LOCK_WAITERS;
        }
        if (mp__futex_wait_slice(mp__lockword_futex(w), (uint32_t)v, d, MP__DEATH_SLICE_MS) ==
            MP_ETIMEDOUT) {
            if (take_from_dead(w, v, me, false))
                return MP_EOWNERDEAD;
            if (mp__deadline_passed(d))
                return MP_ETIMEDOUT;
        }
    }
}

int mp__lockword_release(mp__lockword *w)
{
    uint64_t old = atomic_exchange(w, 0);
    if (old == 0)
        return MP_EPERM;
    if (old & MP__LOCK_WAITERS)
        mp__futex_wake(mp__lockword_futex(w), 1);
    return 0;
}

/* ---- mp_lock --------------------------------------------------------------- */

int mp_lock_new(mp_lock **out, const mp_lock_options *opt)
{
    if (out == NULL || (opt != NULL && opt->reserved != 0))
        return MP_EINVAL;
    mp_lock *lock = mp__shm_alloc(sizeof *lock);
    if (lock == NULL)
        return MP_ENOMEM;
    lock->creator = mp__self_id();
    *out = lock;
    return 0;
}

int mp_lock_acquire(mp_lock *lock, int timeout_ms)
{
    if (lock == NULL || timeout_ms < -1)
        return MP_EINVAL;
    uint64_t v = 0;
    if (__builtin_expect(atomic_compare_exchange_strong(&lock->word, &v, mp__self_id()), 1))
        return 0;
    if (timeout_ms == 0)
        return mp__lockword_acquire(&lock->word, NULL);
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    return mp__lockword_acquire(&lock->word, &d);
}

int mp_lock_release(mp_lock *lock)
{
    if (lock == NULL)
        return MP_EINVAL;
    return mp__lockword_release(&lock->word);
}

bool mp_lock_locked(mp_lock *lock)
{
    return lock != NULL && atomic_load(&lock->word) != 0;
}

void mp_lock_destroy(mp_lock *lock)
{
    if (lock != NULL && lock->creator == mp__self_id())
        mp__shm_free(lock);
}

mp__lockword *mp__lock_word(mp_lock *lock)
{
    return &lock->word;
}
