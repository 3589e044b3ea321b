/* process.c — mp_process: fork-started children, as CPython's Process.
 *
 * Each process keeps a registry of the children it started and has not yet
 * released (a list guarded by registry_lock). Reaping happens only under
 * registry_lock, so exactly one thread turns a child's wait status into its exit
 * code, whichever of join, is_alive, exitcode or mp_active_children gets there
 * first. Blocking waits happen outside the lock (waitid with WNOWAIT, which
 * leaves the child unreaped, or poll on the sentinel), then reap under it.
 * Because only the registry reaps, a child in the registry that is not marked
 * reaped still owns its pid: kill() on it cannot reach another process.
 *
 * A child's sentinel is a pidfd where the kernel has them, opened only when
 * someone needs one (mp_process_sentinel, a timed join): most children are
 * started and joined without it. Without pidfds it is the read end of a pipe
 * whose write end only the child holds, made before fork; the pipe reports
 * hang-up when the child ends. A sentinel asked for after the child was reaped is
 * a pipe with no writer: readable at once, as the child has ended.
 *
 * fork() copies the registry into the child; the child empties its copy (those
 * are its siblings, not its children: a fork handler does it, for plain fork()s
 * too) and, when started by mp_process_start, makes a fresh identity for itself.
 *
 * A child started through the forkserver (process/forkserver.c) is not ours to
 * wait for: its end is learnt from its pidfd (the kernel reaps the server's
 * children and tells their status to a pidfd's holder, Linux >= 6.15; the pidfd
 * is then its sentinel) or else from its status socket (then the sentinel), and
 * it is signalled through the pidfd the server sent. The few functions that
 * learn a child's end or signal it (child_reap_nohang, child_signal, and join's
 * choice of wait) branch on p->via_fs; nothing else differs.
 *
 * Known limit: a join without timeout waits in waitid() on the pid, outside the
 * lock. If, in that window, another thread reaped the child and this process
 * started a new child that was given the same pid, the join would wait for that
 * one instead. Making it impossible would cost a pidfd per child.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/fork.h"
#include "core/identity.h"
#include "linux/pidfd.h"
#include "linux/proc.h"
#include "mproc/error.h"
#include "mproc/process.h"
#include "process/forkserver.h"

enum kind { KIND_CHILD, KIND_CURRENT, KIND_PARENT };

struct mp_process {
    enum kind kind;
    mp_target target;
    void *arg;
    char *name;     /* malloc'd; never changes */
    char *identity; /* "1", "1:2": the path of counters that named this process */
    bool daemon;
    mp_start_method method; /* as given; MP_START_DEFAULT resolved at start */
    size_t arg_size;        /* bytes at arg sent to a forkserver child */
    bool via_fs;            /* started by the forkserver; fs valid; under registry_lock */
    struct mp__fs_child fs; /* fs.pidfd or fs.status_fd is then the sentinel */
    /* the process that created this handle (core/identity.h) */
    mp__proc_id owner;
    pid_t pid;        /* 0 until started; under registry_lock */
    int sentinel;     /* pidfd or pipe read end, -1 until needed; under registry_lock */
    int exitcode;     /* valid once reaped */
    bool starting;    /* start claimed, fork in progress; under registry_lock */
    bool reaped;      /* under registry_lock */
    bool linked;      /* in the registry; under registry_lock */
    int pollers;      /* joins polling the sentinel now: close waits; under registry_lock */
    bool closed;      /* under registry_lock */
    bool destroyed;   /* handle released while the child ran: free once reaped */
    bool listed;      /* destroyed, and returned by mp_active_children: freed only by
                         its next call (the caller may still be joining it) */
    int joiners;      /* joins in progress: the handle is not freed; under registry_lock */
    const char *note; /* static text of the last misuse refused (mp_process_message) */
    struct mp_process *prev, *next; /* registry links; under registry_lock */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_process *registry;   /* started children not yet closed or destroyed */
static unsigned child_counter; /* children created by this process; under registry_lock */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static mp_process current = {
    .kind = KIND_CURRENT, .name = "MainProcess", .identity = "", .sentinel = -1};
static mp_process parent = {.kind = KIND_PARENT, .sentinel = -1};
static bool have_parent;
static int parent_pidfd = -1; /* a forkserver child's pidfd of its parent (not its ppid) */
static bool parent_remote;    /* started by the forkserver: the parent is not our ppid */
static mp_process *self;      /* in a child: the handle it was started from, never freed */

static void lock(void)
{
    pthread_mutex_lock(&registry_lock);
}
static void unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void at_exit(void);

/* In the child of any fork(): the registry lists the parent's children. */
static void after_fork_in_child(void)
{
    registry = NULL;
}

static void init(void)
{
    /* Holding registry_lock across any fork() keeps the registry whole. */
    static const struct mp__fork_handlers h = {.mutex = &registry_lock,
                                               .child = after_fork_in_child};
    mp__fork_register(MP__FORK_PROCESS, &h);
    atexit(at_exit);
}

static void registry_insert(mp_process *p)
{
    p->linked = true;
    p->prev = NULL;
    p->next = registry;
    if (registry != NULL)
        registry->prev = p;
    registry = p;
}

static void registry_remove(mp_process *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else if (registry == p)
        registry = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->linked = false;
}

/* Whether p has ended, reaping it if so (exit code in p->exitcode). */
static bool child_reap_nohang(mp_process *p)
{
    if (p->via_fs)
        return mp__fs_reap_nohang(&p->fs, &p->exitcode);
    return mp__reap_nohang(p->pid, &p->exitcode);
}

/* Signals p, which is not reaped (so its pid is still its own). */
static int child_signal(mp_process *p, int sig)
{
    if (p->via_fs)
        return mp__fs_signal(&p->fs, sig);
    return kill(p->pid, sig) == 0 ? 0 : -errno;
}

/* Reaps p if it has ended; true once reaped. Caller holds registry_lock. */
static bool try_reap(mp_process *p)
{
    if (!p->reaped)
        p->reaped = child_reap_nohang(p);
    return p->reaped;
}

/* Closes the sentinel and, for a forkserver child, its other descriptors (one
 * of which may be the sentinel). */
static void close_child_fds(mp_process *p)
{
    if (p->via_fs) {
        if (p->fs.pidfd != p->sentinel)
            mp__close_fd(p->fs.pidfd);
        if (p->fs.status_fd != p->sentinel)
            mp__close_fd(p->fs.status_fd);
        p->fs.pidfd = p->fs.status_fd = -1;
    }
    mp__close_fd(p->sentinel);
    p->sentinel = -1;
}

static void free_process(mp_process *p)
{
    close_child_fds(p);
    free(p->name);
    free(p->identity);
    free(p);
}

/* Frees the handles destroyed while their child ran, once it has ended (CPython's
 * _cleanup), so fire-and-forget children do not pile up as zombies. Handles that
 * mp_active_children returned are reaped but freed only when from_listing (its
 * next call), and never while a join uses them. Caller holds registry_lock. */
static void reap_destroyed(bool from_listing)
{
    for (mp_process *p = registry, *next; p != NULL; p = next) {
        next = p->next;
        if (p->destroyed && try_reap(p) && p->joiners == 0 && (from_listing || !p->listed)) {
            registry_remove(p);
            free_process(p);
        }
    }
}

/* Records a short static text of a misuse (Python's assertion or ValueError
 * message) for mp_process_message and returns rc. Not for the shared handles of
 * mp_current_process() / mp_parent_process(), which are never written. */
static int note(mp_process *p, int rc, const char *text)
{
    if (p->kind == KIND_CHILD)
        __atomic_store_n(&p->note, text, __ATOMIC_RELAXED);
    return rc;
}

/* what: "join", "test", ... for the message of a handle of another process. */
static int check_child(mp_process *p, const char *what)
{
    if (p->kind != KIND_CHILD || !mp__id_is_self(p->owner)) {
        static const char *const texts[] = {"can only join a child process",
                                            "can only test a child process",
                                            "can only signal a child process"};
        return note(p, MP_ECHILD, texts[what[0] == 'j' ? 0 : what[0] == 't' ? 1 : 2]);
    }
    if (p->closed)
        return note(p, MP_ECLOSED, "process object is closed");
    if (p->pid == 0)
        return note(p, MP_ENOTSTARTED,
                    what[0] == 'j' ? "can only join a started process" : "process not started");
    return 0;
}

const char *mp_process_message(const mp_process *p)
{
    const char *text = p != NULL ? __atomic_load_n(&p->note, __ATOMIC_RELAXED) : NULL;
    return text != NULL ? text : "";
}

int mp_process_new(mp_process **out, mp_target target, void *arg, const mp_process_options *opt)
{
    if (out == NULL || target == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (opt != NULL &&
        ((unsigned)opt->start_method > MP_START_FORKSERVER || (opt->arg_size > 0 && arg == NULL)))
        return MP_EINVAL;
    pthread_once(&init_once, init);
    mp_process *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    lock();
    unsigned n = ++child_counter;
    unlock();
    char id[256];
    snprintf(id, sizeof id, "%s%s%u", current.identity, current.identity[0] ? ":" : "", n);
    p->identity = strdup(id);
    if (opt != NULL && opt->name != NULL) {
        p->name = strdup(opt->name);
    } else if (asprintf(&p->name, "Process-%s", id) < 0) {
        p->name = NULL;
    }
    if (p->identity == NULL || p->name == NULL) {
        free_process(p);
        return MP_ENOMEM;
    }
    p->kind = KIND_CHILD;
    p->target = target;
    p->arg = arg;
    p->daemon = opt != NULL && opt->daemon;
    p->method = opt != NULL ? opt->start_method : MP_START_DEFAULT;
    p->arg_size = opt != NULL ? opt->arg_size : 0;
    p->owner = mp__self_id();
    p->sentinel = -1;
    *out = p;
    return 0;
}

/* exit(), called through a pointer: the pointer was resolved when the library was
 * loaded, while a first call through the PLT would make every child resolve the
 * symbol lazily again (and dirty its copy of the GOT). */
static void (*const exit_now)(int) = exit;

/* In a new child: become the process named name/identity, child of parent (its
 * name and identity given), and, for a daemon, die with death_parent (the
 * process whose death the kernel reports: the parent, or the forkserver). */
static void become(const char *name, const char *identity, bool daemon, const char *parent_name,
                   const char *parent_identity, bool parent_daemon, pid_t parent_pid,
                   pid_t death_parent)
{
    child_counter = 0;
    parent = (mp_process){.kind = KIND_PARENT,
                          .name = (char *)parent_name,
                          .identity = (char *)parent_identity,
                          .daemon = parent_daemon,
                          .pid = parent_pid,
                          .sentinel = -1};
    have_parent = true;
    current = (mp_process){.kind = KIND_CURRENT,
                           .name = (char *)name,
                           .identity = (char *)identity,
                           .daemon = daemon,
                           .pid = mp__self_pid(),
                           .sentinel = -1};
    if (daemon) {
        /* If the parent died before this, the signal would never come: check. */
        mp__set_parent_death_signal(SIGKILL);
        if (getppid() != death_parent)
            raise(SIGKILL);
    }
}

/* In the child, just after fork: become p. Never returns. Writes as few pages as
 * it can: each page written is a copy-on-write fault. */
static _Noreturn void run_child(mp_process *p, pid_t parent_pid, int pipe_write_end)
{
    (void)pipe_write_end; /* held open until exit: the parent's sentinel */
    /* Shares p's strings: mp_process_destroy in the child does not free the handle
     * the child is running as (see self). */
    become(p->name, p->identity, p->daemon, current.name, current.identity, current.daemon,
           parent_pid, parent_pid);
    self = p;
    exit_now(p->target(p->arg));
    abort(); /* not reached */
}

void mp__process_become(const char *name, const char *identity, bool daemon,
                        const char *parent_name, const char *parent_identity, pid_t parent_pid,
                        int parent_fd, pid_t server_pid)
{
    pthread_once(&init_once, init);
    become(name, identity, daemon, parent_name, parent_identity, false, parent_pid, server_pid);
    parent_pidfd = parent_fd;
    parent_remote = true;
}

int mp_process_start(mp_process *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->kind != KIND_CHILD || !mp__id_is_self(p->owner))
        return note(p, MP_ECHILD, "can only start a process object created by current process");
    if (current.daemon)
        return note(p, MP_EDAEMON, "daemonic processes are not allowed to have children");
    lock();
    reap_destroyed(false);
    int rc = p->closed ? MP_ECLOSED : (p->pid != 0 || p->starting) ? MP_EALREADY : 0;
    if (rc == 0)
        p->starting = true;
    unlock();
    if (rc == MP_ECLOSED)
        return note(p, rc, "process object is closed");
    if (rc != 0)
        return note(p, rc, "cannot start a process twice");

    mp_start_method method = p->method != MP_START_DEFAULT ? p->method : mp_get_start_method();
    if (method == MP_START_FORKSERVER) {
        struct mp__fs_request req = {.target = p->target,
                                     .arg = p->arg,
                                     .arg_size = p->arg_size,
                                     .name = p->name,
                                     .identity = p->identity,
                                     .parent_name = current.name,
                                     .parent_identity = current.identity,
                                     .daemon = p->daemon};
        fflush(NULL); /* the child writes to the same stdio: keep the order */
        struct mp__fs_child c;
        rc = mp__fs_start(&req, &c);
        lock();
        if (rc == 0) {
            p->via_fs = true;
            p->fs = c;
            p->pid = c.pid;
            /* The pidfd says first, where the kernel reaps the server's children:
             * readable once the child is gone. Else the server's word. */
            p->sentinel = c.autoreaped && c.pidfd >= 0 ? c.pidfd : c.status_fd;
            registry_insert(p);
        }
        p->starting = false;
        unlock();
        return rc;
    }

    int pipe_fds[2] = {-1, -1};
    if (!mp__have_pidfd() && pipe2(pipe_fds, O_CLOEXEC) != 0) {
        rc = -errno;
        goto out_unclaim;
    }
    fflush(NULL);
    pid_t parent_pid = mp__self_pid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out_close_pipe;
    }
    if (pid == 0) {
        mp__close_fd(pipe_fds[0]);
        run_child(p, parent_pid, pipe_fds[1]);
    }
    mp__close_fd(pipe_fds[1]);
    lock();
    p->pid = pid;
    p->sentinel = pipe_fds[0];
    p->starting = false;
    registry_insert(p);
    unlock();
    return 0;

out_close_pipe:
    mp__close_fd(pipe_fds[0]);
    mp__close_fd(pipe_fds[1]);
out_unclaim:
    lock();
    p->starting = false;
    unlock();
    return rc;
}

/* p's sentinel, opened now if need be. Caller holds registry_lock; p is started. */
static int child_sentinel(mp_process *p)
{
    if (p->sentinel >= 0)
        return p->sentinel;
    if (!try_reap(p)) {
        int fd = mp__pidfd_open(p->pid); /* unreaped: the pid is still p's */
        if (fd >= 0)
            p->sentinel = fd;
        return fd;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    mp__close_fd(fds[1]);
    return p->sentinel = fds[0];
}

static int parent_sentinel(void)
{
    if (parent.sentinel < 0 && parent_pidfd >= 0) {
        short ev = 0;
        mp__deadline now;
        mp__deadline_init(&now, 0);
        if (mp__poll_one(parent_pidfd, POLLIN, &now, &ev) == 1)
            return MP_ESRCH; /* it has ended */
        parent.sentinel = parent_pidfd;
    }
    if (parent.sentinel < 0) {
        int fd = mp__pidfd_open(parent.pid);
        if (fd < 0)
            return fd;
        if (getppid() != parent.pid) { /* the parent died; the pid may be another's */
            mp__close_fd(fd);
            return MP_ESRCH;
        }
        parent.sentinel = fd;
    }
    return parent.sentinel;
}

/* Without a sentinel: the parent is our ppid, except under the forkserver. */
static bool parent_alive(void)
{
    if (parent_pidfd >= 0) {
        short ev = 0;
        mp__deadline now;
        mp__deadline_init(&now, 0);
        return mp__poll_one(parent_pidfd, POLLIN, &now, &ev) != 1;
    }
    if (parent_remote) /* no pidfds: the pid may be reused, the best we have */
        return kill(parent.pid, 0) == 0 || errno == EPERM;
    return getppid() == parent.pid;
}

static int join_parent(int timeout_ms)
{
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return MP_EINVAL;
    lock();
    int fd = parent_sentinel();
    unlock();
    if (fd == MP_ESRCH)
        return 0;
    if (fd == MP_ENOSYS) { /* no pidfds: a dead parent shows as a new parent pid */
        while (parent_alive()) {
            if (mp__deadline_passed(&d))
                return MP_ETIMEDOUT;
            struct timespec tick = {0, 10 * 1000000L};
            nanosleep(&tick, NULL);
        }
        return 0;
    }
    if (fd < 0)
        return fd;
    int rc = mp__poll_one(fd, POLLIN, &d, NULL);
    return rc < 0 ? rc : 0;
}

/* Blocks until pid has ended, without reaping it. */
static void wait_ended(pid_t pid)
{
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR)
        ;
}

/* Without pidfds the sentinel is a pipe that another child forked meanwhile may
 * also hold, so it may never hang up: poll it in slices and reap in between. */
#define PIPE_POLL_SLICE_MS 50

static int join_child(mp_process *p, int timeout_ms)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->kind == KIND_CURRENT)
        return MP_EINVAL; /* Python: "cannot join current process" (no text: shared) */
    if (p->kind == KIND_PARENT)
        return join_parent(timeout_ms);
    mp__deadline d;
    if (mp__deadline_init(&d, timeout_ms) != 0)
        return note(p, MP_EINVAL, "timeout below -1");
    for (;;) {
        lock();
        int rc = check_child(p, "join");
        bool done = rc == 0 && try_reap(p);
        int fd = -1, exit_fd = -1;
        bool wait_pid = d.forever && !p->via_fs; /* a forkserver child is not ours to wait */
        if (rc == 0 && !done && !wait_pid) {
            rc = fd = child_sentinel(p);
            p->pollers += fd >= 0;      /* keeps fd open: close refuses while we poll */
            if (fd >= 0 && p->via_fs) { /* the server's word, and the pidfd before it */
                fd = p->fs.status_fd;
                exit_fd = mp__fs_exit_fd(&p->fs);
            }
        }
        pid_t pid = p->pid;
        unlock();
        if (rc < 0)
            return rc;
        if (done)
            return 0;
        if (wait_pid) { /* the cheapest wait, and it cannot be fooled by a shared pipe */
            wait_ended(pid);
            continue;
        }
        mp__deadline slice;
        mp__deadline_init(&slice, PIPE_POLL_SLICE_MS);
        bool sliced =
            !mp__have_pidfd() && !p->via_fs && mp__deadline_poll_ms(&d) > PIPE_POLL_SLICE_MS;
        rc = p->via_fs ? mp__fs_wait(fd, exit_fd, &d)
                       : mp__poll_one(fd, POLLIN, sliced ? &slice : &d, NULL);
        lock();
        p->pollers--;
        done = try_reap(p);
        unlock();
        if (done)
            return 0;
        if (rc == MP_ETIMEDOUT && sliced)
            continue;
        if (rc < 0)
            return rc;
    }
}

/* A join in progress counts in joiners from start to end, so the reaper never
 * frees a fire-and-forget handle under it (see reap_destroyed). */
int mp_process_join(mp_process *p, int timeout_ms)
{
    if (p == NULL || p->kind != KIND_CHILD)
        return join_child(p, timeout_ms);
    lock();
    p->joiners++;
    unlock();
    int rc = join_child(p, timeout_ms);
    lock();
    p->joiners--;
    unlock();
    return rc;
}

bool mp_process_is_alive(mp_process *p)
{
    if (p == NULL)
        return false;
    if (p->kind == KIND_CURRENT)
        return true;
    if (p->kind == KIND_PARENT)
        return parent_alive();
    lock();
    bool alive = check_child(p, "test") == 0 && !try_reap(p);
    unlock();
    return alive;
}

pid_t mp_process_pid(const mp_process *p)
{
    if (p == NULL)
        return 0;
    if (p->kind == KIND_CURRENT)
        return mp__self_pid();
    lock(); /* start writes pid under the lock */
    pid_t pid = p->pid;
    unlock();
    return pid;
}

const char *mp_process_name(const mp_process *p)
{
    return p != NULL ? p->name : NULL;
}

bool mp_process_daemon(const mp_process *p)
{
    return p != NULL && p->daemon;
}

int mp_process_exitcode(mp_process *p, int *exitcode)
{
    if (p == NULL || exitcode == NULL)
        return MP_EINVAL;
    if (p->kind != KIND_CHILD)
        return MP_ENOTREADY;
    lock();
    int rc = check_child(p, "test");
    if (rc == 0)
        rc = try_reap(p) ? 0 : MP_ENOTREADY;
    if (rc == 0)
        *exitcode = p->exitcode;
    unlock();
    return rc;
}

static int send_signal(mp_process *p, int sig)
{
    if (p == NULL)
        return MP_EINVAL;
    lock();
    int rc = check_child(p, "signal");
    if (rc == 0 && !try_reap(p))
        rc = child_signal(p, sig); /* unreaped: the pid is still p's */
    unlock();
    return rc;
}

int mp_process_terminate(mp_process *p)
{
    return send_signal(p, SIGTERM);
}

int mp_process_kill(mp_process *p)
{
    return send_signal(p, SIGKILL);
}

int mp_process_sentinel(mp_process *p)
{
    if (p == NULL || p->kind == KIND_CURRENT)
        return MP_EINVAL;
    lock();
    int rc = p->kind == KIND_PARENT ? parent_sentinel() : check_child(p, "sentinel");
    if (rc == 0 && p->kind == KIND_CHILD)
        rc = child_sentinel(p);
    unlock();
    return rc;
}

int mp_process_close(mp_process *p)
{
    if (p == NULL || p->kind != KIND_CHILD)
        return MP_EINVAL;
    if (!mp__id_is_self(p->owner))
        return note(p, MP_ECHILD, "can only close a child process");
    lock();
    int rc = 0;
    if (!p->closed && !p->destroyed) { /* a destroyed one is freed by the reaper */
        if (p->starting || (p->pid != 0 && !try_reap(p)) || p->pollers > 0) {
            rc = note(p, MP_EBUSY,
                      "Cannot close a process while it is still running. You should first call "
                      "join() or terminate().");
        } else {
            if (p->linked)
                registry_remove(p);
            close_child_fds(p);
            p->closed = true;
        }
    }
    unlock();
    return rc;
}

void mp_process_destroy(mp_process *p)
{
    if (p == NULL || p->kind != KIND_CHILD)
        return;
    if (!mp__id_is_self(p->owner)) { /* a copy inherited through fork: not ours to reap */
        if (p != self)
            free_process(p);
        return;
    }
    lock();
    if (p->destroyed) { /* destroyed before, listed by mp_active_children since */
        unlock();
        return;
    }
    bool running = p->starting || (p->linked && !try_reap(p));
    if (running)
        p->destroyed = true; /* freed by whoever reaps it */
    else if (p->linked)
        registry_remove(p);
    unlock();
    if (!running)
        free_process(p);
}

mp_process *mp_current_process(void)
{
    return &current;
}

mp_process *mp_parent_process(void)
{
    return have_parent ? &parent : NULL;
}

int mp_active_children(mp_process ***children)
{
    if (children != NULL)
        *children = NULL;
    lock();
    reap_destroyed(true);
    /* Python keeps a started child in _children until it is joined, whether or not
     * the program kept the Process object: a destroyed handle's child is listed too
     * (and then stays valid until the next call, see listed). */
    size_t n = 0;
    for (mp_process *p = registry; p != NULL; p = p->next)
        n += !try_reap(p);
    int rc = (int)n;
    if (children != NULL && n > 0) {
        mp_process **list = malloc(n * sizeof *list);
        if (list == NULL) {
            rc = MP_ENOMEM;
        } else {
            size_t i = 0;
            for (mp_process *p = registry; p != NULL; p = p->next)
                if (!p->reaped) {
                    p->listed = p->destroyed;
                    list[i++] = p;
                }
            *children = list;
        }
    }
    unlock();
    return rc;
}

/* CPython's exit function: terminate daemon children, then join every child. */
static void at_exit(void)
{
    lock();
    for (mp_process *p = registry; p != NULL; p = p->next)
        if (p->daemon && !try_reap(p))
            child_signal(p, SIGTERM);
    unlock();
    for (;;) {
        mp_process *waiting = NULL;
        lock();
        for (mp_process *p = registry; p != NULL && waiting == NULL; p = p->next)
            if (!try_reap(p))
                waiting = p;
        unlock();
        if (waiting == NULL)
            return;
        mp_process_join(waiting, -1);
    }
}

int mp_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
