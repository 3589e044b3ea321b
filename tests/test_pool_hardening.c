/* mp_pool: behaviour at the edges found in review — zero-copy maps with no worker
 * free to join, waits from callbacks, handles copied into forked children, sizes
 * that overflow. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int sleep_ms_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    th_sleep_ms(*(const unsigned *)arg);
    return 0;
}

static int square(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg, y = x * x;
    return mp_task_return(t, &y, sizeof y);
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

static int nop_kernel(const void *in, void *out, size_t n, void *ctx)
{
    (void)in;
    (void)out;
    (void)n;
    (void)ctx;
    return 0;
}

/* Sets the shared flag at arg, then waits until it reads 2. */
static int flag_task(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    (void)t;
    _Atomic int *flag = *(_Atomic int *const *)arg;
    atomic_store(flag, 1);
    while (atomic_load(flag) != 2)
        th_sleep_ms(1);
    return 0;
}

static void wait_flag(_Atomic int *flag, int v)
{
    uint64_t t0 = th_now_ms();
    while (atomic_load(flag) != v) {
        CHECK(th_now_ms() - t0 < 60000);
        th_sleep_ms(1);
    }
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

static atomic_bool stop_locker;

/* Takes and releases the pool's lock as fast as it can (worker_pids locks it). */
static void *locker(void *arg)
{
    int pids[4];
    while (!atomic_load(&stop_locker))
        mp_pool_worker_pids(arg, pids, 4);
    return NULL;
}

static int destroy_in_child(void *arg)
{
    mp_async_result_destroy(arg); /* the copy: must not touch the parent's pool */
    _exit(0);
}

/* A child forked while another thread held the pool's lock gets the lock locked:
 * destroying its copy of a zero-copy result must not take it. */
TEST(pool_job_result_copy_destroyed_in_forked_child_does_not_hang)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    _Atomic int *flag = mp_pool_shared_alloc(p, sizeof *flag);
    mp_async_result *busy, *job;
    CHECK_OK(mp_pool_apply_async(p, &busy, flag_task, &flag, sizeof flag, NULL));
    wait_flag(flag, 1); /* the job stays attached while the worker is busy */
    CHECK_OK(mp_pool_map_shared_async(p, &job, nop_kernel, NULL, 0, NULL, 0, 10, NULL, NULL));
    pthread_t th;
    atomic_store(&stop_locker, false);
    pthread_create(&th, NULL, locker, p);
    for (int i = 0; i < 100; i++) {
        int pid = th_fork(destroy_in_child, job);
        uint64_t t0 = th_now_ms();
        int st = 0;
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (th_now_ms() - t0 > 20000) {
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                atomic_store(&stop_locker, true);
                pthread_join(th, NULL);
                th_fail(__FILE__, __LINE__, "the child hung destroying its copy (fork %d)", i);
            }
            th_sleep_ms(1);
        }
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    atomic_store(&stop_locker, true);
    pthread_join(th, NULL);
    atomic_store(flag, 2);
    CHECK_OK(mp_async_result_get(busy, 60000, NULL, NULL));
    CHECK_OK(mp_async_result_get(job, 60000, NULL, NULL));
    mp_async_result_destroy(busy);
    mp_async_result_destroy(job);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

static int pids_in_child(void *arg)
{
    int pid;
    _exit(mp_pool_worker_pids(arg, &pid, 1) == MP_ECHILD ? 0 : 1);
}

TEST(pool_worker_pids_in_forked_child_is_echild)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    CHECK_EQ(0, th_wait(th_fork(pids_in_child, p)));
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

static int block_on_pipe(void *arg)
{
    char c;
    int *fds = arg;
    close(fds[1]);
    (void)!read(fds[0], &c, 1); /* until the parent closes its end */
    _exit(0);
}

/* A thread pool's workers end by closing their socket ends; a child forked without
 * exec holds copies of those ends. The pool must see its threads end anyway. */
TEST(thread_pool_join_is_not_held_up_by_a_forked_child)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .threads = true}));
    int fds[2];
    CHECK(pipe(fds) == 0);
    int pid = th_fork(block_on_pipe, fds);
    close(fds[0]);
    int x = 6;
    void *res;
    size_t len;
    CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, &len));
    CHECK_EQ(36, *(int *)res);
    free(res);
    CHECK_OK(mp_pool_close(p));
    int rc = mp_pool_join(p, 20000);
    close(fds[1]);
    CHECK_EQ(0, th_wait(pid));
    CHECK_OK(rc);
    mp_pool_destroy(p);
}

/* The same with maxtasksperchild: every worker thread ends after one task and the
 * replacements must come while the forked child lives. */
TEST(thread_pool_maxtasks_replacements_not_held_up_by_a_forked_child)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(
        &p, &(mp_pool_options){.processes = 2, .threads = true, .maxtasksperchild = 1}));
    int fds[2];
    CHECK(pipe(fds) == 0);
    int pid = th_fork(block_on_pipe, fds);
    close(fds[0]);
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    mp_async_result *r;
    CHECK_OK(mp_pool_map_async(p, &r, square, in, sizeof in[0], 8, sizeof out[0],
                               &(mp_async_options){.chunksize = 1}));
    int rc = mp_async_result_get(r, 20000, NULL, NULL);
    close(fds[1]);
    CHECK_EQ(0, th_wait(pid));
    CHECK_OK(rc);
    mp_async_result_destroy(r);
    mp_pool_destroy(p);
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
TEST(pool_destroy_from_a_callback_frees_the_pool_when_its_handler_ends)
{
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
    uint64_t t0 = th_now_ms();
    while (thread_count() > 1) { /* the handler ends, freeing the pool */
        CHECK(th_now_ms() - t0 < 60000);
        th_sleep_ms(5);
    }
    mp_async_result_destroy(slow);
    mp_async_result_destroy(r);
}

static int pool_in_child_body(mp_pool *parent_pool);

/* _exit: the handler thread of the parent's pool is not in the child, so what only
 * it referenced would read as leaked at exit. */
static int pool_in_child(void *arg)
{
    _exit(pool_in_child_body(arg));
}

static int pool_in_child_body(mp_pool *parent_pool)
{
    int x = 4;
    if (mp_pool_apply_async(parent_pool, NULL, square, &x, sizeof x, NULL) != MP_ECHILD)
        return 2;
    mp_pool_destroy(parent_pool); /* the copy: ignored */
    mp_pool *p;
    if (mp_pool_new(&p, &(mp_pool_options){.processes = 2}) != 0)
        return 3;
    int in[50], out[50];
    for (int i = 0; i < 50; i++)
        in[i] = i;
    if (mp_pool_map(p, square, in, sizeof in[0], 50, out, sizeof out[0], NULL) != 0)
        return 4;
    for (int i = 0; i < 50; i++)
        if (out[i] != i * i)
            return 5;
    mp_pool_close(p);
    mp_pool_join(p, -1);
    mp_pool_destroy(p);
    return 0;
}

/* A child forked from a process with a running pool creates and uses its own. */
TEST(pool_created_in_a_forked_child_works)
{
    SKIP_UNDER_TSAN("the child of a multi-threaded process starts threads");
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2}));
    CHECK_EQ(0, th_wait(th_fork(pool_in_child, p)));
    int x = 5;
    void *res;
    CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, NULL));
    CHECK_EQ(25, *(int *)res);
    free(res);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}
