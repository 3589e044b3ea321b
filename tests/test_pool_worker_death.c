/* mp_pool when workers die: exactly the task (or chunk) a dying worker ran fails, every
 * other task gets its one result, the worker is replaced. */
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
    _Atomic int *running = mp_pool_shared_alloc(p, sizeof *running);
    CHECK(running != NULL);
    mp_async_result *r, *next;
    CHECK_OK(mp_pool_apply_async(p, &r, flag_task, &running, sizeof running, NULL));
    int x = 3;
    CHECK_OK(mp_pool_apply_async(p, &next, square, &x, sizeof x, NULL));
    int pid;
    CHECK_EQ(1, mp_pool_worker_pids(p, &pid, 1));
    /* Mid-task: killed once the task runs (after a fixed 100 ms, a loaded machine's
     * worker had not always taken the task yet: its replacement ran it, and it
     * succeeded). The task waits for a 2 that never comes. */
    wait_flag(running, 1);
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

/* Adds one to the shared counter at arg and returns the new count. */
static int count_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    _Atomic int *counter = *(_Atomic int *const *)arg;
    int v = atomic_fetch_add(counter, 1) + 1;
    return mp_task_return(t, &v, sizeof v);
}

static int kill_self(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    (void)t;
    raise(SIGKILL);
    return 0;
}

/* The worker finishes count_task and, before reporting it (its result waits in
 * the batch while the next task is already read), runs a task that kills it. The
 * finished task keeps its result and is not run again. */
TEST(pool_result_finished_before_the_worker_died_is_not_run_again)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    _Atomic int *gate = mp_pool_shared_alloc(p, sizeof *gate);
    _Atomic int *counter = mp_pool_shared_alloc(p, sizeof *counter);
    for (int round = 0; round < 3; round++) {
        atomic_store(gate, 0);
        atomic_store(counter, 0);
        mp_async_result *g, *a[4], *k;
        CHECK_OK(mp_pool_apply_async(p, &g, flag_task, &gate, sizeof gate, NULL));
        wait_flag(gate, 1); /* the worker is busy: what follows reaches it in one write */
        for (int i = 0; i < 4; i++)
            CHECK_OK(mp_pool_apply_async(p, &a[i], count_task, &counter, sizeof counter, NULL));
        CHECK_OK(mp_pool_apply_async(p, &k, kill_self, NULL, 0, NULL));
        unsigned zero = 0; /* a backlog behind k, so that k is sent before the worker is idle */
        for (int i = 0; i < 3; i++)
            CHECK_OK(mp_pool_apply_async(p, NULL, sleep_ms_task, &zero, sizeof zero, NULL));
        th_sleep_ms(200);
        atomic_store(gate, 2);
        CHECK_OK(mp_async_result_get(g, 60000, NULL, NULL));
        CHECK_RC(MP_EWORKERDIED, mp_async_result_get(k, 60000, NULL, NULL));
        for (int i = 0; i < 4; i++) {
            const void *d;
            size_t len;
            CHECK_OK(mp_async_result_get(a[i], 60000, &d, &len));
            CHECK_EQ(sizeof(int), len);
            CHECK_EQ(i + 1, *(const int *)d);
            mp_async_result_destroy(a[i]);
        }
        CHECK_EQ(4, atomic_load(counter)); /* each ran once */
        mp_async_result_destroy(g);
        mp_async_result_destroy(k);
    }
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

/* The same for map chunks: finished chunks keep their results. */
TEST(pool_map_chunks_finished_before_the_worker_died_are_not_run_again)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    _Atomic int *gate = mp_pool_shared_alloc(p, sizeof *gate);
    _Atomic int *counter = mp_pool_shared_alloc(p, sizeof *counter);
    mp_async_result *g, *m, *k;
    CHECK_OK(mp_pool_apply_async(p, &g, flag_task, &gate, sizeof gate, NULL));
    wait_flag(gate, 1);
    _Atomic int *in[6] = {counter, counter, counter, counter, counter, counter};
    CHECK_OK(mp_pool_map_async(p, &m, count_task, in, sizeof in[0], 6, sizeof(int),
                               &(mp_async_options){.chunksize = 2}));
    CHECK_OK(mp_pool_apply_async(p, &k, kill_self, NULL, 0, NULL));
    unsigned zero = 0;
    for (int i = 0; i < 3; i++)
        CHECK_OK(mp_pool_apply_async(p, NULL, sleep_ms_task, &zero, sizeof zero, NULL));
    th_sleep_ms(200);
    atomic_store(gate, 2);
    CHECK_OK(mp_async_result_get(g, 60000, NULL, NULL));
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(k, 60000, NULL, NULL));
    const void *d;
    size_t len;
    CHECK_OK(mp_async_result_get(m, 60000, &d, &len));
    CHECK_EQ(6 * sizeof(int), len);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(i + 1, ((const int *)d)[i]);
    CHECK_EQ(6, atomic_load(counter));
    mp_async_result_destroy(g);
    mp_async_result_destroy(m);
    mp_async_result_destroy(k);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

/* With a region too small for the batches, a finished but unreported task runs
 * again: still exactly one result each. */
TEST(pool_small_region_reruns_unreported_tasks_with_one_result_each)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1, .shared_size = 64 << 10}));
    _Atomic int *gate = mp_pool_shared_alloc(p, sizeof *gate);
    _Atomic int *counter = mp_pool_shared_alloc(p, sizeof *counter);
    mp_async_result *g, *a[4], *k;
    CHECK_OK(mp_pool_apply_async(p, &g, flag_task, &gate, sizeof gate, NULL));
    wait_flag(gate, 1);
    for (int i = 0; i < 4; i++)
        CHECK_OK(mp_pool_apply_async(p, &a[i], count_task, &counter, sizeof counter, NULL));
    CHECK_OK(mp_pool_apply_async(p, &k, kill_self, NULL, 0, NULL));
    unsigned zero = 0;
    for (int i = 0; i < 3; i++)
        CHECK_OK(mp_pool_apply_async(p, NULL, sleep_ms_task, &zero, sizeof zero, NULL));
    th_sleep_ms(200);
    atomic_store(gate, 2);
    CHECK_OK(mp_async_result_get(g, 60000, NULL, NULL));
    CHECK_RC(MP_EWORKERDIED, mp_async_result_get(k, 60000, NULL, NULL));
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        const void *d;
        CHECK_OK(mp_async_result_get(a[i], 60000, &d, NULL));
        int v = *(const int *)d;
        CHECK(v >= 1 && v <= 8 && !(seen & (1 << v)));
        seen |= 1 << v;
        mp_async_result_destroy(a[i]);
    }
    CHECK(atomic_load(counter) >= 4 && atomic_load(counter) <= 8);
    mp_async_result_destroy(g);
    mp_async_result_destroy(k);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}
