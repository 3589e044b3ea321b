/* The forkserver start method: what its children get, threads, refusals, the
 * server's death and its end with the parent. (Every Process behaviour test runs
 * under it too: test_process's forkserver variant.) */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const mp_process_options via_server = {.start_method = MP_START_FORKSERVER};

static mp_process *started(mp_target fn, void *arg, const mp_process_options *opt)
{
    mp_process *p;
    CHECK_OK(mp_process_new(&p, fn, arg, opt));
    CHECK_OK(mp_process_start(p));
    return p;
}

static int joined_exitcode(mp_process *p)
{
    CHECK_OK(mp_process_join(p, -1));
    int code = -1000;
    CHECK_OK(mp_process_exitcode(p, &code));
    return code;
}

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleep_forever(void *arg)
{
    while (arg == NULL)
        pause();
    return 0;
}

static char message[64] = "set by the parent at start";

/* 0 when arg holds the bytes sent and the global is as the program started. */
static int check_bytes(void *arg)
{
    if (strcmp(arg, "set by the parent at start") != 0)
        return 1;
    if (arg == (void *)message)
        return 2; /* a copy of our own, not the parent's address */
    if (strcmp(message, "set by the parent at start") != 0)
        return 3; /* the parent's later write must not show */
    return 0;
}

static int sum_bytes(void *arg)
{
    const unsigned char *b = arg;
    unsigned sum = 0;
    for (size_t i = 0; i < 300000; i++)
        sum = sum * 31 + b[i];
    return (int)(sum & 0x7f);
}

TEST(forkserver_child_sees_the_argument_bytes_not_later_memory)
{
    mp_process_options o = via_server;
    o.arg_size = strlen(message) + 1;
    mp_process *p = started(check_bytes, message, &o);
    strcpy(message, "changed after start");
    CHECK_EQ(0, joined_exitcode(p));
    mp_process_destroy(p);
    strcpy(message, "set by the parent at start");

    /* Bigger than a control message: through a memfd. */
    unsigned char *big = malloc(300000);
    CHECK(big != NULL);
    unsigned sum = 0;
    for (size_t i = 0; i < 300000; i++) {
        big[i] = (unsigned char)(i * 7 + 3);
        sum = sum * 31 + big[i];
    }
    o.arg_size = 300000;
    p = started(sum_bytes, big, &o);
    memset(big, 0, 300000);
    CHECK_EQ((int)(sum & 0x7f), joined_exitcode(p));
    mp_process_destroy(p);
    free(big);
}

TEST(forkserver_target_return_code_signals_timeouts_and_sentinel)
{
    CHECK_EQ(MP_START_FORK, mp_get_start_method()); /* the default stays fork */
    mp_process *p = started(return_arg, (void *)(intptr_t)42, &via_server);
    CHECK_EQ(42, joined_exitcode(p));
    mp_process_destroy(p);

    mp_process *s = started(sleep_forever, NULL, &via_server);
    CHECK(mp_process_pid(s) > 0 && mp_process_pid(s) != mp_forkserver_pid());
    CHECK_RC(MP_ETIMEDOUT, mp_process_join(s, 50));
    CHECK(mp_process_is_alive(s));
    int fd = mp_process_sentinel(s);
    CHECK(fd >= 0);
    CHECK_EQ(0, poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 0));
    CHECK_OK(mp_process_terminate(s));
    CHECK_EQ(1, poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 10000));
    CHECK_EQ(-SIGTERM, joined_exitcode(s));
    CHECK(!mp_process_is_alive(s));
    CHECK_OK(mp_process_kill(s)); /* ended: a no-op */
    mp_process_destroy(s);

    s = started(sleep_forever, NULL, &via_server);
    CHECK_OK(mp_process_kill(s));
    CHECK_EQ(-SIGKILL, joined_exitcode(s));
    mp_process_destroy(s);
}

static int check_parent(void *arg)
{
    mp_process *parent = mp_parent_process();
    if (parent == NULL || mp_process_pid(parent) != (pid_t)(intptr_t)arg)
        return 1;
    if (!mp_process_is_alive(parent) || getppid() == (pid_t)(intptr_t)arg)
        return 2; /* alive, and not our ppid: the server is */
    if (mp_process_join(parent, 20) != MP_ETIMEDOUT)
        return 3;
    if (strcmp(mp_process_name(mp_current_process()), "named") != 0)
        return 4;
    return 0;
}

TEST(forkserver_child_knows_its_starter_as_parent)
{
    mp_process_options o = via_server;
    o.name = "named";
    mp_process *p = started(check_parent, (void *)(intptr_t)getpid(), &o);
    CHECK_EQ(0, joined_exitcode(p));
    mp_process_destroy(p);
}

static void *start_several(void *arg)
{
    intptr_t base = (intptr_t)arg;
    for (int i = 0; i < 10; i++) {
        mp_process *p = started(return_arg, (void *)(base + i), &via_server);
        CHECK_EQ((int)(base + i), joined_exitcode(p));
        mp_process_destroy(p);
    }
    return NULL;
}

static void *busy_thread(void *arg)
{
    atomic_bool *stop = arg;
    while (!atomic_load(stop)) { /* holds malloc's lock often: what makes fork unsafe */
        void *m = malloc(100);
        free(m);
    }
    return NULL;
}

TEST(forkserver_multithreaded_parent_starts_children)
{
    atomic_bool stop = false;
    pthread_t busy, t[4];
    CHECK_EQ(0, pthread_create(&busy, NULL, busy_thread, (void *)&stop));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, pthread_create(&t[i], NULL, start_several, (void *)(intptr_t)(10 * i + 1)));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stop, true);
    pthread_join(busy, NULL);
    CHECK_EQ(0, mp_active_children(NULL));
}

TEST(forkserver_refuses_a_function_of_a_library_dlopened_later)
{
    CHECK_OK(mp_forkserver_ensure_running());
    const char *dir = getenv("MPROC_TEST_HELPERS");
    if (dir == NULL)
        SKIP("MPROC_TEST_HELPERS not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/forkserver_plugin.so", dir);
    void *lib = dlopen(path, RTLD_NOW);
    if (lib == NULL)
        SKIP("cannot load %s: %s", path, dlerror());
    mp_target fn = (mp_target)dlsym(lib, "mp_test_plugin_target");
    CHECK(fn != NULL);
    mp_process *p;
    CHECK_OK(mp_process_new(&p, fn, NULL, &via_server));
    CHECK_RC(MP_ENOENT, mp_process_start(p));
    CHECK_EQ(0, mp_process_pid(p));
    mp_process_destroy(p);
    /* Under fork it is fine. */
    p = started(fn, NULL, &(mp_process_options){.start_method = MP_START_FORK});
    CHECK_EQ(9, joined_exitcode(p));
    mp_process_destroy(p);
    /* The server is still good. */
    p = started(return_arg, (void *)(intptr_t)5, &via_server);
    CHECK_EQ(5, joined_exitcode(p));
    mp_process_destroy(p);
    dlclose(lib);
}

TEST(forkserver_killed_fails_the_next_start_and_the_one_after_works)
{
    mp_process *running = started(sleep_forever, NULL, &via_server);
    pid_t server = mp_forkserver_pid();
    CHECK(server > 0);
    CHECK_EQ(0, kill(server, SIGKILL));
    siginfo_t si;
    CHECK_EQ(0, waitid(P_PID, (id_t)server, &si, WEXITED | WNOWAIT)); /* dead, not reaped */
    /* Its child keeps running, orphaned; for mproc its status is lost: 255. */
    pid_t orphan = mp_process_pid(running);
    CHECK_EQ(0, kill(orphan, SIGKILL));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, return_arg, (void *)(intptr_t)3, &via_server));
    CHECK_RC(MP_ESRCH, mp_process_start(p));
    CHECK_EQ(0, mp_forkserver_pid()); /* dropped and reaped */
    CHECK_OK(mp_process_start(p));    /* a new server */
    CHECK(mp_forkserver_pid() > 0 && mp_forkserver_pid() != server);
    CHECK_EQ(3, joined_exitcode(p));
    mp_process_destroy(p);
    CHECK_EQ(255, joined_exitcode(running));
    CHECK_OK(mp_process_kill(running)); /* ended, as far as mproc knows: a no-op */
    mp_process_destroy(running);
    for (int i = 0; i < 5000 && kill(orphan, 0) == 0; i++)
        th_sleep_ms(1);
}

static int report_server_then_exit(void *arg)
{
    int fd = (int)(intptr_t)arg;
    CHECK_OK(mp_forkserver_ensure_running());
    pid_t server = mp_forkserver_pid();
    CHECK(write(fd, &server, sizeof server) == sizeof server);
    mp_process *p =
        started(sleep_forever, NULL,
                &(mp_process_options){.start_method = MP_START_FORKSERVER, .daemon = true});
    pid_t daemon = mp_process_pid(p);
    CHECK(write(fd, &daemon, sizeof daemon) == sizeof daemon);
    return 0; /* exit(): the daemon is terminated, the server sees the end */
}

static int report_server_then_die(void *arg)
{
    report_server_then_exit(arg);
    raise(SIGKILL);
    return 1;
}

/* No server (nor daemon child of it) outlives its parent, however it ends. */
static void check_nothing_left(int (*middle)(void *), int expect)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK_EQ(expect, th_wait(th_fork(middle, (void *)(intptr_t)fds[1])));
    close(fds[1]);
    pid_t server = 0, daemon = 0;
    CHECK(read(fds[0], &server, sizeof server) == sizeof server);
    CHECK(read(fds[0], &daemon, sizeof daemon) == sizeof daemon);
    close(fds[0]);
    /* Both come to us (a subreaper) once the middle is gone: they must end. */
    for (int i = 0; i < 2; i++) {
        pid_t pid = i == 0 ? server : daemon;
        uint64_t until = th_now_ms() + 5000;
        int status;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && th_now_ms() < until)
            th_sleep_ms(1);
        /* the daemon may have been reaped by its server already (normal exit) */
        CHECK(r == pid || (i == 1 && r < 0 && errno == ECHILD && kill(pid, 0) != 0));
    }
}

TEST(forkserver_no_server_is_left_after_its_parent_exits_or_dies)
{
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    check_nothing_left(report_server_then_exit, 0);
    check_nothing_left(report_server_then_die, -SIGKILL);
}

TEST(forkserver_start_method_is_settable)
{
    CHECK_RC(MP_EINVAL, mp_set_start_method(MP_START_DEFAULT));
    CHECK_RC(MP_EINVAL, mp_set_start_method((mp_start_method)7));
    mp_process *p;
    CHECK_RC(MP_EINVAL, mp_process_new(&p, return_arg, NULL,
                                       &(mp_process_options){.start_method = (mp_start_method)7}));
    CHECK_RC(MP_EINVAL, mp_process_new(&p, return_arg, NULL, &(mp_process_options){.arg_size = 4}));
    CHECK_OK(mp_set_start_method(MP_START_FORKSERVER));
    CHECK_EQ(MP_START_FORKSERVER, mp_get_start_method());
    CHECK_EQ(0, mp_forkserver_pid());
    p = started(return_arg, (void *)(intptr_t)6, NULL);
    CHECK(mp_forkserver_pid() > 0); /* started on first use */
    CHECK_EQ(6, joined_exitcode(p));
    mp_process_destroy(p);
    CHECK_OK(mp_set_start_method(MP_START_FORK));
    CHECK_OK(mp_forkserver_stop());
    CHECK_EQ(0, mp_forkserver_pid());
}

/* A fork after the forkserver started: the hub takes the forkserver's lock across
 * the fork and its child handler forgets the server (a fork child has none). */
TEST(forkserver_a_fork_after_it_started_works_on_both_methods)
{
    mp_process *p = started(return_arg, (void *)(intptr_t)3, &via_server);
    CHECK_EQ(3, joined_exitcode(p));
    mp_process_destroy(p);
    p = started(return_arg, (void *)(intptr_t)4,
                &(mp_process_options){.start_method = MP_START_FORK});
    CHECK_EQ(4, joined_exitcode(p));
    mp_process_destroy(p);
    p = started(return_arg, (void *)(intptr_t)5, &via_server);
    CHECK_EQ(5, joined_exitcode(p));
    mp_process_destroy(p);
}

static int write_hello(void *arg)
{
    (void)arg;
    return write(1, "hello", 5) == 5 ? 0 : 1;
}

/* The server's children of the moment (the spare among them), from /proc. */
static int server_children(pid_t server, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)server, (int)server);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0, pid;
    while (n < max && fscanf(f, "%d", &pid) == 1)
        out[n++] = pid;
    fclose(f);
    return n;
}

/* A spare is forked before the start that takes it: what the caller has at
 * start (here stdout, changed after the spare was forked) is what the child
 * gets. */
TEST(forkserver_spare_child_gets_the_stdout_of_start_time)
{
    CHECK_OK(mp_forkserver_ensure_running());
    mp_process *p = started(return_arg, (void *)(intptr_t)4, &via_server);
    CHECK_EQ(4, joined_exitcode(p)); /* a spare waits now, forked with our old stdout */
    mp_process_destroy(p);
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved = dup(1);
    CHECK(saved >= 0);
    fflush(stdout);
    CHECK(dup2(fds[1], 1) == 1);
    p = started(write_hello, NULL, &via_server);
    int code = joined_exitcode(p);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    close(fds[1]);
    CHECK_EQ(0, code);
    mp_process_destroy(p);
    char buf[16] = {0};
    CHECK_EQ(5, (int)read(fds[0], buf, sizeof buf));
    CHECK_STR("hello", buf);
    close(fds[0]);
}

#define SPARES 2 /* the server keeps this many waiting (forkserver.c) */

/* Waits until the server has exactly its spares as children, into kids. */
static void wait_spares(pid_t server, pid_t *kids)
{
    int n = 0;
    for (int i = 0; i < 5000 && (n = server_children(server, kids, 8)) != SPARES; i++)
        th_sleep_ms(1);
    CHECK_EQ(SPARES, n);
}

/* The server keeps its spares waiting; a start takes one and the server forks
 * the next; stopping the server ends the spares too (nothing is left). */
TEST(forkserver_keeps_its_spares_and_stop_ends_them)
{
    CHECK_OK(mp_forkserver_ensure_running());
    pid_t server = mp_forkserver_pid();
    pid_t kids[8];
    wait_spares(server, kids);
    mp_process *p = started(sleep_forever, NULL, &via_server);
    pid_t child = mp_process_pid(p);
    CHECK(child == kids[0] || child == kids[1]); /* a spare became the child */
    pid_t next[8];
    int n = 0;
    for (int i = 0; i < 5000 && n != SPARES + 1; i++) {
        n = server_children(server, next, 8);
        if (n != SPARES + 1)
            th_sleep_ms(1);
    }
    CHECK_EQ(SPARES + 1, n); /* the child and the spares again */
    CHECK_OK(mp_process_kill(p));
    CHECK_EQ(-SIGKILL, joined_exitcode(p));
    mp_process_destroy(p);
    CHECK_OK(mp_forkserver_stop());
    for (int k = 0; k < n; k++) /* reaped by the server before it ended */
        CHECK(kill(next[k], 0) != 0 && errno == ESRCH);
}

/* The descriptors the server holds now, from /proc. */
static int server_fds(pid_t server)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)server);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int exit_with_arg(void *arg)
{
    return (int)(intptr_t)arg & 0xff;
}

/* Many quick children, each joined as soon as started: every join returns once
 * its child is gone (reaped: a join takes the status from the kernel before
 * the server's word, where it can), with its own status, its sentinel
 * readable; the server keeps nothing of them (no zombie, no descriptor), and
 * a child killed shows the signal. Run with the server's two ways of learning
 * ends (autoreap where the kernel has PIDFD_INFO_EXIT, and waitpid). */
static void quick_children_are_gone_after_join(void)
{
    CHECK_OK(mp_forkserver_ensure_running());
    pid_t server = mp_forkserver_pid();
    pid_t kids[8];
    wait_spares(server, kids); /* the server holds now what it holds between starts */
    int fds_before = server_fds(server);
    /* (the server opens a spare's pidfd just after the fork shows it) */
    for (int i = 0, now; i < 100 && (th_sleep_ms(20), now = server_fds(server)) != fds_before; i++)
        fds_before = now;
    CHECK(fds_before > 0);
    mp_process *p;
    for (int i = 0; i < 200; i++) {
        p = started(exit_with_arg, (void *)(intptr_t)i, &via_server);
        pid_t pid = mp_process_pid(p);
        CHECK_EQ(i & 0xff, joined_exitcode(p));
        /* Gone, not a zombie. Where the kernel reaps, the status can be read a
         * moment before the kernel has released the pid (seen once under TSan):
         * allow that moment, not a zombie's lifetime. */
        bool gone = false;
        for (int t = 0; t < 200 && !gone; t++)
            gone = (kill(pid, 0) != 0 && errno == ESRCH) || (th_sleep_ms(1), false);
        CHECK(gone);
        int s = mp_process_sentinel(p);
        CHECK(s >= 0);
        CHECK_EQ(1, poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1, 0));
        mp_process_destroy(p);
    }
    p = started(sleep_forever, NULL, &via_server);
    pid_t pid = mp_process_pid(p);
    CHECK_EQ(0, kill(pid, SIGKILL)); /* from outside, not through the handle */
    CHECK_EQ(-SIGKILL, joined_exitcode(p));
    mp_process_destroy(p);
    /* The server has taken in every end: only the spares are left, and no
     * descriptor of the children. */
    wait_spares(server, kids);
    int fds_after = 0;
    for (int i = 0; i < 2000 && (fds_after = server_fds(server)) != fds_before; i++)
        th_sleep_ms(1);
    CHECK_EQ(fds_before, fds_after);
    CHECK_OK(mp_forkserver_stop());
}

TEST(forkserver_quick_children_are_gone_after_join)
{
    quick_children_are_gone_after_join();
}

TEST(forkserver_quick_children_are_gone_after_join_without_autoreap)
{
    setenv("MPROC_FORKSERVER_NO_AUTOREAP", "1", 1); /* read by the server at its start */
    quick_children_are_gone_after_join();
    unsetenv("MPROC_FORKSERVER_NO_AUTOREAP");
}

/* A spare killed while it waits (it is no child yet): the server sees it end
 * (through its pidfd, or waitpid) and forks another; starts keep working. */
TEST(forkserver_a_spare_killed_while_waiting_is_replaced)
{
    CHECK_OK(mp_forkserver_ensure_running());
    pid_t server = mp_forkserver_pid();
    pid_t kids[8];
    wait_spares(server, kids);
    pid_t spare = kids[0];
    CHECK_EQ(0, kill(spare, SIGKILL));
    bool replaced = false;
    for (int i = 0; i < 5000 && !replaced; i++) {
        int n = server_children(server, kids, 8);
        replaced = n == SPARES;
        for (int k = 0; k < n; k++)
            replaced = replaced && kids[k] != spare;
        if (!replaced)
            th_sleep_ms(1);
    }
    CHECK(replaced);
    for (int i = 0; i < SPARES + 1; i++) { /* one more than were waiting */
        mp_process *p = started(exit_with_arg, (void *)(intptr_t)(12 + i), &via_server);
        CHECK(mp_process_pid(p) != spare);
        CHECK_EQ(12 + i, joined_exitcode(p));
        mp_process_destroy(p);
    }
}

/* A spare killed after it took a request and before it answered its starter
 * (before or after its report to the server; forkserver.c's test hooks kill a
 * child of these names there): that start fails (MP_ESRCH), but the server is
 * alive and stays, with its other children, and the next start goes to it. (The starter took such a
 * hang-up for the server's death and killed a healthy server.) */
static void a_spare_killed_before_answering(bool without_autoreap)
{
    setenv("MPROC_FORKSERVER_TEST_HOOKS", "1", 1); /* read by the server at its start */
    if (without_autoreap)
        setenv("MPROC_FORKSERVER_NO_AUTOREAP", "1", 1);
    CHECK_OK(mp_forkserver_ensure_running());
    unsetenv("MPROC_FORKSERVER_TEST_HOOKS");
    unsetenv("MPROC_FORKSERVER_NO_AUTOREAP");
    pid_t server = mp_forkserver_pid();
    pid_t kids[8];
    wait_spares(server, kids);
    /* A daemon: it dies with the server (and a failure leaves no orphan). */
    mp_process *running =
        started(sleep_forever, NULL,
                &(mp_process_options){.start_method = MP_START_FORKSERVER, .daemon = true});
    static const char *names[2] = {"mproc-test-die-before-report", "mproc-test-die-after-report"};
    for (int i = 0; i < 2; i++) {
        mp_process *p;
        CHECK_OK(mp_process_new(
            &p, return_arg, (void *)(intptr_t)1,
            &(mp_process_options){.start_method = MP_START_FORKSERVER, .name = names[i]}));
        CHECK_RC(MP_ESRCH, mp_process_start(p));
        mp_process_destroy(p);
        CHECK_EQ(server, mp_forkserver_pid()); /* kept */
        CHECK_EQ(0, kill(server, 0));
    }
    CHECK(mp_process_is_alive(running));
    mp_process *p = started(return_arg, (void *)(intptr_t)7, &via_server);
    CHECK_EQ(7, joined_exitcode(p));
    mp_process_destroy(p);
    CHECK_EQ(server, mp_forkserver_pid());
    CHECK_OK(mp_process_kill(running));
    CHECK_EQ(-SIGKILL, joined_exitcode(running));
    mp_process_destroy(running);
    CHECK_OK(mp_forkserver_stop());
}

TEST(forkserver_a_spare_killed_before_answering_leaves_the_server)
{
    a_spare_killed_before_answering(false);
}

TEST(forkserver_a_spare_killed_before_answering_leaves_the_server_without_autoreap)
{
    a_spare_killed_before_answering(true);
}

#define LOW_NOFILE 40

static int nofile_is_low(void *arg)
{
    (void)arg;
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == LOW_NOFILE ? 0 : 1;
}

/* The server holds descriptors for each running child (its status socket, and
 * its pidfd under autoreap): with the soft descriptor limit it was started
 * with, a few dozen children would exhaust it (requests and reports lost, the
 * starts failing). It raises its soft limit to the hard one; its children get
 * the limit it was started with (the starter's then), as under fork. */
static void more_children_than_the_soft_limit(bool without_autoreap)
{
    struct rlimit saved, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 200)
        SKIP("the hard descriptor limit is too low to show it");
    low = (struct rlimit){LOW_NOFILE, saved.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    if (without_autoreap)
        setenv("MPROC_FORKSERVER_NO_AUTOREAP", "1", 1);
    CHECK_OK(mp_forkserver_ensure_running()); /* started with the low limit */
    unsetenv("MPROC_FORKSERVER_NO_AUTOREAP");
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0); /* our handles need more */
    enum { N = 2 * LOW_NOFILE };
    mp_process *kids[N];
    for (int i = 0; i < N; i++)
        kids[i] =
            started(sleep_forever, NULL,
                    &(mp_process_options){.start_method = MP_START_FORKSERVER, .daemon = true});
    mp_process *p = started(nofile_is_low, NULL, &via_server);
    CHECK_EQ(0, joined_exitcode(p)); /* the limit the server started with, not its own */
    mp_process_destroy(p);
    for (int i = 0; i < N; i++) {
        CHECK(mp_process_is_alive(kids[i]));
        CHECK_OK(mp_process_kill(kids[i]));
        CHECK_EQ(-SIGKILL, joined_exitcode(kids[i]));
        mp_process_destroy(kids[i]);
    }
    CHECK_OK(mp_forkserver_stop());
}

TEST(forkserver_runs_more_children_than_its_soft_descriptor_limit)
{
    more_children_than_the_soft_limit(false);
}

TEST(forkserver_runs_more_children_than_its_soft_descriptor_limit_without_autoreap)
{
    more_children_than_the_soft_limit(true);
}
