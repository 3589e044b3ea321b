/* mp_pool and mp_async_result: apply, apply_async, results, callbacks, arguments. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pool_tasks.h"

TEST(pool_apply_returns_the_result)
{
    mp_pool *p = new_pool(2);
    int x = 7;
    void *res;
    size_t len;
    CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, &len));
    CHECK_EQ(sizeof(int), len);
    CHECK_EQ(49, *(int *)res);
    free(res);
    finish(p);
}

TEST(pool_new_rejects_negative_processes)
{
    mp_pool *p = (mp_pool *)1;
    CHECK_RC(MP_EINVAL, mp_pool_new(&p, &(mp_pool_options){.processes = -1}));
    CHECK(p == NULL);
    CHECK_RC(MP_EINVAL, mp_pool_new(NULL, NULL));
}

TEST(pool_default_processes_is_cpu_count)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, NULL));
    CHECK_EQ(mp_cpu_count(), mp_pool_processes(p));
    int pids[64];
    CHECK_EQ(mp_cpu_count(), mp_pool_worker_pids(p, pids, 64));
    finish(p);
}

TEST(pool_apply_async_get_and_callback)
{
    mp_pool *p = new_pool(2);
    mp_async_result *r[5];
    for (int i = 0; i < 5; i++)
        CHECK_OK(mp_pool_apply_async(p, &r[i], square, &i, sizeof i, NULL));
    for (int i = 0; i < 5; i++) {
        const void *d;
        size_t len;
        CHECK_OK(mp_async_result_get(r[i], -1, &d, &len));
        CHECK_EQ(sizeof(int), len);
        CHECK_EQ(i * i, *(const int *)d);
        CHECK(mp_async_result_ready(r[i]));
        CHECK_EQ(1, mp_async_result_successful(r[i]));
        mp_async_result_destroy(r[i]);
    }
    finish(p);
}

TEST(pool_callbacks_run_in_parent_one_at_a_time)
{
    mp_pool *p = new_pool(3);
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_options o = {.callback = on_ok, .error_callback = on_err, .cb_arg = &s};
    for (int i = 1; i <= 40; i++)
        CHECK_OK(mp_pool_apply_async(p, NULL, fail_on_negative, &i, sizeof i, &o));
    finish(p);
    CHECK_EQ(40, s.ok);
    CHECK_EQ(0, s.err);
    CHECK_EQ(40 * 41 / 2, s.sum);
    CHECK_EQ(0, s.overlap);
    CHECK_EQ(0, s.on_main);
}

TEST(pool_get_returns_after_callback_ran)
{
    mp_pool *p = new_pool(1);
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_options o = {.callback = on_ok, .cb_arg = &s};
    int x = 5;
    mp_async_result *r;
    CHECK_OK(mp_pool_apply_async(p, &r, fail_on_negative, &x, sizeof x, &o));
    CHECK_OK(mp_async_result_get(r, -1, NULL, NULL));
    CHECK_EQ(1, s.ok);
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_task_error_reaches_get_and_error_callback)
{
    mp_pool *p = new_pool(2);
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_options o = {.callback = on_ok, .error_callback = on_err, .cb_arg = &s};
    mp_async_result *r[6];
    int xs[6] = {1, 2, -3, 4, 5, 6};
    for (int i = 0; i < 6; i++)
        CHECK_OK(mp_pool_apply_async(p, &r[i], fail_on_negative, &xs[i], sizeof xs[i], &o));
    for (int i = 0; i < 6; i++) {
        const void *d;
        int rc = mp_async_result_get(r[i], -1, &d, NULL);
        if (i == 2) {
            CHECK_RC(MP_ETASKFAILED, rc);
            CHECK_EQ(42, mp_async_result_task_code(r[i]));
            CHECK_STR("negative input -3", mp_async_result_message(r[i]));
            CHECK_EQ(0, mp_async_result_successful(r[i]));
        } else {
            CHECK_OK(rc);
            CHECK_EQ(xs[i], *(const int *)d);
        }
        mp_async_result_destroy(r[i]);
    }
    finish(p);
    CHECK_EQ(5, s.ok);
    CHECK_EQ(1, s.err);
    CHECK_EQ(42, s.last_code);
}

TEST(pool_sync_apply_error_message)
{
    mp_pool *p = new_pool(1);
    int x = -9;
    void *res = (void *)1;
    CHECK_RC(MP_ETASKFAILED, mp_pool_apply(p, fail_on_negative, &x, sizeof x, &res, NULL));
    CHECK(res == NULL);
    CHECK_STR("negative input -9", mp_pool_last_message());
    finish(p);
}

TEST(pool_get_times_out_on_slow_task)
{
    mp_pool *p = new_pool(1);
    unsigned ms = 1500;
    mp_async_result *r;
    CHECK_OK(mp_pool_apply_async(p, &r, sleep_ms_task, &ms, sizeof ms, NULL));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_async_result_get(r, 100, NULL, NULL));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100);
    CHECK(!mp_async_result_ready(r));
    CHECK_RC(MP_ENOTREADY, mp_async_result_successful(r));
    CHECK_RC(MP_ETIMEDOUT, mp_async_result_wait(r, 0));
    CHECK_OK(mp_async_result_get(r, -1, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_async_result_get(r, -2, NULL, NULL));
    mp_async_result_destroy(r);
    finish(p);
}

static int sum_bytes(const void *arg, size_t len, mp_task *t)
{
    uint64_t s = 0;
    const unsigned char *b = arg;
    for (size_t i = 0; i < len; i += 4096)
        s += b[i];
    s += len;
    return mp_task_return(t, &s, sizeof s);
}

TEST(pool_task_with_100MiB_argument)
{
    mp_pool *p = new_pool(2);
    size_t n = (size_t)100 << 20;
    unsigned char *big = malloc(n);
    CHECK(big != NULL);
    memset(big, 1, n);
    void *res;
    CHECK_OK(mp_pool_apply(p, sum_bytes, big, n, &res, NULL));
    CHECK_EQ(n + n / 4096, *(uint64_t *)res);
    free(res);
    free(big);
    finish(p);
}

static int make_big(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    size_t n = *(const size_t *)arg;
    unsigned char *b = mp_task_result_buffer(t, n);
    if (b == NULL)
        return MP_ENOMEM;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7);
    return 0;
}

TEST(pool_task_with_100MiB_result)
{
    mp_pool *p = new_pool(2);
    size_t n = (size_t)100 << 20;
    void *res;
    size_t len;
    CHECK_OK(mp_pool_apply(p, make_big, &n, sizeof n, &res, &len));
    CHECK_EQ(n, len);
    unsigned char *b = res;
    for (size_t i = 0; i < n; i += 4093)
        CHECK_EQ((unsigned char)(i * 7), b[i]);
    CHECK_EQ((unsigned char)((n - 1) * 7), b[n - 1]);
    free(res);
    finish(p);
}

TEST(pool_initializer_runs_once_in_each_worker)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    init_calls_fd = fds[1];
    int tag = 77;
    mp_pool *p;
    CHECK_OK(mp_pool_new(
        &p, &(mp_pool_options){.processes = 3, .initializer = initializer, .initarg = &tag}));
    finish(p);
    close(fds[1]);
    int v, n = 0;
    while (read(fds[0], &v, sizeof v) == sizeof v) {
        CHECK_EQ(77, v);
        n++;
    }
    CHECK_EQ(3, n);
    close(fds[0]);
}

TEST(pool_rejects_bad_arguments)
{
    mp_pool *p = new_pool(1);
    mp_async_result *r = (mp_async_result *)1;
    CHECK_RC(MP_EINVAL, mp_pool_apply_async(p, &r, NULL, NULL, 0, NULL));
    CHECK(r == NULL);
    CHECK_RC(MP_EINVAL, mp_pool_apply_async(p, &r, square, NULL, 4, NULL));
    CHECK_RC(MP_EINVAL, mp_pool_apply_async(NULL, &r, square, NULL, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_pool_map(p, square, NULL, 4, 3, NULL, 4, NULL));
    CHECK_RC(MP_EINVAL, mp_pool_map_async(p, NULL, square, NULL, 4, 0, 4, NULL));
    int arr[4];
    CHECK_RC(MP_EINVAL, mp_pool_map_shared(p, NULL, NULL, 0, NULL, 0, 0, NULL, NULL));
    /* private memory cannot be shared with worker processes */
    CHECK_RC(MP_EINVAL, mp_pool_map_shared(p, square_kernel, arr, 4, arr, 4, 4, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_async_result_get(NULL, 0, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_imap_next(NULL, NULL, NULL, NULL, 0));
    mp_async_result_destroy(NULL);
    mp_pool_destroy(NULL);
    finish(p);
}

static void *submit_many(void *arg)
{
    mp_pool *p = arg;
    for (int i = 0; i < 300; i++) {
        void *res;
        if (mp_pool_apply(p, square, &i, sizeof i, &res, NULL) != 0 || *(int *)res != i * i)
            return (void *)1;
        free(res);
    }
    return NULL;
}

TEST(pool_apply_from_several_threads)
{
    mp_pool *p = new_pool(2);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, submit_many, p);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
    finish(p);
}

TEST(pool_large_argument_when_shared_memory_is_full_goes_inline)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1, .shared_size = 256 << 10}));
    void *hog = mp_pool_shared_alloc(p, 200 << 10); /* leaves no room for the argument */
    CHECK(hog != NULL);
    size_t n = 3 << 20;
    unsigned char *big = malloc(n);
    memset(big, 2, n);
    void *res;
    CHECK_OK(mp_pool_apply(p, sum_bytes, big, n, &res, NULL));
    CHECK_EQ(n + 2 * (n / 4096), *(uint64_t *)res);
    free(res);
    free(big);
    mp_pool_shared_free(p, hog);
    finish(p);
}

struct cb_wait {
    mp_pool *pool;
    mp_async_result *other;
    int get_rc, get0_rc, apply_rc, next_rc;
    mp_async_result *iter;
};

static void wait_other(mp_async_result *r, void *arg)
{
    struct cb_wait *w = arg;
    (void)r;
    int x = 3;
    w->get_rc = mp_async_result_get(w->other, -1, NULL, NULL);
    w->get0_rc = mp_async_result_get(w->other, 0, NULL, NULL);
    w->apply_rc = mp_pool_apply(w->pool, square, &x, sizeof x, NULL, NULL);
    w->next_rc = mp_imap_next(w->iter, NULL, NULL, NULL, 60000);
}

/* A callback that waits for another result of its pool would wait for its own
 * thread: the wait is refused with MP_EBUSY (MP_ETIMEDOUT with timeout 0). */
TEST(pool_wait_from_a_callback_for_a_pending_result_is_ebusy)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 3}));
    _Atomic int *gate1 = mp_pool_shared_alloc(p, sizeof *gate1);
    _Atomic int *gate2 = mp_pool_shared_alloc(p, sizeof *gate2);
    struct cb_wait w = {.pool = p};
    CHECK_OK(mp_pool_apply_async(p, &w.other, flag_task, &gate1, sizeof gate1, NULL));
    CHECK_OK(mp_pool_imap(p, &w.iter, flag_task, &gate2, sizeof gate2, 1, 0, NULL));
    wait_flag(gate1, 1);
    wait_flag(gate2, 1); /* both run, held until the callback returned */
    mp_async_result *r;
    unsigned zero = 0;
    CHECK_OK(mp_pool_apply_async(p, &r, sleep_ms_task, &zero, sizeof zero,
                                 &(mp_async_options){.callback = wait_other, .cb_arg = &w}));
    CHECK_OK(mp_async_result_get(r, 60000, NULL, NULL));
    CHECK_RC(MP_EBUSY, w.get_rc);
    CHECK_RC(MP_ETIMEDOUT, w.get0_rc);
    CHECK_RC(MP_EBUSY, w.apply_rc);
    CHECK_RC(MP_EBUSY, w.next_rc);
    atomic_store(gate1, 2);
    atomic_store(gate2, 2);
    CHECK_OK(mp_async_result_get(w.other, 60000, NULL, NULL));
    CHECK_OK(mp_imap_next(w.iter, NULL, NULL, NULL, 60000));
    mp_async_result_destroy(w.other);
    mp_async_result_destroy(w.iter);
    mp_async_result_destroy(r);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

/* A completed result's callback may read any completed result, including one whose
 * own callback has not run yet. */
static void read_sibling(mp_async_result *r, void *arg)
{
    (void)r;
    struct cb_wait *w = arg;
    w->get_rc = mp_async_result_get(w->other, -1, NULL, NULL);
}

TEST(pool_callback_may_get_a_result_already_complete)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    struct cb_wait w = {.pool = p, .get_rc = 1};
    int x = 5;
    CHECK_OK(mp_pool_apply_async(p, &w.other, square, &x, sizeof x, NULL));
    CHECK_OK(mp_async_result_wait(w.other, 60000));
    mp_async_result *r;
    CHECK_OK(mp_pool_apply_async(p, &r, square, &x, sizeof x,
                                 &(mp_async_options){.callback = read_sibling, .cb_arg = &w}));
    CHECK_OK(mp_async_result_get(r, 60000, NULL, NULL));
    CHECK_OK(w.get_rc);
    mp_async_result_destroy(w.other);
    mp_async_result_destroy(r);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

TEST(pool_worker_pids_with_a_negative_max_is_einval)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2}));
    int pids[2];
    CHECK_RC(MP_EINVAL, mp_pool_worker_pids(p, pids, -1));
    CHECK_RC(MP_EINVAL, mp_pool_worker_pids(p, NULL, -1));
    CHECK_RC(MP_EINVAL, mp_pool_worker_pids(p, NULL, 1));
    CHECK_RC(MP_EINVAL, mp_pool_worker_pids(NULL, pids, 2));
    CHECK_EQ(0, mp_pool_worker_pids(p, NULL, 0));
    CHECK_EQ(2, mp_pool_worker_pids(p, pids, 2));
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}
