/* mp_process: CPython's Process in C. */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
// TEST_VARIANT forkserver MPROC_START_METHOD=forkserver
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Under the forkserver variant a child inherits no descriptor, pointer or other
 * fork-time state from the test: the tests that need them say so. */
#define SKIP_UNDER_FORKSERVER(why)                                                                 \
    do {                                                                                           \
        if (mp_get_start_method() == MP_START_FORKSERVER)                                          \
            SKIP("needs fork's inheritance: %s", why);                                             \
    } while (0)

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleep_ms(void *arg)
{
    th_sleep_ms((unsigned)(intptr_t)arg);
    return 0;
}

static int sleep_forever(void *arg)
{
    while (arg == NULL)
        pause();
    return 0;
}

/* Blocks until the child pid has ended, leaving it to be reaped (ECHILD: it has
 * been reaped already). */
static void wait_until_ended(pid_t pid)
{
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 && errno != ECHILD)
        CHECK(errno == EINTR);
}

/* The same for a handle: a forkserver child is not ours to waitid, so wait on its
 * sentinel then (the status socket: no new descriptor). */
static void wait_until_handle_ended(mp_process *p)
{
    if (mp_get_start_method() != MP_START_FORKSERVER) {
        wait_until_ended(mp_process_pid(p));
        return;
    }
    int fd = mp_process_sentinel(p);
    CHECK(fd >= 0);
    CHECK_EQ(1, poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 10000));
}

/* Joins p (which must end by itself) and returns its exit code. */
static int joined_exitcode(mp_process *p)
{
    CHECK_OK(mp_process_join(p, -1));
    int code = -1000;
    CHECK_OK(mp_process_exitcode(p, &code));
    return code;
}

static mp_process *started(mp_target fn, void *arg, const mp_process_options *opt)
{
    mp_process *p;
    CHECK_OK(mp_process_new(&p, fn, arg, opt));
    CHECK_OK(mp_process_start(p));
    return p;
}

TEST(process_target_return_value_is_exit_code)
{
    mp_process *p = started(return_arg, (void *)(intptr_t)7, NULL);
    CHECK_EQ(7, joined_exitcode(p));
    CHECK(mp_process_pid(p) > 0);
    CHECK(!mp_process_is_alive(p));
    mp_process_destroy(p);
}

static int call_exit(void *arg)
{
    (void)arg;
    exit(3);
}

TEST(process_exit_call_and_large_return_values)
{
    mp_process *p = started(call_exit, NULL, NULL);
    CHECK_EQ(3, joined_exitcode(p));
    mp_process_destroy(p);
    p = started(return_arg, (void *)(intptr_t)256, NULL); /* only the low 8 bits, as exit() */
    CHECK_EQ(0, joined_exitcode(p));
    mp_process_destroy(p);
}

TEST(process_default_names_count_up)
{
    mp_process *a, *b, *c;
    CHECK_OK(mp_process_new(&a, return_arg, NULL, NULL));
    CHECK_OK(mp_process_new(&b, return_arg, NULL, &(mp_process_options){.name = "worker"}));
    CHECK_OK(mp_process_new(&c, return_arg, NULL, NULL));
    CHECK_STR("Process-1", mp_process_name(a));
    CHECK_STR("worker", mp_process_name(b));
    CHECK_STR("Process-3", mp_process_name(c));
    CHECK(!mp_process_daemon(a));
    mp_process_destroy(a);
    mp_process_destroy(b);
    mp_process_destroy(c);
}

static int check_identity(void *arg)
{
    pid_t parent_pid = (pid_t)(intptr_t)arg;
    CHECK_STR("worker", mp_process_name(mp_current_process()));
    CHECK_EQ(getpid(), mp_process_pid(mp_current_process()));
    mp_process *parent = mp_parent_process();
    CHECK(parent != NULL);
    CHECK_STR("MainProcess", mp_process_name(parent));
    CHECK_EQ(parent_pid, mp_process_pid(parent));
    CHECK(mp_process_is_alive(parent));
    CHECK(mp_process_is_alive(mp_current_process()));
    /* A grandchild is named after its parent's identity. */
    mp_process *g;
    CHECK_OK(mp_process_new(&g, return_arg, NULL, NULL));
    CHECK_STR("Process-1:1", mp_process_name(g));
    mp_process_destroy(g);
    return 42;
}

TEST(process_child_knows_itself_and_its_parent)
{
    CHECK_STR("MainProcess", mp_process_name(mp_current_process()));
    CHECK_EQ(getpid(), mp_process_pid(mp_current_process()));
    CHECK(mp_parent_process() == NULL);
    mp_process *p = started(check_identity, (void *)(intptr_t)getpid(),
                            &(mp_process_options){.name = "worker"});
    CHECK_EQ(42, joined_exitcode(p));
    mp_process_destroy(p);
}

TEST(process_killed_by_signal_has_negative_exit_code)
{
    mp_process *p = started(sleep_forever, NULL, NULL);
    CHECK(mp_process_is_alive(p));
    int code;
    CHECK_RC(MP_ENOTREADY, mp_process_exitcode(p, &code));
    CHECK_OK(mp_process_kill(p));
    CHECK_EQ(-SIGKILL, joined_exitcode(p));
    mp_process_destroy(p);
}

TEST(process_terminate_sends_sigterm)
{
    mp_process *p = started(sleep_forever, NULL, NULL);
    CHECK_OK(mp_process_terminate(p));
    CHECK_EQ(-SIGTERM, joined_exitcode(p));
    /* Signalling an ended child is a no-op. */
    CHECK_OK(mp_process_terminate(p));
    CHECK_OK(mp_process_kill(p));
    mp_process_destroy(p);
}

TEST(process_join_times_out_on_long_child)
{
    mp_process *p = started(sleep_forever, NULL, NULL);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(p, 100));
    CHECK(th_now_ms() - t0 >= 100);
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(p, 0));
    CHECK(mp_process_is_alive(p));
    CHECK_OK(mp_process_kill(p));
    CHECK_OK(mp_process_join(p, 5000));
    CHECK_OK(mp_process_join(p, 0)); /* joining again is fine */
    mp_process_destroy(p);
}

static void on_alarm(int sig)
{
    (void)sig;
}

TEST(process_join_resumes_after_a_signal)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: poll sees EINTR */
    sigaction(SIGALRM, &sa, NULL);
    mp_process *p = started(sleep_ms, (void *)(intptr_t)300, NULL);
    ualarm(50000, 0);
    CHECK_OK(mp_process_join(p, -1));
    mp_process_destroy(p);
    /* A timed join keeps its deadline across the signal. */
    p = started(sleep_forever, NULL, NULL);
    ualarm(100000, 0);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(p, 300));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 300 && waited < 3000);
    CHECK_OK(mp_process_kill(p));
    CHECK_OK(mp_process_join(p, -1));
    mp_process_destroy(p);
}

TEST(process_misuse_returns_clear_codes)
{
    mp_process *p;
    int code;
    CHECK_RC(MP_EINVAL, mp_process_new(&p, NULL, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_process_new(NULL, return_arg, NULL, NULL));
    CHECK_OK(mp_process_new(&p, return_arg, NULL, NULL));
    CHECK_RC(MP_ENOTSTARTED, mp_process_join(p, -1));
    CHECK_RC(MP_ENOTSTARTED, mp_process_terminate(p));
    CHECK_RC(MP_ENOTSTARTED, mp_process_kill(p));
    CHECK_RC(MP_ENOTSTARTED, mp_process_exitcode(p, &code));
    CHECK_RC(MP_ENOTSTARTED, mp_process_sentinel(p));
    CHECK_EQ(0, mp_process_pid(p));
    CHECK(!mp_process_is_alive(p));
    CHECK_OK(mp_process_start(p));
    CHECK_RC(MP_EALREADY, mp_process_start(p));
    CHECK_RC(MP_EINVAL, mp_process_join(p, -2));
    CHECK_RC(MP_EINVAL, mp_process_exitcode(p, NULL));
    CHECK_OK(mp_process_join(p, -1));
    CHECK_RC(MP_EINVAL, mp_process_join(mp_current_process(), 0));
    CHECK_RC(MP_EINVAL, mp_process_join(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_process_start(NULL));
    CHECK_RC(MP_EINVAL, mp_process_terminate(NULL));
    CHECK_RC(MP_ECHILD, mp_process_start(mp_current_process()));
    CHECK_RC(MP_ECHILD, mp_process_kill(mp_current_process()));
    CHECK_RC(MP_EINVAL, mp_process_close(NULL));
    CHECK_RC(MP_EINVAL, mp_process_close(mp_current_process()));
    mp_process_destroy(p);
    mp_process_destroy(NULL);
}

TEST(process_close_refuses_running_child_and_ends_the_handle)
{
    mp_process *p = started(sleep_forever, NULL, NULL);
    CHECK_RC(MP_EBUSY, mp_process_close(p));
    CHECK_OK(mp_process_kill(p));
    CHECK_OK(mp_process_join(p, -1));
    CHECK_OK(mp_process_close(p));
    CHECK_OK(mp_process_close(p));
    int code;
    CHECK_RC(MP_ECLOSED, mp_process_join(p, 0));
    CHECK_RC(MP_ECLOSED, mp_process_exitcode(p, &code));
    CHECK_RC(MP_ECLOSED, mp_process_terminate(p));
    CHECK_RC(MP_ECLOSED, mp_process_sentinel(p));
    CHECK_RC(MP_ECLOSED, mp_process_start(p));
    CHECK(!mp_process_is_alive(p));
    mp_process_destroy(p);

    CHECK_OK(mp_process_new(&p, return_arg, NULL, NULL)); /* never started */
    CHECK_OK(mp_process_close(p));
    CHECK_RC(MP_ECLOSED, mp_process_start(p));
    mp_process_destroy(p);
}

TEST(process_sentinel_polls_with_other_descriptors)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    mp_process *p = started(sleep_ms, (void *)(intptr_t)100, NULL);
    int s = mp_process_sentinel(p);
    CHECK(s >= 0);
    struct pollfd pfd[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = s, .events = POLLIN}};
    CHECK_EQ(0, poll(pfd, 2, 0));
    CHECK_EQ(1, poll(pfd, 2, 10000));
    CHECK(pfd[1].revents & (POLLIN | POLLHUP));
    CHECK_EQ(0, pfd[0].revents);
    CHECK_OK(mp_process_join(p, 0));
    mp_process_destroy(p);
    close(fds[0]);
    close(fds[1]);
}

static int print_b(void *arg)
{
    (void)arg;
    printf("B"); /* no newline: only the exit path can flush it */
    return 0;
}

static int print_around_a_child(void *arg)
{
    int fd = (int)(intptr_t)arg;
    dup2(fd, STDOUT_FILENO); /* a pipe: stdout is fully buffered */
    close(fd);
    printf("A");
    mp_process *p = started(print_b, NULL, NULL);
    CHECK_OK(mp_process_join(p, -1));
    mp_process_destroy(p);
    printf("C");
    fflush(stdout);
    return 0;
}

TEST(process_stdio_is_flushed_before_fork_and_at_child_exit)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    int pid = th_fork(print_around_a_child, (void *)(intptr_t)fds[1]);
    close(fds[1]);
    char buf[16] = {0};
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    CHECK_EQ(0, th_wait(pid));
    CHECK_STR("ABC", buf);
}

static int try_to_have_children(void *arg)
{
    (void)arg;
    mp_process *p;
    CHECK_OK(mp_process_new(&p, return_arg, NULL, NULL));
    int rc = mp_process_start(p);
    mp_process_destroy(p);
    return rc == MP_EDAEMON ? 0 : 1;
}

TEST(process_daemon_may_not_create_children)
{
    mp_process *p = started(try_to_have_children, NULL, &(mp_process_options){.daemon = true});
    CHECK(mp_process_daemon(p));
    CHECK_EQ(0, joined_exitcode(p));
    mp_process_destroy(p);
}

struct family {
    int report_fd;
    bool die_abruptly;
    bool daemon;
};

/* The middle generation: starts a child that reports its pid, then exits. */
static int parent_of_a_sleeper(void *arg)
{
    struct family *f = arg;
    mp_process *p = started(sleep_forever, NULL, &(mp_process_options){.daemon = f->daemon});
    pid_t pid = mp_process_pid(p);
    CHECK(write(f->report_fd, &pid, sizeof pid) == sizeof pid);
    if (f->die_abruptly)
        raise(SIGKILL);
    return 0; /* exit(): mproc terminates the daemon and joins it */
}

static pid_t run_family(struct family *f, int expect_middle)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    f->report_fd = fds[1];
    int middle = th_fork(parent_of_a_sleeper, f);
    close(fds[1]);
    pid_t child = 0;
    CHECK(read(fds[0], &child, sizeof child) == sizeof child);
    close(fds[0]);
    CHECK_EQ(expect_middle, th_wait(middle));
    return child;
}

TEST(process_daemon_is_terminated_when_parent_exits)
{
    struct family f = {.daemon = true};
    pid_t child = run_family(&f, 0);
    /* The middle process joined it before exiting: it is gone, not orphaned. */
    CHECK(kill(child, 0) != 0 && errno == ESRCH);
}

TEST(process_daemon_dies_with_a_parent_killed_abruptly)
{
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); /* orphans come to us */
    struct family f = {.daemon = true, .die_abruptly = true};
    pid_t child = run_family(&f, -SIGKILL);
    /* Under the forkserver the daemon is the middle's server's child: it comes to
     * us once that server has seen its starter die and has gone. */
    siginfo_t si;
    uint64_t until = th_now_ms() + 5000;
    while (waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT) != 0 && th_now_ms() < until)
        th_sleep_ms(1);
    CHECK_EQ(-SIGKILL, th_wait(child));
    /* and the middle's server, orphaned to us too */
    while (mp_get_start_method() == MP_START_FORKSERVER && wait(NULL) > 0)
        ;
}

static int write_done_later(void *arg)
{
    th_sleep_ms(200);
    CHECK(write((int)(intptr_t)arg, "done", 4) == 4);
    return 0;
}

static int exit_with_running_child(void *arg)
{
    mp_process *p = started(write_done_later, arg, NULL);
    (void)p;
    return 0; /* exit() waits for the non-daemon child, as CPython does */
}

TEST(process_exit_waits_for_non_daemon_children)
{
    SKIP_UNDER_FORKSERVER("a pipe's descriptor passed through arg");
    int fds[2];
    CHECK(pipe2(fds, O_NONBLOCK) == 0);
    CHECK_EQ(0, th_wait(th_fork(exit_with_running_child, (void *)(intptr_t)fds[1])));
    char buf[8] = {0};
    CHECK_EQ(4, read(fds[0], buf, sizeof buf));
    CHECK_STR("done", buf);
    close(fds[0]);
    close(fds[1]);
}

TEST(process_active_children_lists_running_and_reaps_ended)
{
    CHECK_EQ(0, mp_active_children(NULL));
    mp_process *quick = started(return_arg, NULL, NULL);
    mp_process *slow = started(sleep_forever, NULL, NULL);
    wait_until_handle_ended(quick);
    mp_process **kids;
    CHECK_EQ(1, mp_active_children(&kids));
    CHECK(kids[0] == slow);
    free(kids);
    /* quick was reaped by mp_active_children: its exit code is known. */
    int code = -1;
    CHECK_OK(mp_process_exitcode(quick, &code));
    CHECK_EQ(0, code);
    CHECK_OK(mp_process_kill(slow));
    CHECK_OK(mp_process_join(slow, -1));
    CHECK_EQ(0, mp_active_children(&kids));
    CHECK(kids == NULL);
    mp_process_destroy(quick);
    mp_process_destroy(slow);
}

TEST(process_destroyed_while_running_is_reaped_later)
{
    mp_process *p = started(sleep_ms, (void *)(intptr_t)100, NULL);
    pid_t pid = mp_process_pid(p);
    mp_process_destroy(p);
    CHECK_EQ(0, kill(pid, 0)); /* not killed */
    /* It ends by itself after its 100 ms; listing reaps it then (a fixed 300 ms
     * here assumed a loaded sanitizer run starts and ends it in that time). */
    uint64_t until = th_now_ms() + 30000;
    int alive;
    while ((alive = mp_active_children(NULL)) > 0 && th_now_ms() < until)
        th_sleep_ms(10);
    CHECK_EQ(0, alive);   /* reaps it */
    mp_forkserver_stop(); /* under the forkserver: our only other child */
    siginfo_t si;
    CHECK(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD);
}

/* Python's Process(target=f).start() without keeping the object: the child stays
 * in active_children() until it is joined. */
TEST(process_fire_and_forget_child_is_listed_and_can_be_joined)
{
    mp_process *kept = started(sleep_forever, NULL, NULL);
    mp_process *p = started(return_arg, (void *)(intptr_t)5, NULL);
    wait_until_handle_ended(p); /* ended, not reaped yet */
    mp_process *q = started(sleep_forever, NULL, NULL);
    pid_t qpid = mp_process_pid(q);
    mp_process_destroy(q); /* fire and forget, still running */
    mp_process_destroy(p);
    mp_process **kids;
    CHECK_EQ(2, mp_active_children(&kids)); /* kept and q; p has ended */
    mp_process *forgotten = kids[0] == kept ? kids[1] : kids[0];
    CHECK(kids[0] == kept || kids[1] == kept);
    free(kids);
    CHECK_EQ(qpid, mp_process_pid(forgotten));
    CHECK(mp_process_is_alive(forgotten));
    mp_process_destroy(forgotten); /* destroyed already: a no-op */
    CHECK_OK(mp_process_close(forgotten));
    CHECK_OK(mp_process_terminate(forgotten));
    CHECK_OK(mp_process_join(forgotten, 5000));
    int code = 0;
    CHECK_OK(mp_process_exitcode(forgotten, &code));
    CHECK_EQ(-SIGTERM, code);
    CHECK_EQ(1, mp_active_children(&kids)); /* frees forgotten */
    CHECK(kids[0] == kept);
    free(kids);
    CHECK_OK(mp_process_kill(kept));
    CHECK_OK(mp_process_join(kept, -1));
    mp_process_destroy(kept);
    CHECK_EQ(0, mp_active_children(NULL));
}

static int join_all_children(void *arg)
{
    (void)arg;
    mp_process **kids;
    int n = mp_active_children(&kids);
    for (int i = 0; i < n; i++)
        CHECK_OK(mp_process_join(kids[i], -1));
    free(kids);
    return n;
}

static void *join_listed_in_thread(void *arg)
{
    mp_process *p = arg;
    return (void *)(intptr_t)mp_process_join(p, -1);
}

/* A join in progress keeps a fire-and-forget handle valid, even when another
 * thread's mp_active_children would free it. */
TEST(process_join_of_a_listed_handle_survives_other_listings)
{
    mp_process *p = started(sleep_ms, (void *)(intptr_t)200, NULL);
    mp_process_destroy(p);
    mp_process **kids;
    CHECK_EQ(1, mp_active_children(&kids));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, join_listed_in_thread, kids[0]) == 0);
    for (int i = 0; i < 50; i++) {
        mp_active_children(NULL);
        th_sleep_ms(10);
    }
    void *rc;
    pthread_join(t, &rc);
    CHECK_EQ(0, (int)(intptr_t)rc);
    free(kids);
    CHECK_EQ(0, join_all_children(NULL));
}

static int start_and_forget_then_exit(void *arg)
{
    mp_process *p = started(write_done_later, arg, NULL);
    mp_process_destroy(p); /* fire and forget */
    CHECK_EQ(1, mp_active_children(NULL));
    return 0; /* exit() still waits for it */
}

TEST(process_exit_waits_for_fire_and_forget_children)
{
    SKIP_UNDER_FORKSERVER("a pipe's descriptor passed through arg");
    int fds[2];
    CHECK(pipe2(fds, O_NONBLOCK) == 0);
    CHECK_EQ(0, th_wait(th_fork(start_and_forget_then_exit, (void *)(intptr_t)fds[1])));
    char buf[8] = {0};
    CHECK_EQ(4, read(fds[0], buf, sizeof buf));
    CHECK_STR("done", buf);
    close(fds[0]);
    close(fds[1]);
}

TEST(process_misuse_leaves_pythons_message)
{
    mp_process *p;
    CHECK_OK(mp_process_new(&p, sleep_forever, NULL, NULL));
    CHECK_STR("", mp_process_message(p));
    CHECK_RC(MP_ENOTSTARTED, mp_process_join(p, 0));
    CHECK_STR("can only join a started process", mp_process_message(p));
    CHECK_OK(mp_process_start(p));
    CHECK_RC(MP_EALREADY, mp_process_start(p));
    CHECK_STR("cannot start a process twice", mp_process_message(p));
    CHECK_RC(MP_EBUSY, mp_process_close(p));
    CHECK_STR("Cannot close a process while it is still running. You should first call join() "
              "or terminate().",
              mp_process_message(p));
    CHECK_OK(mp_process_kill(p));
    CHECK_OK(mp_process_join(p, -1));
    CHECK_OK(mp_process_close(p));
    CHECK_RC(MP_ECLOSED, mp_process_join(p, 0));
    CHECK_STR("process object is closed", mp_process_message(p));
    CHECK_STR("", mp_process_message(NULL));
    CHECK_STR("", mp_process_message(mp_current_process()));
    mp_process_destroy(p);
}

static mp_process *sibling;

static int use_sibling(void *arg)
{
    (void)arg;
    CHECK_RC(MP_ECHILD, mp_process_join(sibling, 0));
    CHECK_RC(MP_ECHILD, mp_process_start(sibling));
    CHECK_RC(MP_ECHILD, mp_process_terminate(sibling));
    CHECK_RC(MP_ECHILD, mp_process_kill(sibling));
    CHECK_RC(MP_ECHILD, mp_process_sentinel(sibling));
    CHECK_RC(MP_ECHILD, mp_process_close(sibling));
    int code;
    CHECK_RC(MP_ECHILD, mp_process_exitcode(sibling, &code));
    CHECK(!mp_process_is_alive(sibling));
    CHECK_EQ(0, mp_active_children(NULL)); /* siblings are not our children */
    return 0;
}

TEST(process_handle_of_another_process_is_refused)
{
    SKIP_UNDER_FORKSERVER("the sibling's handle, a global pointer");
    sibling = started(sleep_forever, NULL, NULL);
    mp_process *p = started(use_sibling, NULL, NULL);
    CHECK_EQ(0, joined_exitcode(p));
    CHECK_OK(mp_process_kill(sibling));
    CHECK_OK(mp_process_join(sibling, -1));
    mp_process_destroy(p);
    mp_process_destroy(sibling);
}

static void *join_in_thread(void *arg)
{
    return (void *)(intptr_t)mp_process_join(arg, -1);
}

TEST(process_join_from_several_threads)
{
    mp_process *p = started(sleep_ms, (void *)(intptr_t)100, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, join_in_thread, p);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        CHECK_OK((int)(intptr_t)rc);
    }
    int code;
    CHECK_OK(mp_process_exitcode(p, &code));
    CHECK_EQ(0, code);
    mp_process_destroy(p);
}

TEST(process_cpu_count_is_positive)
{
    CHECK(mp_cpu_count() >= 1);
    CHECK_EQ(sysconf(_SC_NPROCESSORS_ONLN), mp_cpu_count());
}

TEST(process_many_starts_leave_nothing_behind)
{
    for (int i = 0; i < 200; i++) {
        mp_process *p = started(return_arg, (void *)(intptr_t)(i & 0x7f), NULL);
        CHECK_OK(mp_process_join(p, -1));
        int code;
        CHECK_OK(mp_process_exitcode(p, &code));
        CHECK_EQ(i & 0x7f, code);
        mp_process_destroy(p);
    }
}

static int plain_fork_child_exits(void *arg)
{
    (void)arg;
    return 0; /* exit(): must not touch the parent's children */
}

TEST(process_plain_fork_child_leaves_parents_children_alone)
{
    mp_process *p = started(sleep_forever, NULL, &(mp_process_options){.daemon = true});
    CHECK_EQ(0, th_wait(th_fork(plain_fork_child_exits, NULL)));
    CHECK(mp_process_is_alive(p)); /* not terminated by the plain child's exit */
    CHECK_EQ(1, mp_active_children(NULL));
    CHECK_OK(mp_process_kill(p));
    CHECK_OK(mp_process_join(p, -1));
    mp_process_destroy(p);
}

TEST(process_sentinel_after_the_child_was_reaped_is_readable)
{
    mp_process *p = started(return_arg, NULL, NULL);
    CHECK_OK(mp_process_join(p, -1));
    int s = mp_process_sentinel(p);
    CHECK(s >= 0);
    CHECK_EQ(1, poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1, 0));
    CHECK_EQ(s, mp_process_sentinel(p)); /* the same descriptor each time */
    mp_process_destroy(p);
}

/* Kernels before 5.3 have no pidfds: the sentinel is then a pipe held by the child. */
TEST(process_works_without_pidfds)
{
    setenv("MPROC_NO_PIDFD", "1", 1); /* read once, at the first use: this process has not */
    mp_process *p = started(sleep_forever, NULL, NULL);
    int s = mp_process_sentinel(p);
    CHECK(s >= 0);
    CHECK_EQ(0, poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1, 0));
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(p, 50));
    CHECK_OK(mp_process_terminate(p));
    CHECK_OK(mp_process_join(p, 10000));
    int code;
    CHECK_OK(mp_process_exitcode(p, &code));
    CHECK_EQ(-SIGTERM, code);
    mp_process_destroy(p);
    p = started(return_arg, (void *)(intptr_t)5, NULL);
    CHECK_EQ(5, joined_exitcode(p));
    mp_process_destroy(p);
}

/* Children of ours that have ended and wait to be reaped. */
static int count_zombies(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)gettid());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    int n = 0, kid;
    while (fscanf(f, "%d", &kid) == 1) {
        char stat[64], state = 0;
        snprintf(stat, sizeof stat, "/proc/%d/stat", kid);
        FILE *sf = fopen(stat, "r");
        if (sf != NULL && fscanf(sf, "%*d %*s %c", &state) == 1 && state == 'Z')
            n++;
        if (sf != NULL)
            fclose(sf);
    }
    fclose(f);
    return n;
}

TEST(process_destroyed_children_do_not_pile_up_as_zombies)
{
    SKIP_UNDER_FORKSERVER("the zombies counted are the test's (the forkserver reaps its own)");
    pid_t pids[20];
    for (int i = 0; i < 20; i++) {
        mp_process *p = started(return_arg, NULL, NULL);
        pids[i] = mp_process_pid(p);
        mp_process_destroy(p); /* fire and forget */
    }
    for (int i = 0; i < 20; i++)
        wait_until_ended(pids[i]);
    CHECK(count_zombies() >= 1); /* the last at least: nothing has reaped it */
    mp_process *last = started(sleep_forever, NULL, NULL); /* start reaps the ended ones */
    CHECK_EQ(0, count_zombies());
    CHECK_OK(mp_process_kill(last));
    CHECK_OK(mp_process_join(last, -1));
    mp_process_destroy(last);
    CHECK_EQ(0, mp_active_children(NULL));
}

static int report_when_parent_dies(void *arg)
{
    int fd = (int)(intptr_t)arg;
    CHECK_OK(mp_process_join(mp_parent_process(), -1));
    CHECK(!mp_process_is_alive(mp_parent_process()));
    CHECK(write(fd, "ok", 2) == 2);
    return 0;
}

static int start_watcher_then_die(void *arg)
{
    mp_process *c = started(report_when_parent_dies, arg, NULL);
    (void)c;
    raise(SIGKILL);
    return 1;
}

TEST(process_join_on_the_parent_returns_when_it_dies)
{
    SKIP_UNDER_FORKSERVER("a pipe's descriptor passed through arg (see forkserver_*)");
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK_EQ(-SIGKILL, th_wait(th_fork(start_watcher_then_die, (void *)(intptr_t)fds[1])));
    close(fds[1]);
    char buf[4] = {0};
    CHECK_EQ(2, read(fds[0], buf, sizeof buf - 1));
    CHECK_STR("ok", buf);
    close(fds[0]);
    /* The watcher was orphaned to us: reap it. */
    int status;
    pid_t w;
    while ((w = wait(&status)) < 0 && errno == EINTR)
        ;
    CHECK(w > 0);
}

static int check_parent_sentinel(void *arg)
{
    (void)arg;
    int s = mp_process_sentinel(mp_parent_process());
    CHECK(s >= 0 || s == MP_ENOSYS); /* MP_ENOSYS only without pidfds, as documented */
    if (s >= 0)
        CHECK_EQ(0, poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1, 0));
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(mp_parent_process(), 50));
    return 0;
}

TEST(process_child_watches_a_living_parent)
{
    mp_process *p = started(check_parent_sentinel, NULL, NULL);
    CHECK_EQ(0, joined_exitcode(p));
    mp_process_destroy(p);
}

/* close() from another thread while start() is between claim and fork. */
static mp_process *racing;
static int close_during_start_rc = 1;

static void *close_racing(void *arg)
{
    (void)arg;
    close_during_start_rc = mp_process_close(racing);
    return NULL;
}

static void close_from_another_thread_at_fork(void)
{
    if (racing == NULL)
        return;
    pthread_t t;
    pthread_create(&t, NULL, close_racing, NULL);
    pthread_join(t, NULL);
}

TEST(process_close_during_start_is_refused)
{
    SKIP_UNDER_FORKSERVER("the race is staged in a fork handler of the starting process");
    CHECK_OK(mp_process_new(&racing, sleep_ms, (void *)(intptr_t)50, NULL));
    pthread_atfork(close_from_another_thread_at_fork, NULL, NULL);
    CHECK_OK(mp_process_start(racing));
    mp_process *p = racing;
    racing = NULL;
    CHECK_RC(MP_EBUSY, close_during_start_rc);
    CHECK_OK(mp_process_join(p, -1));
    CHECK_OK(mp_process_close(p));
    mp_process_destroy(p);
    CHECK_EQ(0, mp_active_children(NULL));
}

/* Without pidfds, a sibling forked between pipe2() and the parent's close of the
 * write end holds p's sentinel pipe open: join must not depend on its hang-up. */
static mp_process *sibling_p, *sibling_q;

static void *start_q(void *arg)
{
    (void)arg;
    CHECK_OK(mp_process_start(sibling_q));
    return NULL;
}

static void start_sibling_at_fork(void)
{
    static bool once; /* q's own fork runs this handler too */
    if (sibling_q == NULL || once)
        return;
    once = true;
    pthread_t t;
    pthread_create(&t, NULL, start_q, NULL);
    pthread_join(t, NULL);
}

TEST(process_timed_join_does_not_trust_a_shared_sentinel_pipe)
{
    SKIP_UNDER_FORKSERVER("the race is staged in a fork handler of the starting process");
    setenv("MPROC_NO_PIDFD", "1", 1);
    CHECK_OK(mp_process_new(&sibling_p, sleep_ms, (void *)(intptr_t)100, NULL));
    CHECK_OK(mp_process_new(&sibling_q, sleep_forever, NULL, NULL));
    pthread_atfork(start_sibling_at_fork, NULL, NULL);
    CHECK_OK(mp_process_start(sibling_p));
    CHECK(mp_process_pid(sibling_q) != 0);
    CHECK_OK(mp_process_join(sibling_p, 10000));
    CHECK_OK(mp_process_kill(sibling_q));
    CHECK_OK(mp_process_join(sibling_q, -1));
    mp_process *q = sibling_q;
    sibling_q = NULL;
    mp_process_destroy(q);
    mp_process_destroy(sibling_p);
}

static mp_process *inherited;

static int destroy_inherited_copy(void *arg)
{
    (void)arg;
    mp_process_destroy(inherited); /* our copy; the registry must not still list it */
    return 0;                      /* exit(): at_exit walks the registry */
}

TEST(process_plain_fork_child_may_destroy_inherited_handles)
{
    inherited = started(sleep_forever, NULL, NULL);
    CHECK_EQ(0, th_wait(th_fork(destroy_inherited_copy, NULL)));
    CHECK(mp_process_is_alive(inherited));
    CHECK_OK(mp_process_kill(inherited));
    CHECK_OK(mp_process_join(inherited, -1));
    mp_process_destroy(inherited);
}

static int draw_rand(void *arg)
{
    (void)arg;
    return rand() & 0x7f;
}

/* Documented in process.h: children inherit the parent's rand() state (C does not
 * reseed after fork as Python's random module does). */
TEST(process_children_inherit_the_rand_state)
{
    SKIP_UNDER_FORKSERVER("the parent's rand() state, copied by fork");
    srand(12345);
    int first = rand() & 0x7f;
    srand(12345);
    mp_process *a = started(draw_rand, NULL, NULL);
    mp_process *b = started(draw_rand, NULL, NULL);
    CHECK_EQ(first, joined_exitcode(a));
    CHECK_EQ(first, joined_exitcode(b));
    mp_process_destroy(a);
    mp_process_destroy(b);
}
