/* mproc/sync.h — process-shared synchronization, as CPython's multiprocessing
 * Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier.
 *
 *     mp_lock *lock;
 *     mp_lock_new(&lock, NULL);
 *     ... fork children (mp_process_start) ...
 *     if (mp_lock_acquire(lock, -1) >= 0 || ...) { ...; mp_lock_release(lock); }
 *     ... join the children ...
 *     mp_lock_destroy(lock);
 *
 * Where the objects live. Every object is allocated in mproc's shared arena
 * (anonymous MAP_SHARED memory) and the handle is a pointer into it, so a handle
 * created before fork() works unchanged in the parent and in every child forked
 * afterwards, and from any thread of those processes. Unrelated processes cannot
 * share these objects (use a SharedMemory segment and your own protocol).
 *
 * Who frees. The process that created an object frees it with mp_x_destroy; in
 * any other process mp_x_destroy is a no-op, so a child may call it freely (a
 * descendant given the pid of a creator that died is not the creator: processes
 * are known by pid and start time). The creator must destroy an object only
 * when no other process uses it any more (after joining the children that do).
 *
 * Speed. All objects are futexes in the shared memory: acquiring a free lock,
 * releasing a lock nobody waits for, taking a positive semaphore, setting an
 * event nobody waits on are one atomic instruction each and make no system call.
 *
 * Timeouts. Every blocking call takes timeout_ms: -1 waits forever, 0 only tries
 * (MP_ETIMEDOUT at once if it would block), a positive value waits at most that
 * long. Below -1 is MP_EINVAL. Signals do not shorten or lengthen a wait. The
 * one options field, mp_barrier_options.timeout_ms, follows the rule for fields
 * (mproc/timeout.h): 0 or -1 none, MP_TIMEOUT_NOW Python's timeout=0.
 *
 * Error codes common to the whole header:
 *   MP_ETIMEDOUT  the timeout passed (or, with timeout 0, it would have blocked)
 *   MP_EPERM      a release not permitted: an unlocked Lock, an RLock the calling
 *                 thread does not own, a BoundedSemaphore already at its initial
 *                 value, a Condition wait/notify without holding its lock
 *   MP_EOWNERDEAD the lock was acquired (the caller holds it now), but the
 *                 previous holder process died while holding it: the state it
 *                 protects may be half-updated. Treat it as success plus a
 *                 warning; nothing else needs to be done to keep using the lock.
 *   MP_EINVAL     a NULL handle or a bad argument; nothing was changed.
 *
 * Death of a peer (beyond Python). A Lock or RLock whose holder process dies is
 * handed to the next acquirer with MP_EOWNERDEAD, within about 50 ms of the
 * death. A Barrier one of whose waiting parties dies breaks (MP_EBROKEN for the
 * others). Condition and Event waits are not told of deaths: give them a
 * timeout when the peer that would notify or set might die. A death is noticed
 * once the process has ended (also as an unreaped zombie, except on a kernel
 * without pidfds and with /proc unreadable). A process whose main thread
 * called pthread_exit lives on while its other threads run. A process is known
 * by its pid and its start time (from /proc), so a holder whose pid the system
 * has since given to a new process is still seen as dead. A thread that ends
 * while holding a lock, in a process that lives on, keeps the lock held (as in
 * Python).
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "mproc/export.h"
#include "mproc/timeout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Lock ------------------------------------------------------------------
 * A non-recursive lock, as multiprocessing.Lock: any thread of any process may
 * release it, whoever acquired it. A thread acquiring a Lock it already holds
 * blocks (until the timeout). */
typedef struct mp_lock mp_lock;

/* No options yet; pass NULL. */
typedef struct mp_lock_options {
    int reserved; /* must be 0 */
} mp_lock_options;

/* Creates an unlocked Lock. Errors: MP_EINVAL (out NULL), MP_ENOMEM. */
MP_EXTERN int mp_lock_new(mp_lock **out, const mp_lock_options *opt);

/* Acquires the lock, waiting up to timeout_ms. 0 or MP_EOWNERDEAD: the caller
 * holds it. Errors: MP_ETIMEDOUT, MP_EINVAL. The uncontended path makes no
 * system call. Thread- and fork-safe. */
MP_EXTERN int mp_lock_acquire(mp_lock *lock, int timeout_ms);

/* Releases the lock, from any thread of any process, and wakes one waiter if
 * someone waits (only then does it enter the kernel).
 * Errors: MP_EPERM (the lock was not locked), MP_EINVAL. */
MP_EXTERN int mp_lock_release(mp_lock *lock);

/* Whether the lock is held right now (by anyone). A snapshot. */
MP_EXTERN bool mp_lock_locked(mp_lock *lock);

/* Frees the lock in the creating process (a no-op in any other). NULL is
 * accepted. No process may use the lock afterwards. */
MP_EXTERN void mp_lock_destroy(mp_lock *lock);

/* ---- RLock -----------------------------------------------------------------
 * A recursive lock, as multiprocessing.RLock: owned by one thread of one
 * process, which may acquire it again; it is free once released as many times
 * as acquired. Only the owning thread may release it. */
typedef struct mp_rlock mp_rlock;

typedef struct mp_rlock_options {
    int reserved; /* must be 0 */
} mp_rlock_options;

/* Creates an unowned RLock. Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_rlock_new(mp_rlock **out, const mp_rlock_options *opt);

/* Acquires the lock or, for its owner, adds one level of recursion (at once).
 * 0 or MP_EOWNERDEAD (the previous owner's process died; the count restarts at
 * 1): the caller owns it. Errors: MP_ETIMEDOUT, MP_EOVERFLOW (2^32-1 levels),
 * MP_EINVAL. */
MP_EXTERN int mp_rlock_acquire(mp_rlock *rlock, int timeout_ms);

/* Removes one level of recursion; the last one frees the lock and wakes one
 * waiter if any. Errors: MP_EPERM (the calling thread does not own it),
 * MP_EINVAL. */
MP_EXTERN int mp_rlock_release(mp_rlock *rlock);

/* The recursion count when the calling thread owns the lock, else 0. */
MP_EXTERN unsigned mp_rlock_count(mp_rlock *rlock);

/* Whether the calling thread owns the lock. */
MP_EXTERN bool mp_rlock_is_mine(mp_rlock *rlock);

/* Frees it in the creating process (no-op elsewhere). NULL is accepted. */
MP_EXTERN void mp_rlock_destroy(mp_rlock *rlock);

/* ---- Semaphore, BoundedSemaphore -------------------------------------------
 * A counter that acquire decrements, waiting while it is 0, and release
 * increments. A bounded semaphore refuses to go above its initial value. No
 * process owns a semaphore, so the death of a process that took one is not
 * detected: a taken unit stays taken. */
typedef struct mp_semaphore mp_semaphore;

typedef struct mp_semaphore_options {
    bool bounded; /* BoundedSemaphore: release past the initial value is MP_EPERM */
} mp_semaphore_options;

/* Creates a semaphore with the given value (Python's default is 1).
 * Errors: MP_EINVAL (out NULL, value < 0 or > INT32_MAX), MP_ENOMEM. */
MP_EXTERN int mp_semaphore_new(mp_semaphore **out, int value, const mp_semaphore_options *opt);

/* Shorthand for mp_semaphore_new with .bounded = true. */
MP_EXTERN int mp_bounded_semaphore_new(mp_semaphore **out, int value);

/* Decrements the value, waiting up to timeout_ms while it is 0.
 * Errors: MP_ETIMEDOUT, MP_EINVAL. No system call when the value is positive. */
MP_EXTERN int mp_semaphore_acquire(mp_semaphore *sem, int timeout_ms);

/* Increments the value and wakes one waiter if someone waits.
 * Errors: MP_EPERM (bounded, already at its initial value), MP_EOVERFLOW (at
 * INT32_MAX), MP_EINVAL. */
MP_EXTERN int mp_semaphore_release(mp_semaphore *sem);

/* The current value (a snapshot), or MP_EINVAL. */
MP_EXTERN int mp_semaphore_get_value(mp_semaphore *sem);

/* Frees it in the creating process (no-op elsewhere). NULL is accepted. */
MP_EXTERN void mp_semaphore_destroy(mp_semaphore *sem);

/* ---- Condition -------------------------------------------------------------
 * A condition variable bound to a Lock or an RLock (its own RLock by default),
 * as multiprocessing.Condition. wait and notify require the caller to hold the
 * lock (for an RLock: to own it; for a Lock: that it is held by the calling
 * process). As with pthread_cond_wait, a wait may return 0 without a notify;
 * re-check the condition, or use mp_condition_wait_for. */
typedef struct mp_condition mp_condition;

typedef struct mp_condition_options {
    /* At most one of the two: the lock the condition uses (not owned by the
     * condition: destroy it yourself after the condition). Both NULL: a new
     * RLock, owned and destroyed by the condition. */
    mp_lock *lock;
    mp_rlock *rlock;
} mp_condition_options;

/* Errors: MP_EINVAL (out NULL, or both lock and rlock given), MP_ENOMEM. */
MP_EXTERN int mp_condition_new(mp_condition **out, const mp_condition_options *opt);

/* Acquire and release the condition's lock (as the lock's own functions do). */
MP_EXTERN int mp_condition_acquire(mp_condition *cond, int timeout_ms);
MP_EXTERN int mp_condition_release(mp_condition *cond);

/* Releases the lock (every recursion level of an RLock), sleeps until notified
 * or timeout_ms passes, and takes the lock back (waiting as long as that needs)
 * before it returns, in every case. 0: notified (or a spurious wake-up);
 * MP_ETIMEDOUT: the time passed; MP_EOWNERDEAD: the lock was taken back from a
 * holder that died (the caller holds it). Errors: MP_EPERM (lock not held by the
 * caller: nothing was done), MP_EINVAL. */
MP_EXTERN int mp_condition_wait(mp_condition *cond, int timeout_ms);

/* True when the caller's condition holds. */
typedef bool (*mp_predicate)(void *arg);

/* Waits until predicate(arg) is true, calling it with the lock held: at once,
 * then after every wake-up. 0: the predicate is true; MP_ETIMEDOUT: it was still
 * false when timeout_ms passed; MP_EOWNERDEAD: as mp_condition_wait, returned at
 * once (the predicate is not called again). Errors: MP_EPERM, MP_EINVAL. */
MP_EXTERN int mp_condition_wait_for(mp_condition *cond, mp_predicate predicate, void *arg,
                                    int timeout_ms);

/* Wakes up to n waiters (n >= 0; Python's default is 1). Makes no system call
 * when nobody waits. Errors: MP_EPERM (lock not held by the caller), MP_EINVAL. */
MP_EXTERN int mp_condition_notify(mp_condition *cond, int n);

/* Wakes every waiter. Errors: MP_EPERM, MP_EINVAL. */
MP_EXTERN int mp_condition_notify_all(mp_condition *cond);

/* Frees it (and the RLock it created) in the creating process; no-op elsewhere.
 * NULL is accepted. */
MP_EXTERN void mp_condition_destroy(mp_condition *cond);

/* ---- Event -----------------------------------------------------------------
 * A flag that processes wait for, as multiprocessing.Event. */
typedef struct mp_event mp_event;

typedef struct mp_event_options {
    int reserved; /* must be 0 */
} mp_event_options;

/* Creates a cleared event. Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_event_new(mp_event **out, const mp_event_options *opt);

/* Sets the flag and wakes every waiter; no system call when nobody waits. */
MP_EXTERN int mp_event_set(mp_event *ev);

/* Clears the flag. */
MP_EXTERN int mp_event_clear(mp_event *ev);

/* Whether the flag is set (a snapshot). */
MP_EXTERN bool mp_event_is_set(mp_event *ev);

/* Waits up to timeout_ms for the flag to be set. 0: it is (or was, when the
 * waiter woke) set. Errors: MP_ETIMEDOUT, MP_EINVAL. */
MP_EXTERN int mp_event_wait(mp_event *ev, int timeout_ms);

/* Frees it in the creating process (no-op elsewhere). NULL is accepted. */
MP_EXTERN void mp_event_destroy(mp_event *ev);

/* ---- Barrier ---------------------------------------------------------------
 * parties processes (or threads) wait until all have arrived, then all go on,
 * as multiprocessing.Barrier. The barrier can be used again at once. It breaks
 * (every waiter gets MP_EBROKEN, and so does every later wait until reset) when
 * a waiter times out, when abort is called, when the action fails, or when a
 * waiting party's process dies. */
typedef struct mp_barrier mp_barrier;

/* Run by the last party to arrive, before the others are released, in that
 * party's process, while the barrier's internal lock is held: it must not call
 * mp_barrier_* functions on the same barrier. Non-zero breaks the barrier. */
typedef int (*mp_barrier_action)(void *arg);

typedef struct mp_barrier_options {
    mp_barrier_action action; /* NULL: none */
    void *action_arg;
    /* The timeout of a mp_barrier_wait called with -1, in ms. 0 (the default) or
     * -1: none, such a wait may wait forever (Python's timeout=None);
     * MP_TIMEOUT_NOW: Python's timeout=0, a wait(-1) that does not complete the
     * barrier at once times out and breaks it. A party that
     * dies before it reaches the barrier cannot be told from a slow one, so set
     * this when parties may die. */
    int timeout_ms;
} mp_barrier_options;

/* Errors: MP_EINVAL (out NULL, parties < 1, timeout_ms below -1 and not
 * MP_TIMEOUT_NOW), MP_ENOMEM. */
MP_EXTERN int mp_barrier_new(mp_barrier **out, int parties, const mp_barrier_options *opt);

/* Waits for all parties. Returns the arrival index, 0 for the first party to
 * arrive up to parties-1 for the last, which ran the action. timeout_ms -1
 * means the barrier's default timeout (options.timeout_ms), which is forever
 * unless set. Errors: MP_EBROKEN (the barrier is or became broken, or was reset
 * while waiting), MP_ETIMEDOUT (this caller timed out: it broke the barrier for
 * the others; or it timed out before it could enter, while the previous round
 * was still leaving, which breaks nothing), MP_EINVAL. */
MP_EXTERN int mp_barrier_wait(mp_barrier *b, int timeout_ms);

/* Returns the barrier to its empty state; parties waiting now get MP_EBROKEN. */
MP_EXTERN int mp_barrier_reset(mp_barrier *b);

/* Breaks the barrier: current and later waits get MP_EBROKEN until reset. */
MP_EXTERN int mp_barrier_abort(mp_barrier *b);

/* The number of parties given to mp_barrier_new. */
MP_EXTERN int mp_barrier_parties(mp_barrier *b);

/* How many parties are waiting now (0 while the barrier is broken or releasing). */
MP_EXTERN int mp_barrier_n_waiting(mp_barrier *b);

/* Whether the barrier is broken. */
MP_EXTERN bool mp_barrier_broken(mp_barrier *b);

/* Frees it in the creating process (no-op elsewhere). NULL is accepted. */
MP_EXTERN void mp_barrier_destroy(mp_barrier *b);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SYNC_H */
