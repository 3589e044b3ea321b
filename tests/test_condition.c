/* Condition: wait and notify across processes, over a Lock or an RLock, and
 * the death of a waiter or of the lock's holder. */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <sched.h>
#include <unistd.h>

#include "sync_fixtures.h"

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
