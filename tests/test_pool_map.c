/* mp_pool map, map_async, imap, imap_unordered and starmap: order, chunks, sizes,
 * failures. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pool_tasks.h"

TEST(pool_map_results_in_order)
{
    mp_pool *p = new_pool(3);
    int in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], 1000, out, sizeof out[0], NULL));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(i * i, out[i]);
    finish(p);
}

TEST(pool_map_empty_input)
{
    mp_pool *p = new_pool(2);
    CHECK_OK(mp_pool_map(p, square, NULL, sizeof(int), 0, NULL, sizeof(int), NULL));
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, square, NULL, sizeof(int), 0, sizeof(int), NULL));
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 1000));
    CHECK_OK(mp_async_result_get(r, 1000, NULL, NULL));
    mp_async_result_destroy(r);
    finish(p);
}

static void map_with_chunksize(size_t chunksize)
{
    mp_pool *p = new_pool(2);
    enum { N = 101 };
    int in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i - 50;
    CHECK_OK(mp_pool_map(p, square, in, sizeof in[0], N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = chunksize}));
    for (int i = 0; i < N; i++)
        CHECK_EQ(in[i] * in[i], out[i]);
    finish(p);
}

TEST(pool_map_chunksize_one)
{
    map_with_chunksize(1);
}

TEST(pool_map_chunksize_default)
{
    map_with_chunksize(0);
}

TEST(pool_map_chunksize_larger_than_n)
{
    map_with_chunksize(1000);
}

TEST(pool_map_error_fails_its_chunk_others_complete)
{
    mp_pool *p = new_pool(2);
    int in[20], out[20];
    for (int i = 0; i < 20; i++)
        in[i] = i == 13 ? -1 : i;
    memset(out, 0xff, sizeof out);
    CHECK_RC(MP_ETASKFAILED, mp_pool_map(p, fail_on_negative, in, sizeof in[0], 20, out,
                                         sizeof out[0], &(mp_async_options){.chunksize = 5}));
    CHECK_STR("negative input -1", mp_pool_last_message());
    for (int i = 0; i < 10; i++)
        CHECK_EQ(i, out[i]); /* chunks 0 and 1 */
    for (int i = 15; i < 20; i++)
        CHECK_EQ(i, out[i]); /* chunk 3 */
    finish(p);
}

TEST(pool_map_wrong_result_size_is_emsgsize)
{
    mp_pool *p = new_pool(1);
    int in[3] = {1, 2, 3};
    short out[3];
    CHECK_RC(MP_EMSGSIZE, mp_pool_map(p, square, in, sizeof in[0], 3, out, sizeof out[0], NULL));
    finish(p);
}

/* mp_task_return is a macro with an inline fast path: its function (reached by its
 * address) and the macro agree, a later call replaces an earlier one, and bad
 * arguments still reach the function's checks. */
static int return_via_both(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x = *(const int *)arg, first = -1, y = 3 * x;
    int (*fn)(mp_task *, const void *, size_t) = mp_task_return;
    int rc = fn(t, &first, sizeof first);
    if (rc != 0)
        return rc;
    if (x % 2 == 0) /* the function's result, replaced through the macro */
        return mp_task_return(t, &y, sizeof y);
    rc = mp_task_return(t, &first, sizeof first);
    return rc != 0 ? rc : (mp_task_return)(t, &y, sizeof y);
}

static int return_null_data(const void *arg, size_t len, mp_task *t)
{
    (void)arg;
    (void)len;
    return mp_task_return(t, NULL, sizeof(int));
}

TEST(pool_map_task_return_macro_and_function_agree)
{
    mp_pool *p = new_pool(2);
    int in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    CHECK_OK(mp_pool_map(p, return_via_both, in, sizeof in[0], 100, out, sizeof out[0], NULL));
    for (int i = 0; i < 100; i++)
        CHECK_EQ(3 * i, out[i]);
    CHECK_RC(MP_ETASKFAILED,
             mp_pool_map(p, return_null_data, in, sizeof in[0], 4, out, sizeof out[0], NULL));
    CHECK_RC(MP_ETASKFAILED, mp_pool_apply(p, return_null_data, in, sizeof in[0], NULL, NULL));
    finish(p);
}

TEST(pool_imap_streams_in_order)
{
    mp_pool *p = new_pool(3);
    enum { N = 200 };
    int in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, square, in, sizeof in[0], N, sizeof(int),
                          &(mp_async_options){.chunksize = 7}));
    for (int i = 0; i < N; i++) {
        size_t idx;
        const void *d;
        size_t len;
        CHECK_OK(mp_imap_next(r, &idx, &d, &len, 10000));
        CHECK_EQ(i, idx);
        CHECK_EQ(sizeof(int), len);
        CHECK_EQ(i * i, *(const int *)d);
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_imap_unordered_returns_each_result_once)
{
    mp_pool *p = new_pool(4);
    int in[10], seen[10] = {0};
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mp_async_result *r;
    CHECK_OK(mp_pool_imap_unordered(p, &r, slow_reverse, in, sizeof in[0], 10, sizeof(int),
                                    &(mp_async_options){.chunksize = 1}));
    for (int i = 0; i < 10; i++) {
        size_t idx;
        const void *d;
        CHECK_OK(mp_imap_next(r, &idx, &d, NULL, 10000));
        CHECK(idx < 10);
        CHECK_EQ((int)idx, *(const int *)d);
        seen[idx]++;
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    for (int i = 0; i < 10; i++)
        CHECK_EQ(1, seen[i]);
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_imap_next_times_out)
{
    mp_pool *p = new_pool(1);
    unsigned ms[2] = {800, 800};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, sleep_ms_task, ms, sizeof ms[0], 2, 0, NULL));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_imap_next(r, NULL, NULL, NULL, 50));
    CHECK(th_now_ms() - t0 >= 50);
    mp_async_result_destroy(r);
    finish(p);
}

static int concat_len(const void *arg, size_t len, mp_task *t)
{
    char *buf = mp_task_result_buffer(t, len * 2 + 1);
    if (buf == NULL)
        return len == 0 ? 0 : -1;
    memcpy(buf, arg, len);
    memcpy(buf + len, arg, len);
    buf[2 * len] = '!';
    return 0;
}

TEST(pool_map_variable_size_items_and_results)
{
    mp_pool *p = new_pool(2);
    const char *words[] = {"a", "bc", "", "defg", "hello world"};
    mp_buf in[5];
    for (int i = 0; i < 5; i++)
        in[i] = (mp_buf){words[i], strlen(words[i])};
    mp_async_result *r;
    CHECK_OK(
        mp_pool_map_async(p, &r, concat_len, in, 0, 5, 0, &(mp_async_options){.chunksize = 2}));
    const void *d = (void *)1;
    size_t len = 1;
    CHECK_OK(mp_async_result_get(r, -1, &d, &len));
    CHECK(d == NULL);
    for (int i = 0; i < 5; i++) {
        size_t wl = strlen(words[i]);
        CHECK_OK(mp_async_result_item(r, (size_t)i, &d, &len));
        if (wl == 0) {
            CHECK_EQ(1, len); /* the task returned 0 and wrote "!" */
            continue;
        }
        CHECK_EQ(2 * wl + 1, len);
        CHECK(memcmp(d, words[i], wl) == 0);
        CHECK_EQ('!', ((const char *)d)[2 * wl]);
    }
    CHECK_RC(MP_ERANGE, mp_async_result_item(r, 5, &d, &len));
    size_t done, total;
    CHECK_OK(mp_async_result_progress(r, &done, &total));
    CHECK_EQ(5, done);
    CHECK_EQ(5, total);
    mp_async_result_destroy(r);
    finish(p);
}

static int star_add(size_t argc, const mp_buf *argv, mp_task *t)
{
    int sum = 0;
    for (size_t i = 0; i < argc; i++)
        sum += *(const int *)argv[i].data;
    return mp_task_return(t, &sum, sizeof sum);
}

TEST(pool_starmap_unpacks_tuples)
{
    mp_pool *p = new_pool(2);
    int v[6] = {1, 2, 3, 4, 5, 6};
    mp_buf b[6];
    for (int i = 0; i < 6; i++)
        b[i] = (mp_buf){&v[i], sizeof v[i]};
    mp_args tuples[3] = {{2, &b[0]}, {3, &b[2]}, {1, &b[5]}};
    int out[3];
    CHECK_OK(mp_pool_starmap(p, star_add, tuples, 3, out, sizeof out[0], NULL));
    CHECK_EQ(3, out[0]);
    CHECK_EQ(12, out[1]);
    CHECK_EQ(6, out[2]);
    finish(p);
}

TEST(pool_imap_reports_failed_chunk_items_and_continues)
{
    mp_pool *p = new_pool(2);
    int in[9] = {0, 1, 2, 3, -4, 5, 6, 7, 8};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, fail_on_negative, in, sizeof in[0], 9, sizeof(int),
                          &(mp_async_options){.chunksize = 3}));
    for (size_t i = 0; i < 9; i++) {
        size_t idx;
        const void *d;
        int rc = mp_imap_next(r, &idx, &d, NULL, 10000);
        CHECK_EQ(i, idx);
        if (i >= 3 && i < 6) {
            CHECK_RC(MP_ETASKFAILED, rc);
            CHECK(d == NULL);
        } else {
            CHECK_OK(rc);
            CHECK_EQ(in[i], *(const int *)d);
        }
    }
    CHECK_RC(MP_EEOF, mp_imap_next(r, NULL, NULL, NULL, 0));
    CHECK_RC(MP_ETASKFAILED, mp_async_result_get(r, 10000, NULL, NULL));
    CHECK_STR("negative input -4", mp_async_result_message(r));
    mp_async_result_destroy(r);
    finish(p);
}

TEST(pool_imap_default_chunksize_is_one)
{
    mp_pool *p = new_pool(2);
    int in[6] = {1, 2, 3, -4, 5, 6};
    mp_async_result *r;
    CHECK_OK(mp_pool_imap(p, &r, fail_on_negative, in, sizeof in[0], 6, sizeof(int), NULL));
    for (int i = 0; i < 6; i++) /* only item 3 fails: chunks of one */
        CHECK_RC(i == 3 ? MP_ETASKFAILED : 0, mp_imap_next(r, NULL, NULL, NULL, 10000));
    mp_async_result_destroy(r);
    finish(p);
}

static int star_nop(size_t argc, const mp_buf *argv, mp_task *t)
{
    (void)argc;
    (void)argv;
    (void)t;
    return 0;
}

/* Item counts whose byte size does not fit in a size_t: MP_EOVERFLOW, as the header
 * says, from every map form, with nothing submitted. */
TEST(pool_map_with_sizes_that_overflow_is_eoverflow)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 1}));
    int in[1] = {0}, out[1];
    size_t huge = SIZE_MAX / 2;
    CHECK_RC(MP_EOVERFLOW,
             mp_pool_map(p, square, in, sizeof in[0], huge, out, sizeof out[0], NULL));
    CHECK_RC(MP_EOVERFLOW, mp_pool_map(p, square, in, 1, huge, out, sizeof out[0], NULL));
    mp_async_result *r = (mp_async_result *)1;
    CHECK_RC(MP_EOVERFLOW, mp_pool_map_async(p, &r, square, in, sizeof in[0], huge, 0, NULL));
    CHECK(r == NULL);
    CHECK_RC(MP_EOVERFLOW, mp_pool_imap(p, &r, square, in, sizeof in[0], huge, 0, NULL));
    CHECK_RC(MP_EOVERFLOW, mp_pool_imap_unordered(p, &r, square, in, 8, huge, 0, NULL));
    mp_args tuples[1] = {{0, NULL}};
    CHECK_RC(MP_EOVERFLOW, mp_pool_starmap_async(p, &r, star_nop, tuples, huge, 8, NULL));
    CHECK_RC(MP_EOVERFLOW, mp_pool_starmap(p, star_nop, tuples, huge, out, 8, NULL));
    void *shared = mp_pool_shared_alloc(p, 64);
    CHECK(shared != NULL);
    CHECK_RC(MP_EOVERFLOW, mp_pool_map_shared_async(p, &r, square_kernel, shared, 4, shared, 4,
                                                    huge, NULL, NULL));
    CHECK(r == NULL);
    int x = 6;
    void *res;
    CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, NULL)); /* the pool is unharmed */
    CHECK_EQ(36, *(int *)res);
    free(res);
    mp_pool_shared_free(p, shared);
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

/* Chunks whose results are at least 64 KiB: the workers write them into the
 * shared region and the parent copies them out; a failing item, a wrong-sized
 * result and a thread pool take the same path. */
static void map_large_chunks(bool threads)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 3, .threads = threads}));
    enum { N = 200000 };
    int *in = malloc(N * sizeof(int)), *out = malloc(N * sizeof(int));
    CHECK(in != NULL && out != NULL);
    for (int i = 0; i < N; i++)
        in[i] = i % 40000;
    mp_async_options big = {.chunksize = 50000}; /* 200 KB of results per chunk */
    for (int round = 0; round < 3; round++) {    /* the blocks are reused */
        memset(out, 0xff, N * sizeof(int));
        CHECK_OK(mp_pool_map(p, square, in, sizeof(int), N, out, sizeof(int), &big));
        for (int i = 0; i < N; i++)
            CHECK_EQ((i % 40000) * (i % 40000), out[i]);
    }
    in[123456] = -7; /* chunk 2 fails, the others complete */
    memset(out, 0xff, N * sizeof(int));
    CHECK_RC(MP_ETASKFAILED,
             mp_pool_map(p, fail_on_negative, in, sizeof(int), N, out, sizeof(int), &big));
    CHECK_STR("negative input -7", mp_pool_last_message());
    for (int i = 0; i < 100000; i++)
        CHECK_EQ(i % 40000, out[i]);
    for (int i = 150000; i < N; i++)
        CHECK_EQ(i % 40000, out[i]);
    in[123456] = 123456 % 40000;
    short *small = malloc(N * sizeof(short));
    CHECK(small != NULL);
    CHECK_RC(MP_EMSGSIZE, mp_pool_map(p, square, in, sizeof(int), N, small, sizeof(short), &big));
    free(small);
    mp_async_result *r; /* map_async: results in its own array */
    CHECK_OK(mp_pool_map_async(p, &r, square, in, sizeof(int), N, sizeof(int), &big));
    CHECK_OK(mp_async_result_get(r, 30000, NULL, NULL));
    const void *item;
    size_t len;
    CHECK_OK(mp_async_result_item(r, N - 1, &item, &len));
    CHECK_EQ(sizeof(int), len);
    CHECK_EQ(((N - 1) % 40000) * ((N - 1) % 40000), *(const int *)item);
    mp_async_result_destroy(r);
    free(in);
    free(out);
    finish(p);
}

TEST(pool_map_large_chunks_results_through_the_region)
{
    map_large_chunks(false);
}

TEST(thread_pool_map_large_chunks_results_through_the_region)
{
    map_large_chunks(true);
}

/* The sum of an item's bytes, so that the right bytes must have arrived. */
static int byte_sum(const void *arg, size_t len, mp_task *t)
{
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++)
        s += ((const unsigned char *)arg)[i];
    return mp_task_return(t, &s, sizeof s);
}

/* A synchronous map streams its chunks through a region far smaller than its
 * items: 48 MiB of items through 4 MiB of shared memory, 2 MiB chunks. */
TEST(pool_map_streams_items_larger_than_the_region)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .shared_size = 4 << 20}));
    enum { N = 48, ITEM = 1 << 20 };
    mp_buf *items = malloc(N * sizeof *items);
    uint64_t out[N];
    CHECK(items != NULL);
    for (int i = 0; i < N; i++) {
        char *b = malloc(ITEM);
        CHECK(b != NULL);
        memset(b, i, ITEM);
        items[i] = (mp_buf){b, ITEM};
    }
    for (int round = 0; round < 2; round++) {
        memset(out, 0, sizeof out);
        CHECK_OK(mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 2}));
        for (int i = 0; i < N; i++)
            CHECK_EQ((uint64_t)i * ITEM, out[i]);
    }
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    free(items);
    finish(p);
}

static void *terminate_soon(void *arg)
{
    th_sleep_ms(200);
    CHECK_OK(mp_pool_terminate(arg));
    return NULL;
}

static int slow_byte_sum(const void *arg, size_t len, mp_task *t)
{
    th_sleep_ms(50);
    return byte_sum(arg, len, t);
}

/* Terminating the pool while a synchronous map streams its chunks fails the map,
 * whether its chunks were out or not yet copied; nothing hangs. */
TEST(pool_map_terminated_while_streaming_fails)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .shared_size = 4 << 20}));
    enum { N = 64, ITEM = 1 << 20 };
    mp_buf *items = malloc(N * sizeof *items);
    uint64_t out[N];
    CHECK(items != NULL);
    for (int i = 0; i < N; i++) {
        char *b = malloc(ITEM);
        CHECK(b != NULL);
        memset(b, 1, ITEM);
        items[i] = (mp_buf){b, ITEM};
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, terminate_soon, p) == 0);
    int rc = mp_pool_map(p, slow_byte_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 1});
    CHECK(rc != 0);
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    free(items);
    CHECK_OK(mp_pool_join(p, 10000));
    mp_pool_destroy(p);
}

/* A worker that dies on one item of a streamed map (chunks larger than a
 * quarter of a small region, more chunks than fit in flight): the map fails with
 * MP_EWORKERDIED and does not hang waiting for room; the next map is right. */
static int byte_sum_die_on_7(const void *arg, size_t len, mp_task *t)
{
    if (len > 0 && ((const unsigned char *)arg)[0] == 7)
        raise(SIGKILL);
    return byte_sum(arg, len, t);
}

static void stream_stress(const mp_pool_options *o, mp_task_fn fn, int expect)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, o));
    enum { N = 40, ITEM = 1 << 20 };
    mp_buf *items = malloc(N * sizeof *items);
    uint64_t out[N];
    CHECK(items != NULL);
    for (int i = 0; i < N; i++) {
        char *b = malloc(ITEM);
        CHECK(b != NULL);
        memset(b, i, ITEM);
        items[i] = (mp_buf){b, ITEM};
    }
    for (int round = 0; round < 2; round++) {
        memset(out, 0, sizeof out);
        int rc = mp_pool_map(p, round == 0 ? fn : byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 2});
        CHECK_RC(round == 0 ? expect : 0, rc);
        for (int i = 0; i < N; i++)
            if (round == 1 || expect == 0 || i < 6 || i > 7)
                CHECK_EQ((uint64_t)i * ITEM, out[i]);
    }
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    free(items);
    finish(p);
}

TEST(pool_map_stream_worker_dies_mid_stream)
{
    stream_stress(&(mp_pool_options){.processes = 2, .shared_size = 4 << 20}, byte_sum_die_on_7,
                  MP_EWORKERDIED);
}

TEST(pool_map_stream_maxtasksperchild_one)
{
    stream_stress(&(mp_pool_options){.processes = 2, .shared_size = 4 << 20, .maxtasksperchild = 1},
                  byte_sum, 0);
}

TEST(pool_map_stream_region_smaller_than_a_chunk)
{
    stream_stress(&(mp_pool_options){.processes = 2, .shared_size = 1 << 20}, byte_sum, 0);
}

TEST(pool_map_stream_threads_small_region)
{
    stream_stress(&(mp_pool_options){.processes = 3, .threads = true, .shared_size = 4 << 20},
                  byte_sum, 0);
}

/* Fixed results through the region, a worker dying partway through a chunk:
 * the map fails; the block is reused by the next map, whose results are right. */
static int square_die_on_m5(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int x;
    memcpy(&x, arg, sizeof x);
    if (x == -5)
        raise(SIGKILL);
    int y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

TEST(pool_map_out_region_worker_dies_then_reuse)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .maxtasksperchild = 2}));
    enum { N = 400000 };
    int *in = malloc(N * sizeof(int)), *out = malloc(N * sizeof(int));
    CHECK(in != NULL && out != NULL);
    for (int i = 0; i < N; i++)
        in[i] = i % 30000;
    in[250001] = -5;
    mp_async_options big = {.chunksize = 40000};
    CHECK_RC(MP_EWORKERDIED,
             mp_pool_map(p, square_die_on_m5, in, sizeof(int), N, out, sizeof(int), &big));
    in[250001] = 250001 % 30000;
    for (int round = 0; round < 3; round++) {
        memset(out, 0xff, N * sizeof(int));
        CHECK_OK(mp_pool_map(p, square_die_on_m5, in, sizeof(int), N, out, sizeof(int), &big));
        for (int i = 0; i < N; i++)
            CHECK_EQ((i % 30000) * (i % 30000), out[i]);
    }
    free(in);
    free(out);
    finish(p);
}

static void *close_soon(void *arg)
{
    th_sleep_ms(150);
    CHECK_OK(mp_pool_close(arg));
    return NULL;
}

/* Closing the pool while a synchronous map still has chunks to copy: MP_ECLOSED
 * once the chunks sent are answered; the pool then winds down. */
TEST(pool_map_stream_closed_while_streaming_is_eclosed)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .shared_size = 4 << 20}));
    enum { N = 64, ITEM = 1 << 20 };
    mp_buf *items = malloc(N * sizeof *items);
    uint64_t out[N];
    CHECK(items != NULL);
    for (int i = 0; i < N; i++) {
        char *b = malloc(ITEM);
        CHECK(b != NULL);
        memset(b, 1, ITEM);
        items[i] = (mp_buf){b, ITEM};
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, close_soon, p) == 0);
    CHECK_RC(MP_ECLOSED, mp_pool_map(p, slow_byte_sum, items, 0, N, out, sizeof out[0],
                                     &(mp_async_options){.chunksize = 1}));
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++)
        free((void *)items[i].data);
    free(items);
    CHECK_OK(mp_pool_join(p, 10000));
    mp_pool_destroy(p);
}

static int star_sum_die(size_t argc, const mp_buf *argv, mp_task *t)
{
    int64_t s = 0;
    for (size_t i = 0; i < argc; i++)
        s += (int64_t)argv[i].len;
    if (s == 3)
        return mp_task_return(t, &s, 4); /* wrong size on one item */
    return mp_task_return(t, &s, sizeof s);
}

/* starmap, fixed results through the region, a wrong-sized result mid-stream:
 * MP_EMSGSIZE, the chunks after it complete, the next starmap is right. */
TEST(pool_starmap_out_region_wrong_size_mid_stream)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2}));
    enum { N = 100000 };
    static char dummy[8];
    mp_buf *bufs = malloc(N * 2 * sizeof *bufs);
    mp_args *tuples = malloc(N * sizeof *tuples);
    int64_t *out = malloc(N * sizeof *out);
    CHECK(bufs && tuples && out);
    for (int i = 0; i < N; i++) {
        bufs[2 * i] = (mp_buf){dummy, (size_t)(i % 5)};
        bufs[2 * i + 1] = (mp_buf){dummy, 1};
        tuples[i] = (mp_args){.argc = 2, .argv = &bufs[2 * i]};
    }
    mp_async_options big = {.chunksize = 10000};
    CHECK_RC(MP_EMSGSIZE, mp_pool_starmap(p, star_sum_die, tuples, N, out, sizeof *out, &big));
    for (int i = 0; i < N; i++)
        bufs[2 * i] = (mp_buf){dummy, (size_t)(i % 5 == 2 ? 3 : i % 5)};
    for (int round = 0; round < 2; round++) {
        memset(out, 0xff, N * sizeof *out);
        CHECK_OK(mp_pool_starmap(p, star_sum_die, tuples, N, out, sizeof *out, &big));
        for (int i = 0; i < N; i++)
            CHECK_EQ((int64_t)((i % 5 == 2 ? 3 : i % 5) + 1), out[i]);
    }
    free(bufs);
    free(tuples);
    free(out);
    finish(p);
}

static int slow_on_marked(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    if (*(const unsigned char *)arg == 1)
        th_sleep_ms(300);
    uint64_t v = *(const unsigned char *)arg;
    return mp_task_return(t, &v, sizeof v);
}

/* A map whose items are small but whose chunks' results are large (here 128 KiB
 * a chunk) must not take the pool's shared memory for all its chunks at once:
 * mp_pool_shared_alloc (and zero-copy maps) still find room while it runs. */
TEST(pool_map_async_large_results_leave_the_region_usable)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .shared_size = 8 << 20}));
    void *probe = mp_pool_shared_alloc(p, 2 << 20);
    CHECK(probe != NULL);
    mp_pool_shared_free(p, probe);
    enum { CH = 16384, N = 64 * CH };
    unsigned char *in = calloc(N, 1);
    CHECK(in != NULL);
    for (int c = 0; c < N / CH; c++)
        in[c * CH] = 1; /* each chunk starts slow */
    mp_async_result *r;
    CHECK_OK(mp_pool_map_async(p, &r, slow_on_marked, in, 1, N, sizeof(uint64_t),
                               &(mp_async_options){.chunksize = CH}));
    probe = mp_pool_shared_alloc(p, 2 << 20);
    CHECK(probe != NULL);
    mp_pool_shared_free(p, probe);
    CHECK_OK(mp_pool_terminate(p));
    mp_async_result_get(r, 10000, NULL, NULL);
    mp_async_result_destroy(r);
    free(in);
    CHECK_OK(mp_pool_join(p, 10000));
    mp_pool_destroy(p);
}

/* ---- feeds: chunks of at least twice a feed's ring (2 MiB) travel through it ---- */

#include "pool/pool.h"

/* n items of varied sizes (some odd, so that items skip to the ring's next lap),
 * item i filled with (i % 251). */
static mp_buf *feed_items(int n, size_t base, size_t step)
{
    mp_buf *items = malloc((size_t)n * sizeof *items);
    CHECK(items != NULL);
    for (int i = 0; i < n; i++) {
        size_t len = base + (size_t)(i % 5) * step + (size_t)(i % 3);
        char *b = malloc(len ? len : 1);
        CHECK(b != NULL);
        memset(b, i % 251, len);
        items[i] = (mp_buf){b, len};
    }
    return items;
}

static void free_items(mp_buf *items, int n)
{
    for (int i = 0; i < n; i++)
        free((void *)items[i].data);
    free(items);
}

static void check_sums(const mp_buf *items, const uint64_t *out, int from, int to)
{
    for (int i = from; i < to; i++)
        CHECK_EQ((uint64_t)(i % 251) * items[i].len, out[i]);
}

static void feed_round_trip(const mp_pool_options *o)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, o));
    enum { N = 60 };
    mp_buf *items = feed_items(N, 600 << 10, 100 << 10); /* 0.6-1 MiB, chunks of 8: ~6 MiB */
    uint64_t out[N];
    for (int round = 0; round < 3; round++) {
        memset(out, 0, sizeof out);
        CHECK_OK(mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 8}));
        check_sums(items, out, 0, N);
    }
    /* every ring and wake word went back: most of the region can be had again */
    size_t size = o->shared_size ? o->shared_size : (size_t)64 << 20;
    void *big = mp_pool_shared_alloc(p, size - (size >> 3));
    CHECK(big != NULL);
    mp_pool_shared_free(p, big);
    free_items(items, N);
    finish(p);
}

TEST(pool_map_large_chunks_travel_through_feeds)
{
    feed_round_trip(&(mp_pool_options){.processes = 2, .shared_size = 32 << 20});
}

TEST(thread_pool_map_large_chunks_travel_through_feeds)
{
    feed_round_trip(&(mp_pool_options){.processes = 3, .threads = true, .shared_size = 32 << 20});
}

TEST(pool_map_feed_one_worker_many_chunks)
{
    feed_round_trip(&(mp_pool_options){.processes = 1, .shared_size = 32 << 20});
}

/* Fixed-size items through a feed: 2M ints in chunks of 1M (4 MiB each). */
TEST(pool_map_fixed_items_through_a_feed)
{
    mp_pool *p = new_pool(2);
    enum { N = 2 << 20 };
    int *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    CHECK(in != NULL && out != NULL);
    for (int i = 0; i < N; i++)
        in[i] = i % 46000 - 23000; /* squares that fit in an int */
    for (int round = 0; round < 2; round++) {
        memset(out, 0, N * sizeof *out);
        CHECK_OK(mp_pool_map(p, square, in, sizeof *in, N, out, sizeof *out,
                             &(mp_async_options){.chunksize = 1 << 20}));
        for (int i = 0; i < N; i++)
            if (out[i] != in[i] * in[i])
                CHECK_EQ((long)in[i] * in[i], (long)out[i]);
    }
    free(in);
    free(out);
    finish(p);
}

/* Items larger than the default ring: the ring grows to hold the largest (4 MiB
 * for 3 MiB items); with a region too small for such a ring the chunk travels
 * as before (here: inline, larger than the region). */
static void big_items(size_t shared_size)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .shared_size = shared_size}));
    enum { N = 12 };
    mp_buf *items = feed_items(N, 3 << 20, 1);
    uint64_t out[N];
    memset(out, 0, sizeof out);
    CHECK_OK(mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 4}));
    check_sums(items, out, 0, N);
    free_items(items, N);
    finish(p);
}

TEST(pool_map_feed_items_larger_than_the_default_ring)
{
    big_items(64 << 20);
}

TEST(pool_map_feed_ring_larger_than_the_region_falls_back)
{
    big_items(4 << 20);
}

/* A worker that dies on an item several ring laps into its chunk, or whose item
 * fails there: the map fails with that chunk's error and does not hang (its
 * feed is abandoned); the next map is right. */
static int byte_sum_die_on_21(const void *arg, size_t len, mp_task *t)
{
    if (len > 0 && ((const unsigned char *)arg)[0] == 21)
        raise(SIGKILL);
    return byte_sum(arg, len, t);
}

static int byte_sum_fail_on_21(const void *arg, size_t len, mp_task *t)
{
    if (len > 0 && ((const unsigned char *)arg)[0] == 21)
        return mp_task_fail(t, 5, "item 21");
    return byte_sum(arg, len, t);
}

static void feed_failure(const mp_pool_options *o, mp_task_fn fn, int expect)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, o));
    enum { N = 64 };
    mp_buf *items = feed_items(N, 1 << 20, 0); /* chunks of 16 MiB */
    uint64_t out[N];
    for (int round = 0; round < 2; round++) {
        memset(out, 0, sizeof out);
        int rc = mp_pool_map(p, round == 0 ? fn : byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 16});
        CHECK_RC(round == 0 ? expect : 0, rc);
        check_sums(items, out, round == 0 ? 32 : 0, N);
    }
    free_items(items, N);
    finish(p);
}

TEST(pool_map_feed_worker_dies_mid_chunk)
{
    feed_failure(&(mp_pool_options){.processes = 2}, byte_sum_die_on_21, MP_EWORKERDIED);
}

TEST(pool_map_feed_item_fails_mid_chunk)
{
    feed_failure(&(mp_pool_options){.processes = 2}, byte_sum_fail_on_21, MP_ETASKFAILED);
}

TEST(thread_pool_map_feed_item_fails_mid_chunk)
{
    feed_failure(&(mp_pool_options){.processes = 2, .threads = true}, byte_sum_fail_on_21,
                 MP_ETASKFAILED);
}

/* One worker: its second chunk waits queued behind the first, whose worker dies:
 * the second runs again on the replacement, from its ring's start, and is right. */
TEST(pool_map_feed_queued_chunk_of_a_dying_worker_runs_again)
{
    feed_failure(&(mp_pool_options){.processes = 1}, byte_sum_die_on_21, MP_EWORKERDIED);
}

/* A worker killed while it waits for its chunk's next items (fault point
 * MP__PF_FEED_WAIT, once across the workers): that chunk fails, nothing hangs,
 * the next map is right. */
static _Atomic int *feed_wait_calls;

static void die_at_second_feed_wait(int point)
{
    if (point == MP__PF_FEED_WAIT && atomic_fetch_add(feed_wait_calls, 1) == 1)
        raise(SIGKILL);
}

TEST(pool_map_feed_worker_dies_waiting_for_items)
{
    feed_wait_calls = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(feed_wait_calls != MAP_FAILED);
    mp__pool_fault_hook = die_at_second_feed_wait;
    mp_pool *p = new_pool(2);
    enum { N = 32 };
    mp_buf *items = feed_items(N, 1 << 20, 0);
    uint64_t out[N];
    for (int round = 0; round < 2; round++) {
        memset(out, 0, sizeof out);
        int rc = mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 8});
        CHECK_RC(round == 0 ? MP_EWORKERDIED : 0, rc);
        if (round == 1)
            check_sums(items, out, 0, N);
    }
    CHECK(atomic_load(feed_wait_calls) >= 2);
    mp__pool_fault_hook = NULL;
    free_items(items, N);
    finish(p);
    munmap(feed_wait_calls, 4096);
}

/* Terminating a thread pool while its workers wait for items of their chunks:
 * the map fails, the workers see their feeds abandoned and end; join returns. */
static int slow_sum(const void *arg, size_t len, mp_task *t)
{
    th_sleep_ms(20);
    return byte_sum(arg, len, t);
}

static void terminate_feeding(bool threads)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .threads = threads}));
    enum { N = 64 };
    mp_buf *items = feed_items(N, 1 << 20, 0);
    uint64_t out[N];
    pthread_t th;
    CHECK(pthread_create(&th, NULL, terminate_soon, p) == 0);
    int rc = mp_pool_map(p, slow_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 16});
    CHECK(rc == MP_ETERMINATED || rc == MP_ECLOSED);
    pthread_join(th, NULL);
    CHECK_OK(mp_pool_join(p, 10000));
    mp_pool_destroy(p);
    free_items(items, N);
}

TEST(pool_map_feed_terminated_while_feeding)
{
    terminate_feeding(false);
}

TEST(thread_pool_map_feed_terminated_while_feeding)
{
    terminate_feeding(true);
}

/* ---- feeds: edge cases of the ring's arithmetic (review) ---- */

/* Items of exactly a ring (2 MiB: the ring does not grow, each item fills it and
 * the next can be written only once the worker consumed all before it), empty
 * items between them (placed at a lap's end without a wrap), and a few bytes
 * past a ring's end (so the next skips to the following lap). */
static _Atomic int *feed_waits_seen; /* shared with the workers */

static void count_feed_waits(int point)
{
    if (point == MP__PF_FEED_WAIT)
        atomic_fetch_add(feed_waits_seen, 1);
}

static void ring_sized_items(const mp_pool_options *o)
{
    feed_waits_seen = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(feed_waits_seen != MAP_FAILED);
    mp__pool_fault_hook = count_feed_waits;
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, o));
    enum { N = 24 };
    mp_buf *items = malloc(N * sizeof *items);
    CHECK(items != NULL);
    for (int i = 0; i < N; i++) {
        size_t len = i % 3 == 0 ? (size_t)2 << 20 : i % 3 == 1 ? 0 : ((size_t)1 << 20) + 7;
        char *b = malloc(len ? len : 1);
        CHECK(b != NULL);
        memset(b, i % 251, len);
        items[i] = (mp_buf){b, len};
    }
    uint64_t out[N];
    for (int chunk = 3; chunk <= 12; chunk += 9) { /* 3: ~5 MiB a chunk; 12: ~20 MiB */
        memset(out, 0xff, sizeof out);
        CHECK_OK(mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = (size_t)chunk}));
        check_sums(items, out, 0, N);
    }
    CHECK(atomic_load(feed_waits_seen) > 0); /* the items did go through feeds */
    free_items(items, N);
    finish(p);
    mp__pool_fault_hook = NULL; /* once no worker thread may read it */
    munmap(feed_waits_seen, 4096);
}

TEST(pool_map_feed_items_of_exactly_the_ring_and_empty_ones)
{
    ring_sized_items(&(mp_pool_options){.processes = 2});
}

TEST(thread_pool_map_feed_items_of_exactly_the_ring_and_empty_ones)
{
    ring_sized_items(&(mp_pool_options){.processes = 2, .threads = true});
}

TEST(pool_map_feed_one_worker_items_of_exactly_the_ring)
{
    ring_sized_items(&(mp_pool_options){.processes = 1});
}

/* Fixed-size items whose size does not divide the ring (12 bytes): each lap ends
 * with a few bytes skipped, the writer's runs stop at the lap's end. */
static int sum3(const void *arg, size_t len, mp_task *t)
{
    (void)len;
    int v[3];
    memcpy(v, arg, sizeof v);
    int s = v[0] + v[1] + v[2];
    return mp_task_return(t, &s, sizeof s);
}

TEST(pool_map_feed_fixed_items_that_do_not_divide_the_ring)
{
    mp_pool *p = new_pool(2);
    enum { N = 1 << 20 }; /* 12 MiB of items, chunks of 6 MiB */
    int *in = malloc((size_t)N * 3 * sizeof *in), *out = malloc(N * sizeof *out);
    CHECK(in != NULL && out != NULL);
    for (int i = 0; i < N; i++) {
        in[3 * i] = i;
        in[3 * i + 1] = -2 * (i % 1000);
        in[3 * i + 2] = 7;
    }
    memset(out, 0, N * sizeof *out);
    CHECK_OK(mp_pool_map(p, sum3, in, 3 * sizeof *in, N, out, sizeof *out,
                         &(mp_async_options){.chunksize = N / 2}));
    for (int i = 0; i < N; i++)
        if (out[i] != i - 2 * (i % 1000) + 7)
            CHECK_EQ(i - 2 * (i % 1000) + 7, out[i]);
    free(in);
    free(out);
    finish(p);
}

/* starmap's packed tuples through a feed: two args per item, ~1 MiB and 4 bytes. */
static int star_byte_sum(size_t argc, const mp_buf *argv, mp_task *t)
{
    if (argc != 2 || argv[1].len != sizeof(int))
        return mp_task_fail(t, 3, "bad tuple");
    uint64_t s = 0;
    for (size_t i = 0; i < argv[0].len; i++)
        s += ((const unsigned char *)argv[0].data)[i];
    int k;
    memcpy(&k, argv[1].data, sizeof k);
    s += (uint64_t)k;
    return mp_task_return(t, &s, sizeof s);
}

static void starmap_feed(const mp_pool_options *o)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, o));
    enum { N = 40 };
    mp_buf *items = feed_items(N, 900 << 10, 50 << 10);
    int ks[N];
    mp_buf argv[2 * N];
    mp_args tuples[N];
    for (int i = 0; i < N; i++) {
        ks[i] = 1000 * i;
        argv[2 * i] = items[i];
        argv[2 * i + 1] = (mp_buf){&ks[i], sizeof ks[i]};
        tuples[i] = (mp_args){2, &argv[2 * i]};
    }
    uint64_t out[N];
    memset(out, 0, sizeof out);
    CHECK_OK(mp_pool_starmap(p, star_byte_sum, tuples, N, out, sizeof out[0],
                             &(mp_async_options){.chunksize = 10}));
    for (int i = 0; i < N; i++)
        CHECK_EQ((uint64_t)(i % 251) * items[i].len + (uint64_t)ks[i], out[i]);
    free_items(items, N);
    finish(p);
}

TEST(pool_starmap_through_feeds)
{
    starmap_feed(&(mp_pool_options){.processes = 2});
}

TEST(thread_pool_starmap_through_feeds)
{
    starmap_feed(&(mp_pool_options){.processes = 2, .threads = true});
}

/* maxtasksperchild 1: every worker is replaced after each chunk it ran through
 * its feed; a map of more chunks than workers is right and leaves no ring behind. */
TEST(pool_map_feed_maxtasksperchild_one)
{
    feed_round_trip(
        &(mp_pool_options){.processes = 2, .maxtasksperchild = 1, .shared_size = 32 << 20});
}

/* A worker that dies just after it finished a chunk that came through a feed
 * (fault point MP__PF_TASK_DONE, once across the workers), in a pool whose
 * region is too small for shared result batches (22 workers, 16 MiB: the batches
 * would need 2.1 MiB, more than an eighth): the chunk's result must not be lost,
 * nor the chunk run again from a ring whose first items were overwritten by its
 * later ones (that run would return the sums of other items, as a success). */
static _Atomic int *task_done_calls;

static void die_after_first_task(int point)
{
    if (point == MP__PF_TASK_DONE && atomic_fetch_add(task_done_calls, 1) == 0)
        raise(SIGKILL);
}

TEST(pool_map_feed_worker_dies_after_its_chunk_without_shared_batches)
{
    task_done_calls = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(task_done_calls != MAP_FAILED);
    mp__pool_fault_hook = die_after_first_task; /* in the workers forked from here on */
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 22, .shared_size = 16 << 20}));
    enum { N = 12 };
    mp_buf *items = feed_items(N, 1 << 20, 0); /* 1 MiB each: chunks of 4 MiB, 2 ring laps */
    uint64_t out[N];
    memset(out, 0, sizeof out);
    int rc = mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 4});
    mp__pool_fault_hook = NULL;
    CHECK(atomic_load(task_done_calls) >= 1); /* a worker did die there */
    CHECK_RC(0, rc);
    check_sums(items, out, 0, N);
    free_items(items, N);
    finish(p);
    munmap(task_done_calls, 4096);
}

/* Closing the pool while a map feeds its chunks (process and thread pools): the
 * chunks already out (one per worker and one more, through their feeds) are fed
 * to the end and answered right; the map is MP_ECLOSED for the chunk it could not
 * send; nothing hangs and the pool winds down. */
static void close_feeding(bool threads)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = 2, .threads = threads}));
    enum { N = 64 };
    mp_buf *items = feed_items(N, 1 << 20, 0); /* 4 chunks of 16 MiB, 3 feeds at once */
    uint64_t out[N];
    memset(out, 0, sizeof out);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, close_soon, p) == 0);
    int rc = mp_pool_map(p, slow_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = 16});
    pthread_join(th, NULL);
    CHECK_RC(MP_ECLOSED, rc);
    /* (usually chunks 0-2 went; a loaded machine may have been slower) each chunk
     * sent is right whole, the others untouched */
    for (int c = 0; c < N / 16; c++) {
        if (out[16 * c + 1] != 0)
            check_sums(items, out, 16 * c, 16 * c + 16);
        else
            for (int i = 16 * c; i < 16 * c + 16; i++)
                CHECK_EQ(0, out[i]);
    }
    CHECK_OK(mp_pool_join(p, 10000));
    mp_pool_destroy(p);
    free_items(items, N);
}

TEST(pool_map_feed_closed_while_feeding)
{
    close_feeding(false);
}

TEST(thread_pool_map_feed_closed_while_feeding)
{
    close_feeding(true);
}

/* Many small variable-size items through feeds: a chunk of 600k items of 6-10
 * bytes (about 4.8 MiB, so through a 2 MiB ring) whose frame carries 4.8 MiB of
 * lengths in the region besides; counted in the map's budget, right results. */
TEST(pool_map_feed_many_small_variable_items)
{
    mp_pool *p = new_pool(2);
    enum { N = 1200000 };
    char *data = malloc((size_t)N * 10);
    mp_buf *items = malloc((size_t)N * sizeof *items);
    uint64_t *out = malloc((size_t)N * sizeof *out);
    CHECK(data != NULL && items != NULL && out != NULL);
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        size_t len = 6 + (size_t)(i % 5);
        memset(data + off, i % 251, len);
        items[i] = (mp_buf){data + off, len};
        off += len;
    }
    memset(out, 0, (size_t)N * sizeof *out);
    CHECK_OK(mp_pool_map(p, byte_sum, items, 0, N, out, sizeof out[0],
                         &(mp_async_options){.chunksize = N / 2}));
    for (int i = 0; i < N; i++)
        if (out[i] != (uint64_t)(i % 251) * items[i].len)
            CHECK_EQ((uint64_t)(i % 251) * items[i].len, out[i]);
    free(data);
    free(items);
    free(out);
    finish(p);
}
