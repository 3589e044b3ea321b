/* mp_pool and mp_async_result: CPython's Pool in C, plus worker-death survival. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int square(const void *arg, size_t len, mp_task *t)
{
    if (len != sizeof(int))
        return mp_task_fail(t, MP_EINVAL, "expected an int, got %zu bytes", len);
    int x = *(const int *)arg, y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

static mp_pool *new_pool(int n)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = n}));
    return p;
}

static void finish(mp_pool *p)
{
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

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

TEST(pool_map_results_in_order)
{
    mp_pool *p = new_pool(3);
    int in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], 1000, out, sizeof out[0], NULL));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(i * i, out[i]);
    finish(p);
}

static int sleep_ms_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    th_sleep_ms(*(const unsigned *)arg);
    return 0;
}

static int getpid_task(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    int pid = getpid();
    return mp_task_return(t, &pid, sizeof pid);
}

static int fail_on_negative(const void *arg, size_t len, mp_task *t)
{
    int x = *(const int *)arg;
    (void)len;
    if (x < 0)
        return mp_task_fail(t, 42, "negative input %d", x);
    return mp_task_return(t, &x, sizeof x);
}

static int die_by_signal(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    raise(*(const int *)arg);
    return 0;
}

static int exit_with(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    _exit(*(const int *)arg);
}

static int segfault_task(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    (void)t;
    /* A real invalid access (not a null pointer, which UBSan would catch first),
     * with the default action, which sanitizers would otherwise replace. */
    signal(SIGSEGV, SIG_DFL);
    volatile int *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *page = 1;
    return 0;
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

struct cb_state {
    pthread_t main_thread;
    _Atomic int running; /* callbacks inside at once */
    _Atomic int overlap; /* set if two ever ran together */
    _Atomic int ok, err, on_main, sum;
    _Atomic int last_code;
};

static void on_ok(mp_async_result *r, void *arg)
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

static void on_err(mp_async_result *r, void *arg)
{
    struct cb_state *s = arg;
    if (atomic_fetch_add(&s->running, 1) != 0)
        s->overlap = 1;
    s->last_code = mp_async_result_task_code(r);
    s->err++;
    atomic_fetch_sub(&s->running, 1);
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

TEST(pool_map_empty_input)
{
    mp_pool *p = new_pool(2);
    CHECK_OK(mp_pool_map(p, square, NULL, sizeof(int), 0, NULL, sizeof(int), NULL));
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, square, NULL, sizeof(int), 0, sizeof(int), NULL));
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 1000));
    CHECK_OK(mp_async_result_get(r, 1000, NULL, NULL));
    mp_async_result_destroy(r);
    finish(p);
}

static void map_with_chunksize(size_t chunksize)
{
    mp_pool *p = new_pool(2);
    enum { N = 101 };
    int in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i - 50;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = chunksize}));
    for (int i = 0; i < N; i++)
        CHECK_EQ(in[i] * in[i], out[i]);
    finish(p);
}

TEST(pool_map_chunksize_one)
{
    map_with_chunksize(1);
}
TEST(pool_map_chunksize_default)
{
    map_with_chunksize(0);
}
TEST(pool_map_chunksize_larger_than_n)
{
    map_with_chunksize(1000);
}

TEST(pool_map_error_fails_its_chunk_others_complete)
{
    mp_pool *p = new_pool(2);
    int in[20], out[20];
    for (int i = 0; i < 20; i++)
        in[i] = i == 13 ? -1 : i;
    memset(out, 0xff, sizeof out);
    CHECK_RC(MP_ETASKFAILED, mp_pool_map(p, fail_on_negative, in, sizeof in[0], 20, out,
                                         sizeof out[0], &(mp_async_options){.chunksize = 5}));
    CHECK_STR("negative input -1", mp_pool_last_message());
    for (int i = 0; i < 10; i++)
        CHECK_EQ(i, out[i]); /* chunks 0 and 1 */
    for (int i = 15; i < 20; i++)
        CHECK_EQ(i, out[i]); /* chunk 3 */
    finish(p);
}

TEST(pool_map_wrong_result_size_is_emsgsize)
{
    mp_pool *p = new_pool(1);
    int in[3] = {1, 2, 3};
    short out[3];
    CHECK_RC(MP_EMSGSIZE, mp_pool_map(p, square, in, sizeof in[0], 3, out, sizeof out[0], NULL));
    finish(p);
}

TEST(pool_imap_streams_in_order)
{
    mp_pool *p = new_pool(3);
    enum { N = 200 };
    int in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, square, in, sizeof in[0], N, sizeof(int),
                          &(mp_async_options){.chunksize = 7}));
    for (int i = 0; i < N; i++) {
        size_t idx;
        const void *d;
        size_t len;
        CHECK_OK(mp_imap_next(r, &idx, &d, &len, 10000));
        CHECK_EQ(i, idx);
        CHECK_EQ(sizeof(int), len);
        CHECK_EQ(i * i, *(const int *)d);
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    mp_async_result_destroy(r);
    finish(p);
}

static int slow_reverse(const void *arg, size_t len, mp_task *t)
{
    int x = *(const int *)arg;
    (void)len;
    th_sleep_ms((unsigned)(10 - x) * 20);
    return mp_task_return(t, &x, sizeof x);
}

TEST(pool_imap_unordered_returns_each_result_once)
{
    mp_pool *p = new_pool(4);
    int in[10], seen[10] = {0};
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap_unordered(p, &r, slow_reverse, in, sizeof in[0], 10, sizeof(int),
                                    &(mp_async_options){.chunksize = 1}));
    for (int i = 0; i < 10; i++) {
        size_t idx;
        const void *d;
        CHECK_OK(mp_imap_next(r, &idx, &d, NULL, 10000));
        CHECK(idx < 10);
        CHECK_EQ((int)idx, *(const int *)d);
        seen[idx]++;
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    for (int i = 0; i < 10; i++)
        CHECK_EQ(1, seen[i]);
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_imap_next_times_out)
{
    mp_pool *p = new_pool(1);
    unsigned ms[2] = {800, 800};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, sleep_ms_task, ms, sizeof ms[0], 2, 0, NULL));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_imap_next(r, NULL, NULL, NULL, 50));
    CHECK(th_now_ms() - t0 >= 50);
    mp_async_result_destroy(r);
    finish(p);
}

static int concat_len(const void *arg, size_t len, mp_task *t)
{
    char *buf = mp_task_result_buffer(t, len * 2 + 1);
    if (buf == NULL)
        return len == 0 ? 0 : -1;
    memcpy(buf, arg, len);
    memcpy(buf + len, arg, len);
    buf[2 * len] = '!';
    return 0;
}

TEST(pool_map_variable_size_items_and_results)
{
    mp_pool *p = new_pool(2);
    const char *words[] = {"a", "bc", "", "defg", "hello world"};
    mp_buf in[5];
    for (int i = 0; i < 5; i++)
        in[i] = (mp_buf){words[i], strlen(words[i])};
    mp_async_result *r;
    CHECK_OK(
        mp_pool_map_async(p, &r, concat_len, in, 0, 5, 0, &(mp_async_options){.chunksize = 2}));
    const void *d = (void *)1;
    size_t len = 1;
    CHECK_OK(mp_async_result_get(r, -1, &d, &len));
    CHECK(d == NULL);
    for (int i = 0; i < 5; i++) {
        size_t wl = strlen(words[i]);
        CHECK_OK(mp_async_result_item(r, (size_t)i, &d, &len));
        if (wl == 0) {
            CHECK_EQ(1, len); /* the task returned 0 and wrote "!" */
            continue;
        }
        CHECK_EQ(2 * wl + 1, len);
        CHECK(memcmp(d, words[i], wl) == 0);
        CHECK_EQ('!', ((const char *)d)[2 * wl]);
    }
    CHECK_RC(MP_ERANGE, mp_async_result_item(r, 5, &d, &len));
    size_t done, total;
    CHECK_OK(mp_async_result_progress(r, &done, &total));
    CHECK_EQ(5, done);
    CHECK_EQ(5, total);
    mp_async_result_destroy(r);
    finish(p);
}

static int star_add(size_t argc, const mp_buf *argv, mp_task *t)
{
    int sum = 0;
    for (size_t i = 0; i < argc; i++)
        sum += *(const int *)argv[i].data;
    return mp_task_return(t, &sum, sizeof sum);
}

TEST(pool_starmap_unpacks_tuples)
{
    mp_pool *p = new_pool(2);
    int v[6] = {1, 2, 3, 4, 5, 6};
    mp_buf b[6];
    for (int i = 0; i < 6; i++)
        b[i] = (mp_buf){&v[i], sizeof v[i]};
    mp_args tuples[3] = {{2, &b[0]}, {3, &b[2]}, {1, &b[5]}};
    int out[3];
    CHECK_OK(mp_pool_starmap(p, star_add, tuples, 3, out, sizeof out[0], NULL));
    CHECK_EQ(3, out[0]);
    CHECK_EQ(12, out[1]);
    CHECK_EQ(6, out[2]);
    finish(p);
}

static void check_worker_death(mp_task_fn fn, int arg, const char *expect_in_msg)
{
    mp_pool *p = new_pool(2);
    unsigned ms = 50;
    mp_async_result *before[4], *dead, *after[4];
    for (int i = 0; i < 4; i++)
        CHECK_OK(mp_pool_apply_async(p, &before[i], sleep_ms_task, &ms, sizeof ms, NULL));
    CHECK_OK(mp_pool_apply_async(p, &dead, fn, &arg, sizeof arg, NULL));
    for (int i = 0; i < 4; i++)
        CHECK_OK(mp_pool_apply_async(p, &after[i], square, &i, sizeof i, NULL));
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(dead, 30000, NULL, NULL));
    const char *msg = mp_async_result_message(dead);
    if (strstr(msg, expect_in_msg) == NULL)
        th_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", msg, expect_in_msg);
    for (int i = 0; i < 4; i++) {
        const void *d;
        CHECK_OK(mp_async_result_get(before[i], 30000, NULL, NULL));
        CHECK_OK(mp_async_result_get(after[i], 30000, &d, NULL));
        CHECK_EQ(i * i, *(const int *)d);
        mp_async_result_destroy(before[i]);
        mp_async_result_destroy(after[i]);
    }
    mp_async_result_destroy(dead);
    int pids[2];
    CHECK_EQ(2, mp_pool_worker_pids(p, pids, 2)); /* replaced */
    finish(p);
}

TEST(pool_worker_sigkill_mid_task_fails_only_that_task)
{
    check_worker_death(die_by_signal, SIGKILL, "signal 9");
}
TEST(pool_worker_segfault_fails_only_that_task)
{
    check_worker_death(segfault_task, 0, "signal 11");
}
TEST(pool_worker_exit_in_task_fails_only_that_task)
{
    check_worker_death(exit_with, 3, "exited with status 3");
}
TEST(pool_worker_exit_zero_in_task_is_still_a_death)
{
    check_worker_death(exit_with, 0, "exited with status 0");
}

TEST(pool_worker_killed_from_outside_mid_task)
{
    mp_pool *p = new_pool(1);
    unsigned ms = 20000;
    mp_async_result *r, *next;
    CHECK_OK(mp_pool_apply_async(p, &r, sleep_ms_task, &ms, sizeof ms, NULL));
    int x = 3;
    CHECK_OK(mp_pool_apply_async(p, &next, square, &x, sizeof x, NULL));
    int pid;
    CHECK_EQ(1, mp_pool_worker_pids(p, &pid, 1));
    th_sleep_ms(100);
    kill(pid, SIGKILL);
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(r, 30000, NULL, NULL));
    const void *d;
    CHECK_OK(mp_async_result_get(next, 30000, &d, NULL));
    CHECK_EQ(9, *(const int *)d);
    int pid2;
    CHECK_EQ(1, mp_pool_worker_pids(p, &pid2, 1));
    CHECK(pid2 != pid);
    mp_async_result_destroy(r);
    mp_async_result_destroy(next);
    finish(p);
}

TEST(pool_map_chunk_with_dying_worker_fails_that_chunk)
{
    mp_pool *p = new_pool(2);
    int sig[12];
    for (int i = 0; i < 12; i++)
        sig[i] = i == 7 ? SIGKILL : 0;
    mp_async_result *r;
    CHECK_OK(mp_pool_map_async(p, &r, die_by_signal, sig, sizeof sig[0], 12, 0,
                               &(mp_async_options){.chunksize = 3}));
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(r, 30000, NULL, NULL));
    for (size_t i = 0; i < 12; i++) {
        const void *d;
        size_t len;
        CHECK_RC(i / 3 == 2 ? MP_EWORKERDIED : 0, mp_async_result_item(r, i, &d, &len));
    }
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_maxtasksperchild_replaces_workers)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .maxtasksperchild = 2}));
    int pids[12];
    for (int i = 0; i < 12; i++) {
        void *res;
        CHECK_OK(mp_pool_apply(p, getpid_task, NULL, 0, &res, NULL));
        pids[i] = *(int *)res;
        free(res);
    }
    int distinct = 0;
    for (int i = 0; i < 12; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen += pids[k] == pids[i];
        CHECK(seen < 2); /* no worker ran more than 2 tasks */
        distinct += seen == 0;
    }
    CHECK(distinct >= 6);
    finish(p);
}

TEST(pool_terminate_during_work)
{
    mp_pool *p = new_pool(2);
    unsigned ms = 30000;
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_options o = {.error_callback = on_err, .cb_arg = &s};
    mp_async_result *r[6];
    for (int i = 0; i < 6; i++)
        CHECK_OK(mp_pool_apply_async(p, &r[i], sleep_ms_task, &ms, sizeof ms, &o));
    th_sleep_ms(100);
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_pool_terminate(p));
    CHECK(th_now_ms() - t0 < 10000);
    for (int i = 0; i < 6; i++) {
        CHECK_RC(MP_ETERMINATED, mp_async_result_get(r[i], 0, NULL, NULL));
        mp_async_result_destroy(r[i]);
    }
    CHECK_EQ(6, s.err);
    CHECK_OK(mp_pool_join(p, -1));
    CHECK_RC(MP_ECLOSED, mp_pool_apply_async(p, NULL, square, &ms, sizeof(int), NULL));
    mp_pool_destroy(p);
}

TEST(pool_close_then_join_runs_pending_work)
{
    mp_pool *p = new_pool(2);
    unsigned ms = 30;
    mp_async_result *r[10];
    for (int i = 0; i < 10; i++)
        CHECK_OK(mp_pool_apply_async(p, &r[i], sleep_ms_task, &ms, sizeof ms, NULL));
    CHECK_OK(mp_pool_close(p));
    CHECK_RC(MP_ECLOSED, mp_pool_apply_async(p, NULL, sleep_ms_task, &ms, sizeof ms, NULL));
    CHECK_RC(MP_ECLOSED, mp_pool_map(p, square, &ms, sizeof(int), 1, &ms, sizeof(int), NULL));
    CHECK_OK(mp_pool_join(p, -1));
    for (int i = 0; i < 10; i++) {
        CHECK_OK(mp_async_result_get(r[i], 0, NULL, NULL));
        mp_async_result_destroy(r[i]);
    }
    CHECK_OK(mp_pool_join(p, 0)); /* again */
    mp_pool_destroy(p);
}

TEST(pool_join_before_close_is_an_error)
{
    mp_pool *p = new_pool(1);
    CHECK_RC(MP_EBUSY, mp_pool_join(p, -1));
    CHECK_OK(mp_pool_close(p));
    CHECK_RC(MP_EINVAL, mp_pool_join(p, -5));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

TEST(pool_join_times_out_while_work_runs)
{
    mp_pool *p = new_pool(1);
    unsigned ms = 1000;
    CHECK_OK(mp_pool_apply_async(p, NULL, sleep_ms_task, &ms, sizeof ms, NULL));
    CHECK_OK(mp_pool_close(p));
    CHECK_RC(MP_ETIMEDOUT, mp_pool_join(p, 50));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
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

TEST(pool_created_and_destroyed_200_times_leaves_nothing)
{
    for (int i = 0; i < 200; i++) {
        mp_pool *p = new_pool(2);
        if (i % 2) {
            int x = i;
            void *res;
            CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, NULL));
            free(res);
            finish(p);
        } else {
            mp_pool_destroy(p);
        }
    }
    /* the harness checks for leftover children and descriptors */
}

static int init_calls_fd = -1;

static void initializer(void *arg)
{
    int v = *(int *)arg;
    (void)!write(init_calls_fd, &v, sizeof v);
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

static int square_kernel(const void *in, void *out, size_t n, void *ctx)
{
    const int *a = in;
    int *b = out;
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * a[i];
    return 0;
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

static int use_pool_in_child(void *arg)
{
    mp_pool *p = arg;
    int x = 1;
    _exit(mp_pool_apply_async(p, NULL, square, &x, sizeof x, NULL) == MP_ECHILD ? 0 : 1);
}

TEST(pool_handle_is_private_to_its_process)
{
    mp_pool *p = new_pool(1);
    CHECK_EQ(0, th_wait(th_fork(use_pool_in_child, p)));
    finish(p);
}

TEST(pool_map_shared_squares_in_place)
{
    mp_pool *p = new_pool(2);
    size_t n = 100000;
    int *in = mp_pool_shared_alloc(p, n * sizeof(int));
    int *out = mp_pool_shared_alloc(p, n * sizeof(int));
    CHECK(in != NULL && out != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = (int)(i % 1000);
    for (int round = 0; round < 3; round++) {
        memset(out, 0, n * sizeof(int));
        CHECK_OK(mp_pool_map_shared(p, square_kernel, in, sizeof(int), out, sizeof(int), n, NULL,
                                    &(mp_async_options){.chunksize = round == 1 ? 1000 : 0}));
        for (size_t i = 0; i < n; i++)
            CHECK_EQ((int)(i % 1000) * (int)(i % 1000), out[i]);
    }
    CHECK_OK(
        mp_pool_map_shared(p, square_kernel, in, sizeof(int), out, sizeof(int), 0, NULL, NULL));
    mp_pool_shared_free(p, in);
    mp_pool_shared_free(p, out);
    finish(p);
}

static int slow_kernel(const void *in, void *out, size_t n, void *ctx)
{
    (void)ctx;
    th_sleep_ms(20);
    return square_kernel(in, out, n, NULL);
}

struct gate {
    _Atomic int open; /* in the pool's shared memory: the test opens it */
};

static int gated_kernel(const void *in, void *out, size_t n, void *ctx)
{
    struct gate *g = ctx;
    const int *a = in;
    if (a[0] >= 2000) /* items from 2000 on wait for the gate */
        while (!atomic_load(&g->open))
            th_sleep_ms(1);
    return square_kernel(in, out, n, NULL);
}

TEST(pool_map_shared_progress_is_observable)
{
    mp_pool *p = new_pool(2);
    size_t n = 4000;
    int *a = mp_pool_shared_alloc(p, n * sizeof(int));
    struct gate *g = mp_pool_shared_alloc(p, sizeof *g);
    for (size_t i = 0; i < n; i++)
        a[i] = (int)i;
    mp_async_result *r;
    CHECK_OK(mp_pool_map_shared_async(p, &r, gated_kernel, a, sizeof(int), a, sizeof(int), n, g,
                                      &(mp_async_options){.chunksize = 100}));
    size_t done = 0, total = 0;
    for (int tries = 0; tries < 30000 && done < 2000; tries++) {
        CHECK_OK(mp_async_result_progress(r, &done, &total));
        th_sleep_ms(1);
    }
    CHECK_EQ(n, total);
    CHECK_EQ(2000, done); /* the first half is done, the second waits */
    CHECK(!mp_async_result_ready(r));
    atomic_store(&g->open, 1);
    CHECK_OK(mp_async_result_get(r, -1, NULL, NULL));
    CHECK_OK(mp_async_result_progress(r, &done, &total));
    CHECK_EQ(n, done);
    CHECK_EQ(3999 * 3999, a[3999]);
    mp_async_result_destroy(r);
    finish(p);
}

static int failing_kernel(const void *in, void *out, size_t n, void *ctx)
{
    const int *a = in;
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (a[i] < 0)
            return 17;
    return square_kernel(in, out, n, NULL);
}

TEST(pool_map_shared_kernel_error_and_callback)
{
    mp_pool *p = new_pool(2);
    size_t n = 1000;
    int *a = mp_pool_shared_alloc(p, n * sizeof(int));
    int *b = mp_pool_shared_alloc(p, n * sizeof(int));
    a[555] = -1;
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_result *r;
    CHECK_OK(mp_pool_map_shared_async(
        p, &r, failing_kernel, a, sizeof(int), b, sizeof(int), n, NULL,
        &(mp_async_options){.chunksize = 100, .error_callback = on_err, .cb_arg = &s}));
    CHECK_RC(MP_ETASKFAILED, mp_async_result_get(r, 30000, NULL, NULL));
    CHECK_EQ(17, mp_async_result_task_code(r));
    CHECK(strstr(mp_async_result_message(r), "[500, 600)") != NULL);
    CHECK_EQ(1, s.err);
    mp_async_result_destroy(r);
    finish(p);
}

static int kill_kernel(const void *in, void *out, size_t n, void *ctx)
{
    const int *a = in;
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (a[i] < 0)
            raise(SIGKILL);
    return square_kernel(in, out, n, NULL);
}

TEST(pool_map_shared_worker_death_fails_its_chunk)
{
    mp_pool *p = new_pool(2);
    size_t n = 1000;
    int *a = mp_pool_shared_alloc(p, n * sizeof(int));
    int *b = mp_pool_shared_alloc(p, n * sizeof(int));
    for (size_t i = 0; i < n; i++)
        a[i] = 2;
    a[250] = -1;
    CHECK_RC(MP_EWORKERDIED, mp_pool_map_shared(p, kill_kernel, a, sizeof(int), b, sizeof(int), n,
                                                NULL, &(mp_async_options){.chunksize = 50}));
    const char *m = mp_pool_last_message();
    if (strstr(m, "signal 9") == NULL || strstr(m, "[250, 300)") == NULL)
        th_fail(__FILE__, __LINE__, "unexpected message \"%s\"", m);
    for (size_t i = 0; i < n; i++)
        if (i < 250 || i >= 300)
            CHECK_EQ(4, b[i]);
    /* the pool goes on */
    a[250] = 3;
    CHECK_OK(mp_pool_map_shared(p, kill_kernel, a, sizeof(int), b, sizeof(int), n, NULL, NULL));
    CHECK_EQ(9, b[250]);
    finish(p);
}

TEST(pool_map_shared_terminated_while_running)
{
    mp_pool *p = new_pool(2);
    size_t n = 100000;
    int *a = mp_pool_shared_alloc(p, n * sizeof(int));
    mp_async_result *r;
    CHECK_OK(mp_pool_map_shared_async(p, &r, slow_kernel, a, sizeof(int), a, sizeof(int), n, NULL,
                                      &(mp_async_options){.chunksize = 10}));
    th_sleep_ms(100);
    CHECK_OK(mp_pool_terminate(p));
    CHECK_RC(MP_ETERMINATED, mp_async_result_get(r, 0, NULL, NULL));
    mp_pool_destroy(p);
    /* the result outlives its pool */
    CHECK_RC(MP_ETERMINATED, mp_async_result_get(r, 0, NULL, NULL));
    mp_async_result_destroy(r);
}

TEST(pool_shared_alloc_is_shared_and_bounded)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1, .shared_size = 1 << 20}));
    CHECK(mp_pool_shared_alloc(p, 0) == NULL);
    CHECK(mp_pool_shared_alloc(p, 2 << 20) == NULL);
    void *a = mp_pool_shared_alloc(p, 600 << 10);
    CHECK(a != NULL);
    CHECK(((uintptr_t)a & 63) == 0);
    CHECK(mp_pool_shared_alloc(p, 600 << 10) == NULL);
    mp_pool_shared_free(p, a);
    a = mp_pool_shared_alloc(p, 600 << 10);
    CHECK(a != NULL);
    mp_pool_shared_free(p, a);
    finish(p);
}

/* ---- thread pools ---- */

static mp_pool *new_thread_pool(int n)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = n, .threads = true}));
    return p;
}

TEST(thread_pool_runs_tasks_in_this_process)
{
    mp_pool *p = new_thread_pool(3);
    void *res;
    CHECK_OK(mp_pool_apply(p, getpid_task, NULL, 0, &res, NULL));
    CHECK_EQ(getpid(), *(int *)res);
    free(res);
    int pids[3];
    CHECK_EQ(0, mp_pool_worker_pids(p, pids, 3));
    int in[500], out[500];
    for (int i = 0; i < 500; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], 500, out, sizeof out[0], NULL));
    for (int i = 0; i < 500; i++)
        CHECK_EQ(i * i, out[i]);
    finish(p);
}

TEST(thread_pool_map_shared_accepts_any_memory)
{
    mp_pool *p = new_thread_pool(2);
    int in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = i;
    CHECK_OK(
        mp_pool_map_shared(p, square_kernel, in, sizeof(int), out, sizeof(int), 1000, NULL, NULL));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(i * i, out[i]);
    finish(p);
}

TEST(thread_pool_errors_callbacks_and_maxtasks)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(
        &p, &(mp_pool_options){.processes = 2, .threads = true, .maxtasksperchild = 3}));
    struct cb_state s = {.main_thread = pthread_self()};
    mp_async_options o = {.callback = on_ok, .error_callback = on_err, .cb_arg = &s};
    for (int i = -5; i < 20; i++)
        CHECK_OK(mp_pool_apply_async(p, NULL, fail_on_negative, &i, sizeof i, &o));
    finish(p);
    CHECK_EQ(20, s.ok);
    CHECK_EQ(5, s.err);
    CHECK_EQ(0, s.overlap);
}

TEST(thread_pool_terminate_waits_for_running_tasks)
{
    mp_pool *p = new_thread_pool(2);
    unsigned ms = 300;
    mp_async_result *r[5];
    for (int i = 0; i < 5; i++)
        CHECK_OK(mp_pool_apply_async(p, &r[i], sleep_ms_task, &ms, sizeof ms, NULL));
    th_sleep_ms(50);
    CHECK_OK(mp_pool_terminate(p));
    for (int i = 0; i < 5; i++) {
        CHECK_RC(MP_ETERMINATED, mp_async_result_get(r[i], 0, NULL, NULL));
        mp_async_result_destroy(r[i]);
    }
    mp_pool_destroy(p);
}

static void crashing_initializer(void *arg)
{
    (void)arg;
    raise(SIGKILL);
}

TEST(pool_initializer_crash_fails_tasks_instead_of_hanging)
{
    mp_pool *p;
    CHECK_OK(
        mp_pool_new(&p, &(mp_pool_options){.processes = 1, .initializer = crashing_initializer}));
    int x = 2;
    CHECK_RC(MP_EWORKERDIED, mp_pool_apply(p, square, &x, sizeof x, NULL, NULL));
    if (strstr(mp_pool_last_message(), "initializer") == NULL)
        th_fail(__FILE__, __LINE__, "message \"%s\"", mp_pool_last_message());
    mp_pool_destroy(p);
}

struct killer_arg {
    mp_pool *pool;
    _Atomic int stop;
    int kills;
};

/* SIGKILL for pid only if it is still a child of ours (a worker): the pid of a
 * worker that just ended could in theory be reused by an unrelated process. */
static int kill_own_child(int pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    int ppid = -1;
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) != NULL) {
            char *rp = strrchr(buf, ')');
            if (rp != NULL)
                sscanf(rp + 2, "%*c %d", &ppid);
        }
        fclose(f);
    }
    int rc = ppid == getpid() ? (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) : -1;
    close(fd);
    return rc;
}

static void *killer(void *arg)
{
    struct killer_arg *k = arg;
    while (!k->stop && k->kills < 15) {
        th_sleep_ms(30);
        int pids[3];
        int n = mp_pool_worker_pids(k->pool, pids, 3);
        if (n > 0 && kill_own_child(pids[k->kills % n]) == 0)
            k->kills++;
    }
    return NULL;
}

static int busy_ms(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg;
    th_sleep_ms(3);
    return mp_task_return(t, &x, sizeof x);
}

TEST(pool_survives_workers_killed_at_random_during_imap)
{
    mp_pool *p = new_pool(3);
    enum { N = 400 };
    int in[N], seen[N] = {0};
    for (int i = 0; i < N; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap_unordered(p, &r, busy_ms, in, sizeof in[0], N, sizeof(int),
                                    &(mp_async_options){.chunksize = 1}));
    struct killer_arg k = {.pool = p};
    pthread_t th;
    pthread_create(&th, NULL, killer, &k);
    int failed = 0;
    for (int i = 0; i < N; i++) {
        size_t idx;
        const void *d;
        int rc = mp_imap_next(r, &idx, &d, NULL, 60000);
        CHECK(rc == 0 || rc == MP_EWORKERDIED);
        CHECK(idx < N);
        seen[idx]++;
        if (rc == 0)
            CHECK_EQ((int)idx, *(const int *)d);
        failed += rc != 0;
    }
    k.stop = 1;
    pthread_join(th, NULL);
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    for (int i = 0; i < N; i++)
        CHECK_EQ(1, seen[i]);
    CHECK(failed <= k.kills);
    mp_async_result_destroy(r);
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

TEST(pool_result_outlives_destroyed_pool)
{
    mp_pool *p = new_pool(1);
    unsigned ms = 10000;
    mp_async_result *slow, *fast;
    int x = 4;
    CHECK_OK(mp_pool_apply_async(p, &fast, square, &x, sizeof x, NULL));
    CHECK_OK(mp_async_result_wait(fast, -1));
    CHECK_OK(mp_pool_apply_async(p, &slow, sleep_ms_task, &ms, sizeof ms, NULL));
    mp_pool_destroy(p); /* terminates */
    CHECK_RC(MP_ETERMINATED, mp_async_result_get(slow, 0, NULL, NULL));
    const void *d;
    CHECK_OK(mp_async_result_get(fast, 0, &d, NULL));
    CHECK_EQ(16, *(const int *)d);
    mp_async_result_destroy(slow);
    mp_async_result_destroy(fast);
}

TEST(pool_imap_reports_failed_chunk_items_and_continues)
{
    mp_pool *p = new_pool(2);
    int in[9] = {0, 1, 2, 3, -4, 5, 6, 7, 8};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, fail_on_negative, in, sizeof in[0], 9, sizeof(int),
                          &(mp_async_options){.chunksize = 3}));
    for (size_t i = 0; i < 9; i++) {
        size_t idx;
        const void *d;
        int rc = mp_imap_next(r, &idx, &d, NULL, 10000);
        CHECK_EQ(i, idx);
        if (i >= 3 && i < 6) {
            CHECK_RC(MP_ETASKFAILED, rc);
            CHECK(d == NULL);
        } else {
            CHECK_OK(rc);
            CHECK_EQ(in[i], *(const int *)d);
        }
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    CHECK_RC(MP_ETASKFAILED, mp_async_result_get(r, 10000, NULL, NULL));
    CHECK_STR("negative input -4", mp_async_result_message(r));
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_idle_worker_killed_is_replaced_without_failures)
{
    mp_pool *p = new_pool(2);
    int pids[2];
    CHECK_EQ(2, mp_pool_worker_pids(p, pids, 2));
    kill(pids[0], SIGKILL);
    for (int tries = 0; tries < 500; tries++) { /* wait for the replacement */
        int now[2];
        int n = mp_pool_worker_pids(p, now, 2);
        if (n == 2 && now[0] != pids[0] && now[1] != pids[0])
            break;
        th_sleep_ms(10);
    }
    int after[2];
    CHECK_EQ(2, mp_pool_worker_pids(p, after, 2));
    CHECK(after[0] != pids[0] && after[1] != pids[0]);
    int in[50], out[50];
    for (int i = 0; i < 50; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], 50, out, sizeof out[0], NULL));
    CHECK_EQ(49 * 49, out[49]);
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

static int count_kernel(const void *in, void *out, size_t n, void *ctx)
{
    (void)in;
    _Atomic long *total = ctx; /* thread pool: shared by every worker */
    long *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = 1;
    atomic_fetch_add(total, (long)n);
    return 0;
}

TEST(thread_pool_map_shared_without_input_and_uneven_chunks)
{
    mp_pool *p = new_thread_pool(3);
    long out[1001];
    _Atomic long total = 0;
    CHECK_OK(mp_pool_map_shared(p, count_kernel, NULL, 0, out, sizeof out[0], 1001, &total,
                                &(mp_async_options){.chunksize = 100}));
    CHECK_EQ(1001, total);
    for (int i = 0; i < 1001; i++)
        CHECK_EQ(1, out[i]);
    finish(p);
}

TEST(thread_pool_imap_unordered)
{
    mp_pool *p = new_thread_pool(4);
    int in[10], seen[10] = {0};
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap_unordered(p, &r, slow_reverse, in, sizeof in[0], 10, sizeof(int),
                                    &(mp_async_options){.chunksize = 1}));
    size_t idx;
    for (int i = 0; i < 10; i++) {
        CHECK_OK(mp_imap_next(r, &idx, NULL, NULL, 10000));
        seen[idx]++;
    }
    for (int i = 0; i < 10; i++)
        CHECK_EQ(1, seen[i]);
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_terminate_twice_and_close_after_terminate)
{
    mp_pool *p = new_pool(1);
    CHECK_OK(mp_pool_terminate(p));
    CHECK_OK(mp_pool_terminate(p));
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, 1000));
    int x = 1;
    CHECK_RC(MP_ECLOSED, mp_pool_apply(p, square, &x, sizeof x, NULL, NULL));
    mp_pool_destroy(p);
}

TEST(pool_maxtasksperchild_with_map_chunks)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .maxtasksperchild = 1}));
    int in[40], out[40];
    for (int i = 0; i < 40; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, getpid_task, in, sizeof in[0], 40, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 4}));
    for (int c = 0; c < 10; c++) /* one worker per chunk */
        for (int k = 0; k < 10; k++)
            if (k != c)
                CHECK(out[4 * c] != out[4 * k]);
    finish(p);
}

TEST(thread_pool_terminate_stops_a_zero_copy_map)
{
    mp_pool *p = new_thread_pool(2);
    static int a[100000];
    mp_async_result *r;
    CHECK_OK(mp_pool_map_shared_async(p, &r, slow_kernel, a, sizeof(int), a, sizeof(int), 100000,
                                      NULL, &(mp_async_options){.chunksize = 10}));
    th_sleep_ms(100);
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_pool_terminate(p)); /* 10000 chunks of 20 ms: only the running ones finish */
    CHECK(th_now_ms() - t0 < 20000);
    CHECK_RC(MP_ETERMINATED, mp_async_result_get(r, 0, NULL, NULL));
    mp_async_result_destroy(r);
    mp_pool_destroy(p);
}

TEST(pool_map_shared_over_memory_shared_before_the_pool)
{
    size_t n = 10000;
    int *a = mmap(NULL, n * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(a != MAP_FAILED);
    for (size_t i = 0; i < n; i++)
        a[i] = (int)(i % 100);
    mp_pool *p = new_pool(2);
    CHECK_RC(MP_EINVAL,
             mp_pool_map_shared(p, square_kernel, a, sizeof(int), a, sizeof(int), n, NULL, NULL));
    CHECK_OK(mp_pool_map_shared(p, square_kernel, a, sizeof(int), a, sizeof(int), n, NULL,
                                &(mp_async_options){.any_shared_memory = true}));
    for (size_t i = 0; i < n; i++)
        CHECK_EQ((int)(i % 100) * (int)(i % 100), a[i]);
    finish(p);
    munmap(a, n * sizeof(int));
}

TEST(pool_imap_default_chunksize_is_one)
{
    mp_pool *p = new_pool(2);
    int in[6] = {1, 2, 3, -4, 5, 6};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, fail_on_negative, in, sizeof in[0], 6, sizeof(int), NULL));
    for (int i = 0; i < 6; i++) /* only item 3 fails: chunks of one */
        CHECK_RC(i == 3 ? MP_ETASKFAILED : 0, mp_imap_next(r, NULL, NULL, NULL, 10000));
    mp_async_result_destroy(r);
    finish(p);
}

static int wait_in_child(void *arg)
{
    _exit(mp_async_result_get(arg, -1, NULL, NULL) == MP_ECHILD ? 0 : 1);
}

TEST(pool_result_copy_in_forked_child_refuses_to_wait)
{
    mp_pool *p = new_pool(1);
    unsigned ms = 500;
    mp_async_result *r;
    CHECK_OK(mp_pool_apply_async(p, &r, sleep_ms_task, &ms, sizeof ms, NULL));
    CHECK_EQ(0, th_wait(th_fork(wait_in_child, r)));
    CHECK_OK(mp_async_result_get(r, -1, NULL, NULL));
    mp_async_result_destroy(r);
    finish(p);
}
