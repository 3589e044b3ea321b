/* core/util.h — small helpers every module shares, one copy of each: deadlines
 * and timespec comparison, the futex sleep slice, the spin-wait pause, the
 * advance of an iovec after a short write, the argv copier, descriptors.
 * Hidden symbols, prefixed mp__. */
#ifndef MPROC_INTERNAL_UTIL_H
#define MPROC_INTERNAL_UTIL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mproc/error.h"

#define MP__HIDDEN __attribute__((visibility("hidden")))

/* An absolute CLOCK_MONOTONIC deadline made from a public timeout_ms argument.
 * forever: timeout_ms was -1. A wait interrupted by a signal recomputes the time
 * left from the deadline, so the total wait never exceeds timeout_ms. */
typedef struct mp__deadline {
    struct timespec at;
    bool forever;
} mp__deadline;

/* d->at = now + timeout_ms (> 0); mp__deadline_init's out-of-line part. */
MP__HIDDEN void mp__deadline_from_now(mp__deadline *d, int timeout_ms);

/* MP_EINVAL for timeouts below -1; otherwise fills d and returns 0. Timeouts -1
 * and 0, the common cases of hot paths, do not read the clock: 0 gives the
 * deadline {0, 0}, which has always passed (see mp__deadline_is_now). Inline,
 * so that a queue's put and get make no call for them. */
static inline int mp__deadline_init(mp__deadline *d, int timeout_ms)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    d->forever = timeout_ms == -1;
    if (timeout_ms <= 0)
        d->at = (struct timespec){0, 0};
    else
        mp__deadline_from_now(d, timeout_ms);
    return 0;
}

/* True for the deadline of timeout 0: check once, never spin or sleep. */
static inline bool mp__deadline_is_now(const mp__deadline *d)
{
    return !d->forever && d->at.tv_sec == 0 && d->at.tv_nsec == 0;
}

/* True when a is earlier than b. */
static inline bool mp__timespec_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Milliseconds left, rounded up, for poll(): -1 when forever, 0 once passed. */
MP__HIDDEN int mp__deadline_poll_ms(const mp__deadline *d);

/* True once the deadline has passed (never when forever). */
MP__HIDDEN bool mp__deadline_passed(const mp__deadline *d);

/* Time left as a relative timespec for futex waits; false when forever.
 * A deadline that has passed gives {0, 0}. */
MP__HIDDEN bool mp__deadline_left(const mp__deadline *d, struct timespec *left);

/* Sleeps on the futex word w while *w == expected, at most slice_ms and at most
 * until d: the way every waiter that must look around now and then (for a dead
 * peer, a wake-up lost with its waker) sleeps. 0: woken or *w changed (the
 * caller re-checks); MP_ETIMEDOUT: the slice or the deadline ended
 * (mp__deadline_passed tells which). Signals are absorbed. */
MP__HIDDEN int mp__futex_wait_slice(_Atomic uint32_t *w, uint32_t expected, const mp__deadline *d,
                                    unsigned slice_ms);

/* One round of a spin-wait: the CPU's pause hint (nothing where there is none). */
#if defined(__x86_64__) || defined(__i386__)
#define mp__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define mp__cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define mp__cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

/* After a write of `written` bytes from (*iov)[0..*n): drops the iovecs written
 * whole and moves the first partly written one past its written bytes, so that
 * *iov, *n is what is left to write (*n becomes 0 when all was written). */
MP__HIDDEN void mp__iov_advance(struct iovec **iov, int *n, size_t written);

/* A NULL-terminated copy of the NULL-terminated v in one allocation (pointers,
 * then strings), with extra_front NULL slots before the copied pointers for the
 * caller to fill; free() releases it. NULL when out of memory. */
MP__HIDDEN char **mp__strv_copy(const char *const *v, size_t extra_front);

/* CLOCK_MONOTONIC now, in nanoseconds. */
MP__HIDDEN uint64_t mp__now_ns(void);

/* close() that keeps errno and accepts -1; EINTR on close is not retried (Linux
 * has already released the descriptor). */
MP__HIDDEN void mp__close_fd(int fd);

/* poll() a single descriptor for events until the deadline, retrying EINTR.
 * 1: ready (revents in *revents), MP_ETIMEDOUT, or a negative errno. */
MP__HIDDEN int mp__poll_one(int fd, short events, const mp__deadline *d, short *revents);

/* Reaps child pid if it has ended, never blocking (EINTR retried). True once
 * reaped, with *code set as Python reports it: the exit status, or -N after
 * signal N; 255 when the status was lost because something else reaped the child
 * (a waitpid(-1) of the program's own, or SIGCHLD ignored). False while it runs. */
MP__HIDDEN bool mp__reap_nohang(pid_t pid, int *code);

/* As mp__reap_nohang, but a status that is lost (the pid is no longer a child
 * to wait for: reaped elsewhere, or SIGCHLD ignored) is reported as lost_code. */
MP__HIDDEN bool mp__reap_nohang_lost(pid_t pid, int *code, int lost_code);

#endif /* MPROC_INTERNAL_UTIL_H */
