/* mp_pool_map_shared: the zero-copy map over the pool's shared memory, its progress,
 * failures, deaths and terminate. */
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

/* The only worker has been given its last task (maxtasksperchild) when the
 * zero-copy map starts: nobody can join the job at once, yet no worker died. The
 * job waits for the replacement instead of failing with MP_EWORKERDIED. */
TEST(pool_map_shared_waits_for_a_replacement_when_no_worker_can_join)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1, .maxtasksperchild = 1}));
    _Atomic int *flag = mp_pool_shared_alloc(p, sizeof *flag);
    size_t n = 100;
    int *a = mp_pool_shared_alloc(p, n * sizeof(int));
    for (size_t i = 0; i < n; i++)
        a[i] = (int)i;
    mp_async_result *busy, *job;
    CHECK_OK(mp_pool_apply_async(p, &busy, flag_task, &flag, sizeof flag, NULL));
    wait_flag(flag, 1); /* the worker runs its one task */
    CHECK_OK(mp_pool_map_shared_async(p, &job, square_kernel, a, sizeof(int), a, sizeof(int), n,
                                      NULL, &(mp_async_options){.chunksize = 10}));
    th_sleep_ms(100);
    atomic_store(flag, 2);
    CHECK_OK(mp_async_result_get(busy, 60000, NULL, NULL));
    int rc = mp_async_result_get(job, 60000, NULL, NULL);
    if (rc != 0)
        th_fail(__FILE__, __LINE__, "map_shared: %s: %s", mp_err_name(rc),
                mp_async_result_message(job));
    for (size_t i = 0; i < n; i++)
        CHECK_EQ((int)(i * i), a[i]);
    mp_async_result_destroy(busy);
    mp_async_result_destroy(job);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

static void crash_init(void *arg)
{
    (void)arg;
    raise(SIGKILL);
}

/* A worker that dies in its initializer with only a zero-copy job given to it fails
 * that job (as it fails the first task given to it) instead of hanging. */
TEST(pool_initializer_crash_fails_a_zero_copy_map_instead_of_hanging)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .initializer = crash_init}));
    int *a = mp_pool_shared_alloc(p, 100 * sizeof(int));
    mp_async_result *job;
    CHECK_OK(mp_pool_map_shared_async(p, &job, square_kernel, a, sizeof(int), a, sizeof(int), 100,
                                      NULL, NULL));
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(job, 60000, NULL, NULL));
    if (strstr(mp_async_result_message(job), "initializer") == NULL)
        th_fail(__FILE__, __LINE__, "unexpected message \"%s\"", mp_async_result_message(job));
    mp_async_result_destroy(job);
    mp_pool_destroy(p);
}

/* n chunks whose bookkeeping does not fit in size_t: refused, never a short job. */
TEST(pool_map_shared_with_a_count_too_large_is_refused)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    mp_async_result *r = (mp_async_result *)1;
    int rc = mp_pool_map_shared_async(p, &r, nop_kernel, NULL, 0, NULL, 0, SIZE_MAX, NULL,
                                      &(mp_async_options){.chunksize = 1});
    if (rc == 0) {
        mp_pool_terminate(p);
        mp_async_result_destroy(r);
    }
    CHECK_RC(MP_ENOMEM, rc);
    CHECK(r == NULL);
    mp_pool_destroy(p);
}
