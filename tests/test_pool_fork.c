/* mp_pool and fork: handles copied into a forked child refuse or leave the pool alone,
 * children do not hold the pool up, and a child makes pools of its own. */
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
