/* The helpers of src/core/util.h every module shares: deadlines, timespec
 * comparison, the futex sleep slice, the iovec advance and the argv copier. */
#include <stdatomic.h>

#include "core/util.h"
#include "harness.h"

TEST(deadline_of_zero_has_passed_and_is_now)
{
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, 0));
    CHECK(mp__deadline_is_now(&d));
    CHECK(mp__deadline_passed(&d));
    CHECK_EQ(0, mp__deadline_poll_ms(&d));
}

TEST(deadline_forever_never_passes)
{
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, -1));
    CHECK(!mp__deadline_is_now(&d));
    CHECK(!mp__deadline_passed(&d));
    CHECK_EQ(-1, mp__deadline_poll_ms(&d));
    struct timespec left;
    CHECK(!mp__deadline_left(&d, &left));
}

TEST(deadline_rejects_timeouts_below_minus_one)
{
    mp__deadline d;
    CHECK_RC(MP_EINVAL, mp__deadline_init(&d, -2));
}

TEST(deadline_of_a_timeout_lies_that_far_ahead)
{
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, 1500));
    CHECK(!mp__deadline_is_now(&d));
    CHECK(!mp__deadline_passed(&d));
    int ms = mp__deadline_poll_ms(&d);
    CHECK(ms > 1000 && ms <= 1500);
}

TEST(timespec_before_orders_seconds_then_nanoseconds)
{
    struct timespec a = {1, 999999999}, b = {2, 0}, c = {2, 1};
    CHECK(mp__timespec_before(&a, &b));
    CHECK(mp__timespec_before(&b, &c));
    CHECK(!mp__timespec_before(&b, &a));
    CHECK(!mp__timespec_before(&b, &b));
}

TEST(futex_wait_slice_ends_with_the_slice_before_the_deadline)
{
    _Atomic uint32_t w = 7;
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, 10000));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp__futex_wait_slice(&w, 7, &d, 30));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 30 && waited < 5000);
    CHECK(!mp__deadline_passed(&d)); /* the slice ended, not the deadline */
}

TEST(futex_wait_slice_ends_with_a_deadline_shorter_than_the_slice)
{
    _Atomic uint32_t w = 7;
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, 30));
    CHECK_RC(MP_ETIMEDOUT, mp__futex_wait_slice(&w, 7, &d, 60000));
    CHECK(mp__deadline_passed(&d));
}

TEST(futex_wait_slice_returns_at_once_when_the_word_changed)
{
    _Atomic uint32_t w = 8;
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, -1));
    CHECK_OK(mp__futex_wait_slice(&w, 7, &d, 60000));
}

TEST(iov_advance_drops_whole_iovecs_and_cuts_into_the_next)
{
    char a[4], b[6], c[3];
    struct iovec v[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    struct iovec *iov = v;
    int n = 3;
    mp__iov_advance(&iov, &n, 0);
    CHECK(iov == v && n == 3 && iov->iov_len == 4);
    mp__iov_advance(&iov, &n, 6); /* all of a, two bytes of b */
    CHECK(iov == v + 1 && n == 2);
    CHECK(iov->iov_base == b + 2 && iov->iov_len == 4);
    mp__iov_advance(&iov, &n, 4); /* exactly the rest of b */
    CHECK(iov == v + 2 && n == 1 && iov->iov_base == c && iov->iov_len == 3);
    mp__iov_advance(&iov, &n, 3);
    CHECK_EQ(0, n);
}

TEST(strv_copy_copies_strings_after_empty_front_slots)
{
    char s0[] = "ls", s1[] = "-l", s2[] = "";
    const char *v[] = {s0, s1, s2, NULL};
    char **c = mp__strv_copy(v, 2);
    CHECK(c != NULL);
    CHECK(c[0] == NULL && c[1] == NULL);
    CHECK_STR("ls", c[2]);
    CHECK_STR("-l", c[3]);
    CHECK_STR("", c[4]);
    CHECK(c[5] == NULL);
    CHECK(c[2] != s0); /* a copy: the caller's strings may go */
    s0[0] = 'X';
    CHECK_STR("ls", c[2]);
    free(c);
    const char *none[] = {NULL};
    c = mp__strv_copy(none, 0);
    CHECK(c != NULL && c[0] == NULL);
    free(c);
}
