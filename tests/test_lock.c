/* Lock: behaviour across threads and processes, timeouts, misuse, and the
 * death of a holder (also one whose pid was reused, or whose /proc is gone). */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sync_fixtures.h"

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

/* The read() system calls this process has made so far (/proc/self/io), or -1. */
static long long reads_so_far(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL)
        return -1;
    char line[128];
    long long n = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "syscr: %lld", &n) == 1)
            break;
    fclose(f);
    return n;
}

TEST(lock_tries_on_a_live_holder_do_not_ask_the_kernel_each_time)
{
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    int pid = th_fork(hold_lock_forever, s);
    CHECK_OK(mp_event_wait(s->ready, 10000));
    if (reads_so_far() < 0) {
        kill_and_reap(pid);
        shared_free(s);
        SKIP("/proc/self/io cannot be read");
    }
    /* Each liveness check reads /proc/<pid>/stat: 1000 tries within a slice
     * make (almost) none. */
    long long before = reads_so_far();
    uint64_t t0 = th_now_ms();
    int tries = 0;
    while (tries < 1000 && th_now_ms() - t0 < 40) {
        CHECK_RC(MP_ETIMEDOUT, mp_lock_acquire(s->lock, 0));
        tries++;
    }
    long long reads = reads_so_far() - before;
    CHECK(tries > 0);
    CHECK(reads <= 8); /* reads_so_far, the first check, one after a preemption */
    /* A dead holder is still taken over by a try within a slice of its death. */
    kill(pid, SIGKILL);
    int rc;
    t0 = th_now_ms();
    while ((rc = mp_lock_acquire(s->lock, 0)) == MP_ETIMEDOUT && th_now_ms() - t0 < 5000)
        ;
    CHECK_RC(MP_EOWNERDEAD, rc);
    CHECK(th_now_ms() - t0 < 2000);
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
