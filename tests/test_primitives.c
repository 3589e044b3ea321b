/* What every synchronization primitive shares: only its creator frees it (also
 * when a later process is given the creator's pid), and its uncontended
 * operations make no system call. */
// TEST_TIMEOUT 120
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sync_fixtures.h"

/* Pid reuse, staged in a pid namespace of our own (as root): the creator C (pid
 * 2 there) vanishes, and E, forked later from C's child D, is given pid 2
 * again. Every destroy in E must be a no-op. Where namespaces are not allowed
 * there is nothing to test: a skip. */
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
    int rc = th_with_reused_pid(create_all_in_c, destroy_all_in_e, NULL, NULL);
    if (rc == TH_NOT_STAGED)
        SKIP("%s", th_not_staged_why());
    CHECK_EQ(0, rc);
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
    struct shared *s = shared_new();
    CHECK_OK(mp_lock_new(&s->lock, NULL));
    CHECK_OK(mp_rlock_new(&s->rlock, NULL));
    CHECK_OK(mp_semaphore_new(&s->sem, 1, NULL));
    CHECK_OK(mp_condition_new(&s->cond, NULL));
    /* A system call kills the child with SIGSYS. */
    CHECK_EQ(0, th_wait(th_fork(uncontended_operations, s)));
    shared_free(s);
}
