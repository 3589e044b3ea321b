/* mp_queue, mp_simple_queue, mp_joinable_queue: CPython's queues in shared memory. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arena.h"
#include "harness.h"
#include "queue/queue.h"
#include "queue_fixtures.h"

#define RING 4096       /* the smallest ring: messages of a few KiB go to blocks of their own */
#define AREA (4 * RING) /* the block area of such a queue: longer ones are oversized */

/* ---- message contents that can be checked ---- */

struct tag {
    uint32_t producer, seq, len, check;
};

static unsigned char byte_at(uint32_t producer, uint32_t seq, size_t i)
{
    return (unsigned char)((producer * 31u + seq * 7u + i) % 251u);
}

static void *make_msg(uint32_t producer, uint32_t seq, size_t len)
{
    unsigned char *m = malloc(len + 1);
    CHECK(m != NULL);
    for (size_t i = 0; i < len; i++)
        m[i] = byte_at(producer, seq, i);
    if (len >= sizeof(struct tag)) {
        struct tag t = {producer, seq, (uint32_t)len, producer ^ seq ^ (uint32_t)len ^ 0x5a5a5a5au};
        memcpy(m, &t, sizeof t);
    }
    return m;
}

/* True when m is exactly what make_msg made; fills *t. */
static bool msg_ok(const void *m, size_t len, struct tag *t)
{
    if (len < sizeof *t)
        return false;
    memcpy(t, m, sizeof *t);
    if (t->len != len || t->check != (t->producer ^ t->seq ^ t->len ^ 0x5a5a5a5au))
        return false;
    const unsigned char *b = m;
    for (size_t i = sizeof *t; i < len; i++)
        if (b[i] != byte_at(t->producer, t->seq, i))
            return false;
    return true;
}

static bool pattern_ok(const void *m, size_t len, uint32_t producer, uint32_t seq)
{
    const unsigned char *b = m;
    for (size_t i = 0; i < len; i++)
        if (b[i] != byte_at(producer, seq, i))
            return false;
    return true;
}

static void put_pattern(mp_queue *q, uint32_t seq, size_t len)
{
    void *m = make_msg(0, seq, len);
    if (len >= sizeof(struct tag)) /* plain pattern for the size tests */
        for (size_t i = 0; i < sizeof(struct tag); i++)
            ((unsigned char *)m)[i] = byte_at(0, seq, i);
    CHECK_OK(mp_queue_put(q, m, len, -1));
    free(m);
}

static void get_pattern(mp_queue *q, uint32_t seq, size_t len, int timeout_ms)
{
    void *m = NULL;
    size_t n = 0;
    CHECK_OK(mp_queue_get(q, &m, &n, timeout_ms));
    CHECK(m != NULL);
    CHECK_EQ(len, n);
    CHECK(pattern_ok(m, n, 0, seq));
    free(m);
}

static mp_queue *ring_queue(size_t maxsize, size_t ring)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, maxsize, &(mp_queue_options){.ring_bytes = ring}));
    return q;
}

/* Shared memory for results of children: plain MAP_SHARED, nothing in /dev/shm. */
static void *shared_area(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

/* ---- fault injection: die at a chosen point inside put or get ---- */

static int die_point, die_countdown;

static void die_at(int point)
{
    if (point == die_point && --die_countdown == 0)
        raise(SIGKILL);
}

static void arm_death(int point, int nth)
{
    die_point = point;
    die_countdown = nth;
    mp__queue_fault_hook = die_at;
}

/* ---- basic behaviour ---- */

TEST(queue_put_get_roundtrip_keeps_bytes_and_lengths)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    static const size_t sizes[] = {0, 1, 7, 8, 9, 100, 5000};
    for (uint32_t i = 0; i < 7; i++)
        put_pattern(q, i, sizes[i]);
    CHECK_EQ(7, mp_queue_qsize(q));
    for (uint32_t i = 0; i < 7; i++)
        get_pattern(q, i, sizes[i], 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
    mp_queue_destroy(NULL);
}

/* Every small length keeps its bytes and writes nothing beyond them, whether the
 * record sits inside the ring or wraps its end at any offset. */
TEST(queue_small_messages_of_every_length_keep_bytes_and_write_nothing_beyond)
{
    mp_queue *q = ring_queue(0, RING);
    for (uint32_t start = 0; start < 96; start += 8) {
        /* the next record's header at RING - start: bodies end or wrap there */
        mp__queue_skew(q, 0, RING - 8 - start);
        for (uint32_t len = 0; len <= 80; len++) {
            unsigned char in[96], out[96 + 16];
            for (uint32_t i = 0; i < sizeof in; i++)
                in[i] = (unsigned char)(len * 31 + i + start);
            memset(out, 0xa5, sizeof out);
            CHECK_OK(mp_queue_put(q, in, len, 0));
            size_t got = 0;
            CHECK_OK(mp_queue_get_into(q, out + 8, len, &got, 0));
            CHECK_EQ(len, got);
            CHECK(memcmp(out + 8, in, len) == 0);
            for (uint32_t i = 0; i < 8; i++)
                CHECK(out[i] == 0xa5 && out[8 + len + i] == 0xa5);
            if (len == 0)
                continue;
            void *m = NULL;
            CHECK_OK(mp_queue_put(q, in, len, 0));
            CHECK_OK(mp_queue_get(q, &m, &got, 0));
            CHECK_EQ(len, got);
            CHECK(memcmp(m, in, len) == 0);
            free(m);
        }
        CHECK(mp_queue_empty(q));
    }
    mp_queue_destroy(q);
}

TEST(queue_get_into_uses_the_callers_buffer_and_refuses_short_ones)
{
    mp_queue *q = ring_queue(0, RING);
    CHECK_OK(mp_queue_put(q, "0123456789", 10, 0));
    char buf[32];
    size_t len = 0;
    CHECK_RC(MP_ETOOSHORT, mp_queue_get_into(q, buf, 9, &len, 0));
    CHECK_EQ(10, len);
    CHECK_EQ(1, mp_queue_qsize(q));
    CHECK_OK(mp_queue_get_into(q, buf, sizeof buf, &len, 0));
    CHECK_EQ(10, len);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    CHECK_OK(mp_queue_put(q, "", 0, 0));
    CHECK_OK(mp_queue_get_into(q, NULL, 0, &len, 0));
    CHECK_EQ(0, len);
    mp_queue_destroy(q);
}

static int produce_seq(void *arg)
{
    mp_queue *q = arg;
    for (uint32_t i = 0; i < 20000; i++)
        CHECK_OK(mp_queue_put(q, &i, sizeof i, -1));
    return 0;
}

TEST(queue_is_fifo_across_processes)
{
    mp_queue *q = ring_queue(0, RING);
    int pid = th_fork(produce_seq, q);
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t v;
        size_t len;
        CHECK_OK(mp_queue_get_into(q, &v, sizeof v, &len, 10000));
        CHECK_EQ(sizeof v, len);
        CHECK_EQ(i, v);
    }
    CHECK_EQ(0, th_wait(pid));
    mp_queue_destroy(q);
}

static const size_t ring_sizes[] = {RING - 9, RING - 8,     RING - 7, RING - 1, RING,
                                    RING + 1, 3 * RING + 5, 0,        1};
#define N_RING_SIZES (sizeof ring_sizes / sizeof ring_sizes[0])

static int produce_ring_sizes(void *arg)
{
    mp_queue *q = arg;
    for (uint32_t i = 0; i < N_RING_SIZES; i++)
        put_pattern(q, i, ring_sizes[i]);
    return 0;
}

TEST(queue_carries_messages_around_and_beyond_the_ring_size)
{
    mp_queue *q = ring_queue(0, RING);
    int pid = th_fork(produce_ring_sizes, q);
    for (uint32_t i = 0; i < N_RING_SIZES; i++)
        get_pattern(q, i, ring_sizes[i], 10000);
    CHECK_EQ(0, th_wait(pid));
    /* A message that exactly fills an empty ring needs no consumer. */
    put_pattern(q, 1, RING - 8);
    CHECK(mp_queue_full(q));
    get_pattern(q, 1, RING - 8, 0);
    mp_queue_destroy(q);
}

static int produce_100mib(void *arg)
{
    mp_queue *q = arg;
    put_pattern(q, 9, (size_t)100 << 20);
    return 0;
}

TEST(queue_carries_a_100MiB_message)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(produce_100mib, q);
    /* A hang guard: 2 s of CPU under make sanitize took 38 s at a load of 14 per core. */
    get_pattern(q, 9, (size_t)100 << 20, 90000);
    CHECK_EQ(0, th_wait(pid));
    mp_queue_destroy(q);
}

TEST(queue_get_times_out_when_empty)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    void *m;
    size_t len;
    char buf[4];
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    CHECK_RC(MP_EEMPTY, mp_queue_get_nowait(q, &m, &len));
    CHECK_RC(MP_EEMPTY, mp_queue_get_into(q, buf, 4, &len, 0));
    mp_queue_destroy(q);
}

TEST(queue_put_times_out_when_maxsize_is_reached)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 2, NULL));
    CHECK_OK(mp_queue_put(q, "a", 1, 0));
    CHECK(!mp_queue_full(q));
    CHECK_OK(mp_queue_put_nowait(q, "b", 1));
    CHECK(mp_queue_full(q));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EFULL, mp_queue_put(q, "c", 1, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    CHECK_RC(MP_EFULL, mp_queue_put_nowait(q, "c", 1));
    CHECK_EQ(2, mp_queue_qsize(q));
    get_str(q, "a", 0);
    CHECK_OK(mp_queue_put_nowait(q, "c", 1));
    get_str(q, "b", 0);
    get_str(q, "c", 0);
    mp_queue_destroy(q);
}

TEST(queue_without_maxsize_is_bounded_by_ring_bytes)
{
    mp_queue *q = ring_queue(0, RING);
    char msg[64] = {0};
    int n = 0;
    while (mp_queue_put_nowait(q, msg, sizeof msg) == 0)
        n++;
    CHECK_EQ(RING / (64 + 8), n);
    CHECK_RC(MP_EFULL, mp_queue_put(q, msg, sizeof msg, 50));
    CHECK(!mp_queue_full(q)); /* room for an empty message is left */
    CHECK_EQ(n, mp_queue_qsize(q));
    size_t len;
    CHECK_OK(mp_queue_get_into(q, msg, sizeof msg, &len, 0));
    CHECK_OK(mp_queue_put_nowait(q, msg, sizeof msg));
    mp_queue_destroy(q);
}

TEST(queue_qsize_empty_and_full_track_contents)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 3, NULL));
    CHECK(mp_queue_empty(q));
    CHECK(!mp_queue_full(q));
    CHECK_EQ(0, mp_queue_qsize(q));
    for (int i = 0; i < 3; i++)
        CHECK_OK(mp_queue_put(q, "x", 1, 0));
    CHECK(!mp_queue_empty(q));
    CHECK(mp_queue_full(q));
    CHECK_EQ(3, mp_queue_qsize(q));
    get_str(q, "x", 0);
    CHECK_EQ(2, mp_queue_qsize(q));
    CHECK(!mp_queue_full(q));
    CHECK(!mp_queue_empty(NULL));
    CHECK(!mp_queue_full(NULL));
    mp_queue_destroy(q);
}

static int close_then_try(void *arg)
{
    mp_queue *q = arg;
    CHECK_OK(mp_queue_put(q, "before", 6, 0));
    CHECK_OK(mp_queue_close(q));
    CHECK_RC(MP_ECLOSED, mp_queue_put(q, "after", 5, 0));
    return 0;
}

TEST(queue_close_affects_only_the_calling_process)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(close_then_try, q);
    CHECK_EQ(0, th_wait(pid));
    get_str(q, "before", 0); /* the child's message survives its close and exit */
    CHECK_OK(mp_queue_put(q, "still open here", 15, 0));
    CHECK_OK(mp_queue_close(q));
    CHECK_OK(mp_queue_close(q));
    void *m;
    size_t len;
    char buf[4];
    CHECK_RC(MP_ECLOSED, mp_queue_put(q, "x", 1, 0));
    CHECK_RC(MP_ECLOSED, mp_queue_put_nowait(q, "x", 1));
    CHECK_RC(MP_ECLOSED, mp_queue_get(q, &m, &len, 0));
    CHECK_RC(MP_ECLOSED, mp_queue_get_nowait(q, &m, &len));
    CHECK_RC(MP_ECLOSED, mp_queue_get_into(q, buf, 4, &len, 0));
    CHECK_RC(MP_ECLOSED, mp_queue_qsize(q));
    mp_queue_destroy(q);
}

TEST(queue_bad_arguments_change_nothing)
{
    mp_queue *q;
    void *m;
    size_t len;
    char buf[4];
    CHECK_RC(MP_EINVAL, mp_queue_new(NULL, 0, NULL));
    CHECK_RC(MP_EINVAL,
             mp_queue_new(&q, 0, &(mp_queue_options){.ring_bytes = ((size_t)1 << 30) + 1}));
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_queue_put(NULL, "x", 1, 0));
    CHECK_RC(MP_EINVAL, mp_queue_put(q, NULL, 1, 0));
    CHECK_RC(MP_EINVAL, mp_queue_put(q, "x", 1, -2));
    CHECK_RC(MP_EINVAL, mp_queue_get(NULL, &m, &len, 0));
    CHECK_RC(MP_EINVAL, mp_queue_get(q, NULL, &len, 0));
    CHECK_RC(MP_EINVAL, mp_queue_get(q, &m, NULL, 0));
    CHECK_RC(MP_EINVAL, mp_queue_get(q, &m, &len, -5));
    CHECK_RC(MP_EINVAL, mp_queue_get_into(q, NULL, 4, &len, 0));
    CHECK_RC(MP_EINVAL, mp_queue_get_into(q, buf, 4, NULL, 0));
    CHECK_RC(MP_EINVAL, mp_queue_qsize(NULL));
    CHECK_RC(MP_EINVAL, mp_queue_close(NULL));
    CHECK_EQ(0, mp_queue_qsize(q));
    CHECK_OK(mp_queue_put(q, NULL, 0, 0)); /* an empty message is fine */
    CHECK_EQ(1, mp_queue_qsize(q));
    mp_queue_destroy(q);
}

static int put_later(void *arg)
{
    mp_queue *q = arg;
    th_sleep_ms(150);
    CHECK_OK(mp_queue_put(q, "wake", 4, -1));
    return 0;
}

TEST(queue_blocked_get_wakes_when_a_message_arrives)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(put_later, q);
    uint64_t t0 = th_now_ms();
    get_str(q, "wake", -1);
    CHECK(th_now_ms() - t0 >= 100);
    CHECK_EQ(0, th_wait(pid));
    mp_queue_destroy(q);
}

static int get_later(void *arg)
{
    mp_queue *q = arg;
    th_sleep_ms(150);
    get_str(q, "first", -1);
    return 0;
}

TEST(queue_blocked_put_wakes_when_room_appears)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    CHECK_OK(mp_queue_put(q, "first", 5, 0));
    int pid = th_fork(get_later, q);
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_queue_put(q, "second", 6, -1));
    CHECK(th_now_ms() - t0 >= 100);
    CHECK_EQ(0, th_wait(pid));
    get_str(q, "second", 0);
    mp_queue_destroy(q);
}

static void on_alarm(int sig)
{
    (void)sig;
}

TEST(queue_timed_get_keeps_its_deadline_across_signals)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    ualarm(50000, 50000);
    void *m;
    size_t len;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 300));
    uint64_t waited = th_now_ms() - t0;
    ualarm(0, 0);
    CHECK(waited >= 300 && waited < 10000);
    mp_queue_destroy(q);
}

static int put_and_exit(void *arg)
{
    mp_queue *q = arg;
    char buf[2048] = {0};
    for (int i = 0; i < 200; i++) {
        buf[0] = (char)i;
        CHECK_OK(mp_queue_put(q, buf, sizeof buf, 0));
    }
    return 0; /* nothing left to flush: exit cannot block */
}

TEST(queue_producer_exits_before_anyone_reads)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, put_and_exit, q, NULL));
    CHECK_OK(mp_process_start(p));
    CHECK_OK(mp_process_join(p, 20000)); /* joined before any get: CPython deadlocks here */
    int code = -1;
    CHECK_OK(mp_process_exitcode(p, &code));
    CHECK_EQ(0, code);
    mp_process_destroy(p);
    CHECK_EQ(200, mp_queue_qsize(q));
    for (int i = 0; i < 200; i++) {
        char buf[2048];
        size_t len;
        CHECK_OK(mp_queue_get_into(q, buf, sizeof buf, &len, 0));
        CHECK_EQ((char)i, buf[0]);
    }
    mp_queue_destroy(q);
}

/* ---- many producers and consumers ---- */

#define MP_PRODUCERS 4
#define MP_CONSUMERS 3
#define MP_PER_PRODUCER 3000

struct results {
    _Atomic uint64_t seen[MP_PRODUCERS][(MP_PER_PRODUCER + 63) / 64];
    _Atomic int duplicates, corrupt, disorder, received;
};

struct mpmc {
    mp_queue *q;
    struct results *r;
    int id;
};

static size_t mpmc_len(uint32_t seq)
{
    return seq % 97 == 0 ? 3 * RING + 11 : 16 + (seq * 13) % 300;
}

static int mpmc_produce(void *arg)
{
    struct mpmc *a = arg;
    for (uint32_t seq = 0; seq < MP_PER_PRODUCER; seq++) {
        size_t len = mpmc_len(seq);
        void *m = make_msg((uint32_t)a->id, seq, len);
        CHECK_OK(mp_queue_put(a->q, m, len, -1));
        free(m);
    }
    return 0;
}

static int mpmc_consume(void *arg)
{
    struct mpmc *a = arg;
    int64_t last[MP_PRODUCERS];
    for (int i = 0; i < MP_PRODUCERS; i++)
        last[i] = -1;
    for (;;) {
        void *m;
        size_t len;
        CHECK_OK(mp_queue_get(a->q, &m, &len, -1));
        if (len == 4 && memcmp(m, "stop", 4) == 0) {
            free(m);
            return 0;
        }
        struct tag t;
        if (!msg_ok(m, len, &t) || t.producer >= MP_PRODUCERS || t.seq >= MP_PER_PRODUCER) {
            atomic_fetch_add(&a->r->corrupt, 1);
        } else {
            if ((int64_t)t.seq <= last[t.producer])
                atomic_fetch_add(&a->r->disorder, 1);
            last[t.producer] = t.seq;
            uint64_t bit = (uint64_t)1 << (t.seq % 64);
            if (atomic_fetch_or(&a->r->seen[t.producer][t.seq / 64], bit) & bit)
                atomic_fetch_add(&a->r->duplicates, 1);
            atomic_fetch_add(&a->r->received, 1);
        }
        free(m);
    }
}

static void check_all_seen(struct results *r)
{
    CHECK_EQ(0, atomic_load(&r->corrupt));
    CHECK_EQ(0, atomic_load(&r->duplicates));
    CHECK_EQ(0, atomic_load(&r->disorder));
    CHECK_EQ(MP_PRODUCERS * MP_PER_PRODUCER, atomic_load(&r->received));
    for (int p = 0; p < MP_PRODUCERS; p++)
        for (int s = 0; s < MP_PER_PRODUCER; s++)
            CHECK(atomic_load(&r->seen[p][s / 64]) & ((uint64_t)1 << (s % 64)));
}

TEST(queue_many_producers_and_consumers_deliver_each_message_once_in_order)
{
    mp_queue *q = ring_queue(0, RING);
    struct results *r = shared_area(sizeof *r);
    struct mpmc args[MP_PRODUCERS + MP_CONSUMERS];
    int pids[MP_PRODUCERS + MP_CONSUMERS];
    for (int i = 0; i < MP_PRODUCERS + MP_CONSUMERS; i++) {
        args[i] = (struct mpmc){q, r, i < MP_PRODUCERS ? i : i - MP_PRODUCERS};
        pids[i] = th_fork(i < MP_PRODUCERS ? mpmc_produce : mpmc_consume, &args[i]);
    }
    for (int i = 0; i < MP_PRODUCERS; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    for (int i = 0; i < MP_CONSUMERS; i++)
        CHECK_OK(mp_queue_put(q, "stop", 4, -1));
    for (int i = MP_PRODUCERS; i < MP_PRODUCERS + MP_CONSUMERS; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    check_all_seen(r);
    CHECK(mp_queue_empty(q));
    munmap(r, sizeof *r);
    mp_queue_destroy(q);
}

static void *thread_produce(void *arg)
{
    return (void *)(intptr_t)mpmc_produce(arg);
}
static void *thread_consume(void *arg)
{
    return (void *)(intptr_t)mpmc_consume(arg);
}

TEST(queue_threads_of_one_process_share_a_handle)
{
    mp_queue *q = ring_queue(0, RING);
    struct results *r = calloc(1, sizeof *r);
    struct mpmc args[MP_PRODUCERS + MP_CONSUMERS];
    pthread_t th[MP_PRODUCERS + MP_CONSUMERS];
    for (int i = 0; i < MP_PRODUCERS + MP_CONSUMERS; i++) {
        args[i] = (struct mpmc){q, r, i < MP_PRODUCERS ? i : i - MP_PRODUCERS};
        CHECK(pthread_create(&th[i], NULL, i < MP_PRODUCERS ? thread_produce : thread_consume,
                             &args[i]) == 0);
    }
    for (int i = 0; i < MP_PRODUCERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MP_CONSUMERS; i++)
        CHECK_OK(mp_queue_put(q, "stop", 4, -1));
    for (int i = MP_PRODUCERS; i < MP_PRODUCERS + MP_CONSUMERS; i++)
        pthread_join(th[i], NULL);
    check_all_seen(r);
    free(r);
    mp_queue_destroy(q);
}

/* ---- wake-ups of a producer waiting for room ---- */

static mp_queue *room_q;
static _Atomic int room_hooked;

static void *get_one(void *arg)
{
    (void)arg;
    char buf[64];
    size_t len;
    CHECK_OK(mp_queue_get_into(room_q, buf, sizeof buf, &len, -1));
    return NULL;
}

/* At the producer's first flag of a sleep for room: a consumer takes one small
 * message (too little room) and wakes the producer, clearing its flag, all before
 * the producer looks at the ring again. */
static void get_one_in_the_window(int point)
{
    if (point != MP__QF_ROOM_WAIT_FLAGGED || atomic_exchange(&room_hooked, 1) != 0)
        return;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, get_one, NULL) == 0);
    pthread_join(th, NULL);
}

static void *put_big(void *arg)
{
    (void)arg;
    static char big[2000];
    CHECK_OK(mp_queue_put(room_q, big, sizeof big, -1));
    return NULL;
}

/* A consumer that wakes the producer (clearing its sleeping flag) after the
 * producer set the flag but before it read the sequence word, with too little room
 * freed, must not leave it asleep with its flag clear: the room freed afterwards
 * has to wake it at once, not at the end of its sleep slice (1 s). */
TEST(queue_producer_woken_with_too_little_room_is_woken_again_by_the_next_get)
{
    room_q = ring_queue(0, RING);
    char small[24] = {0};
    for (int i = 0; i < RING / 32; i++) /* 128 records of 32 bytes: full */
        CHECK_OK(mp_queue_put(room_q, small, sizeof small, 0));
    mp__queue_fault_hook = get_one_in_the_window;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, put_big, NULL) == 0);
    while (!atomic_load(&room_hooked))
        th_sleep_ms(1);
    th_sleep_ms(100); /* the producer sleeps again, for 2008 bytes */
    uint64_t t0 = th_now_ms();
    char buf[64];
    size_t len;
    for (int i = 0; i < 64; i++) /* 2048 bytes of room */
        CHECK_OK(mp_queue_get_into(room_q, buf, sizeof buf, &len, 0));
    pthread_join(th, NULL);
    uint64_t took = th_now_ms() - t0;
    mp__queue_fault_hook = NULL;
    CHECK(took < 500);
    CHECK_EQ(128 - 1 - 64 + 1, mp_queue_qsize(room_q));
    mp_queue_destroy(room_q);
}

/* ---- death in the middle of put or get ---- */

static int put_three_die_in_third(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_PUT_BEFORE_COMMIT, 3);
    for (uint32_t i = 0; i < 3; i++)
        put_pattern(q, i, 100);
    return 0; /* not reached */
}

TEST(queue_producer_killed_before_commit_delivers_nothing_of_its_message)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    CHECK_EQ(-SIGKILL, th_wait(th_fork(put_three_die_in_third, q)));
    CHECK_EQ(2, mp_queue_qsize(q));
    get_pattern(q, 0, 100, 0);
    get_pattern(q, 1, 100, 0);
    void *m;
    size_t len;
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 50));
    /* The dead producer's lock was recovered: the queue works on. */
    put_pattern(q, 5, 100);
    get_pattern(q, 5, 100, 0);
    mp_queue_destroy(q);
}

static int get_and_die_before_commit(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_GET_BEFORE_COMMIT, 1);
    void *m;
    size_t len;
    mp_queue_get(q, &m, &len, -1);
    return 0; /* not reached */
}

TEST(queue_consumer_killed_before_commit_leaves_the_message)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    put_pattern(q, 0, 100);
    put_pattern(q, 1, 200);
    CHECK_EQ(-SIGKILL, th_wait(th_fork(get_and_die_before_commit, q)));
    CHECK_EQ(2, mp_queue_qsize(q));
    get_pattern(q, 0, 100, 0);
    get_pattern(q, 1, 200, 0);
    mp_queue_destroy(q);
}

static int blob_and_die(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_BLOB_HALF_WRITTEN, 1); /* block reserved, half of it written */
    put_pattern(q, 0, 3 * RING);
    return 0; /* not reached */
}

static int blob_and_die_before_commit(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_PUT_BEFORE_COMMIT, 1); /* block written, record not committed */
    put_pattern(q, 0, 2 * RING + 5);
    return 0; /* not reached */
}

static int oversized_and_die(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_BLOB_HALF_WRITTEN, 1);
    put_pattern(q, 0, 3 * AREA); /* longer than the block area: the file grows */
    return 0;                    /* not reached */
}

TEST(queue_producer_killed_mid_long_message_delivers_nothing_and_leaks_nothing)
{
    mp_queue *q = ring_queue(0, RING);
    CHECK_EQ(-SIGKILL, th_wait(th_fork(blob_and_die, q)));
    CHECK_EQ(-SIGKILL, th_wait(th_fork(blob_and_die_before_commit, q)));
    CHECK_EQ(0, mp_queue_qsize(q));
    void *m;
    size_t len;
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 100));
    /* Their half-written blocks are garbage in the area, reused from now on. */
    CHECK(mp__queue_blob_bytes(q) <= AREA);
    put_pattern(q, 8, 3 * RING);
    put_pattern(q, 9, 30);
    get_pattern(q, 8, 3 * RING, 0);
    get_pattern(q, 9, 30, 0);
    /* A dead producer's oversized block is cut away by the next long put. */
    CHECK_EQ(-SIGKILL, th_wait(th_fork(oversized_and_die, q)));
    CHECK(mp__queue_blob_bytes(q) > AREA);
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 0));
    put_pattern(q, 10, 2 * RING);
    CHECK(mp__queue_blob_bytes(q) <= AREA);
    get_pattern(q, 10, 2 * RING, 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
}

static int get_and_die_mid_copy(void *arg)
{
    mp_queue *q = arg;
    arm_death(MP__QF_GET_BLOB_HALF_READ, 1);
    void *m;
    size_t len;
    mp_queue_get(q, &m, &len, -1);
    return 0; /* not reached */
}

TEST(queue_consumer_killed_mid_copy_of_a_long_message_leaves_it_whole)
{
    mp_queue *q = ring_queue(0, RING);
    put_pattern(q, 0, 3 * RING + 3);
    put_pattern(q, 1, 123);
    for (int i = 0; i < 3; i++) /* each dies half way through the copy */
        CHECK_EQ(-SIGKILL, th_wait(th_fork(get_and_die_mid_copy, q)));
    CHECK_EQ(2, mp_queue_qsize(q));
    get_pattern(q, 0, 3 * RING + 3, 0);
    get_pattern(q, 1, 123, 0);
    CHECK(mp_queue_empty(q));
    /* The same for an oversized message, mapped on its own for the copy. */
    put_pattern(q, 2, 3 * AREA + 5);
    CHECK_EQ(-SIGKILL, th_wait(th_fork(get_and_die_mid_copy, q)));
    get_pattern(q, 2, 3 * AREA + 5, 0);
    CHECK(mp__queue_blob_bytes(q) <= AREA); /* and its memory is given back at once */
    mp_queue_destroy(q);
}

static int get_oversized_and_die_before_shrinking(void *arg)
{
    arm_death(MP__QF_GET_BLOB_TAKEN, 1);
    void *m;
    size_t len;
    mp_queue_get(arg, &m, &len, -1);
    return 0; /* not reached */
}

TEST(queue_memory_of_an_oversized_message_is_given_back_even_if_its_consumer_dies)
{
    mp_queue *q = ring_queue(0, RING);
    put_pattern(q, 0, 2 * AREA);
    CHECK(mp__queue_blob_bytes(q) >= 2 * AREA);
    /* Killed after its commit: the message was its own (at-most-once), and the
     * file stays long until the next long put cuts it back. */
    CHECK_EQ(-SIGKILL, th_wait(th_fork(get_oversized_and_die_before_shrinking, q)));
    CHECK_EQ(0, mp_queue_qsize(q));
    CHECK(mp__queue_blob_bytes(q) >= 2 * AREA);
    put_pattern(q, 1, 2 * RING);
    CHECK(mp__queue_blob_bytes(q) <= AREA);
    get_pattern(q, 1, 2 * RING, 0);
    mp_queue_destroy(q);
}

#define LONG_LEN (RING + 100) /* a block of two pages */

static void *take_blob_later(void *arg)
{
    th_sleep_ms(150);
    get_pattern(arg, 0, LONG_LEN, 0);
    return NULL;
}

TEST(queue_long_messages_wait_for_their_budget_and_any_length_fits_alone)
{
    mp_queue *q = ring_queue(0, RING); /* the block area: 4 rings */
    int n = 0;
    void *big = make_msg(0, 0, LONG_LEN);
    for (size_t k = 0; k < sizeof(struct tag); k++)
        ((unsigned char *)big)[k] = byte_at(0, 0, k);
    while (mp_queue_put(q, big, LONG_LEN, 0) == 0)
        n++;
    CHECK_EQ(AREA / (2 * 4096), n);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EFULL, mp_queue_put(q, big, LONG_LEN, 100)); /* nobody takes one */
    CHECK(th_now_ms() - t0 >= 100);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, take_blob_later, q) == 0);
    CHECK_OK(mp_queue_put(q, big, LONG_LEN, 20000)); /* room once one is taken */
    pthread_join(th, NULL);
    free(big);
    for (int i = 0; i < n; i++)
        get_pattern(q, 0, LONG_LEN, 0);
    CHECK(mp_queue_empty(q));
    /* A message longer than the whole area goes in when no other is queued, and
     * needs no consumer while it is put; while it is there, no other long one fits. */
    put_pattern(q, 1, 100 * RING);
    static char page[RING];
    CHECK_RC(MP_EFULL, mp_queue_put(q, page, sizeof page, 0));
    CHECK_OK(mp_queue_put(q, "short", 5, 0));
    get_pattern(q, 1, 100 * RING, 0);
    get_str(q, "short", 0);
    CHECK(mp__queue_blob_bytes(q) <= AREA);
    mp_queue_destroy(q);
}

/* Producers and consumers SIGKILLed at random while the survivors go on. */

struct chaos {
    mp_queue *q;
    _Atomic int corrupt, received;
};

static int chaos_produce(void *arg)
{
    struct chaos *c = arg;
    uint32_t id = (uint32_t)getpid();
    for (uint32_t seq = 0;; seq++) {
        size_t len = 16 + (seq * 2654435761u >> 7) % (3 * RING);
        void *m = make_msg(id, seq, len);
        int rc = mp_queue_put(c->q, m, len, 1000);
        free(m);
        if (rc != 0 && rc != MP_EFULL)
            atomic_fetch_add(&c->corrupt, 1000);
    }
    return 0;
}

static int chaos_consume(void *arg)
{
    struct chaos *c = arg;
    for (;;) {
        void *m;
        size_t len;
        int rc = mp_queue_get(c->q, &m, &len, 1000);
        if (rc == MP_EEMPTY)
            continue;
        struct tag t;
        if (rc != 0 || !msg_ok(m, len, &t))
            atomic_fetch_add(&c->corrupt, 1);
        else
            atomic_fetch_add(&c->received, 1);
        if (rc == 0)
            free(m);
    }
    return 0;
}

TEST(queue_survives_producers_and_consumers_killed_at_random)
{
    mp_queue *q = ring_queue(0, RING);
    struct chaos *c = shared_area(sizeof *c);
    c->q = q;
    enum { N = 5 };
    int pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = th_fork(i % 2 == 0 ? chaos_produce : chaos_consume, c);
    unsigned seed = 12345;
    for (int round = 0; round < 60; round++) {
        th_sleep_ms(5 + rand_r(&seed) % 30);
        int i = (int)(rand_r(&seed) % N);
        kill(pids[i], SIGKILL);
        CHECK_EQ(-SIGKILL, th_wait(pids[i]));
        pids[i] = th_fork(i % 2 == 0 ? chaos_produce : chaos_consume, c);
    }
    for (int i = 0; i < N; i++) {
        kill(pids[i], SIGKILL);
        th_wait(pids[i]);
    }
    CHECK_EQ(0, atomic_load(&c->corrupt));
    CHECK(atomic_load(&c->received) > 0);
    /* What is left is whole, and the queue still works in both directions. */
    for (;;) {
        void *m;
        size_t len;
        int rc = mp_queue_get(q, &m, &len, 200);
        if (rc == MP_EEMPTY)
            break;
        CHECK_OK(rc);
        struct tag t;
        CHECK(msg_ok(m, len, &t));
        free(m);
    }
    put_pattern(q, 5, 10);
    get_pattern(q, 5, 10, 0);
    munmap(c, sizeof *c);
    mp_queue_destroy(q);
}

/* Exactly once, whatever the size: producers and consumers SIGKILLed at random
 * while messages small, about the ring's size and many rings long go through.
 * Every message put (put returned 0) must arrive exactly once and whole, except
 * one per consumer killed between its commit and counting the message (it owns
 * the message then: the inherent at-most-once); a message whose producer died inside put arrives
 * whole once or never. MPROC_CHAOS_ROUNDS sets the number of kills (default 150). */

enum { EX_INC = 1024, EX_PER = 1024, EX_P = 3, EX_C = 3 };

struct exact {
    mp_queue *q;
    _Atomic uint32_t next_inc; /* producer incarnations so far */
    _Atomic int corrupt, dup, received;
    _Atomic int in_get[EX_C]; /* consumer slot i: 1 inside get, 2 taking (see ex_hook) */
    _Atomic uint8_t put_ok[EX_INC][EX_PER];
    _Atomic uint8_t got[EX_INC][EX_PER];
};

static struct exact *ex;

static size_t ex_len(uint32_t inc, uint32_t seq)
{
    uint32_t h = (inc * 2654435761u) ^ (seq * 40503u + 0x9e3779b9u);
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    uint32_t r = h % 100, x = h >> 8;
    if (r < 55)
        return 16 + x % 300; /* small */
    if (r < 75)
        return RING - 64 + x % 128; /* about the ring: in it, or just too long */
    if (r < 97)
        return 2 * RING + x % (4 * RING); /* several rings */
    return 20 * RING + x % RING;
}

static int ex_produce(void *arg)
{
    (void)arg;
    uint32_t inc = atomic_fetch_add(&ex->next_inc, 1);
    if (inc >= EX_INC)
        return 0;
    for (uint32_t seq = 0; seq < EX_PER;) {
        size_t len = ex_len(inc, seq);
        void *m = make_msg(inc, seq, len);
        int rc = mp_queue_put(ex->q, m, len, 1000);
        free(m);
        if (rc == 0)
            atomic_store(&ex->put_ok[inc][seq++], 1);
        else if (rc != MP_EFULL) /* MP_EFULL: nothing delivered, the same seq again */
            atomic_fetch_add(&ex->corrupt, 1000);
    }
    return 0;
}

/* Counts the message by its tag first, then checks its bytes, so that a consumer's
 * window between taking a message and counting it stays short. */
static void ex_record(void *m, size_t len)
{
    struct tag t;
    if (len < sizeof t) {
        atomic_fetch_add(&ex->corrupt, 1);
        return;
    }
    memcpy(&t, m, sizeof t);
    bool known = t.producer < EX_INC && t.seq < EX_PER;
    if (known && atomic_fetch_add(&ex->got[t.producer][t.seq], 1) != 0)
        atomic_fetch_add(&ex->dup, 1);
    if (!known || !msg_ok(m, len, &t))
        atomic_fetch_add(&ex->corrupt, 1);
    atomic_fetch_add(&ex->received, 1);
}

static int ex_slot;

/* In a consumer: from just before get commits its take until the message is
 * counted, a kill may lose the message (the consumer owns it). Before that
 * point, a kill must lose nothing. */
static void ex_hook(int point)
{
    if (point == MP__QF_GET_BEFORE_COMMIT)
        atomic_store(&ex->in_get[ex_slot], 2);
}

static int ex_consume(void *arg)
{
    ex_slot = (int)(intptr_t)arg;
    mp__queue_fault_hook = ex_hook;
    for (;;) {
        void *m;
        size_t len;
        atomic_store(&ex->in_get[ex_slot], 1);
        int rc = mp_queue_get(ex->q, &m, &len, 500);
        if (rc == 0) {
            ex_record(m, len);
            atomic_store(&ex->in_get[ex_slot], 0);
            free(m);
        } else if (rc != MP_EEMPTY) {
            atomic_fetch_add(&ex->corrupt, 1);
        }
        atomic_store(&ex->in_get[ex_slot], 0);
    }
    return 0;
}

static int ex_start(int i)
{
    return i < EX_P ? th_fork(ex_produce, NULL) : th_fork(ex_consume, (void *)(intptr_t)(i - EX_P));
}

TEST(queue_delivers_every_message_exactly_once_whatever_its_size_through_random_kills)
{
    ex = shared_area(sizeof *ex);
    ex->q = ring_queue(0, RING);
    const char *env = getenv("MPROC_CHAOS_ROUNDS");
    int rounds = env != NULL ? atoi(env) : 150;
    int pids[EX_P + EX_C];
    for (int i = 0; i < EX_P + EX_C; i++)
        pids[i] = ex_start(i);
    unsigned seed = 4242;
    int killed_in_get = 0, kills = 0;
    for (int round = 0; round < rounds; round++) {
        th_sleep_ms(2 + rand_r(&seed) % 20);
        int i = (int)(rand_r(&seed) % (EX_P + EX_C));
        kill(pids[i], SIGKILL);
        int st = th_wait(pids[i]);
        CHECK(st == -SIGKILL || st == 0);
        kills++;
        if (i >= EX_P && atomic_exchange(&ex->in_get[i - EX_P], 0) == 2)
            killed_in_get++;
        pids[i] = ex_start(i);
    }
    for (int i = 0; i < EX_P + EX_C; i++) {
        kill(pids[i], SIGKILL);
        th_wait(pids[i]);
        if (i >= EX_P && atomic_exchange(&ex->in_get[i - EX_P], 0) == 2)
            killed_in_get++;
    }
    for (;;) { /* what is left */
        void *m;
        size_t len;
        int rc = mp_queue_get(ex->q, &m, &len, 200);
        if (rc == MP_EEMPTY)
            break;
        CHECK_OK(rc);
        ex_record(m, len);
        free(m);
    }
    CHECK_EQ(0, atomic_load(&ex->corrupt));
    CHECK_EQ(0, atomic_load(&ex->dup));
    uint32_t incs = atomic_load(&ex->next_inc);
    int lost = 0, put = 0, big = 0;
    for (uint32_t inc = 0; inc < incs && inc < EX_INC; inc++)
        for (uint32_t seq = 0; seq < EX_PER; seq++) {
            if (!atomic_load(&ex->put_ok[inc][seq]))
                continue;
            put++;
            big += ex_len(inc, seq) > RING - 8;
            if (!atomic_load(&ex->got[inc][seq]))
                lost++;
        }
    fprintf(stderr,
            "%d kills (%d consumers between commit and count), %d messages put (%d longer than the "
            "ring), "
            "%d received, %d lost\n",
            kills, killed_in_get, put, big, atomic_load(&ex->received), lost);
    CHECK(lost <= killed_in_get);
    CHECK(big > 0 && put > 100);
    /* Nothing leaks: what dead processes left is in the area, reused. */
    put_pattern(ex->q, 1, 2 * RING);
    get_pattern(ex->q, 1, 2 * RING, 0);
    CHECK(mp__queue_blob_bytes(ex->q) <= AREA);
    CHECK_EQ(0, mp_queue_qsize(ex->q));
    mp_queue_destroy(ex->q);
    munmap(ex, sizeof *ex);
}

/* ---- lifetime ---- */

static int destroy_in_child(void *arg)
{
    mp_queue *q = arg;
    size_t before = mp__shm_bytes_in_use();
    mp_queue_destroy(q); /* not the creator: the shared memory stays */
    CHECK_EQ(before, mp__shm_bytes_in_use());
    return 0;
}

TEST(queue_destroy_frees_shared_memory_only_in_the_creator)
{
    size_t before = mp__shm_bytes_in_use();
    mp_queue *q = ring_queue(0, RING);
    CHECK(mp__shm_bytes_in_use() > before);
    CHECK_OK(mp_queue_put(q, "kept", 4, 0));
    CHECK_EQ(0, th_wait(th_fork(destroy_in_child, q)));
    get_str(q, "kept", 0);
    mp_queue_destroy(q);
    CHECK_EQ(before, mp__shm_bytes_in_use());
}

/* ---- SimpleQueue ---- */

static int simple_producer(void *arg)
{
    mp_simple_queue *q = arg;
    for (uint32_t i = 0; i < 1000; i++)
        CHECK_OK(mp_simple_queue_put(q, &i, sizeof i));
    return 0;
}

TEST(simple_queue_passes_messages_between_processes)
{
    mp_simple_queue *q;
    CHECK_OK(mp_simple_queue_new(&q, &(mp_queue_options){.ring_bytes = RING}));
    CHECK(mp_simple_queue_empty(q));
    int pid = th_fork(simple_producer, q);
    for (uint32_t i = 0; i < 1000; i++) {
        void *m;
        size_t len;
        CHECK_OK(mp_simple_queue_get(q, &m, &len));
        CHECK_EQ(sizeof i, len);
        CHECK_EQ(i, *(uint32_t *)m);
        free(m);
    }
    CHECK_EQ(0, th_wait(pid));
    CHECK(mp_simple_queue_empty(q));
    CHECK_OK(mp_simple_queue_close(q));
    void *m;
    size_t len;
    CHECK_RC(MP_ECLOSED, mp_simple_queue_put(q, "x", 1));
    CHECK_RC(MP_ECLOSED, mp_simple_queue_get(q, &m, &len));
    CHECK_RC(MP_EINVAL, mp_simple_queue_put(NULL, "x", 1));
    CHECK_RC(MP_EINVAL, mp_simple_queue_get(NULL, &m, &len));
    CHECK_RC(MP_EINVAL, mp_simple_queue_new(NULL, NULL));
    CHECK(!mp_simple_queue_empty(NULL));
    mp_simple_queue_destroy(q);
    mp_simple_queue_destroy(NULL);
}

/* ---- JoinableQueue ---- */

TEST(joinable_queue_task_done_too_many_times_is_an_error)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    CHECK_RC(MP_ERANGE, mp_joinable_queue_task_done(q));
    CHECK_OK(mp_joinable_queue_put(q, "a", 1, 0));
    CHECK_OK(mp_joinable_queue_put_nowait(q, "b", 1));
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(q, 0));
    CHECK_EQ(2, mp_joinable_queue_qsize(q));
    void *m;
    size_t len;
    CHECK_OK(mp_joinable_queue_get(q, &m, &len, 0));
    free(m);
    CHECK_OK(mp_joinable_queue_task_done(q));
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(q, 0));
    char buf[4];
    CHECK_OK(mp_joinable_queue_get_into(q, buf, sizeof buf, &len, 0));
    CHECK_OK(mp_joinable_queue_task_done(q));
    CHECK_OK(mp_joinable_queue_join(q, 0));
    CHECK_RC(MP_ERANGE, mp_joinable_queue_task_done(q));
    CHECK_OK(mp_joinable_queue_join(q, 0));
    CHECK(mp_joinable_queue_empty(q));
    CHECK(!mp_joinable_queue_full(q));
    CHECK_RC(MP_EEMPTY, mp_joinable_queue_get_nowait(q, &m, &len));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_task_done(NULL));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_join(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_join(q, -2));
    CHECK_OK(mp_joinable_queue_close(q));
    CHECK_RC(MP_ECLOSED, mp_joinable_queue_task_done(q));
    CHECK_RC(MP_ECLOSED, mp_joinable_queue_join(q, 0));
    mp_joinable_queue_destroy(q);
}

TEST(joinable_queue_join_times_out_while_tasks_are_unfinished)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    CHECK_OK(mp_joinable_queue_put(q, "a", 1, 0));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(q, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    mp_joinable_queue_destroy(q);
}

struct worker {
    mp_joinable_queue *q;
    _Atomic int *done;
};

static int joinable_worker(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        void *m;
        size_t len;
        CHECK_OK(mp_joinable_queue_get(w->q, &m, &len, -1));
        free(m);
        th_sleep_ms(2);
        atomic_fetch_add(w->done, 1);
        CHECK_OK(mp_joinable_queue_task_done(w->q));
    }
}

TEST(joinable_queue_join_returns_when_every_task_is_done)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    _Atomic int *done = shared_area(sizeof *done);
    struct worker w = {q, done};
    int pids[2] = {th_fork(joinable_worker, &w), th_fork(joinable_worker, &w)};
    for (int i = 0; i < 100; i++)
        CHECK_OK(mp_joinable_queue_put(q, "task", 4, -1));
    CHECK_OK(mp_joinable_queue_join(q, -1));
    CHECK_EQ(100, atomic_load(done));
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGKILL);
        th_wait(pids[i]);
    }
    munmap(done, sizeof *done);
    mp_joinable_queue_destroy(q);
}

static int jblob_and_die(void *arg)
{
    mp_joinable_queue *q = arg;
    arm_death(MP__QF_BLOB_HALF_WRITTEN, 1);
    void *m = make_msg(0, 0, 5 * RING);
    mp_joinable_queue_put(q, m, 5 * RING, -1);
    return 0; /* not reached */
}

TEST(joinable_queue_counts_no_task_for_a_producer_killed_mid_put)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, &(mp_queue_options){.ring_bytes = RING}));
    CHECK_EQ(-SIGKILL, th_wait(th_fork(jblob_and_die, q)));
    CHECK_OK(mp_joinable_queue_join(q, 0));
    void *m;
    size_t len;
    CHECK_RC(MP_EEMPTY, mp_joinable_queue_get(q, &m, &len, 100));
    CHECK_RC(MP_ERANGE, mp_joinable_queue_task_done(q));
    mp_joinable_queue_destroy(q);
}

TEST(queue_ring_bytes_are_rounded_up_to_a_power_of_two)
{
    mp_queue *q = ring_queue(0, 5000); /* becomes 8192 */
    char msg[64] = {0};
    int n = 0;
    while (mp_queue_put_nowait(q, msg, sizeof msg) == 0)
        n++;
    CHECK_EQ(8192 / (64 + 8), n);
    mp_queue_destroy(q);
    q = ring_queue(0, 1); /* at least 4 KiB */
    n = 0;
    while (mp_queue_put_nowait(q, msg, sizeof msg) == 0)
        n++;
    CHECK_EQ(4096 / (64 + 8), n);
    mp_queue_destroy(q);
}

static int simple_big_producer(void *arg)
{
    mp_simple_queue *q = arg;
    for (uint32_t i = 0; i < 3; i++) {
        size_t len = 10 * RING + i;
        void *m = make_msg(0, i, len);
        for (size_t k = 0; k < sizeof(struct tag); k++)
            ((unsigned char *)m)[k] = byte_at(0, i, k);
        CHECK_OK(mp_simple_queue_put(q, m, len));
        free(m);
    }
    return 0;
}

TEST(simple_queue_carries_messages_longer_than_its_ring)
{
    mp_simple_queue *q;
    CHECK_OK(mp_simple_queue_new(&q, &(mp_queue_options){.ring_bytes = RING}));
    int pid = th_fork(simple_big_producer, q);
    for (uint32_t i = 0; i < 3; i++) {
        void *m;
        size_t len;
        CHECK_OK(mp_simple_queue_get(q, &m, &len));
        CHECK_EQ(10 * RING + i, len);
        CHECK(pattern_ok(m, len, 0, i));
        free(m);
    }
    CHECK_EQ(0, th_wait(pid));
    mp_simple_queue_destroy(q);
}

TEST(queue_get_into_refuses_a_short_buffer_for_a_long_message)
{
    mp_queue *q = ring_queue(0, RING);
    int pid = th_fork(produce_ring_sizes, q); /* sizes up to 3 * RING + 5 */
    char *buf = malloc(4 * RING);
    for (uint32_t i = 0; i < N_RING_SIZES; i++) {
        size_t len = 0;
        if (ring_sizes[i] > RING) {
            CHECK_RC(MP_ETOOSHORT, mp_queue_get_into(q, buf, RING, &len, 10000));
            CHECK_EQ(ring_sizes[i], len);
        }
        CHECK_OK(mp_queue_get_into(q, buf, 4 * RING, &len, 10000));
        CHECK_EQ(ring_sizes[i], len);
        CHECK(pattern_ok(buf, len, 0, i));
    }
    free(buf);
    CHECK_EQ(0, th_wait(pid));
    mp_queue_destroy(q);
}

static int joinable_consumer_process(void *arg)
{
    mp_joinable_queue *q = arg;
    for (int i = 0; i < 50; i++) {
        void *m;
        size_t len;
        CHECK_OK(mp_joinable_queue_get(q, &m, &len, -1));
        free(m);
        CHECK_OK(mp_joinable_queue_task_done(q));
    }
    return 0;
}

static int joiner_role(void *arg)
{
    mp_joinable_queue *q = arg;
    CHECK_OK(mp_joinable_queue_join(q, 20000));
    CHECK(mp_joinable_queue_empty(q));
    return 0;
}

TEST(joinable_queue_join_waits_in_several_processes)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    for (int i = 0; i < 50; i++)
        CHECK_OK(mp_joinable_queue_put(q, "t", 1, -1));
    /* joiners in two other processes and here, one consumer finishing last */
    int j1 = th_fork(joiner_role, q), j2 = th_fork(joiner_role, q);
    th_sleep_ms(50);
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(q, 0));
    int c = th_fork(joinable_consumer_process, q);
    CHECK_OK(mp_joinable_queue_join(q, 20000));
    CHECK_EQ(0, th_wait(c));
    CHECK_EQ(0, th_wait(j1));
    CHECK_EQ(0, th_wait(j2));
    mp_joinable_queue_destroy(q);
}

static void *blocked_get(void *arg)
{
    get_str(arg, "for the blocked one", -1);
    return NULL;
}

TEST(queue_second_consumer_times_out_while_another_waits)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, blocked_get, q) == 0);
    th_sleep_ms(50); /* let it take the consumer side and sleep */
    void *m;
    size_t len;
    CHECK_RC(MP_EEMPTY, mp_queue_get_nowait(q, &m, &len));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EEMPTY, mp_queue_get(q, &m, &len, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    CHECK_OK(mp_queue_put(q, "for the blocked one", 19, 0));
    pthread_join(th, NULL);
    mp_queue_destroy(q);
}

static void *blocked_put(void *arg)
{
    CHECK_OK(mp_queue_put(arg, "second", 6, -1));
    return NULL;
}

TEST(queue_second_producer_times_out_while_another_waits_for_room)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    CHECK_OK(mp_queue_put(q, "first", 5, 0));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, blocked_put, q) == 0);
    th_sleep_ms(50);
    CHECK_RC(MP_EFULL, mp_queue_put_nowait(q, "third", 5));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_EFULL, mp_queue_put(q, "third", 5, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    get_str(q, "first", 0);
    pthread_join(th, NULL);
    get_str(q, "second", 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
}

TEST(joinable_and_simple_queue_bad_arguments_change_nothing)
{
    mp_joinable_queue *q;
    void *m;
    size_t len;
    char buf[4];
    CHECK_RC(MP_EINVAL, mp_joinable_queue_new(NULL, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_new(&q, 0, &(mp_queue_options){.ring_bytes = SIZE_MAX}));
    CHECK_OK(mp_joinable_queue_new(&q, 1, NULL));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_put(NULL, "x", 1, 0));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_put(q, NULL, 1, 0));
    CHECK_OK(mp_joinable_queue_put_nowait(q, "x", 1));
    CHECK_RC(MP_EFULL, mp_joinable_queue_put(q, "y", 1, 0)); /* maxsize 1 */
    CHECK_RC(MP_EINVAL, mp_joinable_queue_get(NULL, &m, &len, 0));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_get(q, &m, &len, -3));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_get_into(q, NULL, 1, &len, 0));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_get_nowait(NULL, &m, &len));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_qsize(NULL));
    CHECK_RC(MP_EINVAL, mp_joinable_queue_close(NULL));
    CHECK(!mp_joinable_queue_empty(NULL));
    CHECK(!mp_joinable_queue_full(NULL));
    CHECK_EQ(1, mp_joinable_queue_qsize(q));
    CHECK_OK(mp_joinable_queue_get_into(q, buf, sizeof buf, &len, 0));
    CHECK_OK(mp_joinable_queue_task_done(q));
    CHECK_OK(mp_joinable_queue_join(q, 0));
    mp_joinable_queue_destroy(q);
    mp_joinable_queue_destroy(NULL);

    mp_simple_queue *s;
    CHECK_RC(MP_EINVAL, mp_simple_queue_new(&s, &(mp_queue_options){.ring_bytes = SIZE_MAX}));
    CHECK_OK(mp_simple_queue_new(&s, NULL));
    CHECK_RC(MP_EINVAL, mp_simple_queue_put(s, NULL, 3));
    CHECK_RC(MP_EINVAL, mp_simple_queue_get(s, NULL, &len));
    CHECK_RC(MP_EINVAL, mp_simple_queue_close(NULL));
    CHECK(mp_simple_queue_empty(s));
    mp_simple_queue_destroy(s);
}

/* ---- deaths between a commit and the wake-up it owes ---- */

static int put_and_die_before_waking(void *arg)
{
    th_sleep_ms(300); /* the consumer sleeps by now (if not, it sees the message itself) */
    arm_death(MP__QF_PUT_AFTER_COMMIT, 1);
    put_pattern(arg, 0, 100);
    return 0; /* not reached */
}

TEST(queue_sleeping_consumer_gets_a_message_whose_producer_died_before_waking_it)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 0, NULL));
    int pid = th_fork(put_and_die_before_waking, q);
    uint64_t t0 = th_now_ms();
    void *m = NULL;
    size_t len = 0;
    int rc = mp_queue_get(q, &m, &len, 40000);
    uint64_t waited = th_now_ms() - t0;
    CHECK_EQ(-SIGKILL, th_wait(pid));
    CHECK_OK(rc);
    CHECK_EQ(100, len);
    CHECK(pattern_ok(m, len, 0, 0));
    free(m);
    CHECK(waited < 20000); /* not the whole timeout: the committed message is seen */
    mp_queue_destroy(q);
}

static int get_and_die_before_waking(void *arg)
{
    th_sleep_ms(300); /* the producer sleeps by now */
    arm_death(MP__QF_GET_AFTER_COMMIT, 1);
    void *m;
    size_t len;
    mp_queue_get(arg, &m, &len, -1);
    return 0; /* not reached */
}

TEST(queue_sleeping_producer_sees_room_freed_by_a_consumer_that_died_before_waking_it)
{
    mp_queue *q;
    CHECK_OK(mp_queue_new(&q, 1, NULL));
    CHECK_OK(mp_queue_put(q, "first", 5, 0));
    int pid = th_fork(get_and_die_before_waking, q);
    uint64_t t0 = th_now_ms();
    int rc = mp_queue_put(q, "second", 6, 40000);
    uint64_t waited = th_now_ms() - t0;
    CHECK_EQ(-SIGKILL, th_wait(pid));
    CHECK_OK(rc);
    CHECK(waited < 20000);
    get_str(q, "second", 0);
    CHECK(mp_queue_empty(q));
    mp_queue_destroy(q);
}

static int jget_and_die(void *arg)
{
    void *m;
    size_t len;
    CHECK_OK(mp_joinable_queue_get(arg, &m, &len, -1));
    raise(SIGKILL); /* before task_done */
    return 0;
}

TEST(joinable_queue_task_of_a_consumer_killed_before_task_done_stays_unfinished)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    CHECK_OK(mp_joinable_queue_put(q, "a", 1, 0));
    CHECK_OK(mp_joinable_queue_put(q, "b", 1, 0));
    CHECK_EQ(-SIGKILL, th_wait(th_fork(jget_and_die, q)));
    CHECK_EQ(1, mp_joinable_queue_qsize(q));
    void *m;
    size_t len;
    CHECK_OK(mp_joinable_queue_get(q, &m, &len, 0));
    CHECK(len == 1 && memcmp(m, "b", 1) == 0);
    free(m);
    CHECK_OK(mp_joinable_queue_task_done(q));
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(q, 50)); /* "a" was never done */
    CHECK_OK(mp_joinable_queue_task_done(q));              /* someone does it for the dead one */
    CHECK_OK(mp_joinable_queue_join(q, 0));
    CHECK_RC(MP_ERANGE, mp_joinable_queue_task_done(q));
    mp_joinable_queue_destroy(q);
}

TEST(queue_put_refuses_a_length_no_record_can_hold)
{
    mp_queue *q = ring_queue(0, RING);
    static const char small[8] = "abcdefg";
#if SIZE_MAX > UINT32_MAX
    /* A length above 2^56 - 1 cannot be a real buffer: refused before reading it. */
    CHECK_RC(MP_EINVAL, mp_queue_put(q, small, (size_t)1 << 56, 0));
    CHECK_RC(MP_EINVAL, mp_queue_put(q, small, SIZE_MAX, -1));
#endif
    CHECK_EQ(0, mp_queue_qsize(q));
    CHECK(mp_queue_empty(q));
    CHECK_OK(mp_queue_put(q, small, 7, 0));
    get_str(q, "abcdefg", 0);
    mp_queue_destroy(q);
}

static int task_done_and_die_before_waking(void *arg)
{
    th_sleep_ms(300); /* the joiner sleeps by now */
    arm_death(MP__QF_DONE_BEFORE_WAKE, 1);
    mp_joinable_queue_task_done(arg);
    return 0; /* not reached */
}

TEST(joinable_queue_sleeping_join_returns_when_the_last_task_done_died_before_waking_it)
{
    mp_joinable_queue *q;
    CHECK_OK(mp_joinable_queue_new(&q, 0, NULL));
    CHECK_OK(mp_joinable_queue_put(q, "a", 1, 0));
    void *m;
    size_t len;
    CHECK_OK(mp_joinable_queue_get(q, &m, &len, 0));
    free(m);
    int pid = th_fork(task_done_and_die_before_waking, q);
    uint64_t t0 = th_now_ms();
    int rc = mp_joinable_queue_join(q, 40000);
    uint64_t waited = th_now_ms() - t0;
    CHECK_EQ(-SIGKILL, th_wait(pid));
    CHECK_OK(rc);
    CHECK(waited < 20000);
    mp_joinable_queue_destroy(q);
}

/* ---- the 2^32 wrap-around of positions and counts ---- */

static void *put_sizes(void *arg)
{
    mp_queue *q = arg;
    for (uint32_t i = 0; i < 64; i++)
        put_pattern(q, i, (i * 977u) % (3 * RING));
    return NULL;
}

TEST(queue_indices_wrap_around_2_to_the_32)
{
    mp_joinable_queue *jq;
    CHECK_OK(mp_joinable_queue_new(&jq, 5, &(mp_queue_options){.ring_bytes = RING}));
    mp_queue *q = (mp_queue *)jq; /* the same operations, for the helpers */
    mp__queue_skew(q, UINT32_MAX - 2, UINT32_MAX - 7 - 2 * 8);
    CHECK_EQ(0, mp_queue_qsize(q));
    CHECK(mp_queue_empty(q));
    CHECK_OK(mp_joinable_queue_join(jq, 0));
    CHECK_RC(MP_ERANGE, mp_joinable_queue_task_done(jq));
    for (uint32_t i = 0; i < 5; i++) /* counts and positions cross 2^32 */
        put_pattern(q, i, 40);
    CHECK_EQ(5, mp_queue_qsize(q));
    CHECK(mp_queue_full(q)); /* maxsize */
    CHECK_RC(MP_EFULL, mp_queue_put_nowait(q, "x", 1));
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(jq, 0));
    for (uint32_t i = 0; i < 5; i++) {
        get_pattern(q, i, 40, 0);
        CHECK_OK(mp_joinable_queue_task_done(jq));
    }
    CHECK_OK(mp_joinable_queue_join(jq, 0));
    CHECK(mp_queue_empty(q));
    /* Records that wrap the ring, and long ones in blocks, across the boundary. */
    mp__queue_skew(q, UINT32_MAX - 1, UINT32_MAX - 7 - 1000);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, put_sizes, q) == 0);
    for (uint32_t i = 0; i < 64; i++) {
        get_pattern(q, i, (i * 977u) % (3 * RING), 20000);
        CHECK_OK(mp_joinable_queue_task_done(jq));
    }
    pthread_join(th, NULL);
    CHECK(mp_queue_empty(q));
    CHECK_EQ(0, mp_queue_qsize(q));
    CHECK_OK(mp_joinable_queue_join(jq, 0));
    mp_joinable_queue_destroy(jq);
}

/* ---- qsize, empty and full under traffic ---- */

struct churn {
    mp_queue *q;
    _Atomic bool stop;
};

static void *churn_put(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop))
        mp_queue_put(c->q, "x", 1, 10);
    return NULL;
}

static void *churn_get(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop)) {
        void *m;
        size_t len;
        if (mp_queue_get(c->q, &m, &len, 10) == 0)
            free(m);
    }
    return NULL;
}

TEST(queue_qsize_stays_between_zero_and_maxsize_under_traffic)
{
    struct churn c = {.q = ring_queue(3, RING)};
    enum { T = 6 }; /* more threads than cores: the reader is preempted between reads */
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        CHECK(pthread_create(&th[i], NULL, i % 2 ? churn_get : churn_put, &c) == 0);
    int worst = 0;
    uint64_t t0 = th_now_ms();
    for (long i = 0; th_now_ms() - t0 < 2000; i++) {
        int n = mp_queue_qsize(c.q);
        if (n < 0 || n > 3)
            worst = n;
        if (n > 3 || n < 0)
            break;
        if (i % 64 == 0)
            sched_yield();
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(0, worst);
    mp_queue_destroy(c.q);
}

/* ---- a death at every fault point, on either side, around a long message ---- */

/* Short, long (a block in the area) and oversized (a block of its own). */
static const size_t seq_lens[4] = {100, 3 * RING + 5, 200, AREA + 2 * RING + 3};

struct fault_case {
    mp_queue *q;
    int point, nth;
    _Atomic uint32_t taken; /* bit i: message i reached the dying consumer whole */
    _Atomic int corrupt;
    _Atomic bool produced; /* the producer thread has put everything */
};

/* Which of the seq_lens messages m is, or -1. */
static int which(const void *m, size_t len)
{
    for (int i = 0; i < 4; i++)
        if (len == seq_lens[i] && pattern_ok(m, len, 0, (uint32_t)i))
            return i;
    return -1;
}

/* Takes messages until none comes within timeout_ms; each must be whole, new, and
 * after the previous one. Adds them to *seen. */
static void drain_checked(mp_queue *q, uint32_t *seen, int timeout_ms)
{
    for (;;) {
        void *m;
        size_t len;
        int rc = mp_queue_get(q, &m, &len, timeout_ms);
        if (rc == MP_EEMPTY)
            return;
        CHECK_OK(rc);
        int i = which(m, len);
        free(m);
        CHECK(i >= 0);
        CHECK((*seen >> i) == 0); /* in order, never twice */
        *seen |= 1u << i;
    }
}

/* waitpid without blocking: the status as th_wait reports it, or 1 while running. */
static int exited(int pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) != pid)
        return 1;
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

static int produce_armed(void *arg)
{
    struct fault_case *f = arg;
    arm_death(f->point, f->nth);
    for (uint32_t i = 0; i < 3; i++)
        put_pattern(f->q, i, seq_lens[i]);
    return 0;
}

TEST(queue_producer_killed_at_each_fault_point_leaves_whole_messages_in_order)
{
    static const int cases[][2] = {
        {MP__QF_PUT_BEFORE_COMMIT, 1}, {MP__QF_PUT_BEFORE_COMMIT, 2}, {MP__QF_PUT_BEFORE_COMMIT, 3},
        {MP__QF_BLOB_HALF_WRITTEN, 1}, {MP__QF_PUT_AFTER_COMMIT, 1},  {MP__QF_PUT_AFTER_COMMIT, 2},
        {MP__QF_PUT_AFTER_COMMIT, 3},
    };
    struct fault_case *f = shared_area(sizeof *f);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        f->q = ring_queue(0, RING);
        f->point = cases[k][0];
        f->nth = cases[k][1];
        int pid = th_fork(produce_armed, f);
        uint32_t seen = 0;
        int st;
        while ((st = exited(pid)) == 1) /* until the producer has died */
            drain_checked(f->q, &seen, 100);
        CHECK_EQ(-SIGKILL, st);
        drain_checked(f->q, &seen, 100);
        /* Whatever was cut is gone; what came before the death arrived. */
        if (f->point == MP__QF_PUT_BEFORE_COMMIT)
            CHECK_EQ((1u << (f->nth - 1)) - 1, seen);
        if (f->point == MP__QF_PUT_AFTER_COMMIT) /* committed: it arrives */
            CHECK_EQ((1u << f->nth) - 1, seen);
        if (f->point == MP__QF_BLOB_HALF_WRITTEN)
            CHECK_EQ(1, seen); /* the first; the long second one was cut */
        CHECK_EQ(0, mp_queue_qsize(f->q));
        put_pattern(f->q, 3, seq_lens[3]);
        get_pattern(f->q, 3, seq_lens[3], 0);
        mp_queue_destroy(f->q);
    }
    munmap(f, sizeof *f);
}

static int consume_armed(void *arg)
{
    struct fault_case *f = arg;
    arm_death(f->point, f->nth);
    for (;;) {
        void *m;
        size_t len;
        int rc = mp_queue_get(f->q, &m, &len, 300);
        if (rc == MP_EEMPTY) {
            mp_queue_destroy(f->q); /* this process's handle */
            return 0;
        }
        int i = rc == 0 ? which(m, len) : -1;
        if (rc == 0)
            free(m);
        if (i < 0 || (atomic_load(&f->taken) >> i) != 0)
            atomic_fetch_add(&f->corrupt, 1);
        else
            atomic_fetch_or(&f->taken, 1u << i);
    }
}

static void *produce_four(void *arg)
{
    struct fault_case *f = arg;
    for (uint32_t i = 0; i < 4; i++)
        put_pattern(f->q, i, seq_lens[i]);
    atomic_store(&f->produced, true);
    return NULL;
}

TEST(queue_consumer_killed_at_each_fault_point_loses_at_most_the_message_it_took)
{
    static const int cases[][2] = {
        {MP__QF_GET_BEFORE_COMMIT, 1},  {MP__QF_GET_BEFORE_COMMIT, 2},
        {MP__QF_GET_BEFORE_COMMIT, 3},  {MP__QF_GET_BLOB_HALF_READ, 1},
        {MP__QF_GET_BLOB_HALF_READ, 2}, {MP__QF_GET_BLOB_TAKEN, 1},
        {MP__QF_GET_AFTER_COMMIT, 1},   {MP__QF_GET_AFTER_COMMIT, 2},
        {MP__QF_GET_AFTER_COMMIT, 3},   {MP__QF_GET_AFTER_COMMIT, 5},
    };
    struct fault_case *f = shared_area(sizeof *f);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        f->q = ring_queue(0, RING);
        f->point = cases[k][0];
        f->nth = cases[k][1];
        atomic_store(&f->taken, 0);
        atomic_store(&f->corrupt, 0);
        atomic_store(&f->produced, false);
        int pid = th_fork(consume_armed, f); /* before the thread: a clean fork */
        pthread_t th;
        CHECK(pthread_create(&th, NULL, produce_four, f) == 0);
        int st = th_wait(pid);
        CHECK(st == -SIGKILL || st == 0);
        uint32_t seen = 0;
        while (!atomic_load(&f->produced)) /* until everything is put */
            drain_checked(f->q, &seen, 100);
        pthread_join(th, NULL);
        drain_checked(f->q, &seen, 0);
        uint32_t taken = atomic_load(&f->taken);
        CHECK_EQ(0, atomic_load(&f->corrupt));
        CHECK_EQ(0, taken & seen); /* never delivered twice */
        uint32_t lost = 0xf & ~(taken | seen);
        CHECK(lost == 0 || (st == -SIGKILL && (lost & (lost - 1)) == 0)); /* at most one */
        if (f->point == MP__QF_GET_BEFORE_COMMIT || f->point == MP__QF_GET_BLOB_HALF_READ)
            CHECK_EQ(0, lost); /* not committed: it stays */
        CHECK_EQ(0, mp_queue_qsize(f->q));
        mp_queue_destroy(f->q);
    }
    munmap(f, sizeof *f);
}
