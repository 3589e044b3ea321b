/* tests/sync_fixtures.h — what the synchronization tests share (test_lock.c,
 * test_rlock.c, test_semaphore.c, test_condition.c, test_event.c,
 * test_barrier.c, test_primitives.c): memory every process of a test shares,
 * thread and child helpers, and a lock word naming an earlier process with our
 * pid. */
#ifndef MPROC_TESTS_SYNC_FIXTURES_H
#define MPROC_TESTS_SYNC_FIXTURES_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

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

static inline struct shared *shared_new(void)
{
    struct shared *s = mp__shm_alloc(sizeof *s);
    CHECK(s != NULL);
    CHECK_OK(mp_event_new(&s->ready, NULL));
    CHECK_OK(mp_event_new(&s->go, NULL));
    return s;
}

static inline void shared_free(struct shared *s)
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

static inline void kill_and_reap(int pid)
{
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
}

static inline void *run_thread(void *(*fn)(void *), void *arg, pthread_t *t)
{
    CHECK(pthread_create(t, NULL, fn, arg) == 0);
    return NULL;
}

static inline intptr_t join_thread(pthread_t t)
{
    void *r;
    CHECK(pthread_join(t, &r) == 0);
    return (intptr_t)r;
}

/* A process that had our pid before us (another start time) died holding it. */
static inline uint64_t earlier_incarnation_of_us(void)
{
    uint64_t me = mp__self_id();
    CHECK(me >> 32 != 0); /* /proc gave a start time */
    return me ^ ((uint64_t)1 << 40);
}

#endif /* MPROC_TESTS_SYNC_FIXTURES_H */
