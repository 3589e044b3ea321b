/* Semaphore and BoundedSemaphore: counting, bounds, waking across processes. */
// TEST_TIMEOUT 120
#include <unistd.h>

#include "sync_fixtures.h"

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
