/* The shared arena: process-shared memory behind every shared object. */
// TEST_TIMEOUT 300
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "core/arena.h"
#include "harness.h"

TEST(arena_blocks_are_zeroed_and_aligned)
{
    size_t sizes[] = {1, 15, 16, 48, 49, 64, 1000, 4096, 100000, 262144, 5u << 20};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = mp__shm_alloc(sizes[i]);
        CHECK(p[i] != NULL);
        CHECK_EQ(0, (uintptr_t)p[i] % MP__SHM_ALIGN);
        for (size_t j = 0; j < sizes[i]; j++)
            CHECK(((unsigned char *)p[i])[j] == 0);
        memset(p[i], 0xab, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        mp__shm_free(p[i]);
    /* Recycled memory is zeroed again. */
    unsigned char *q = mp__shm_alloc(1000);
    for (size_t j = 0; j < 1000; j++)
        CHECK(q[j] == 0);
    mp__shm_free(q);
}

TEST(arena_rejects_zero_size)
{
    CHECK(mp__shm_alloc(0) == NULL);
    CHECK(mp__shm_alloc(SIZE_MAX) == NULL);
    mp__shm_free(NULL);
}

TEST(arena_free_returns_memory_and_coalesces)
{
    size_t base = mp__shm_bytes_in_use();
    void *a = mp__shm_alloc(100), *b = mp__shm_alloc(100), *c = mp__shm_alloc(100);
    CHECK(mp__shm_bytes_in_use() > base);
    mp__shm_free(b);
    mp__shm_free(a);
    mp__shm_free(c);
    CHECK_EQ(base, mp__shm_bytes_in_use());
    /* After coalescing, one block close to a quarter chunk fits again. */
    void *big = mp__shm_alloc(200000);
    CHECK(big != NULL);
    mp__shm_free(big);
    CHECK_EQ(base, mp__shm_bytes_in_use());
}

TEST(arena_double_free_is_ignored)
{
    size_t base = mp__shm_bytes_in_use();
    void *a = mp__shm_alloc(10), *b = mp__shm_alloc(10);
    mp__shm_free(a);
    mp__shm_free(a);
    CHECK_EQ(base + 64, mp__shm_bytes_in_use());
    mp__shm_free(b);
    CHECK_EQ(base, mp__shm_bytes_in_use());
}

static int child_writes(void *arg)
{
    uint64_t *words = arg;
    for (int i = 0; i < 1000; i++)
        words[i] = (uint64_t)i * 3;
    return 0;
}

TEST(arena_memory_is_shared_with_children)
{
    uint64_t *small = mp__shm_alloc(1000 * sizeof(uint64_t));
    uint64_t *large = mp__shm_alloc(1u << 22);
    CHECK_EQ(0, th_wait(th_fork(child_writes, small)));
    CHECK_EQ(0, th_wait(th_fork(child_writes, large)));
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ((uint64_t)i * 3, small[i]);
        CHECK_EQ((uint64_t)i * 3, large[i]);
    }
    mp__shm_free(small);
    mp__shm_free(large);
}

static int child_allocates(void *arg)
{
    void **slot = arg;
    *slot = mp__shm_alloc(256);
    return *slot == NULL;
}

TEST(arena_block_allocated_by_child_is_seen_and_freed_by_parent)
{
    void **slot = mp__shm_alloc(sizeof(void *));
    size_t base = mp__shm_bytes_in_use();
    CHECK_EQ(0, th_wait(th_fork(child_allocates, slot)));
    CHECK(*slot != NULL);
    CHECK(mp__shm_bytes_in_use() > base); /* the child used the chunk we share */
    mp__shm_free(*slot);
    CHECK_EQ(base, mp__shm_bytes_in_use());
    mp__shm_free(slot);
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *held[32] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(rand_r(&seed) % 32);
        if (held[k] != NULL) {
            CHECK(*(unsigned *)held[k] == (unsigned)k + 1);
            mp__shm_free(held[k]);
            held[k] = NULL;
        } else {
            held[k] = mp__shm_alloc(1 + rand_r(&seed) % 3000);
            CHECK(held[k] != NULL);
            *(unsigned *)held[k] = (unsigned)k + 1;
        }
    }
    for (int k = 0; k < 32; k++)
        mp__shm_free(held[k]);
    return NULL;
}

static int churn_in_process(void *arg)
{
    churn(arg);
    return 0;
}

TEST(arena_survives_threads_and_processes_at_once)
{
    void *warm = mp__shm_alloc(8); /* map the first chunk before forking */
    size_t base = mp__shm_bytes_in_use();
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(churn_in_process, (void *)(uintptr_t)(100 + i));
    pthread_t threads[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(base, mp__shm_bytes_in_use());
    mp__shm_free(warm);
}

static int die_while_holding(void *arg)
{
    /* Allocates until the parent SIGKILLs it, at a random moment. */
    while (arg == NULL) {
        void *p = mp__shm_alloc(64);
        mp__shm_free(p);
    }
    return 0;
}

TEST(arena_usable_after_a_process_dies_mid_allocation)
{
    void *warm = mp__shm_alloc(8);
    for (int round = 0; round < 5; round++) {
        int pid = th_fork(die_while_holding, NULL);
        th_sleep_ms(20);
        kill(pid, SIGKILL);
        CHECK_EQ(-SIGKILL, th_wait(pid));
        void *p = mp__shm_alloc(64);
        CHECK(p != NULL);
        mp__shm_free(p);
    }
    mp__shm_free(warm);
}

TEST(arena_full_chunk_moves_on_to_a_new_one)
{
    /* Five of these fill a chunk; the sixth must come from a second chunk. */
    void *b[12];
    for (int i = 0; i < 12; i++) {
        b[i] = mp__shm_alloc(200000);
        CHECK(b[i] != NULL);
        memset(b[i], i, 200000);
    }
    for (int i = 0; i < 12; i++) {
        CHECK(((unsigned char *)b[i])[199999] == i);
        mp__shm_free(b[i]);
    }
    /* And many small blocks, well past one chunk. */
    enum { N = 40000 };
    void **small = malloc(N * sizeof *small);
    for (int i = 0; i < N; i++)
        CHECK((small[i] = mp__shm_alloc(40)) != NULL);
    for (int i = 0; i < N; i++)
        mp__shm_free(small[i]);
    free(small);
}

static int churn_until_killed(void *arg)
{
    unsigned seed = 7;
    void *held[64] = {0};
    while (arg == NULL) {
        int k = (int)(rand_r(&seed) % 64);
        mp__shm_free(held[k]);
        held[k] = mp__shm_alloc(1 + rand_r(&seed) % 2000);
    }
    return 0;
}

TEST(arena_invariants_hold_after_a_process_dies_mid_free)
{
    void *warm = mp__shm_alloc(8);
    for (int round = 0; round < 10; round++) {
        int pid = th_fork(churn_until_killed, NULL);
        th_sleep_ms(10 + (unsigned)round * 3);
        kill(pid, SIGKILL);
        CHECK_EQ(-SIGKILL, th_wait(pid));
        /* The survivor's accounting is whole: what it allocates and frees balances. */
        size_t base = mp__shm_bytes_in_use();
        void *p[100];
        for (int i = 0; i < 100; i++)
            CHECK((p[i] = mp__shm_alloc(100 + (size_t)i * 10)) != NULL);
        for (int i = 0; i < 100; i++)
            mp__shm_free(p[i]);
        CHECK_EQ(base, mp__shm_bytes_in_use());
    }
    mp__shm_free(warm);
}

TEST(arena_exhaustion_returns_null_not_a_crash)
{
    SKIP_UNDER_TSAN("it touches 4 GiB of shared memory, which TSan shadows");
    /* Small blocks come from at most MAX_CHUNKS chunks (4096 of 1 MiB); blocks of
     * 200000 bytes fill a chunk five at a time. Past that: NULL and ENOMEM. */
    enum { MAX = 5 * 4096 + 100 };
    void **b = malloc(MAX * sizeof *b);
    int n = 0;
    while (n < MAX && (b[n] = mp__shm_alloc(200000)) != NULL)
        n++;
    CHECK(n < MAX);
    CHECK(n >= 5 * 4000);
    CHECK_EQ(ENOMEM, errno);
    for (int i = 0; i < n; i++)
        mp__shm_free(b[i]);
    void *again = mp__shm_alloc(200000); /* freed space is usable again */
    CHECK(again != NULL);
    mp__shm_free(again);
    free(b);
}
