/* sync/sync.h — pieces the synchronization primitives share: the
 * process-shared lock word behind Lock, RLock, Condition and Barrier, and the
 * slice (MP__DEATH_SLICE_MS) their waits are cut into with mp__futex_wait_slice
 * (core/util.h), so that a waiter can look for dead peers.
 *
 * The lock word (64 bits in shared memory; its low half is the futex word):
 *   0                                unlocked
 *   tag << 32 | pid                  locked by process pid, nobody sleeps on it
 *   tag << 32 | pid | WAITERS        locked, and someone may sleep on it
 * tag identifies the holder's incarnation of pid (mp__self_id, core/identity.h).
 * See lock.c for the protocol. */
#ifndef MPROC_INTERNAL_SYNC_H
#define MPROC_INTERNAL_SYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/identity.h"
#include "core/util.h"

#define MP__LOCK_WAITERS 0x80000000u
#define MP__LOCK_PID_MASK MP__ID_PID_MASK

typedef _Atomic uint64_t mp__lockword;

/* The low half of a lock word, which futex calls wait and wake on. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define mp__lockword_futex(w) ((_Atomic uint32_t *)((char *)(w) + 4))
#else
#define mp__lockword_futex(w) ((_Atomic uint32_t *)(w))
#endif

/* How long an Event waiter spins before it sleeps in the kernel: a hand-off
 * from a process running on another CPU then costs no system call on either
 * side. Each round is one pause instruction (about 5-40 ns depending on the
 * CPU; mp__cpu_relax, core/util.h). Locks do not spin (see lock.c). */
#define MP__SPINS 100

/* How long a waiter that must watch for dead peers sleeps before it looks again. */
#define MP__DEATH_SLICE_MS 50

/* Takes the lock word for the calling process. 0: taken; MP_EOWNERDEAD: taken
 * from a holder that died; MP_ETIMEDOUT: the deadline passed (d NULL: do not
 * block at all). Public acquires inline a first compare-and-swap before this. */
MP__HIDDEN int mp__lockword_acquire(mp__lockword *w, const mp__deadline *d);

/* Releases the lock word whoever holds it; wakes one sleeper if any.
 * MP_EPERM when it was not locked. */
MP__HIDDEN int mp__lockword_release(mp__lockword *w);

/* Whether the calling process holds the lock word: its pid and its start time
 * are both ours. The pid alone is not enough: a process that had our pid
 * before us may have died holding the word, and then nobody holds it. */
static inline bool mp__lockword_held_by_self(mp__lockword *w)
{
    return (atomic_load_explicit(w, memory_order_relaxed) & ~(uint64_t)MP__LOCK_WAITERS) ==
           mp__self_id();
}

struct mp_lock;

/* Bit 31 of a creator field: the object is embedded in another one, which
 * frees it (the bit is never set in a process id, see MP__LOCK_PID_MASK). */
#define MP__EMBEDDED ((uint64_t)MP__LOCK_WAITERS)

/* An RLock (rlock.c). A zeroed one is a free RLock. A creator with
 * MP__EMBEDDED (or 0) marks one embedded in another object, which
 * mp_rlock_destroy leaves alone (that object may keep its own creator there,
 * with MP__EMBEDDED set). */
struct mp_rlock {
    mp__lockword word;       /* lock word (lock.c): the owning process */
    _Atomic pid_t owner_tid; /* owning thread, 0 while free; written by the owner */
    uint32_t count;          /* recursion levels; owner only */
    uint64_t creator;        /* mp__self_id of the process that may free it
                                (pid and start time); MP__EMBEDDED; set once */
};

/* The lock word inside a Lock (for Condition). */
MP__HIDDEN mp__lockword *mp__lock_word(struct mp_lock *lock);

/* For Condition: if the calling thread owns rl, frees it completely and stores
 * its recursion count in *saved (0); else MP_EPERM. */
MP__HIDDEN int mp__rlock_release_all(struct mp_rlock *rl, unsigned *saved);

/* Takes rl back for the calling thread with the saved count, waiting forever.
 * 0 or MP_EOWNERDEAD. */
MP__HIDDEN int mp__rlock_restore(struct mp_rlock *rl, unsigned saved);

#endif /* MPROC_INTERNAL_SYNC_H */
