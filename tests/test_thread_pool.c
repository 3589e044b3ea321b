/* Thread pools (mp_pool_options.threads): the same API with worker threads in this
 * process. */
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
