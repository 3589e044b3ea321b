/* linux/spawn.c — the child side of starting a program, and the clone that
 * makes the child. ALL code that runs between clone/fork and exec is in this file.
 *
 * Rules for the child side (child_main and everything it calls):
 *   - Async-signal-safe system calls only: no malloc, no stdio, no locks, no
 *     function that might take a lock. Everything that needs memory (the PATH
 *     candidates, argv, envp, the sorted pass_fds) was prepared by the parent.
 *   - On the fast path the child shares the parent's memory (CLONE_VM) and runs on
 *     a stack inside the parent's frame, while the parent is suspended
 *     (CLONE_VFORK) until the child calls exec or exits. The child may read the
 *     plan but writes nothing the parent reads, except errno of the calling
 *     thread, which the parent saves at once.
 *   - Every parent signal handler is reset to SIG_DFL before the signal mask is
 *     restored, so no handler of the parent ever runs on the shared memory. The
 *     parent blocks all signals around the clone for that reason (as posix_spawn).
 *   - A failure is sent to the parent as {step, errno} over a close-on-exec pipe:
 *     exec closes it (the parent reads EOF: success), a failure writes 8 bytes
 *     and the child ends with _exit(127). The child never returns.
 *
 * The slow path is fork(): used when the caller gives a child-setup callback
 * (arbitrary user code cannot run on a borrowed stack and shared memory) and,
 * chosen once at build time, under AddressSanitizer, whose runtime state cannot be
 * shared by two processes running at once on one address space.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fork.h"
#include "linux/spawn.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define USE_CLONE_VM 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USE_CLONE_VM 0
#endif
#endif
#ifndef USE_CLONE_VM
#define USE_CLONE_VM 1
#endif

/* The child's stack on the fast path. The child's frames are small: a few system
 * calls and an 8 KiB getdents buffer on the fallback path only. */
#define CHILD_STACK_SIZE (32 * 1024)

struct child_msg {
    int32_t step;
    int32_t err;
};

struct child_args {
    const mp__spawn_plan *plan;
    int errfd;             /* write end of the error pipe, close-on-exec */
    bool have_close_range; /* probed by the parent */
    sigset_t oldmask;      /* the caller's mask, restored in the child */
};

static bool have_close_range;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void)
{
    /* A range no process has open: 0 when close_range knows CLOSE_RANGE_CLOEXEC. */
    have_close_range = syscall(SYS_close_range, INT_MAX - 1, INT_MAX, CLOSE_RANGE_CLOEXEC) == 0;
}

const char *mp__spawn_step_name(int step)
{
    switch (step) {
    case MP__STEP_EXEC:
        return "exec";
    case MP__STEP_CHDIR:
        return "chdir";
    case MP__STEP_DUP:
        return "dup2";
    case MP__STEP_FDS:
        return "close_fds";
    case MP__STEP_SETSID:
        return "setsid";
    case MP__STEP_SETPGID:
        return "setpgid";
    case MP__STEP_SIGNALS:
        return "signals";
    case MP__STEP_PREEXEC:
        return "preexec";
    default:
        return "spawn";
    }
}

/* ---- child side: async-signal-safe only ------------------------------------ */

static _Noreturn void child_fail(int errfd, int step, int err)
{
    struct child_msg m = {step, err};
    ssize_t n;
    do
        n = write(errfd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
    _exit(127);
}

static bool is_passed(const mp__spawn_plan *p, int fd)
{
    for (size_t i = 0; i < p->n_pass_fds; i++)
        if (p->pass_fds[i] == fd)
            return true;
    return false;
}

/* Without close_range(CLOEXEC): walk /proc/self/fd with getdents64 into a stack
 * buffer (opendir would allocate); without /proc, every number up to the limit. */
static int cloexec_all_slow(const mp__spawn_plan *p)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        struct rlimit rl;
        long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (long)rl.rlim_cur
                       : 65536;
        for (long fd = 3; fd < max; fd++)
            if (!is_passed(p, (int)fd))
                fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        return 0;
    }
    char buf[8192] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            __builtin_memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            int fd = 0;
            bool digits = *name != '\0';
            for (const char *c = name; *c; c++) {
                if (*c < '0' || *c > '9') {
                    digits = false;
                    break;
                }
                fd = fd * 10 + (*c - '0');
            }
            if (digits && fd >= 3 && fd != dir && !is_passed(p, fd))
                fcntl(fd, F_SETFD, FD_CLOEXEC);
            off += reclen;
        }
    }
    close(dir);
    return 0;
}

/* Every descriptor >= 3 but the passed ones becomes close-on-exec. Marking rather
 * than closing keeps the error pipe open until exec. */
static int cloexec_all(const struct child_args *a)
{
    const mp__spawn_plan *p = a->plan;
    if (!a->have_close_range)
        return cloexec_all_slow(p);
    unsigned first = 3;
    for (size_t i = 0; i < p->n_pass_fds; i++) {
        unsigned fd = (unsigned)p->pass_fds[i];
        if (fd > first && syscall(SYS_close_range, first, fd - 1, CLOSE_RANGE_CLOEXEC) != 0)
            return -errno;
        first = fd + 1;
    }
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        return -errno;
    return 0;
}

static void reset_signals(const mp__spawn_plan *p)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0)
            continue;
        if (sa.sa_handler == SIG_DFL)
            continue;
        if (sa.sa_handler == SIG_IGN && !(p->restore_signals && (sig == SIGPIPE || sig == SIGXFSZ)))
            continue;
        sa.sa_handler = SIG_DFL;
        sa.sa_flags = 0;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

static _Noreturn void child_main(struct child_args *a)
{
    const mp__spawn_plan *p = a->plan;
    int errfd = a->errfd;

    /* Handlers first, then the mask: from here a signal acts on the child alone. */
    reset_signals(p);
    if (sigprocmask(SIG_SETMASK, &a->oldmask, NULL) != 0)
        child_fail(errfd, MP__STEP_SIGNALS, errno);

    /* Nothing we still need may sit on 0, 1 or 2 while those are being replaced
     * (the parent's own stdio may have been closed, so pipes can land there). */
    if (errfd < 3) {
        /* On failure the pipe is still where it was: report through it. */
        int moved = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
        if (moved < 0)
            child_fail(errfd, MP__STEP_DUP, errno);
        errfd = moved;
    }
    int src[3];
    for (int i = 0; i < 3; i++) {
        src[i] = p->stdio[i];
        if (src[i] >= 0 && src[i] < 3 && src[i] != i &&
            (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
            child_fail(errfd, MP__STEP_DUP, errno);
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] < 0)
            continue;
        int r = src[i] == i ? fcntl(i, F_SETFD, 0) : dup2(src[i], i);
        if (r < 0)
            child_fail(errfd, MP__STEP_DUP, errno);
    }
    if (p->stderr_to_stdout && dup2(1, 2) < 0)
        child_fail(errfd, MP__STEP_DUP, errno);

    if (p->cwd != NULL && chdir(p->cwd) != 0)
        child_fail(errfd, MP__STEP_CHDIR, errno);
    if (p->umask >= 0)
        umask((mode_t)p->umask);
    if (p->new_session && setsid() < 0)
        child_fail(errfd, MP__STEP_SETSID, errno);
    if (p->process_group >= 0 && setpgid(0, p->process_group) != 0)
        child_fail(errfd, MP__STEP_SETPGID, errno);
    if (p->preexec != NULL && p->preexec(p->preexec_arg) != 0)
        child_fail(errfd, MP__STEP_PREEXEC, 0);

    if (p->close_fds) {
        int r = cloexec_all(a);
        if (r < 0)
            child_fail(errfd, MP__STEP_FDS, -r);
    }
    for (size_t i = 0; i < p->n_pass_fds; i++) {
        /* The error pipe took the number of a descriptor closed meanwhile. */
        if (p->pass_fds[i] == a->errfd || p->pass_fds[i] == errfd)
            child_fail(errfd, MP__STEP_FDS, EBADF);
        if (fcntl(p->pass_fds[i], F_SETFD, 0) != 0)
            child_fail(errfd, MP__STEP_FDS, errno);
    }

    /* CPython's order: every candidate is tried (a PATH entry that is too long,
     * loops or is not permitted must not hide a later one), and the first error
     * other than "not there" is the one reported when none runs. */
    int err = ENOENT, first = 0;
    for (char *const *c = p->candidates; *c != NULL; c++) {
        execve(*c, p->argv, p->envp);
        err = errno;
        if (first == 0 && err != ENOENT && err != ENOTDIR)
            first = err;
    }
    if (first != 0)
        err = first;
    child_fail(errfd, MP__STEP_EXEC, err);
}

static int clone_entry(void *arg)
{
    child_main(arg);
}

/* ---- parent side ----------------------------------------------------------- */

/* Starts the child with the fast path; kept out of line so the stack array lives
 * in a frame of its own that the parent does not touch while the child runs. */
static __attribute__((noinline)) pid_t start_clone(struct child_args *a)
{
    char stack[CHILD_STACK_SIZE] __attribute__((aligned(64)));
    return clone(clone_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
}

/* Error pipes of fork-path spawns in flight. A process that another thread forks
 * meanwhile (fork without exec) gets a copy of the write end, and our read of the
 * pipe would wait for that process to end: the fork child handler closes those
 * copies there, all but the forking thread's own (that child is ours and needs
 * it). The clone path needs no entry: its read does not wait for end-of-file. */
struct inflight {
    int wfd;
    pthread_t owner;
    struct inflight *next;
};
static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inflight *inflight; /* under inflight_lock; nodes live in mp__spawn frames */
static pthread_once_t inflight_once = PTHREAD_ONCE_INIT;

static void inflight_postfork_child(void)
{
    for (struct inflight *e = inflight; e != NULL; e = e->next)
        if (!pthread_equal(e->owner, pthread_self()))
            close(e->wfd);
    inflight = NULL; /* the other threads, and their frames, are not in this process */
}
static void inflight_init(void)
{
    static const struct mp__fork_handlers h = {.mutex = &inflight_lock,
                                               .child = inflight_postfork_child};
    mp__fork_register(MP__FORK_SPAWN, &h);
}

/* Creates the error pipe and, for the fork path, lists it in one step: no fork
 * can come between (the fork hub takes the same lock before fork). */
static int make_error_pipe(int pfd[2], struct inflight *e)
{
    if (e == NULL)
        return pipe2(pfd, O_CLOEXEC) != 0 ? -errno : 0;
    pthread_once(&inflight_once, inflight_init);
    pthread_mutex_lock(&inflight_lock);
    int rc = pipe2(pfd, O_CLOEXEC) != 0 ? -errno : 0;
    if (rc == 0) {
        e->wfd = pfd[1];
        e->next = inflight;
        inflight = e;
    }
    pthread_mutex_unlock(&inflight_lock);
    return rc;
}

/* Unlists e and closes its write end in one step: a fork between the two would
 * give the new process a copy that no handler closes. */
static void inflight_remove_and_close(struct inflight *e)
{
    pthread_mutex_lock(&inflight_lock);
    struct inflight **at = &inflight;
    while (*at != NULL && *at != e)
        at = &(*at)->next;
    if (*at != NULL)
        *at = e->next;
    mp__close_fd(e->wfd);
    pthread_mutex_unlock(&inflight_lock);
}

static pid_t start_fork(struct child_args *a)
{
    pid_t pid = fork();
    if (pid == 0)
        child_main(a);
    return pid;
}

int mp__spawn(const mp__spawn_plan *plan, pid_t *pid, int *step, int *child_errno)
{
    *step = MP__STEP_NONE;
    *child_errno = 0;
    pthread_once(&probe_once, probe);
    bool fast = plan->preexec == NULL && USE_CLONE_VM;
    struct inflight self = {.wfd = -1, .owner = pthread_self()};
    int pfd[2];
    int rc = make_error_pipe(pfd, fast ? NULL : &self);
    if (rc != 0)
        return rc;

    struct child_args a = {.plan = plan, .errfd = pfd[1], .have_close_range = have_close_range};
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &a.oldmask);
    pid_t child = fast ? start_clone(&a) : start_fork(&a);
    int saved = errno;
    if (fast)
        mp__close_fd(pfd[1]);
    else
        inflight_remove_and_close(&self);
    pthread_sigmask(SIG_SETMASK, &a.oldmask, NULL);
    if (child < 0) {
        mp__close_fd(pfd[0]);
        return -saved;
    }

    /* On the fast path the child has already exec'd or exited, so its message is
     * there or will never come: the read must not wait for end-of-file, which a
     * process forked meanwhile by another thread (holding a copy of pfd[1] until
     * it execs or exits) could delay without bound. On the fork path this read
     * waits for exec or the message; copies of pfd[1] in processes forked by
     * other threads are closed there by inflight_postfork_child. */
    if (fast)
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    struct child_msg m;
    ssize_t n;
    do
        n = read(pfd[0], &m, sizeof m);
    while (n < 0 && errno == EINTR);
    mp__close_fd(pfd[0]);
    if (n != (ssize_t)sizeof m) {
        *pid = child;
        return 0;
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    *step = m.step;
    *child_errno = m.err;
    if (m.step == MP__STEP_PREEXEC || m.err <= 0)
        return MP_ESPAWN;
    return -m.err;
}
