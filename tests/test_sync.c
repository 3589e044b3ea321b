/* Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier:
 * behaviour across threads and processes, timeouts, misuse and peer death. */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arena.h"
#include "harness.h"
#include "sync/sync.h"

/* Memory every process of a test shares (allocated before the forks). */
struct shared {
    mp_lock *lock;
    mp_rlock *rlock;
    mp_semaphore *sem;
    mp_condition *cond;
    mp_event *ready, *go;
    mp_barrier *barrier;
    _Atomic int counter;
    _Atomic int inside, max_inside;
    _Atomic int flag;
    _Atomic int results[16];
    int plain; /* guarded by the test's lock */
    _Atomic uint64_t id;
    int n, m;
};

static struct shared *shared_new(void)
{
    struct shared *s = mp__shm_alloc(sizeof *s);
    CHECK(s != NULL);
    CHECK_OK(mp_event_new(&s->ready, NULL));
    CHECK_OK(mp_event_new(&s->go, NULL));
    return s;
}

static void shared_free(struct shared *s)
{
    mp_lock_destroy(s->lock);
    mp_rlock_destroy(s->rlock);
    mp_semaphore_destroy(s->sem);
    mp_condition_destroy(s->cond);
    mp_event_destroy(s->ready);
    mp_event_destroy(s->go);
    mp_barrier_destroy(s->barrier);
    mp__shm_free(s);
}

static void kill_and_reap(int pid)
{
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
}

static void *run_thread(void *(*fn)(void *), void *arg, pthread_t *t)
{
    CHECK(pthread_create(t, NULL, fn, arg) == 0);
    return NULL;
}

static intptr_t join_thread(pthread_t t)
{
    void *r;
    CHECK(pthread_join(t, &r) == 0);
    return (intptr_t)r;
}

/* ---- Lock ---------------------------------------------------------------- */

TEST(lock_acquire_release_and_locked)
{
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK(!mp_lock_locked(l));
    CHECK_OK(mp_lock_acquire(l, -1));
    CHECK(mp_lock_locked(l));
    CHECK_OK(mp_lock_release(l));
    CHECK(!mp_lock_locked(l));
    CHECK_OK(mp_lock_acquire(l, 0));
    CHECK_OK(mp_lock_release(l));
    mp_lock_destroy(l);
    mp_lock_destroy(NULL);
}

TEST(lock_try_fails_at_once_when_held)
{
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_OK(mp_lock_acquire(l, -1));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(l, 0)); /* not recursive */
    CHECK_OK(mp_lock_release(l));
    mp_lock_destroy(l);
}

TEST(lock_acquire_times_out)
{
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_OK(mp_lock_acquire(l, -1));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(l, 150));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 150 && waited < 10000);
    CHECK_OK(mp_lock_release(l));
    mp_lock_destroy(l);
}

TEST(lock_release_of_unlocked_lock_is_eperm)
{
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_RC(MP_EPERM, mp_lock_release(l));
    CHECK_OK(mp_lock_acquire(l, 0));
    CHECK_OK(mp_lock_release(l));
    CHECK_RC(MP_EPERM, mp_lock_release(l));
    CHECK(!mp_lock_locked(l));
    mp_lock_destroy(l);
}

TEST(lock_rejects_bad_arguments)
{
    mp_lock *l;
    CHECK_RC(MP_EINVAL, mp_lock_new(NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_lock_new(&l, &(mp_lock_options){.reserved = 1}));
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_RC(MP_EINVAL, mp_lock_acquire(l, -2));
    CHECK(!mp_lock_locked(l));
    CHECK_RC(MP_EINVAL, mp_lock_acquire(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_lock_release(NULL));
    CHECK(!mp_lock_locked(NULL));
    mp_lock_destroy(l);
}

static int release_lock(void *arg)
{
    struct shared *s = arg;
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
    CHECK_OK(mp_lock_release(s->lock));
    return 0;
}

TEST(lock_may_be_released_by_another_process)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    CHECK_OK(mp_lock_acquire(s->lock, -1));
    CHECK_EQ(0, th_wait(th_fork(release_lock, s)));
    CHECK(!mp_lock_locked(s->lock));
    shared_free(s);
}

static int release_lock_if_free(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_lock_acquire(s->lock, 1000));
    CHECK_OK(mp_lock_release(s->lock));
    return 0;
}

static void *increment_thread(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < s->m; i++) {
        CHECK_OK(mp_lock_acquire(s->lock, -1));
        s->plain++;
        CHECK_OK(mp_lock_release(s->lock));
    }
    return NULL;
}

static int increment_process(void *arg)
{
    pthread_t t;
    run_thread(increment_thread, arg, &t);
    increment_thread(arg);
    join_thread(t);
    return 0;
}

TEST(lock_counts_exactly_under_contention)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    s->m = 20000;
    int pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = th_fork(increment_process, s);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(4 * 2 * 20000, s->plain);
    CHECK(!mp_lock_locked(s->lock));
    shared_free(s);
}

static int hold_lock_forever(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_lock_acquire(s->lock, -1));
    mp_event_set(s->ready);
    for (;;)
        pause();
}

TEST(lock_holder_killed_is_taken_over_with_eownerdead)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(hold_lock_forever, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
    kill(pid, SIGKILL);
    /* Not reaped yet: a zombie holder counts as dead. */
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 10000));
    CHECK(mp_lock_locked(s->lock));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0)); /* we hold it now */
    CHECK_OK(mp_lock_release(s->lock));
    CHECK_OK(mp_lock_acquire(s->lock, 0));
    CHECK_OK(mp_lock_release(s->lock));
    CHECK_EQ(-SIGKILL, th_wait(pid));
    shared_free(s);
}

static int wait_for_lock(void *arg)
{
    struct shared *s = arg;
    mp_event_set(s->go);
    int rc = mp_lock_acquire(s->lock, 30000);
    return rc == MP_EOWNERDEAD ? 0 : 10 + (rc == 0);
}

TEST(lock_sleeping_waiter_gets_eownerdead_when_holder_is_killed)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int holder = th_fork(hold_lock_forever, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    int waiter = th_fork(wait_for_lock, s);
    CHECK_OK(mp_event_wait(s->go, 10000));
    th_sleep_ms(100); /* let it go to sleep in the kernel */
    kill_and_reap(holder);
    CHECK_EQ(0, th_wait(waiter));
    CHECK(mp_lock_locked(s->lock)); /* the waiter exited holding it */
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 0));
    CHECK_OK(mp_lock_release(s->lock));
    shared_free(s);
}

static int sleep_on_lock(void *arg)
{
    struct shared *s = arg;
    mp_event_set(s->go);
    mp_lock_acquire(s->lock, -1);
    return 1; /* never reached: killed while waiting */
}

TEST(lock_waiter_killed_while_sleeping_harms_nobody)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    CHECK_OK(mp_lock_acquire(s->lock, -1));
    int pid = th_fork(sleep_on_lock, s);
    CHECK_OK(mp_event_wait(s->go, 10000));
    th_sleep_ms(50);
    kill_and_reap(pid);
    CHECK_OK(mp_lock_release(s->lock)); /* may wake nobody: fine */
    CHECK_OK(mp_lock_acquire(s->lock, 0));
    CHECK_OK(mp_lock_release(s->lock));
    CHECK_EQ(0, th_wait(th_fork(release_lock_if_free, s)));
    shared_free(s);
}

static int publish_id_and_sleep(void *arg)
{
    struct shared *s = arg;
    atomic_store(&s->id, mp__self_id());
    mp_event_set(s->ready);
    for (;;)
        pause();
    return 0;
}

TEST(lock_holder_whose_pid_was_reused_is_taken_over)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(publish_id_and_sleep, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    uint64_t id = atomic_load(&s->id);
    CHECK_EQ(pid, (pid_t)(id & MP__LOCK_PID_MASK));
    CHECK(id >> 32 != 0); /* /proc gave a start time */
    /* The live child, as recorded by itself, holds the lock: it stays held. */
    atomic_store(mp__lock_word(s->lock), id);
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 120));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
    /* An earlier process that had the same pid holds it: that one is dead. */
    atomic_store(mp__lock_word(s->lock), id ^ ((uint64_t)1 << 40));
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 10000));
    CHECK_OK(mp_lock_release(s->lock));
    kill_and_reap(pid);
    shared_free(s);
}

/* A process that had our pid before us (another start time) died holding it. */
static uint64_t earlier_incarnation_of_us(void)
{
    uint64_t me = mp__self_id();
    CHECK(me >> 32 != 0); /* /proc gave a start time */
    return me ^ ((uint64_t)1 << 40);
}

TEST(lock_held_by_an_earlier_process_with_our_pid_is_taken_over)
{
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    mp_condition *c;
    CHECK_OK(mp_condition_new(&c, &(mp_condition_options){.lock = l}));
    atomic_store(mp__lock_word(l), earlier_incarnation_of_us());
    CHECK_RC(MP_EPERM, mp_condition_notify(c, 1)); /* not held by this process */
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(l, 0));
    CHECK_OK(mp_lock_release(l));
    atomic_store(mp__lock_word(l), earlier_incarnation_of_us() | MP__LOCK_WAITERS);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(l, 20000));
    CHECK(th_now_ms() - t0 < 10000);
    CHECK_OK(mp_lock_release(l));
    CHECK(!mp_lock_locked(l));
    mp_condition_destroy(c);
    mp_lock_destroy(l);
}

static void *hold_lock_in_thread(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_lock_acquire(s->lock, -1));
    mp_event_set(s->ready);
    for (;;)
        pause();
    return NULL;
}

/* The main thread leaves with pthread_exit; another thread holds the lock. */
static int hold_lock_after_main_thread_exits(void *arg)
{
    pthread_t t;
    run_thread(hold_lock_in_thread, arg, &t);
    pthread_exit(NULL);
}

static char proc_state(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static void *sleep_forever(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static int hold_lock_among_threads(void *arg)
{
    pthread_t t;
    for (int i = 0; i < 3; i++)
        run_thread(sleep_forever, NULL, &t);
    run_thread(hold_lock_in_thread, arg, &t);
    for (;;)
        pause();
    return 0;
}

TEST(lock_holder_killed_with_its_threads_is_dead_while_unreaped)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(hold_lock_among_threads, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 100));
    kill(pid, SIGKILL); /* a zombie until th_wait */
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 10000));
    CHECK_OK(mp_lock_release(s->lock));
    CHECK_EQ(-SIGKILL, th_wait(pid));
    shared_free(s);
}

TEST(lock_holder_whose_main_thread_exited_is_still_alive)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(hold_lock_after_main_thread_exits, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    /* The main thread is a zombie now; the process lives on in its thread. */
    for (int i = 0; i < 1000 && proc_state(pid) != 'Z'; i++)
        th_sleep_ms(10);
    CHECK_EQ('Z', proc_state(pid));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 300));
    kill_and_reap(pid);
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 10000));
    CHECK_OK(mp_lock_release(s->lock));
    shared_free(s);
}

/* In a child whose /proc is hidden (a mount namespace with an empty tmpfs over
 * it), and without pidfds: a live holder can then only be asked with kill(). */
static int live_holder_without_proc(void *arg)
{
    (void)arg;
    setenv("MPROC_NO_PIDFD", "1", 1); /* before this process's first look */
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("none", "/proc", "tmpfs", 0, NULL) != 0)
        return 0; /* not allowed here: nothing to test */
    CHECK(access("/proc/self/stat", F_OK) != 0);
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(hold_lock_forever, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 200));
    kill_and_reap(pid);
    CHECK_RC(MP_EOWNERDEAD, mp_lock_acquire(s->lock, 10000));
    CHECK_OK(mp_lock_release(s->lock));
    shared_free(s);
    CHECK(umount2("/proc", MNT_DETACH) == 0); /* LeakSanitizer reads it at exit */
    return 0;
}

TEST(lock_holder_is_alive_when_proc_cannot_be_read)
{
    CHECK_EQ(0, th_wait(th_fork(live_holder_without_proc, NULL)));
}

TEST(lock_destroy_frees_only_in_the_creator)
{
    size_t before = mp__shm_bytes_in_use();
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    size_t with_lock = mp__shm_bytes_in_use();
    CHECK(with_lock > before);
    int pid = fork();
    if (pid == 0) {
        mp_lock_destroy(s->lock); /* a no-op here */
        _exit(mp__shm_bytes_in_use() == with_lock ? 0 : 1);
    }
    CHECK_EQ(0, th_wait(pid));
    CHECK_EQ(with_lock, mp__shm_bytes_in_use());
    CHECK_OK(mp_lock_acquire(s->lock, 0));
    CHECK_OK(mp_lock_release(s->lock));
    shared_free(s);
    CHECK_EQ(before, mp__shm_bytes_in_use());
}

/* Pid reuse, staged in a pid namespace of our own (as root): the creator C (pid
 * 2 there) vanishes, and E, forked later from C's child D, is given pid 2
 * again. Every destroy in E must be a no-op. Where namespaces are not allowed
 * there is nothing to test (0). */
struct reused {
    mp_lock *lock;
    mp_rlock *rlock;
    mp_semaphore *sem;
    mp_condition *cond;
    mp_event *event;
    mp_barrier *barrier;
    mp_value *value;
    mp_queue *queue;
};

static int destroy_all_in_e(void *arg)
{
    struct reused *r = arg;
    size_t before = mp__shm_bytes_in_use();
    mp_lock_destroy(r->lock);
    mp_rlock_destroy(r->rlock);
    mp_semaphore_destroy(r->sem);
    mp_condition_destroy(r->cond);
    mp_event_destroy(r->event);
    mp_barrier_destroy(r->barrier);
    mp_value_destroy(r->value);
    mp_queue_destroy(r->queue);
    return mp__shm_bytes_in_use() == before ? 0 : 1;
}

static mp_queue *queue_handle;

static void *create_all_in_c(void *arg)
{
    (void)arg;
    struct reused *r = mp__shm_alloc(sizeof *r); /* shared with D and E, never freed */
    CHECK(r != NULL);
    CHECK_OK(mp_lock_new(&r->lock, NULL));
    CHECK_OK(mp_rlock_new(&r->rlock, NULL));
    CHECK_OK(mp_semaphore_new(&r->sem, 1, NULL));
    CHECK_OK(mp_condition_new(&r->cond, NULL));
    CHECK_OK(mp_event_new(&r->event, NULL));
    CHECK_OK(mp_barrier_new(&r->barrier, 2, NULL));
    CHECK_OK(mp_value_new(&r->value, 'i', NULL, NULL));
    CHECK_OK(mp_queue_new(&r->queue, 0, &(mp_queue_options){.ring_bytes = 4096}));
    queue_handle = r->queue; /* the handle is private memory: keep it reachable for LeakSanitizer */
    return r;
}

TEST(destroy_in_a_process_given_the_creators_pid_is_a_no_op)
{
    SKIP_UNDER_TSAN("pid-reuse staging");
    CHECK_EQ(0, th_with_reused_pid(create_all_in_c, destroy_all_in_e, NULL, NULL));
}

static void on_signal(int sig)
{
    (void)sig;
}

TEST(lock_timed_acquire_keeps_its_deadline_across_signals)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGALRM, &sa, NULL);
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_OK(mp_lock_acquire(l, -1));
    ualarm(30000, 30000);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(l, 300));
    uint64_t waited = th_now_ms() - t0;
    ualarm(0, 0);
    CHECK(waited >= 300 && waited < 10000);
    CHECK_OK(mp_lock_release(l));
    mp_lock_destroy(l);
}

/* Kills the calling process at its next system call other than exit_group. */
static void forbid_system_calls(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0);
}

static int uncontended_operations(void *arg)
{
    struct shared *s = arg;
    /* Warm up: the first call of a thread caches its ids (getpid, gettid). */
    mp_lock_acquire(s->lock, -1);
    mp_lock_release(s->lock);
    forbid_system_calls();
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        bad |= mp_lock_acquire(s->lock, -1) | mp_lock_release(s->lock);
        bad |= mp_lock_acquire(s->lock, 0) | mp_lock_release(s->lock);
        bad |= mp_rlock_acquire(s->rlock, -1) | mp_rlock_acquire(s->rlock, 0);
        bad |= mp_rlock_release(s->rlock) | mp_rlock_release(s->rlock);
        bad |= mp_semaphore_acquire(s->sem, -1) | mp_semaphore_release(s->sem);
        bad |= mp_event_set(s->go) | mp_event_wait(s->go, -1) | mp_event_clear(s->go);
        bad |= mp_condition_acquire(s->cond, -1) | mp_condition_notify_all(s->cond);
        bad |= mp_condition_release(s->cond);
    }
    syscall(SYS_exit_group, bad == 0 ? 0 : 1);
    return 2;
}

TEST(uncontended_operations_make_no_system_call)
{
    SKIP_UNDER_TSAN("the child may make no system call, and TSan's runtime makes its own");
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    CHECK_OK(mp_rlock_new(&s->rlock, NULL));
    CHECK_OK(mp_semaphore_new(&s->sem, 1, NULL));
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    /* A system call kills the child with SIGSYS. */
    CHECK_EQ(0, th_wait(th_fork(uncontended_operations, s)));
    shared_free(s);
}

/* ---- RLock --------------------------------------------------------------- */

TEST(rlock_is_recursive_and_counts)
{
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    CHECK(!mp_rlock_is_mine(r));
    CHECK_EQ(0, mp_rlock_count(r));
    CHECK_OK(mp_rlock_acquire(r, -1));
    CHECK_OK(mp_rlock_acquire(r, 0));
    CHECK_OK(mp_rlock_acquire(r, 100));
    CHECK_EQ(3, mp_rlock_count(r));
    CHECK(mp_rlock_is_mine(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_EQ(1, mp_rlock_count(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_EQ(0, mp_rlock_count(r));
    CHECK_RC(MP_EPERM, mp_rlock_release(r));
    mp_rlock_destroy(r);
}

static void *try_rlock(void *arg)
{
    return (void *)(intptr_t)mp_rlock_acquire(arg, 0);
}
static void *release_rlock(void *arg)
{
    return (void *)(intptr_t)mp_rlock_release(arg);
}

TEST(rlock_other_thread_can_neither_take_nor_release_it)
{
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    CHECK_OK(mp_rlock_acquire(r, -1));
    CHECK_OK(mp_rlock_acquire(r, -1));
    pthread_t t;
    run_thread(release_rlock, r, &t);
    CHECK_RC(MP_EPERM, (int)join_thread(t));
    run_thread(try_rlock, r, &t);
    CHECK_RC(MP_ETIMEDOUT, (int)join_thread(t));
    CHECK_OK(mp_rlock_release(r));
    run_thread(try_rlock, r, &t);
    CHECK_RC(MP_ETIMEDOUT, (int)join_thread(t)); /* one level still held */
    CHECK_OK(mp_rlock_release(r));
    run_thread(try_rlock, r, &t);
    CHECK_OK((int)join_thread(t)); /* that thread now owns it and ended */
    CHECK(!mp_rlock_is_mine(r));
    CHECK_RC(MP_EPERM, mp_rlock_release(r));
    mp_rlock_destroy(r);
}

static int rlock_in_child(void *arg)
{
    struct shared *s = arg;
    CHECK(!mp_rlock_is_mine(s->rlock)); /* the parent's thread owns it, not our copy */
    CHECK_RC(MP_EPERM, mp_rlock_release(s->rlock));
    CHECK_RC(MP_ETIMEDOUT, mp_rlock_acquire(s->rlock, 50));
    return 0;
}

TEST(rlock_is_not_owned_by_a_forked_child)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_rlock_new(&s->rlock, NULL));
    CHECK_OK(mp_rlock_acquire(s->rlock, -1));
    CHECK_EQ(0, th_wait(th_fork(rlock_in_child, s)));
    CHECK_EQ(1, mp_rlock_count(s->rlock));
    CHECK_OK(mp_rlock_release(s->rlock));
    shared_free(s);
}

static int hold_rlock_forever(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_rlock_acquire(s->rlock, -1));
    CHECK_OK(mp_rlock_acquire(s->rlock, -1));
    mp_event_set(s->ready);
    for (;;)
        pause();
}

TEST(rlock_holder_killed_is_taken_over_with_eownerdead)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_rlock_new(&s->rlock, NULL));
    int pid = th_fork(hold_rlock_forever, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_RC(MP_ETIMEDOUT, mp_rlock_acquire(s->rlock, 100));
    kill_and_reap(pid);
    CHECK_RC(MP_EOWNERDEAD, mp_rlock_acquire(s->rlock, 10000));
    CHECK_EQ(1, mp_rlock_count(s->rlock));
    CHECK_OK(mp_rlock_release(s->rlock));
    CHECK_RC(MP_EPERM, mp_rlock_release(s->rlock));
    shared_free(s);
}

TEST(rlock_held_by_an_earlier_process_with_our_pid_is_not_ours)
{
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    /* The dead process's thread had our tid too (its main thread, say). */
    atomic_store(&r->word, earlier_incarnation_of_us());
    atomic_store(&r->owner_tid, mp__self_tid());
    r->count = 7;
    CHECK(!mp_rlock_is_mine(r));
    CHECK_EQ(0, mp_rlock_count(r));
    CHECK_RC(MP_EPERM, mp_rlock_release(r));
    CHECK_RC(MP_EOWNERDEAD, mp_rlock_acquire(r, 0));
    CHECK_EQ(1, mp_rlock_count(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_EQ(0, atomic_load(&r->word));
    atomic_store(&r->word, earlier_incarnation_of_us() | MP__LOCK_WAITERS);
    atomic_store(&r->owner_tid, mp__self_tid());
    r->count = 7;
    CHECK_RC(MP_EOWNERDEAD, mp_rlock_acquire(r, 20000));
    CHECK_EQ(1, mp_rlock_count(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_EQ(0, atomic_load(&r->word));
    mp_rlock_destroy(r);
}

TEST(rlock_recursion_stops_at_its_limit_with_eoverflow)
{
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    CHECK_OK(mp_rlock_acquire(r, -1));
    r->count = UINT32_MAX - 1; /* as if acquired that many times */
    CHECK_OK(mp_rlock_acquire(r, -1));
    CHECK_EQ(UINT32_MAX, mp_rlock_count(r));
    CHECK_RC(MP_EOVERFLOW, mp_rlock_acquire(r, -1));
    CHECK_RC(MP_EOVERFLOW, mp_rlock_acquire(r, 0));
    CHECK_EQ(UINT32_MAX, mp_rlock_count(r));
    CHECK_OK(mp_rlock_release(r));
    r->count = 1;
    CHECK_OK(mp_rlock_release(r));
    CHECK(!mp_rlock_is_mine(r));
    CHECK_EQ(0, atomic_load(&r->word));
    mp_rlock_destroy(r);
}

TEST(rlock_rejects_bad_arguments)
{
    mp_rlock *r;
    CHECK_RC(MP_EINVAL, mp_rlock_new(NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_rlock_new(&r, &(mp_rlock_options){.reserved = 1}));
    CHECK_OK(mp_rlock_new(&r, NULL));
    CHECK_RC(MP_EINVAL, mp_rlock_acquire(r, -5));
    CHECK_RC(MP_EINVAL, mp_rlock_acquire(NULL, -1));
    CHECK_RC(MP_EINVAL, mp_rlock_release(NULL));
    CHECK_EQ(0, mp_rlock_count(NULL));
    mp_rlock_destroy(r);
    mp_rlock_destroy(NULL);
}

/* ---- Semaphore ----------------------------------------------------------- */

TEST(semaphore_counts_down_and_refuses_at_zero)
{
    mp_semaphore *sem;
    CHECK_OK(mp_semaphore_new(&sem, 2, NULL));
    CHECK_EQ(2, mp_semaphore_get_value(sem));
    CHECK_OK(mp_semaphore_acquire(sem, 0));
    CHECK_OK(mp_semaphore_acquire(sem, -1));
    CHECK_EQ(0, mp_semaphore_get_value(sem));
    CHECK_RC(MP_ETIMEDOUT, mp_semaphore_acquire(sem, 0));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_semaphore_acquire(sem, 100));
    CHECK(th_now_ms() - t0 >= 100);
    CHECK_OK(mp_semaphore_release(sem));
    CHECK_OK(mp_semaphore_release(sem));
    CHECK_OK(mp_semaphore_release(sem)); /* unbounded: past the initial value */
    CHECK_EQ(3, mp_semaphore_get_value(sem));
    mp_semaphore_destroy(sem);
}

TEST(bounded_semaphore_release_past_initial_value_is_eperm)
{
    mp_semaphore *sem;
    CHECK_OK(mp_bounded_semaphore_new(&sem, 1));
    CHECK_RC(MP_EPERM, mp_semaphore_release(sem));
    CHECK_OK(mp_semaphore_acquire(sem, 0));
    CHECK_OK(mp_semaphore_release(sem));
    CHECK_RC(MP_EPERM, mp_semaphore_release(sem));
    CHECK_EQ(1, mp_semaphore_get_value(sem));
    mp_semaphore_destroy(sem);
    CHECK_OK(mp_bounded_semaphore_new(&sem, 0));
    CHECK_RC(MP_EPERM, mp_semaphore_release(sem));
    mp_semaphore_destroy(sem);
}

TEST(semaphore_rejects_bad_arguments_and_overflow)
{
    mp_semaphore *sem;
    CHECK_RC(MP_EINVAL, mp_semaphore_new(&sem, -1, NULL));
    CHECK_RC(MP_EINVAL, mp_semaphore_new(NULL, 1, NULL));
    CHECK_RC(MP_EINVAL, mp_semaphore_acquire(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_semaphore_release(NULL));
    CHECK_RC(MP_EINVAL, mp_semaphore_get_value(NULL));
    CHECK_OK(mp_semaphore_new(&sem, INT32_MAX, NULL));
    CHECK_RC(MP_EINVAL, mp_semaphore_acquire(sem, -2));
    CHECK_RC(MP_EOVERFLOW, mp_semaphore_release(sem));
    CHECK_EQ(INT32_MAX, mp_semaphore_get_value(sem));
    mp_semaphore_destroy(sem);
}

static int take_semaphore(void *arg)
{
    struct shared *s = arg;
    mp_event_set(s->go);
    return mp_semaphore_acquire(s->sem, 30000) == 0 ? 0 : 1;
}

TEST(semaphore_release_wakes_a_waiter_in_another_process)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_semaphore_new(&s->sem, 0, NULL));
    int pid = th_fork(take_semaphore, s);
    CHECK_OK(mp_event_wait(s->go, 10000));
    th_sleep_ms(50);
    CHECK_OK(mp_semaphore_release(s->sem));
    CHECK_EQ(0, th_wait(pid));
    CHECK_EQ(0, mp_semaphore_get_value(s->sem));
    shared_free(s);
}

static int bounded_worker(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 5; i++) {
        CHECK_OK(mp_semaphore_acquire(s->sem, 30000));
        int now = atomic_fetch_add(&s->inside, 1) + 1;
        int max = atomic_load(&s->max_inside);
        while (now > max && !atomic_compare_exchange_weak(&s->max_inside, &max, now))
            ;
        th_sleep_ms(5);
        atomic_fetch_sub(&s->inside, 1);
        CHECK_OK(mp_semaphore_release(s->sem));
    }
    return 0;
}

TEST(semaphore_limits_concurrency_across_processes)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_bounded_semaphore_new(&s->sem, 2));
    int pids[6];
    for (int i = 0; i < 6; i++)
        pids[i] = th_fork(bounded_worker, s);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK(atomic_load(&s->max_inside) >= 1 && atomic_load(&s->max_inside) <= 2);
    CHECK_EQ(2, mp_semaphore_get_value(s->sem));
    shared_free(s);
}

/* ---- Condition ----------------------------------------------------------- */

static bool flag_is_set(void *arg)
{
    return atomic_load(&((struct shared *)arg)->flag) != 0;
}

TEST(condition_wait_and_notify_need_the_lock)
{
    mp_condition *c;
    CHECK_OK(mp_condition_new(&c, NULL));
    CHECK_RC(MP_EPERM, mp_condition_wait(c, 0));
    CHECK_RC(MP_EPERM, mp_condition_notify(c, 1));
    CHECK_RC(MP_EPERM, mp_condition_notify_all(c));
    CHECK_RC(MP_EPERM, mp_condition_wait_for(c, flag_is_set, NULL, 0));
    CHECK_RC(MP_EPERM, mp_condition_release(c));
    CHECK_OK(mp_condition_acquire(c, -1));
    CHECK_OK(mp_condition_notify(c, 1)); /* nobody waits: fine */
    CHECK_OK(mp_condition_notify_all(c));
    CHECK_RC(MP_EINVAL, mp_condition_notify(c, -1));
    CHECK_RC(MP_EINVAL, mp_condition_wait(c, -2));
    CHECK_RC(MP_EINVAL, mp_condition_wait_for(c, NULL, NULL, 0));
    CHECK_OK(mp_condition_release(c));
    mp_condition_destroy(c);
    CHECK_RC(MP_EINVAL, mp_condition_new(NULL, NULL));
    mp_lock *l;
    mp_rlock *r;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_OK(mp_rlock_new(&r, NULL));
    CHECK_RC(MP_EINVAL, mp_condition_new(&c, &(mp_condition_options){.lock = l, .rlock = r}));
    mp_lock_destroy(l);
    mp_rlock_destroy(r);
    CHECK_RC(MP_EINVAL, mp_condition_wait(NULL, 0));
    mp_condition_destroy(NULL);
}

static int condition_misuse_in_child(void *arg)
{
    struct shared *s = arg;
    /* The parent process holds the Lock: this process does not. */
    CHECK_RC(MP_EPERM, mp_condition_wait(s->cond, 0));
    CHECK_RC(MP_EPERM, mp_condition_notify(s->cond, 1));
    return 0;
}

TEST(condition_over_a_lock_needs_it_held_by_the_calling_process)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    CHECK_OK(mp_condition_new(&s->cond, &(mp_condition_options){.lock = s->lock}));
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    CHECK(mp_lock_locked(s->lock));
    CHECK_EQ(0, th_wait(th_fork(condition_misuse_in_child, s)));
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait(s->cond, 10));
    CHECK(mp_lock_locked(s->lock)); /* taken back */
    CHECK_OK(mp_condition_release(s->cond));
    CHECK(!mp_lock_locked(s->lock));
    shared_free(s);
}

TEST(condition_wait_times_out_and_restores_rlock_levels)
{
    mp_condition *c;
    CHECK_OK(mp_condition_new(&c, NULL));
    CHECK_OK(mp_condition_acquire(c, -1));
    CHECK_OK(mp_condition_acquire(c, -1));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait(c, 100));
    CHECK(th_now_ms() - t0 >= 100);
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait(c, 0));
    CHECK_OK(mp_condition_release(c));
    CHECK_OK(mp_condition_release(c));
    CHECK_RC(MP_EPERM, mp_condition_release(c));
    mp_condition_destroy(c);
}

static int set_flag_and_notify(void *arg)
{
    struct shared *s = arg;
    th_sleep_ms(50);
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    atomic_store(&s->flag, 1);
    CHECK_OK(mp_condition_notify(s->cond, 1));
    CHECK_OK(mp_condition_release(s->cond));
    return 0;
}

TEST(condition_wait_for_wakes_on_notify_from_another_process)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    int pid = th_fork(set_flag_and_notify, s);
    CHECK_OK(mp_condition_wait_for(s->cond, flag_is_set, s, 30000));
    CHECK(flag_is_set(s));
    CHECK_OK(mp_condition_release(s->cond));
    CHECK_EQ(0, th_wait(pid));
    shared_free(s);
}

TEST(condition_wait_for_times_out_when_predicate_stays_false)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait_for(s->cond, flag_is_set, s, 120));
    CHECK(th_now_ms() - t0 >= 120);
    atomic_store(&s->flag, 1);
    CHECK_OK(mp_condition_wait_for(s->cond, flag_is_set, s, 0)); /* true at once */
    CHECK_OK(mp_condition_release(s->cond));
    shared_free(s);
}

static int wait_for_flag(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    atomic_fetch_add(&s->counter, 1);
    int rc = mp_condition_wait_for(s->cond, flag_is_set, s, 30000);
    CHECK_OK(mp_condition_release(s->cond));
    return rc == 0 ? 0 : 1;
}

TEST(condition_notify_all_wakes_every_process)
{
    struct shared *s = shared_new();
    mp_lock *l;
    CHECK_OK(mp_lock_new(&l, NULL));
    CHECK_OK(mp_condition_new(&s->cond, &(mp_condition_options){.lock = l}));
    int pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = th_fork(wait_for_flag, s);
    while (atomic_load(&s->counter) < 3)
        th_sleep_ms(5);
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    atomic_store(&s->flag, 1);
    CHECK_OK(mp_condition_notify_all(s->cond));
    CHECK_OK(mp_condition_release(s->cond));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    shared_free(s);
    mp_lock_destroy(l);
}

static int wait_in_condition(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    mp_event_set(s->ready);
    mp_condition_wait(s->cond, -1);
    return 0;
}

TEST(condition_waiter_killed_in_wait_blocks_nobody)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    int pid = th_fork(wait_in_condition, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_OK(mp_condition_acquire(s->cond, 10000)); /* the waiter released it */
    kill_and_reap(pid);
    CHECK_OK(mp_condition_notify_all(s->cond));
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait(s->cond, 50));
    CHECK_OK(mp_condition_release(s->cond));
    shared_free(s);
}

static int take_condition_lock_forever(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    CHECK_OK(mp_condition_notify_all(s->cond)); /* the waiter wakes, then needs the lock */
    mp_event_set(s->go);
    for (;;)
        pause();
}

static int kill_after_go(void *arg)
{
    struct shared *s = arg;
    int pid = th_fork(take_condition_lock_forever, s);
    CHECK_OK(mp_event_wait(s->go, 10000));
    kill(pid, SIGKILL);
    return th_wait(pid) == -SIGKILL ? 0 : 1;
}

/* A waiter that goes on only with a ticket (s->plain, under the condition's lock). */
static bool ticket_available(void *arg)
{
    return ((struct shared *)arg)->plain > 0;
}

static int take_ticket(void *arg)
{
    struct shared *s = arg;
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    atomic_fetch_add(&s->counter, 1); /* registered: we hold the lock until we wait */
    int rc = mp_condition_wait_for(s->cond, ticket_available, s, 60000);
    if (rc == 0) {
        s->plain--;
        atomic_fetch_add(&s->inside, 1);
    }
    CHECK_OK(mp_condition_release(s->cond));
    return rc == 0 ? 0 : 1;
}

static void wait_for_value(_Atomic int *v, int n)
{
    uint64_t t0 = th_now_ms();
    while (atomic_load(v) < n) {
        CHECK(th_now_ms() - t0 < 30000);
        th_sleep_ms(5);
    }
}

/* Hand out tickets while every waiter sleeps: no notify may be lost. */
TEST(condition_notify_n_wakes_that_many_waiters)
{
    enum { WAITERS = 3 };
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    int pids[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        pids[i] = th_fork(take_ticket, s);
    wait_for_value(&s->counter, WAITERS);
    CHECK_OK(mp_condition_acquire(s->cond, -1)); /* every waiter is in its wait now */
    CHECK_OK(mp_condition_notify(s->cond, 0));   /* wakes nobody */
    s->plain += 2;
    CHECK_OK(mp_condition_notify(s->cond, 2));
    CHECK_OK(mp_condition_release(s->cond));
    wait_for_value(&s->inside, 2);
    th_sleep_ms(50);
    CHECK_EQ(2, atomic_load(&s->inside)); /* the third has no ticket */
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    s->plain += 1;
    CHECK_OK(mp_condition_notify(s->cond, 1));
    CHECK_OK(mp_condition_release(s->cond));
    for (int i = 0; i < WAITERS; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(0, s->plain);
    shared_free(s);
}

/* The killed waiter stays counted in nwaiters: notify(1) must still reach the
 * live one. */
TEST(condition_notify_after_a_killed_waiter_wakes_a_live_one)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    int victim = th_fork(wait_in_condition, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    CHECK_OK(mp_condition_acquire(s->cond, 10000)); /* the victim is in its wait */
    CHECK_OK(mp_condition_release(s->cond));
    kill_and_reap(victim);
    int pid = th_fork(take_ticket, s);
    wait_for_value(&s->counter, 1);
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    s->plain = 1;
    CHECK_OK(mp_condition_notify(s->cond, 1));
    CHECK_OK(mp_condition_release(s->cond));
    CHECK_EQ(0, th_wait(pid));
    CHECK_EQ(1, atomic_load(&s->inside));
    shared_free(s);
}

TEST(condition_over_a_given_rlock_leaves_it_alive)
{
    size_t before = mp__shm_bytes_in_use();
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    size_t with_rlock = mp__shm_bytes_in_use();
    mp_condition *c;
    CHECK_OK(mp_condition_new(&c, &(mp_condition_options){.rlock = r}));
    CHECK_OK(mp_condition_acquire(c, -1));
    CHECK_OK(mp_rlock_acquire(r, -1));
    CHECK_EQ(2, mp_rlock_count(r));
    CHECK_RC(MP_ETIMEDOUT, mp_condition_wait(c, 10));
    CHECK_EQ(2, mp_rlock_count(r));
    CHECK_OK(mp_condition_notify(c, 1));
    CHECK_OK(mp_rlock_release(r));
    CHECK_OK(mp_condition_release(c));
    CHECK_RC(MP_EPERM, mp_condition_notify(c, 1));
    mp_condition_destroy(c);
    CHECK_EQ(with_rlock, mp__shm_bytes_in_use());
    CHECK_OK(mp_rlock_acquire(r, 0));
    CHECK_OK(mp_rlock_release(r));
    mp_rlock_destroy(r);
    CHECK_EQ(before, mp__shm_bytes_in_use());
}

TEST(condition_wait_takes_lock_back_from_a_dead_holder)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    CHECK_OK(mp_condition_acquire(s->cond, -1));
    /* While we wait, a grandchild takes the lock and is killed holding it. */
    int pid = th_fork(kill_after_go, s);
    CHECK_RC(MP_EOWNERDEAD, mp_condition_wait(s->cond, 30000));
    CHECK_EQ(0, th_wait(pid));
    CHECK_OK(mp_condition_release(s->cond)); /* both levels are back */
    CHECK_OK(mp_condition_release(s->cond));
    CHECK_RC(MP_EPERM, mp_condition_release(s->cond));
    shared_free(s);
}

/* ---- Event --------------------------------------------------------------- */

TEST(event_set_clear_and_is_set)
{
    mp_event *ev;
    CHECK_OK(mp_event_new(&ev, NULL));
    CHECK(!mp_event_is_set(ev));
    CHECK_RC(MP_ETIMEDOUT, mp_event_wait(ev, 0));
    CHECK_OK(mp_event_set(ev));
    CHECK_OK(mp_event_set(ev));
    CHECK(mp_event_is_set(ev));
    CHECK_OK(mp_event_wait(ev, 0));
    CHECK_OK(mp_event_wait(ev, -1));
    CHECK_OK(mp_event_clear(ev));
    CHECK(!mp_event_is_set(ev));
    mp_event_destroy(ev);
    CHECK_RC(MP_EINVAL, mp_event_new(NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_event_set(NULL));
    CHECK_RC(MP_EINVAL, mp_event_clear(NULL));
    CHECK_RC(MP_EINVAL, mp_event_wait(NULL, 0));
    CHECK(!mp_event_is_set(NULL));
    mp_event_destroy(NULL);
}

TEST(event_wait_times_out)
{
    mp_event *ev;
    CHECK_OK(mp_event_new(&ev, NULL));
    CHECK_RC(MP_EINVAL, mp_event_wait(ev, -2));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_event_wait(ev, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    mp_event_destroy(ev);
}

static int wait_for_go(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->counter, 1);
    return mp_event_wait(s->go, 30000) == 0 ? 0 : 1;
}

TEST(event_set_wakes_every_waiting_process)
{
    struct shared *s = shared_new();
    int pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = th_fork(wait_for_go, s);
    while (atomic_load(&s->counter) < 4)
        th_sleep_ms(5);
    th_sleep_ms(50);
    CHECK_OK(mp_event_set(s->go));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    shared_free(s);
}

/* ---- Barrier ------------------------------------------------------------- */

static int barrier_party(void *arg)
{
    struct shared *s = arg;
    int rc = mp_barrier_wait(s->barrier, 30000);
    if (rc < 0 || rc >= 16)
        return 1;
    atomic_fetch_add(&s->results[rc], 1);
    return 0;
}

TEST(barrier_gives_every_arrival_index_once)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 4, NULL));
    CHECK_EQ(4, mp_barrier_parties(s->barrier));
    int pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = th_fork(barrier_party, s);
    CHECK_EQ(0, barrier_party(s));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(1, atomic_load(&s->results[i]));
    CHECK(!mp_barrier_broken(s->barrier));
    CHECK_EQ(0, mp_barrier_n_waiting(s->barrier));
    shared_free(s);
}

static int count_action(void *arg)
{
    atomic_fetch_add(&((struct shared *)arg)->counter, 1);
    return 0;
}

static int record_action(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->counter, 1);
    atomic_store(&s->flag, (int)getpid());
    return 0;
}

static int last_party_ran_action(void *arg)
{
    struct shared *s = arg;
    int rc = mp_barrier_wait(s->barrier, 30000);
    if (rc < 0)
        return 1;
    if (rc == 2 && atomic_load(&s->flag) != (int)getpid())
        return 2; /* the last to arrive runs the action */
    return atomic_load(&s->counter) == 1 ? 0 : 3;
}

TEST(barrier_action_runs_once_in_the_last_arriving_party)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 3,
                            &(mp_barrier_options){.action = record_action, .action_arg = s}));
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(last_party_ran_action, s);
    CHECK_EQ(0, last_party_ran_action(s));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(1, atomic_load(&s->counter));
    shared_free(s);
}

static int many_rounds(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 300; i++) {
        int rc = mp_barrier_wait(s->barrier, 30000);
        if (rc < 0 || rc > 2)
            return 1;
        if (atomic_load(&s->counter) < i + 1) /* the action of this round ran first */
            return 2;
    }
    return 0;
}

TEST(barrier_many_rounds_across_processes)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 3,
                            &(mp_barrier_options){.action = count_action, .action_arg = s}));
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(many_rounds, s);
    CHECK_EQ(0, many_rounds(s));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(300, atomic_load(&s->counter));
    CHECK(!mp_barrier_broken(s->barrier));
    shared_free(s);
}

TEST(barrier_timeout_breaks_it_until_reset)
{
    mp_barrier *b;
    CHECK_OK(mp_barrier_new(&b, 2, NULL));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_barrier_wait(b, 100));
    CHECK(th_now_ms() - t0 >= 100);
    CHECK(mp_barrier_broken(b));
    CHECK_RC(MP_EBROKEN, mp_barrier_wait(b, 0));
    CHECK_OK(mp_barrier_reset(b));
    CHECK(!mp_barrier_broken(b));
    CHECK_RC(MP_ETIMEDOUT, mp_barrier_wait(b, 0));
    mp_barrier_destroy(b);
}

TEST(barrier_default_timeout_applies_to_waits_given_minus_one)
{
    mp_barrier *b;
    CHECK_OK(mp_barrier_new(&b, 2, &(mp_barrier_options){.timeout_ms = 80}));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_barrier_wait(b, -1));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 80 && waited < 10000);
    mp_barrier_destroy(b);
}

/* mproc/timeout.h: in an options field, MP_TIMEOUT_NOW is Python's timeout=0 and
 * -1 (like 0) is timeout=None. */
TEST(barrier_option_timeout_now_times_out_at_once_and_minus_one_is_none)
{
    mp_barrier *b;
    CHECK_OK(mp_barrier_new(&b, 2, &(mp_barrier_options){.timeout_ms = MP_TIMEOUT_NOW}));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_barrier_wait(b, -1));
    CHECK(th_now_ms() - t0 < 1000);
    CHECK(mp_barrier_broken(b)); /* as Python: the timed-out wait broke it */
    mp_barrier_destroy(b);
    CHECK_OK(mp_barrier_new(&b, 1, &(mp_barrier_options){.timeout_ms = -1}));
    CHECK_EQ(0, mp_barrier_wait(b, -1));
    mp_barrier_destroy(b);
    CHECK_OK(mp_barrier_new(&b, 2, &(mp_barrier_options){.timeout_ms = -1}));
    CHECK_RC(MP_ETIMEDOUT, mp_barrier_wait(b, 50)); /* the argument still rules */
    mp_barrier_destroy(b);
}

static int wait_at_barrier(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->counter, 1);
    int rc = mp_barrier_wait(s->barrier, 30000);
    return rc == MP_EBROKEN ? 0 : 1;
}

static void wait_for_n_waiting(mp_barrier *b, int n)
{
    uint64_t t0 = th_now_ms();
    while (mp_barrier_n_waiting(b) < n) {
        CHECK(th_now_ms() - t0 < 20000);
        th_sleep_ms(5);
    }
}

TEST(barrier_abort_breaks_current_and_later_waits)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 3, NULL));
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(wait_at_barrier, s);
    wait_for_n_waiting(s->barrier, 2);
    CHECK_OK(mp_barrier_abort(s->barrier));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK(mp_barrier_broken(s->barrier));
    CHECK_EQ(0, mp_barrier_n_waiting(s->barrier));
    CHECK_RC(MP_EBROKEN, mp_barrier_wait(s->barrier, 100));
    shared_free(s);
}

TEST(barrier_reset_breaks_current_waits_then_works_again)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 3, NULL));
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(wait_at_barrier, s);
    wait_for_n_waiting(s->barrier, 2);
    CHECK_OK(mp_barrier_reset(s->barrier));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK(!mp_barrier_broken(s->barrier));
    /* A full round works after the reset. */
    memset((void *)s->results, 0, sizeof s->results);
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(barrier_party, s);
    CHECK_EQ(0, barrier_party(s));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    shared_free(s);
}

static int failing_action(void *arg)
{
    (void)arg;
    return -1;
}

TEST(barrier_failing_action_breaks_it)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 2, &(mp_barrier_options){.action = failing_action}));
    int pid = th_fork(wait_at_barrier, s);
    wait_for_n_waiting(s->barrier, 1);
    CHECK_RC(MP_EBROKEN, mp_barrier_wait(s->barrier, 10000));
    CHECK_EQ(0, th_wait(pid));
    CHECK(mp_barrier_broken(s->barrier));
    shared_free(s);
}

static int wait_at_barrier_forever(void *arg)
{
    struct shared *s = arg;
    mp_barrier_wait(s->barrier, -1);
    return 0;
}

TEST(barrier_party_killed_while_waiting_breaks_it)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 3, NULL));
    int victim = th_fork(wait_at_barrier_forever, s);
    wait_for_n_waiting(s->barrier, 1);
    int other = th_fork(wait_at_barrier, s); /* expects MP_EBROKEN */
    wait_for_n_waiting(s->barrier, 2);
    kill(victim, SIGKILL); /* left unreaped while the others notice */
    CHECK_EQ(0, th_wait(other));
    CHECK(mp_barrier_broken(s->barrier));
    CHECK_EQ(-SIGKILL, th_wait(victim));
    CHECK_OK(mp_barrier_reset(s->barrier));
    CHECK(!mp_barrier_broken(s->barrier));
    shared_free(s);
}

/* Nobody sleeps beside the dead party to notice: the last arrival must. */
TEST(barrier_party_killed_while_alone_breaks_it_for_the_last_arrival)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_barrier_new(&s->barrier, 2, NULL));
    int victim = th_fork(wait_at_barrier_forever, s);
    wait_for_n_waiting(s->barrier, 1);
    kill_and_reap(victim);
    CHECK_RC(MP_EBROKEN, mp_barrier_wait(s->barrier, 10000));
    CHECK(mp_barrier_broken(s->barrier));
    CHECK_OK(mp_barrier_reset(s->barrier));
    CHECK_EQ(0, mp_barrier_n_waiting(s->barrier));
    victim = th_fork(wait_at_barrier_forever, s); /* the barrier works again */
    wait_for_n_waiting(s->barrier, 1);
    CHECK_EQ(1, mp_barrier_wait(s->barrier, 10000));
    CHECK_EQ(0, th_wait(victim));
    shared_free(s);
}

struct barrier_race {
    mp_barrier *b;
    _Atomic bool stop;
    _Atomic int waiters_done;
    _Atomic int bad, passed;
    unsigned seed;
};

static void *race_waits(void *arg)
{
    struct barrier_race *r = arg;
    unsigned seed = (unsigned)__atomic_add_fetch(&r->seed, 7919, __ATOMIC_RELAXED);
    while (!atomic_load(&r->stop)) {
        int timeout = rand_r(&seed) % 4 == 0 ? (int)(rand_r(&seed) % 3) : 2000;
        int rc = mp_barrier_wait(r->b, timeout);
        if (rc >= 0 && rc < 3)
            atomic_fetch_add(&r->passed, 1);
        else if (rc != MP_EBROKEN && rc != MP_ETIMEDOUT)
            atomic_fetch_add(&r->bad, 1);
    }
    atomic_fetch_add(&r->waiters_done, 1);
    return NULL;
}

/* 300 resets and aborts, then aborts until every waiter has left. */
static void *race_resets_and_aborts(void *arg)
{
    struct barrier_race *r = arg;
    unsigned seed = 12345;
    for (int i = 0; i < 300; i++) {
        th_sleep_ms(1 + (unsigned)(rand_r(&seed) % 3));
        if ((rand_r(&seed) % 3 == 0 ? mp_barrier_abort(r->b) : mp_barrier_reset(r->b)) != 0)
            atomic_fetch_add(&r->bad, 1);
    }
    atomic_store(&r->stop, true);
    while (atomic_load(&r->waiters_done) < 4) {
        mp_barrier_abort(r->b);
        th_sleep_ms(1);
    }
    return NULL;
}

static void *race_one_wait(void *arg)
{
    return (void *)(intptr_t)mp_barrier_wait(arg, 20000);
}

/* Waits with and without timeouts, resets and aborts, all at once: every call
 * returns a code it may return, nothing hangs, and a reset barrier works. */
TEST(barrier_survives_racing_waits_timeouts_resets_and_aborts)
{
    struct barrier_race r = {.seed = 1};
    CHECK_OK(mp_barrier_new(&r.b, 3, NULL));
    pthread_t t[5];
    for (int i = 0; i < 4; i++)
        run_thread(race_waits, &r, &t[i]);
    run_thread(race_resets_and_aborts, &r, &t[4]);
    for (int i = 0; i < 5; i++)
        join_thread(t[i]);
    CHECK_EQ(0, atomic_load(&r.bad));
    CHECK_OK(mp_barrier_reset(r.b));
    CHECK(!mp_barrier_broken(r.b));
    CHECK_EQ(0, mp_barrier_n_waiting(r.b));
    int seen = 0;
    for (int i = 0; i < 3; i++)
        run_thread(race_one_wait, r.b, &t[i]);
    for (int i = 0; i < 3; i++) {
        intptr_t rc = join_thread(t[i]);
        CHECK(rc >= 0 && rc < 3);
        seen |= 1 << rc;
    }
    CHECK_EQ(7, seen);
    mp_barrier_destroy(r.b);
}

TEST(barrier_rejects_bad_arguments)
{
    mp_barrier *b;
    CHECK_RC(MP_EINVAL, mp_barrier_new(&b, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_new(NULL, 2, NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_new(&b, 2, &(mp_barrier_options){.timeout_ms = -3}));
    CHECK_OK(mp_barrier_new(&b, 1, NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_wait(b, -2));
    CHECK_EQ(0, mp_barrier_wait(b, -1)); /* one party: passes at once */
    CHECK_EQ(0, mp_barrier_wait(b, 0));
    CHECK_RC(MP_EINVAL, mp_barrier_wait(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_barrier_parties(NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_n_waiting(NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_reset(NULL));
    CHECK_RC(MP_EINVAL, mp_barrier_abort(NULL));
    CHECK(!mp_barrier_broken(NULL));
    mp_barrier_destroy(b);
    mp_barrier_destroy(NULL);
}
