/* mp_pool's lifecycle: maxtasksperchild, close, join, terminate, destroy (also from a
 * callback), results that outlive their pool. */
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

static int thread_count(void)
{
    int n = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return n;
}

static void destroy_pool_cb(mp_async_result *r, void *arg)
{
    (void)r;
    mp_pool_destroy(arg);
}

/* destroy from a callback terminates the pool at once and the pool is freed when
 * its handler ends: no self-join, no use after free, nothing left behind. */
static int baseline_thread_count(void);
static void wait_threads_back_to(int baseline);

TEST(pool_destroy_from_a_callback_frees_the_pool_when_its_handler_ends)
{
    int baseline = baseline_thread_count(); /* not 1: TSan has a thread of its own */
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2}));
    unsigned ms = 60000;
    mp_async_result *slow, *r;
    CHECK_OK(mp_pool_apply_async(p, &slow, sleep_ms_task, &ms, sizeof ms, NULL));
    int x = 3;
    CHECK_OK(mp_pool_apply_async(p, &r, square, &x, sizeof x,
                                 &(mp_async_options){.callback = destroy_pool_cb, .cb_arg = p}));
    const void *d;
    CHECK_OK(mp_async_result_get(r, 60000, &d, NULL));
    CHECK_EQ(9, *(const int *)d);
    CHECK_RC(MP_ETERMINATED, mp_async_result_get(slow, 60000, NULL, NULL));
    wait_threads_back_to(baseline); /* the handler ends, freeing the pool */
    mp_async_result_destroy(slow);
    mp_async_result_destroy(r);
}

static void *no_op_thread(void *arg)
{
    return arg;
}

/* Threads of this process when no pool runs. ThreadSanitizer starts a thread of its
 * own with the first thread created: start one first. A joined thread leaves the
 * count a moment after pthread_join returns (the kernel clears its tid before it
 * leaves the thread group), so wait for the count to come back down. */
static int baseline_thread_count(void)
{
    int before = thread_count();
    pthread_t t;
    CHECK_EQ(0, pthread_create(&t, NULL, no_op_thread, NULL));
    CHECK_EQ(0, pthread_join(t, NULL));
    for (int i = 0; i < 200 && thread_count() > before; i++)
        th_sleep_ms(1); /* (200 ms at most: TSan's thread stays) */
    return thread_count();
}

static void wait_threads_back_to(int baseline)
{
    uint64_t t0 = th_now_ms();
    while (thread_count() > baseline) {
        CHECK(th_now_ms() - t0 < 60000);
        th_sleep_ms(2);
    }
}

static _Atomic int destroyed_with_result;

/* Records the result, then destroys the pool (arg) from its own callback. */
static void record_and_destroy_pool_cb(mp_async_result *r, void *arg)
{
    const void *d;
    if (mp_async_result_get(r, 0, &d, NULL) == 0)
        atomic_store(&destroyed_with_result, *(const int *)d);
    mp_pool_destroy(arg);
}

/* The submitting call is still inside apply_async (waking the handler) while an
 * awake handler runs the task and its callback destroys the pool: the pool must
 * outlive that call. Submissions in a row keep the handler awake, so the last one
 * finds it so, and the caller then waits without touching the pool or that
 * task's result (which would order it before the free for ThreadSanitizer), so
 * ThreadSanitizer reports the free racing the submitter's wake whenever the handler
 * frees the pool without waiting for the calls still inside it. */
static void destroy_from_callback_while_submitting(bool threads)
{
    int baseline = baseline_thread_count();
    for (int round = 0; round < 20; round++) {
        atomic_store(&destroyed_with_result, 0);
        mp_pool *p;
        CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .threads = threads}));
        int x = 3;
        mp_async_result *r[7];
        for (int k = 0; k < 7; k++)
            CHECK_OK(mp_pool_apply_async(p, &r[k], square, &x, sizeof x, NULL));
        CHECK_OK(mp_pool_apply_async(
            p, NULL, square, &x, sizeof x,
            &(mp_async_options){.callback = record_and_destroy_pool_cb, .cb_arg = p}));
        wait_threads_back_to(baseline); /* the handler ended, having freed the pool */
        CHECK_EQ(9, atomic_load(&destroyed_with_result));
        for (int k = 0; k < 7; k++) {
            int rc = mp_async_result_get(r[k], 60000, NULL, NULL);
            CHECK(rc == 0 || rc == MP_ETERMINATED);
            mp_async_result_destroy(r[k]);
        }
    }
}

TEST(pool_destroyed_from_a_callback_outlives_the_call_that_submitted_the_task)
{
    destroy_from_callback_while_submitting(false);
}

TEST(thread_pool_destroyed_from_a_callback_outlives_the_call_that_submitted_the_task)
{
    destroy_from_callback_while_submitting(true);
}

struct joiner {
    mp_pool *pool;
    _Atomic int tid;
    int rc;
};

static void *join_pool(void *arg)
{
    struct joiner *j = arg;
    atomic_store(&j->tid, (int)syscall(SYS_gettid));
    j->rc = mp_pool_join(j->pool, -1);
    return NULL;
}

/* True once thread tid of this process sleeps in a futex wait. */
static bool in_futex_wait(int tid)
{
    char path[64], line[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool in = fgets(line, sizeof line, f) != NULL && atoi(line) == SYS_futex;
    fclose(f);
    return in;
}

/* A join waiting in another thread when a callback destroys the pool returns 0 once
 * the handler has finished (it does not join the handler, which frees the pool
 * after the join has left). */
TEST(pool_join_in_another_thread_returns_when_a_callback_destroys_the_pool)
{
    int baseline = baseline_thread_count();
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2}));
    _Atomic int *flag = mp_pool_shared_alloc(p, sizeof *flag);
    CHECK(flag != NULL);
    CHECK_OK(mp_pool_apply_async(p, NULL, flag_task, &flag, sizeof flag,
                                 &(mp_async_options){.callback = destroy_pool_cb, .cb_arg = p}));
    wait_flag(flag, 1);
    CHECK_OK(mp_pool_close(p));
    struct joiner j = {.pool = p, .rc = 1};
    pthread_t t;
    CHECK_EQ(0, pthread_create(&t, NULL, join_pool, &j));
    uint64_t t0 = th_now_ms();
    while (atomic_load(&j.tid) == 0 || !in_futex_wait(atomic_load(&j.tid))) {
        CHECK(th_now_ms() - t0 < 60000);
        th_sleep_ms(1);
    }
    atomic_store(flag, 2); /* the task ends, its callback destroys the pool */
    CHECK_EQ(0, pthread_join(t, NULL));
    CHECK_RC(0, j.rc);
    wait_threads_back_to(baseline);
}

/* A zero-copy map's result whose callback destroys the pool, destroyed by its
 * caller as soon as it is ready: the caller's destroy (which hands the job back to
 * the pool) and the handler freeing the pool do not race. */
static void job_result_destroyed_while_the_pool_is_freed(bool threads)
{
    int baseline = baseline_thread_count();
    for (int round = 0; round < 20; round++) {
        mp_pool *p;
        CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .threads = threads}));
        size_t n = 64;
        int *in = mp_pool_shared_alloc(p, n * sizeof(int)),
            *out = mp_pool_shared_alloc(p, n * sizeof(int));
        CHECK(in != NULL && out != NULL);
        for (size_t i = 0; i < n; i++)
            in[i] = (int)i;
        mp_async_result *r;
        CHECK_OK(mp_pool_map_shared_async(
            p, &r, square_kernel, in, sizeof(int), out, sizeof(int), n, NULL,
            &(mp_async_options){.callback = destroy_pool_cb, .cb_arg = p, .chunksize = 8}));
        CHECK_OK(mp_async_result_wait(r, 60000));
        CHECK_EQ(1, mp_async_result_successful(r));
        mp_async_result_destroy(r);
        wait_threads_back_to(baseline);
    }
}

TEST(pool_job_result_destroyed_while_a_callback_frees_the_pool)
{
    job_result_destroyed_while_the_pool_is_freed(false);
}

TEST(thread_pool_job_result_destroyed_while_a_callback_frees_the_pool)
{
    job_result_destroyed_while_the_pool_is_freed(true);
}

static int getppid_task(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    int ppid = (int)getppid();
    return mp_task_return(t, &ppid, sizeof ppid);
}

/* Forkserver workers are not implemented (the worker relies on fork's
 * inheritance: see mp_pool_options.start_method): refused with MP_ENOSYS, with
 * nothing started and nothing left behind; bad values are MP_EINVAL. */
TEST(pool_forkserver_start_method_is_refused_with_enosys)
{
    mp_pool *p = (mp_pool *)1;
    CHECK_RC(MP_ENOSYS, mp_pool_new(&p, &(mp_pool_options){.processes = 2,
                                                           .start_method = MP_START_FORKSERVER}));
    CHECK(p == NULL);
    CHECK_EQ(0, mp_forkserver_pid()); /* no server launched for it */
    CHECK_RC(MP_EINVAL, mp_pool_new(&p, &(mp_pool_options){.start_method = (mp_start_method)7}));
    CHECK_RC(MP_EINVAL,
             mp_pool_new(&p, &(mp_pool_options){.threads = true, .start_method = MP_START_FORK}));
}

/* The process-wide default does not reach pools: under forkserver as the
 * default, a pool (MP_START_DEFAULT or MP_START_FORK) still forks its workers
 * from this process, and maps correctly. */
TEST(pool_workers_are_forked_whatever_the_default_start_method)
{
    mp_start_method before = mp_get_start_method();
    CHECK_OK(mp_set_start_method(MP_START_FORKSERVER));
    for (int m = MP_START_DEFAULT; m <= MP_START_FORK; m++) {
        mp_pool *p;
        CHECK_OK(mp_pool_new(
            &p, &(mp_pool_options){.processes = 2, .start_method = (mp_start_method)m}));
        int in[64], out[64];
        for (int i = 0; i < 64; i++)
            in[i] = i - 20;
        CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], 64, out, sizeof out[0], NULL));
        for (int i = 0; i < 64; i++)
            CHECK_EQ(in[i] * in[i], out[i]);
        void *res;
        CHECK_OK(mp_pool_apply(p, getppid_task, NULL, 0, &res, NULL));
        CHECK_EQ((int)getpid(), *(int *)res); /* forked by us, not by a server */
        free(res);
        finish(p);
    }
    CHECK_EQ(0, mp_forkserver_pid());
    CHECK_OK(mp_set_start_method(before));
}
