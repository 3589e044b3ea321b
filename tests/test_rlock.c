/* RLock: recursion, ownership by thread and process, the death of a holder. */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <unistd.h>

#include "sync_fixtures.h"

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
