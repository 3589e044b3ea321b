/* tests/harness.h — the test runner every tests/test_*.c links with.
 *
 *     TEST(queue_get_times_out_when_empty) { ... CHECK_RC(MP_ETIMEDOUT, mp_queue_get(...)); }
 *
 * CMake finds each TEST(name) line and registers "<file>.<name>" with CTest, which
 * runs `test_<file> <name>`: one test, one process, one time limit. After the test
 * body returns, the runner fails the test if it left a child process (running or
 * zombie), a descriptor that was not open before, or a new /dev/shm entry.
 *
 * A failed CHECK prints both sides and exits the process with status 1, so a
 * CHECK in a forked helper child makes that child's exit code non-zero.
 */
#ifndef MPROC_TESTS_HARNESS_H
#define MPROC_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h" /* MP__TSAN */
#include "mproc.h"

typedef void (*th_test_fn)(void);
void th_register(const char *name, th_test_fn fn);
_Noreturn void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A test that cannot set up its stage (no root, no python3.13, ...) calls SKIP
 * with the reason: the reason is printed and the process exits with
 * TH_SKIP_CODE, which CTest reports as skipped (SKIP_RETURN_CODE), never passed. */
#define TH_SKIP_CODE 77
_Noreturn void th_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define SKIP(...) th_skip(__VA_ARGS__)

/* The one mark for tests not written for ThreadSanitizer (make tsan): the test
 * skips itself there, printing why. Reasons in use: threads started in a child
 * forked from a multi-threaded process (TSan does not support it), a child that
 * may make no system call at all (TSan's runtime makes its own), pid-reuse
 * staging in a pid namespace (thousands of forks, each copying TSan's state),
 * gigabytes of shared memory touched (TSan shadows each byte). */
#define SKIP_UNDER_TSAN(reason)                                                                    \
    do {                                                                                           \
        if (MP__TSAN)                                                                              \
            SKIP("not run under ThreadSanitizer: %s", reason);                                     \
    } while (0)

/* The mark for tests that fork while another thread of the test allocates, and
 * whose child then allocates: the AddressSanitizer allocator of gcc 12 (make
 * sanitize) takes no lock around fork, so such a child can hang in malloc on a
 * lock the other thread held (seen with plain malloc/free and no mproc code). */
#define SKIP_UNDER_ASAN(reason)                                                                    \
    do {                                                                                           \
        if (MP__ASAN)                                                                              \
            SKIP("not run under AddressSanitizer: %s", reason);                                    \
    } while (0)

/* The test binary's own path, for tests that run it again as a helper. */
extern const char *th_argv0;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        th_register(#name, test_##name);                                                           \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            th_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                                \
    } while (0)

/* expr returns an mproc code; it must equal expected exactly. */
#define CHECK_RC(expected, expr)                                                                   \
    do {                                                                                           \
        int th_e_ = (expected), th_g_ = (expr);                                                    \
        if (th_e_ != th_g_)                                                                        \
            th_fail(__FILE__, __LINE__, "%s: expected %s (%d), got %s (%d): %s", #expr,            \
                    mp_err_name(th_e_), th_e_, mp_err_name(th_g_), th_g_, mp_strerror(th_g_));     \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(0, expr)

#define CHECK_EQ(expected, actual)                                                                 \
    do {                                                                                           \
        long long th_e_ = (long long)(expected), th_g_ = (long long)(actual);                      \
        if (th_e_ != th_g_)                                                                        \
            th_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #actual, th_e_, th_g_);     \
    } while (0)

#define CHECK_STR(expected, actual)                                                                \
    do {                                                                                           \
        const char *th_e_ = (expected), *th_g_ = (actual);                                         \
        if (th_g_ == NULL || strcmp(th_e_, th_g_) != 0)                                            \
            th_fail(__FILE__, __LINE__, "%s: expected \"%s\", got \"%s\"", #actual, th_e_,         \
                    th_g_ ? th_g_ : "(null)");                                                     \
    } while (0)

/* Milliseconds of CLOCK_MONOTONIC, for tests that check that something waited. */
uint64_t th_now_ms(void);

/* Sleeps ms milliseconds, resuming after signals. */
void th_sleep_ms(unsigned ms);

/* Forks a child that runs fn(arg) and exit()s with its return value; returns the
 * pid. For tests that need a raw child outside mp_process. */
int th_fork(int (*fn)(void *), void *arg);

/* Waits for pid and returns its exit status as mp_process would report it
 * (exit code, or -signal). */
int th_wait(int pid);

/* Stages pid reuse in a pid namespace of our own (needs root): a creator process
 * C is given pid 2 there and runs create(arg), whose result is the state; C then
 * vanishes without exit handlers (as if killed). A later process E, forked from
 * C's child D, is given pid 2 again, runs reuse(state) and exit()s with its value.
 * Then D runs after(state) (when not NULL). Returns 0 when E and after both
 * returned 0, TH_NOT_STAGED when the stage could not be set up here (nothing was
 * tested: th_not_staged_why() says why; the test cleans up what create may have
 * made and SKIPs with that reason), another value otherwise. The stage runs in
 * forked processes; its "not staged" travels back through shared memory. */
#define TH_NOT_STAGED (-1000)
int th_with_reused_pid(void *(*create)(void *arg), int (*reuse)(void *state),
                       int (*after)(void *state), void *arg);

/* Why the last th_with_reused_pid returned TH_NOT_STAGED. */
const char *th_not_staged_why(void);

#endif /* MPROC_TESTS_HARNESS_H */
