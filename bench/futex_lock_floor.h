/* bench/futex_lock_floor.h — the raw floor of the lock cases: the smallest correct
 * process-shared lock, a 32-bit futex word in MAP_SHARED memory (Drepper, "Futexes
 * are tricky", mutex 2: 0 free, 1 held, 2 held and a waiter may sleep). The
 * uncontended path is one CAS to take and one exchange to give back, with no
 * system call, as in mp_lock; a contended acquire sleeps in the kernel at once,
 * as mp_lock does (it does not spin). A pthread mutex is not a floor: its type
 * and robustness checks cost more than mp_lock's whole path.
 * floor_rlock adds what an RLock needs on top: the owner and a recursion count. */
#ifndef MPROC_BENCH_FUTEX_LOCK_FLOOR_H
#define MPROC_BENCH_FUTEX_LOCK_FLOOR_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void floor_futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static inline void floor_lock(_Atomic uint32_t *w)
{
    uint32_t c = 0;
    if (atomic_compare_exchange_strong(w, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(w, 2);
    while (c != 0) {
        floor_futex(w, FUTEX_WAIT, 2);
        c = atomic_exchange(w, 2);
    }
}

static inline void floor_unlock(_Atomic uint32_t *w)
{
    if (atomic_exchange(w, 0) == 2)
        floor_futex(w, FUTEX_WAKE, 1);
}

struct floor_rlock {
    _Atomic uint32_t word;
    _Atomic uint32_t owner; /* the holder's tid, 0 when free */
    uint32_t count;         /* written only by the holder */
};

static inline void floor_rlock_acquire(struct floor_rlock *l, uint32_t me)
{
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) == me) {
        l->count++;
        return;
    }
    floor_lock(&l->word);
    atomic_store_explicit(&l->owner, me, memory_order_relaxed);
    l->count = 1;
}

static inline void floor_rlock_release(struct floor_rlock *l)
{
    if (--l->count == 0) {
        atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
        floor_unlock(&l->word);
    }
}

#endif /* MPROC_BENCH_FUTEX_LOCK_FLOOR_H */
