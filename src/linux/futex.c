/* linux/futex.c — the futex system call. Waits use FUTEX_WAIT_BITSET with an
 * absolute CLOCK_MONOTONIC deadline, so a wait resumed after a signal keeps the
 * caller's original deadline without recomputing anything. */
#include <linux/futex.h>
#include <sys/syscall.h>

#include "linux/futex.h"

int mp__futex_wait(_Atomic uint32_t *word, uint32_t expected, const mp__deadline *d)
{
    const struct timespec *at = d->forever ? NULL : &d->at;
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected, at, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case EAGAIN:
        return MP_EAGAIN;
    case ETIMEDOUT:
        return MP_ETIMEDOUT;
    case EINTR:
        return MP_EINTR;
    default:
        return -errno;
    }
}

int mp__futex_wake(_Atomic uint32_t *word, int n)
{
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? -errno : (int)r;
}
