/* The process identity (core/identity.h): pid and start time, new in a fork
 * child, dead once the process ended or when the start time differs. */
#include <unistd.h>

#include "core/identity.h"
#include "harness.h"

static int identity_in_child(void *arg)
{
    mp__proc_id parent = *(mp__proc_id *)arg;
    if (mp__self_pid() != getpid() || mp__id_pid(mp__self_id()) != getpid())
        return 1;
    if (mp__id_is_self(parent) || !mp__id_alive(parent))
        return 2;
    return mp__self_id() >> 32 != 0 ? 0 : 3; /* /proc gave a start time */
}

TEST(identity_is_pid_and_start_time_and_is_new_in_a_fork_child)
{
    mp__proc_id me = mp__self_id();
    CHECK_EQ(getpid(), mp__self_pid());
    CHECK_EQ(getpid(), mp__id_pid(me));
    CHECK(me >> 32 != 0);
    CHECK(mp__id_is_self(me));
    CHECK(mp__id_alive(me));
    CHECK(mp__self_tid() > 0);
    CHECK_EQ(0, th_wait(th_fork(identity_in_child, &me)));
}

static int just_exit(void *arg)
{
    (void)arg;
    return 0;
}

TEST(identity_of_an_ended_process_or_of_another_start_time_is_dead)
{
    int pid = th_fork(just_exit, NULL);
    CHECK_EQ(0, th_wait(pid));
    CHECK(!mp__id_alive((mp__proc_id)(uint32_t)pid)); /* tag 0: the pid alone decides */
    mp__proc_id other = mp__self_id() ^ ((uint64_t)1 << 40);
    CHECK(!mp__id_is_self(other));
    CHECK(!mp__id_alive(other)); /* our pid, another start time: an earlier process */
}
