/* Barrier: rounds, the action, timeouts, abort and reset, and the death of a
 * party. */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <sched.h>
#include <unistd.h>

#include "sync_fixtures.h"

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
