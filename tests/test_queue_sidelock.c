/* mp_queue's side locks (a lock word naming the holder process): deaths of a
 * holder that sleeps, waiters behind a dead holder, deadlines, fork while another
 * thread holds a side, and hand-offs between many lockers. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mproc/queue.h"
#include "queue_fixtures.h"

/* Takes the consumer side and sleeps in it (the queue is empty) until killed. */
static int get_forever(void *arg)
{
    void *m;
    size_t len;
    mp_queue_get(arg, &m, &len, -1);
    return 3; /* a message came: not what the test wanted */
}

/* Takes the producer side and sleeps in it (the queue is full) until killed. */
static int put_forever(void *arg)
{
    mp_queue_put(arg, "never", 5, -1);
    return 3;
}

/* 1 once process pid sleeps in a futex wait (its side lock's or its data's), 0
 * while it does not yet, -1 when /proc does not say. */
static int asleep_in_futex(int pid)
{
    char path[64], line[64] = "";
    snprintf(path, sizeof path, "/proc/%d/syscall", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    bool read = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!read)
        return -1;
    return atoi(line) == SYS_futex;
}

/* Waits until the child pid (get_forever, put_forever) holds its side and sleeps
 * in it, as the tests below need before they kill it; a fixed sleep was not
 * always long enough on a loaded machine (the child had not taken the side yet,
 * and the test tested nothing). Without /proc's answer, 200 ms as before. */
static void wait_asleep_holding_a_side(int pid)
{
    uint64_t t0 = th_now_ms();
    int in;
    while ((in = asleep_in_futex(pid)) == 0) {
        CHECK(th_now_ms() - t0 < 30000);
        th_sleep_ms(2);
    }
    if (in < 0)
        th_sleep_ms(200);
}

TEST(queue_get_nowait_takes_over_at_once_from_a_consumer_killed_while_it_slept)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(get_forever, q);
    wait_asleep_holding_a_side(pid); /* it holds the consumer side and sleeps */
    void *m;
    size_t len;
    CHECK_RC(MP_EEMPTY, mp_queue_get_nowait(q, &m, &len)); /* it lives: busy */
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
    CHECK_OK(mp_queue_put(q, "after", 5, 0));
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_queue_get_nowait(q, &m, &len)); /* checks the dead holder at once */
    CHECK(th_now_ms() - t0 < 40);
    CHECK_EQ(5, len);
    CHECK(memcmp(m, "after", 5) == 0);
    free(m);
    mp_queue_destroy(q);
}

TEST(queue_put_nowait_takes_over_at_once_from_a_producer_killed_while_it_slept)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    CHECK_OK(mp_queue_put(q, "first", 5, 0));
    int pid = th_fork(put_forever, q);
    wait_asleep_holding_a_side(pid);
    CHECK_RC(MP_EFULL, mp_queue_put_nowait(q, "x", 1));
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
    get_str(q, "first", 0);
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_queue_put_nowait(q, "second", 6));
    CHECK(th_now_ms() - t0 < 40);
    get_str(q, "second", 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
}

struct waiter {
    mp_queue *q;
    int timeout_ms;
    int rc;
    uint64_t waited_ms;
    char got[16];
};

static void *timed_get(void *arg)
{
    struct waiter *w = arg;
    void *m = NULL;
    size_t n = 0;
    uint64_t t0 = th_now_ms();
    w->rc = mp_queue_get(w->q, &m, &n, w->timeout_ms);
    w->waited_ms = th_now_ms() - t0;
    if (w->rc == 0) {
        memcpy(w->got, m, n < sizeof w->got - 1 ? n : sizeof w->got - 1);
        free(m);
    }
    return NULL;
}

TEST(queue_consumer_asleep_behind_a_holder_takes_over_when_the_holder_is_killed)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(get_forever, q);
    wait_asleep_holding_a_side(pid);
    struct waiter w = {.q = q, .timeout_ms = 30000};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, timed_get, &w) == 0);
    th_sleep_ms(200); /* it sleeps on the consumer side's lock */
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
    th_sleep_ms(200); /* it has taken the side over and sleeps for data */
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_queue_put(q, "hello", 5, 0));
    pthread_join(th, NULL);
    CHECK_OK(w.rc);
    CHECK_STR("hello", w.got);
    CHECK(th_now_ms() - t0 < 900); /* woken by the put, not by the end of a 1 s slice */
    mp_queue_destroy(q);
}

/* The first timed get behind a consumer killed in its sleep (it takes the side
 * over) and two more on the queue it leaves; returns true when each ended within
 * 45 ms of its timeout, never before it. */
static bool timed_gets_behind_a_dead_holder_keep_their_deadlines(void)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(get_forever, q);
    wait_asleep_holding_a_side(pid);
    kill(pid, SIGKILL);
    CHECK_EQ(-SIGKILL, th_wait(pid));
    bool in_time = true;
    for (int timeout = 20; timeout <= 140; timeout += 60) {
        void *m;
        size_t len;
        uint64_t t0 = th_now_ms();
        CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, timeout));
        uint64_t waited = th_now_ms() - t0;
        CHECK(waited >= (uint64_t)timeout);
        if (waited >= (uint64_t)timeout + 45) { /* a death slice (50 ms) late? */
            fprintf(stderr, "a %d ms get took %llu ms\n", timeout, (unsigned long long)waited);
            in_time = false;
        }
    }
    mp_queue_destroy(q);
    return in_time;
}

/* 45 ms is little room on a loaded machine (a preemption is enough): a late round
 * is run again, and three late rounds fail. A get that sleeps a slice past its
 * deadline is late in every round. */
TEST(queue_timed_get_behind_a_dead_holder_keeps_its_deadline)
{
    int round = 0;
    while (!timed_gets_behind_a_dead_holder_keep_their_deadlines())
        CHECK(++round < 3);
}

/* A thread of the parent sleeps holding the producer side when the parent forks. */
static void *hold_put_side(void *arg)
{
    CHECK_OK(mp_queue_put(arg, "second", 6, 30000));
    return NULL;
}

static int child_of_a_holding_parent(void *arg)
{
    mp_queue *q = arg;
    if (mp_queue_put_nowait(q, "x", 1) != MP_EFULL) /* the parent's thread holds it: busy */
        return 10;
    if (mp_queue_put(q, "x", 1, 100) != MP_EFULL)
        return 11;
    void *m;
    size_t len;
    if (mp_queue_get(q, &m, &len, 5000) != 0) /* wakes the parent's sleeping thread */
        return 12;
    int bad = len != 5 || memcmp(m, "first", 5) != 0;
    free(m);
    if (bad)
        return 13;
    if (mp_queue_get(q, &m, &len, 5000) != 0) /* the parent's thread put it and let go */
        return 14;
    bad = len != 6 || memcmp(m, "second", 6) != 0;
    free(m);
    if (bad)
        return 15;
    if (mp_queue_put(q, "third", 5, 5000) != 0)
        return 16;
    return 0;
}

TEST(queue_child_forked_while_a_parent_thread_holds_a_side_waits_for_that_thread)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    CHECK_OK(mp_queue_put(q, "first", 5, 0));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, hold_put_side, q) == 0);
    th_sleep_ms(200); /* it holds the producer side, asleep for room */
    int pid = th_fork(child_of_a_holding_parent, q);
    CHECK_EQ(0, th_wait(pid));
    pthread_join(th, NULL);
    get_str(q, "third", 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
}

/* Hand-offs: several threads fight for each side; any lost wake-up of a lock
 * sleeper costs it a whole slice, so the slowest single operation shows it. */
#define HANDOFF_THREADS 3
#define HANDOFF_MSGS 3000

struct handoff {
    mp_queue *q;
    _Atomic int taken;
    _Atomic uint64_t slowest_ms;
    _Atomic int bad;
};

static void note_slow(struct handoff *h, uint64_t ms)
{
    uint64_t s = atomic_load(&h->slowest_ms);
    while (ms > s && !atomic_compare_exchange_weak(&h->slowest_ms, &s, ms))
        ;
}

static void *handoff_put(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < HANDOFF_MSGS; i++) {
        uint64_t t0 = th_now_ms();
        if (mp_queue_put(h->q, &i, sizeof i, 20000) != 0)
            atomic_fetch_add(&h->bad, 1);
        note_slow(h, th_now_ms() - t0);
    }
    return NULL;
}

static void *handoff_get(void *arg)
{
    struct handoff *h = arg;
    for (;;) {
        if (atomic_fetch_add(&h->taken, 1) >= HANDOFF_THREADS * HANDOFF_MSGS)
            return NULL;
        int v;
        size_t len;
        if (mp_queue_get_into(h->q, &v, sizeof v, &len, 20000) != 0)
            atomic_fetch_add(&h->bad, 1);
    }
}

TEST(queue_side_lock_hand_offs_between_threads_lose_no_wake_up)
{
    struct handoff h = {0};
    CHECK_OK(mp_queue_new(&h.q, 4, NULL)); /* small: producers sleep for room too */
    pthread_t p[HANDOFF_THREADS], c[HANDOFF_THREADS];
    for (int i = 0; i < HANDOFF_THREADS; i++) {
        CHECK(pthread_create(&p[i], NULL, handoff_put, &h) == 0);
        CHECK(pthread_create(&c[i], NULL, handoff_get, &h) == 0);
    }
    for (int i = 0; i < HANDOFF_THREADS; i++) {
        pthread_join(p[i], NULL);
        pthread_join(c[i], NULL);
    }
    CHECK_EQ(0, atomic_load(&h.bad));
    CHECK(mp_queue_empty(h.q));
    CHECK(atomic_load(&h.slowest_ms) < 15000);
    mp_queue_destroy(h.q);
}

/* Deadlines on a busy CPU: the waits spin, then yield a number of times, then
 * sleep until the deadline. With other threads runnable on the same CPU each
 * yield can cost a scheduler slice, so yields that do not look at the deadline
 * overshoot a short timeout many times over. */
static _Atomic int busy_stop;

static void *busy_loop(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed))
        ;
    return NULL;
}

/* The larger of worst and how long a plain 20 ms sleep takes on this CPU now. */
static uint64_t max_sleep(uint64_t worst)
{
    uint64_t t0 = th_now_ms();
    th_sleep_ms(20);
    uint64_t w = th_now_ms() - t0;
    return w > worst ? w : worst;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The median of five. */
static uint64_t median5(uint64_t v[5])
{
    qsort(v, 5, sizeof v[0], cmp_u64);
    return v[2];
}

/* One round: five 20 ms gets on an empty queue and five 20 ms puts on a full one,
 * on this thread's CPU with 8 busy threads, each followed by a plain 20 ms sleep;
 * true when the median get and the median put took less than 250 ms plus what the
 * slowest sleep took beyond its 20 ms. */
static bool short_timeouts_hold_on_a_busy_cpu(void)
{
    cpu_set_t one, old;
    CHECK(sched_getaffinity(0, sizeof old, &old) == 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0); /* this thread, inherited below */
    atomic_store(&busy_stop, 0);
    pthread_t busy[8];
    for (int i = 0; i < 8; i++)
        CHECK(pthread_create(&busy[i], NULL, busy_loop, NULL) == 0);
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    uint64_t gets[5], puts[5], worst_sleep = 0;
    for (int i = 0; i < 5; i++) {
        void *m;
        size_t len;
        uint64_t t0 = th_now_ms();
        int rc = mp_queue_get(q, &m, &len, 20);
        gets[i] = th_now_ms() - t0;
        CHECK_RC(MP_EEMPTY, rc);
        worst_sleep = max_sleep(worst_sleep);
    }
    CHECK_OK(mp_queue_put(q, "x", 1, 0));
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = th_now_ms();
        int rc = mp_queue_put(q, "y", 1, 20);
        puts[i] = th_now_ms() - t0;
        CHECK_RC(MP_EFULL, rc);
        worst_sleep = max_sleep(worst_sleep);
    }
    atomic_store(&busy_stop, 1);
    for (int i = 0; i < 8; i++)
        pthread_join(busy[i], NULL);
    sched_setaffinity(0, sizeof old, &old);
    uint64_t get = median5(gets), put = median5(puts);
    fprintf(stderr,
            "20 ms timeouts on a busy CPU: gets %llu..%llu ms (median %llu), puts %llu..%llu ms "
            "(median %llu), worst 20 ms sleep %llu ms\n",
            (unsigned long long)gets[0], (unsigned long long)gets[4], (unsigned long long)get,
            (unsigned long long)puts[0], (unsigned long long)puts[4], (unsigned long long)put,
            (unsigned long long)worst_sleep);
    get_str(q, "x", 0);
    mp_queue_destroy(q);
    /* 20 yields, not looking at the deadline: 330-750 ms, every call. Beyond what
     * a plain 20 ms sleep took here meanwhile: the wake-up latency of the moment is
     * not theirs. */
    uint64_t limit = 250 + (worst_sleep - 20);
    return get < limit && put < limit;
}

/* The CPU is shared with every other process on the machine too. On a loaded
 * machine one call of five (in a sched_yield, presumably) can take 400-800 ms
 * while the others and a plain sleep take 40-60 (seen in every round of a ctest
 * -j3 run at a load of 9 per core): that one is the kernel's, the bug makes every
 * call late. So the median counts, a slow round is run again, and three fail. */
TEST(queue_short_timeouts_hold_on_a_busy_cpu)
{
    SKIP_UNDER_TSAN("timing on a loaded CPU");
    int round = 0;
    while (!short_timeouts_hold_on_a_busy_cpu())
        CHECK(++round < 3);
}

/* A holder killed but not yet reaped (a zombie: its parent is busy) is dead. */
TEST(queue_holder_killed_and_not_yet_reaped_is_taken_over)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(get_forever, q);
    wait_asleep_holding_a_side(pid);
    kill(pid, SIGKILL);
    siginfo_t si;
    CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0); /* a zombie, still ours */
    CHECK_OK(mp_queue_put(q, "zombie", 6, 0));
    void *m;
    size_t len;
    CHECK_OK(mp_queue_get_nowait(q, &m, &len));
    CHECK_EQ(6, len);
    free(m);
    struct waiter w = {.q = q, .timeout_ms = 2000};
    CHECK_OK(mp_queue_put(q, "again", 5, 0));
    timed_get(&w);
    CHECK_OK(w.rc);
    CHECK_STR("again", w.got);
    CHECK_EQ(-SIGKILL, th_wait(pid));
    mp_queue_destroy(q);
}
