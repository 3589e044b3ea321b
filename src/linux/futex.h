/* linux/futex.h — futex waits and wakes on 32-bit words in shared memory.
 * The words may live in MAP_SHARED memory used by several processes, so these
 * are the shared (not FUTEX_PRIVATE) operations. */
#ifndef MPROC_INTERNAL_FUTEX_H
#define MPROC_INTERNAL_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/util.h"

/* Sleeps while *word == expected, until woken or the deadline passes.
 * 0: woken (or spurious: the caller re-checks its condition); MP_EAGAIN: *word
 * was no longer expected; MP_ETIMEDOUT: the deadline passed; MP_EINTR: a signal
 * handler ran (the caller re-checks and waits again with the same deadline). */
MP__HIDDEN int mp__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mp__deadline *d);

/* Wakes up to n waiters on word (INT32_MAX: all). Returns how many woke. */
MP__HIDDEN int mp__futex_wake(_Atomic uint32_t *word, int n);

#endif /* MPROC_INTERNAL_FUTEX_H */
