/* tests/harness.c — the runner behind TEST(): one test per process, with the
 * leak checks described in harness.h. */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_TESTS 512
#define MAX_ENTRIES 1024

struct test {
    const char *name;
    th_test_fn fn;
};
static struct test tests[MAX_TESTS];
static int n_tests;
const char *th_argv0;

void th_register(const char *name, th_test_fn fn)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "harness: too many tests\n");
        abort();
    }
    tests[n_tests++] = (struct test){name, fn};
}

/* SIGKILLs pid's children (of every thread), theirs first. */
static void kill_descendants(const char *pid, int depth)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%s/task", pid);
    DIR *tasks = opendir(dir);
    if (tasks == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[400];
        snprintf(path, sizeof path, "%s/%.255s/children", dir, e->d_name);
        FILE *f = fopen(path, "r");
        int kid;
        while (f != NULL && fscanf(f, "%d", &kid) == 1) {
            char name[16];
            snprintf(name, sizeof name, "%d", kid);
            kill(kid, SIGSTOP); /* no new children meanwhile */
            if (depth < 8)
                kill_descendants(name, depth + 1);
            kill(kid, SIGKILL);
        }
        if (f != NULL)
            fclose(f);
    }
    closedir(tasks);
}

/* SIGKILLs the descendants of this process: a failed test must not leave a
 * process behind holding CTest's output pipe (CTest would wait for it). The
 * grandchildren too: a forkserver's children are not ours. */
static void kill_children(void)
{
    kill_descendants("self", 0);
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: [pid %d] ", file, line, (int)getpid());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(NULL);
    kill_children();
    _exit(1);
}

_Noreturn void th_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "SKIP: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(NULL);
    kill_children();
    _exit(TH_SKIP_CODE);
}

uint64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void th_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int th_fork(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        th_fail(__FILE__, __LINE__, "fork failed");
    if (pid == 0)
        exit(fn(arg));
    return pid;
}

int th_wait(int pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            th_fail(__FILE__, __LINE__, "waitpid(%d) failed: %s", pid, strerror(errno));
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* th_with_reused_pid's stage; the processes inherit these through fork. */
static struct {
    void *(*create)(void *);
    int (*reuse)(void *);
    int (*after)(void *);
    void *arg, *state;
} stage;

/* Written by whichever stage process finds the stage cannot be set up; shared
 * (MAP_SHARED) with the test body, which reads it once the stage has ended. */
struct not_staged {
    bool set;
    char why[200];
};
static struct not_staged *not_staged;
static char not_staged_why[200];

/* Records why the stage cannot be set up (the first reason wins); returns 0,
 * so that the stage's processes end normally. */
static int give_up(const char *what)
{
    if (!not_staged->set) {
        snprintf(not_staged->why, sizeof not_staged->why,
                 "pid reuse cannot be staged here: %s (%s)", what, strerror(errno));
        not_staged->set = true;
    }
    return 0;
}

const char *th_not_staged_why(void)
{
    return not_staged_why;
}

static int reuse_in_e(void *unused)
{
    (void)unused;
    return stage.reuse(stage.state);
}

static int reuse_d(void *unused)
{
    (void)unused;
    while (kill(2, 0) == 0 || errno != ESRCH) /* until C has been reaped */
        th_sleep_ms(1);
    th_sleep_ms(50); /* E must start some clock ticks after C: start times differ */
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f == NULL)
        return give_up("open /proc/sys/kernel/ns_last_pid");
    fprintf(f, "1");
    if (fclose(f) != 0)
        return give_up("write /proc/sys/kernel/ns_last_pid");
    int e = th_fork(reuse_in_e, NULL);
    int rc = th_wait(e);
    if (e != 2) {
        errno = EEXIST;
        return give_up("another process took pid 2");
    }
    return rc != 0 ? rc : stage.after != NULL ? stage.after(stage.state) : 0;
}

static int reuse_c(void *unused)
{
    (void)unused;
    stage.state = stage.create(stage.arg);
    th_fork(reuse_d, NULL); /* reaped by the namespace's init once orphaned */
    _exit(0);               /* as if killed: no exit handlers */
}

static int reuse_init(void *unused)
{
    (void)unused;
    /* A mount namespace of our own for our /proc: the outer process keeps its
     * own (LeakSanitizer reads it at exit). */
    if (getpid() != 1) {
        errno = ESRCH;
        return give_up("the namespace's init is not pid 1");
    }
    if (unshare(CLONE_NEWNS) != 0)
        return give_up("unshare(CLONE_NEWNS) in the namespace");
    if (mount("proc", "/proc", "proc", 0, NULL) != 0)
        return give_up("mount /proc in the namespace");
    CHECK_EQ(0, th_wait(th_fork(reuse_c, NULL)));
    int status, rc = 0;
    while (wait(&status) > 0) /* D, adopted */
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = 1;
    return rc;
}

static int reuse_outer(void *unused)
{
    (void)unused;
    if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0)
        return give_up("unshare(CLONE_NEWPID | CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return give_up("make the mounts private");
    int rc = th_wait(th_fork(reuse_init, NULL));
    /* Once the namespace's init has ended this process can make no child, and
     * LeakSanitizer needs one at exit: leave without exit handlers. */
    _exit(rc == 0 ? 0 : 1);
}

int th_with_reused_pid(void *(*create)(void *), int (*reuse)(void *), int (*after)(void *),
                       void *arg)
{
    stage.create = create;
    stage.reuse = reuse;
    stage.after = after;
    stage.arg = arg;
    not_staged =
        mmap(NULL, sizeof *not_staged, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (not_staged == MAP_FAILED)
        th_fail(__FILE__, __LINE__, "mmap failed: %s", strerror(errno));
    *not_staged = (struct not_staged){0};
    int rc = th_wait(th_fork(reuse_outer, NULL));
    bool skipped = not_staged->set;
    snprintf(not_staged_why, sizeof not_staged_why, "%s", not_staged->why);
    munmap(not_staged, sizeof *not_staged);
    not_staged = NULL;
    return skipped ? TH_NOT_STAGED : rc;
}

/* Names in a directory, sorted; returns the count. */
static int list_dir(const char *path, char names[][256], int max)
{
    int n = 0;
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] == '.')
            continue;
        if (strcmp(path, "/proc/self/fd") == 0 && atoi(e->d_name) == self)
            continue;
        snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static bool contains(char names[][256], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static char fds_before[MAX_ENTRIES][256], fds_after[MAX_ENTRIES][256];
static char shm_before[MAX_ENTRIES][256], shm_after[MAX_ENTRIES][256];

static int run_one(const struct test *t)
{
    int n_fds = list_dir("/proc/self/fd", fds_before, MAX_ENTRIES);
    int n_shm = list_dir("/dev/shm", shm_before, MAX_ENTRIES);
    t->fn();
    fflush(NULL);
    /* A forkserver the test started is not a leak; one that stop cannot end is
     * still seen as a child below. */
    mp_forkserver_stop();
    int failures = 0;

    siginfo_t si = {0};
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
        fprintf(stderr, "%s: left a child process behind (pid %d, %s)\n", t->name, (int)si.si_pid,
                si.si_pid ? "zombie" : "still running");
        failures++;
    }
    int n = list_dir("/proc/self/fd", fds_after, MAX_ENTRIES);
    for (int i = 0; i < n; i++) {
        if (contains(fds_before, n_fds, fds_after[i]))
            continue;
        char link[512], target[256] = "?";
        snprintf(link, sizeof link, "/proc/self/fd/%.255s", fds_after[i]);
        ssize_t len = readlink(link, target, sizeof target - 1);
        target[len > 0 ? len : 0] = '\0';
        fprintf(stderr, "%s: left descriptor %s open (%s)\n", t->name, fds_after[i], target);
        failures++;
    }
    n = list_dir("/dev/shm", shm_after, MAX_ENTRIES);
    for (int i = 0; i < n; i++) {
        /* Only entries named for this process: tests run in parallel. */
        char mine[64];
        snprintf(mine, sizeof mine, "mptest-%d-", (int)getpid());
        if (strncmp(shm_after[i], mine, strlen(mine)) == 0 &&
            !contains(shm_before, n_shm, shm_after[i])) {
            fprintf(stderr, "%s: left /dev/shm/%s behind\n", t->name, shm_after[i]);
            failures++;
        }
    }
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    th_argv0 = argv[0];
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < n_tests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2) {
        for (int i = 0; i < n_tests; i++)
            if (strcmp(tests[i].name, argv[1]) == 0)
                return run_one(&tests[i]);
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    /* No argument: every test, each in a child of its own, for quick runs by hand. */
    int failed = 0;
    for (int i = 0; i < n_tests; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(run_one(&tests[i]));
        int rc = th_wait(pid);
        printf("%-50s %s\n", tests[i].name, rc == 0 ? "ok" : "FAILED");
        failed += rc != 0;
    }
    printf("%d passed, %d failed\n", n_tests - failed, failed);
    return failed != 0;
}
