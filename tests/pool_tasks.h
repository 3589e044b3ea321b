/* tests/pool_tasks.h — the task functions, kernels, callbacks and fixtures that
 * several pool test files use (tests/test_pool*.c, tests/test_thread_pool.c).
 * Static inline, so a file that does not use one does not warn. */
#ifndef MPROC_TESTS_POOL_TASKS_H
#define MPROC_TESTS_POOL_TASKS_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static inline int square(const void *arg, size_t len, mp_task *t)
{
    if (len != sizeof(int))
        return mp_task_fail(t, MP_EINVAL, "expected an int, got %zu bytes", len);
    int x = *(const int *)arg, y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

static inline mp_pool *new_pool(int n)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = n}));
    return p;
}

static inline void finish(mp_pool *p)
{
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

static inline int sleep_ms_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    th_sleep_ms(*(const unsigned *)arg);
    return 0;
}

static inline int getpid_task(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    int pid = getpid();
    return mp_task_return(t, &pid, sizeof pid);
}

static inline int fail_on_negative(const void *arg, size_t len, mp_task *t)
{
    int x = *(const int *)arg;
    (void)len;
    if (x < 0)
        return mp_task_fail(t, 42, "negative input %d", x);
    return mp_task_return(t, &x, sizeof x);
}

struct cb_state {
    pthread_t main_thread;
    _Atomic int running; /* callbacks inside at once */
    _Atomic int overlap; /* set if two ever ran together */
    _Atomic int ok, err, on_main, sum;
    _Atomic int last_code;
};

static inline void on_ok(mp_async_result *r, void *arg)
{
    struct cb_state *s = arg;
    if (atomic_fetch_add(&s->running, 1) != 0)
        s->overlap = 1;
    if (pthread_equal(pthread_self(), s->main_thread))
        s->on_main = 1;
    const void *d;
    CHECK_OK(mp_async_result_get(r, 0, &d, NULL)); /* readable inside its callback */
    s->sum += *(const int *)d;
    th_sleep_ms(1);
    s->ok++;
    atomic_fetch_sub(&s->running, 1);
}

static inline void on_err(mp_async_result *r, void *arg)
{
    struct cb_state *s = arg;
    if (atomic_fetch_add(&s->running, 1) != 0)
        s->overlap = 1;
    s->last_code = mp_async_result_task_code(r);
    s->err++;
    atomic_fetch_sub(&s->running, 1);
}

static inline int slow_reverse(const void *arg, size_t len, mp_task *t)
{
    int x = *(const int *)arg;
    (void)len;
    th_sleep_ms((unsigned)(10 - x) * 20);
    return mp_task_return(t, &x, sizeof x);
}

static int init_calls_fd __attribute__((unused)) = -1;

static inline void initializer(void *arg)
{
    int v = *(int *)arg;
    (void)!write(init_calls_fd, &v, sizeof v);
}

static inline int square_kernel(const void *in, void *out, size_t n, void *ctx)
{
    const int *a = in;
    int *b = out;
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * a[i];
    return 0;
}

static inline int slow_kernel(const void *in, void *out, size_t n, void *ctx)
{
    (void)ctx;
    th_sleep_ms(20);
    return square_kernel(in, out, n, NULL);
}

static inline int nop_kernel(const void *in, void *out, size_t n, void *ctx)
{
    (void)in;
    (void)out;
    (void)n;
    (void)ctx;
    return 0;
}

/* Sets the shared flag at arg, then waits until it reads 2. */
static inline int flag_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    _Atomic int *flag = *(_Atomic int *const *)arg;
    atomic_store(flag, 1);
    while (atomic_load(flag) != 2)
        th_sleep_ms(1);
    return 0;
}

static inline void wait_flag(_Atomic int *flag, int v)
{
    uint64_t t0 = th_now_ms();
    while (atomic_load(flag) != v) {
        CHECK(th_now_ms() - t0 < 60000);
        th_sleep_ms(1);
    }
}

#endif /* MPROC_TESTS_POOL_TASKS_H */
