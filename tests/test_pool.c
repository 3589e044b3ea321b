/* mp_pool and mp_async_result: CPython's Pool in C, plus worker-death survival. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int square(const void *arg, size_t len, mp_task *t)
{
    if (len != sizeof(int))
        return mp_task_fail(t, MP_EINVAL, "expected an int, got %zu bytes", len);
    int x = *(const int *)arg, y = x * x;
    return mp_task_return(t, &y, sizeof y);
}

static mp_pool *new_pool(int n)
{
    mp_pool *p;
    CHECK_OK(mp_pool_new(&p, &(mp_pool_options){.processes = n}));
    return p;
}

static void finish(mp_pool *p)
{
    CHECK_OK(mp_pool_close(p));
    CHECK_OK(mp_pool_join(p, -1));
    mp_pool_destroy(p);
}

TEST(pool_apply_returns_the_result)
{
    mp_pool *p = new_pool(2);
    int x = 7;
    void *res;
    size_t len;
    CHECK_OK(mp_pool_apply(p, square, &x, sizeof x, &res, &len));
    CHECK_EQ(sizeof(int), len);
    CHECK_EQ(49, *(int *)res);
    free(res);
    finish(p);
}

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
