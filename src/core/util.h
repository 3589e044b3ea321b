/* core/util.h — small helpers every module shares: deadlines, descriptors.
 * Hidden symbols, prefixed mp__. */
#ifndef MPROC_INTERNAL_UTIL_H
#define MPROC_INTERNAL_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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

/* MP_EINVAL for timeouts below -1; otherwise fills d and returns 0. */
MP__HIDDEN int mp__deadline_init(mp__deadline *d, int timeout_ms);

/* Milliseconds left, rounded up, for poll(): -1 when forever, 0 once passed. */
MP__HIDDEN int mp__deadline_poll_ms(const mp__deadline *d);

/* True once the deadline has passed (never when forever). */
MP__HIDDEN bool mp__deadline_passed(const mp__deadline *d);

/* Time left as a relative timespec for futex waits; false when forever.
 * A deadline that has passed gives {0, 0}. */
MP__HIDDEN bool mp__deadline_left(const mp__deadline *d, struct timespec *left);

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
