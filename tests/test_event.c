/* Event: set, clear, and waits across processes. */
// TEST_TIMEOUT 120
#include <unistd.h>

#include "sync_fixtures.h"

TEST(event_set_clear_and_is_set)
{
    mp_event *ev;
    CHECK_OK(mp_event_new(&ev, NULL));
    CHECK(!mp_event_is_set(ev));
    CHECK_RC(MP_ETIMEDOUT, mp_event_wait(ev, 0));
    CHECK_OK(mp_event_set(ev));
    CHECK_OK(mp_event_set(ev));
    CHECK(mp_event_is_set(ev));
    CHECK_OK(mp_event_wait(ev, 0));
    CHECK_OK(mp_event_wait(ev, -1));
    CHECK_OK(mp_event_clear(ev));
    CHECK(!mp_event_is_set(ev));
    mp_event_destroy(ev);
    CHECK_RC(MP_EINVAL, mp_event_new(NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_event_set(NULL));
    CHECK_RC(MP_EINVAL, mp_event_clear(NULL));
    CHECK_RC(MP_EINVAL, mp_event_wait(NULL, 0));
    CHECK(!mp_event_is_set(NULL));
    mp_event_destroy(NULL);
}

TEST(event_wait_times_out)
{
    mp_event *ev;
    CHECK_OK(mp_event_new(&ev, NULL));
    CHECK_RC(MP_EINVAL, mp_event_wait(ev, -2));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_event_wait(ev, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    mp_event_destroy(ev);
}

static int wait_for_go(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->counter, 1);
    return mp_event_wait(s->go, 30000) == 0 ? 0 : 1;
}

TEST(event_set_wakes_every_waiting_process)
{
    struct shared *s = shared_new();
    int pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = th_fork(wait_for_go, s);
    while (atomic_load(&s->counter) < 4)
        th_sleep_ms(5);
    th_sleep_ms(50);
    CHECK_OK(mp_event_set(s->go));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    shared_free(s);
}
