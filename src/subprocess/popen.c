/* popen.c — mp_popen: starting external commands, waiting for them, signalling
 * them and talking to them (communicate), as CPython's subprocess.Popen.
 *
 * The parent prepares everything the child needs (argv, envp, the PATH
 * candidates, the pipes) and hands it to mp__spawn (src/linux/spawn.c), the only
 * code that runs in the child before exec.
 *
 * Reaping: a handle reaps only its own pid, with waitpid(pid, WNOHANG) under the
 * handle's lock, never -1, so other children of the program keep their statuses.
 * Until mproc reaps the child its pid cannot be reused, so a signal sent under the
 * lock while the child is not reaped reaches the right process, and after it the
 * handle knows the child is gone and signals become no-ops. Blocking waits wait for
 * the exit without reaping (a pidfd poll, or waitid WNOWAIT) and then reap under the
 * lock, so several threads may wait, poll and signal one handle at once. A handle
 * destroyed while its child runs leaves the pid on a small list that later calls
 * reap (Python's _active list).
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
#include "linux/spawn.h"
#include "linux/sys.h"
#include "mproc/subprocess.h"
#include "subprocess/subprocess.h"

extern char **environ;

#define DEFAULT_PATH "/bin:/usr/bin"
#define PIPE_SIZE (1 << 20) /* asked for pipes that carry bulk data; a hint */

/* ---- children whose handle was destroyed while they ran --------------------- */

static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *orphans; /* under orphans_lock */
static size_t n_orphans, cap_orphans;
static mp__proc_id orphans_owner; /* the process whose children these are */
static pthread_once_t orphans_once = PTHREAD_ONCE_INIT;

/* fork() while another thread holds orphans_lock would leave the lock held for
 * good in the child: fork takes it first, and the child starts with an empty list
 * (the parent's children are not its own). */
static void orphans_postfork_child(void)
{
    n_orphans = 0;
    orphans_owner = 0; /* the next add_orphan records the child (no /proc read in fork) */
}
static void orphans_init(void)
{
    static const struct mp__fork_handlers h = {.mutex = &orphans_lock,
                                               .child = orphans_postfork_child};
    mp__fork_register(MP__FORK_POPEN, &h);
}

static void lock_orphans(void)
{
    pthread_once(&orphans_once, orphans_init);
    pthread_mutex_lock(&orphans_lock);
}

static void reap_orphans(void)
{
    lock_orphans();
    if (!mp__id_is_self(orphans_owner))
        n_orphans = 0; /* inherited across fork: the parent's children, not ours */
    for (size_t i = 0; i < n_orphans;) {
        pid_t r;
        do
            r = waitpid(orphans[i], NULL, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r != 0)
            orphans[i] = orphans[--n_orphans];
        else
            i++;
    }
    pthread_mutex_unlock(&orphans_lock);
}

static void add_orphan(pid_t pid)
{
    lock_orphans();
    if (!mp__id_is_self(orphans_owner)) {
        orphans_owner = mp__self_id();
        n_orphans = 0;
    }
    if (n_orphans == cap_orphans) {
        size_t cap = cap_orphans ? cap_orphans * 2 : 16;
        pid_t *a = realloc(orphans, cap * sizeof *a);
        if (a != NULL) {
            orphans = a;
            cap_orphans = cap;
        }
    }
    if (n_orphans < cap_orphans)
        orphans[n_orphans++] = pid; /* else it stays a zombie: no memory to remember it */
    pthread_mutex_unlock(&orphans_lock);
}

/* ---- building the plan ----------------------------------------------------- */

static size_t name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* base (or environ) with extra applied; the strings are borrowed, the array is
 * malloc'd. */
static char **merge_env(const char *const *base, const char *const *extra)
{
    if (base == NULL)
        base = (const char *const *)environ;
    size_t nb = 0, ne = 0;
    while (base != NULL && base[nb] != NULL)
        nb++;
    while (extra != NULL && extra[ne] != NULL)
        ne++;
    char **env = malloc((nb + ne + 1) * sizeof *env);
    if (env == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) {
        size_t len = name_len(base[i]);
        bool overridden = false;
        for (size_t j = 0; j < ne && !overridden; j++)
            overridden = name_len(extra[j]) == len && strncmp(extra[j], base[i], len) == 0;
        if (!overridden)
            env[n++] = (char *)base[i];
    }
    for (size_t j = 0; j < ne; j++) {
        bool later = false; /* the last of duplicate names wins */
        for (size_t k = j + 1; k < ne && !later; k++)
            later = name_len(extra[k]) == name_len(extra[j]) &&
                    strncmp(extra[k], extra[j], name_len(extra[j])) == 0;
        if (!later && strchr(extra[j], '=') != NULL) /* "NAME" alone unsets NAME */
            env[n++] = (char *)extra[j];
    }
    env[n] = NULL;
    return env;
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (; envp != NULL && *envp != NULL; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

/* The paths execve will try, in order: prog itself when it has a '/', else
 * each PATH entry joined with prog (an empty entry is the current directory).
 * As in CPython, an empty prog has no directory part either, so it becomes each
 * "dir/": exec fails with EACCES ("Permission denied: ''"), not ENOENT. */
static char **exec_candidates(const char *prog, const char *path)
{
    if (strchr(prog, '/') != NULL) {
        const char *one[] = {prog, NULL};
        return mp__strv_copy(one, 0);
    }
    if (path == NULL)
        path = DEFAULT_PATH;
    size_t plen = strlen(prog), n = 1;
    for (const char *c = path; *c; c++)
        n += *c == ':';
    char **out = malloc((n + 1) * sizeof *out + strlen(path) + n * (plen + 2));
    if (out == NULL)
        return NULL;
    char *s = (char *)(out + n + 1);
    size_t k = 0;
    for (const char *dir = path;;) {
        const char *end = strchr(dir, ':');
        size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
        out[k++] = s;
        if (dlen > 0) {
            memcpy(s, dir, dlen);
            s += dlen;
            *s++ = '/';
        }
        memcpy(s, prog, plen + 1);
        s += plen + 1;
        if (end == NULL)
            break;
        dir = end + 1;
    }
    out[k] = NULL;
    return out;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int check_options(const char *const *argv, const mp_popen_options *o)
{
    if (argv == NULL || argv[0] == NULL)
        return MP_EINVAL;
    const mp_stdio modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int fds[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (modes[i] < MP_INHERIT || modes[i] > MP_STDOUT || (modes[i] == MP_STDOUT && i != 2))
            return MP_EINVAL;
        if (modes[i] == MP_FD && fds[i] < 0)
            return MP_EINVAL;
    }
    if (o->n_pass_fds > 0 && o->pass_fds == NULL)
        return MP_EINVAL;
    for (size_t i = 0; i < o->n_pass_fds; i++)
        if (o->pass_fds[i] < 0)
            return MP_EINVAL;
    if (o->set_process_group && o->process_group < 0)
        return MP_EINVAL;
    if (o->set_umask && o->umask > 07777)
        return MP_EINVAL;
    /* A closed descriptor is refused here, before new pipes could take its number. */
    for (int i = 0; i < 3; i++)
        if (modes[i] == MP_FD && fcntl(fds[i], F_GETFD) < 0)
            return -errno;
    for (size_t i = 0; i < o->n_pass_fds; i++)
        if (fcntl(o->pass_fds[i], F_GETFD) < 0)
            return -errno;
    return 0;
}

static int make_pipe(int fd[2])
{
    return pipe2(fd, O_CLOEXEC) ? -errno : 0;
}

static void set_message(mp_popen *p, int step, int err, const char *prog, const char *cwd)
{
    const char *what = mp__errno_text(err);
    if (what == NULL)
        what = "Unknown error";
    if (step == MP__STEP_PREEXEC)
        snprintf(p->message, sizeof p->message, "preexec callback failed");
    else if (step == MP__STEP_EXEC)
        snprintf(p->message, sizeof p->message, "%s: '%s'", what, prog);
    else if (step == MP__STEP_CHDIR)
        snprintf(p->message, sizeof p->message, "%s: '%s'", what, cwd);
    else
        snprintf(p->message, sizeof p->message, "%s (%s)", what, mp__spawn_step_name(step));
}

int mp_popen_new(mp_popen **out, const char *const *argv, const mp_popen_options *opt)
{
    static const mp_popen_options defaults;
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    const mp_popen_options *o = opt != NULL ? opt : &defaults;
    int rc = check_options(argv, o);
    if (rc != 0)
        return rc;
    reap_orphans();

    mp_popen *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    p->owner = mp__self_id();
    p->pidfd = p->fd_in = p->fd_out = p->fd_err = -1;
    pthread_mutex_init(&p->lock, NULL);
    int child_fds[3] = {-1, -1, -1}, devnull = -1;
    char **exec_argv = NULL, **envp = NULL, **candidates = NULL;
    int *pass = NULL;
    rc = MP_ENOMEM;
    if ((p->args = mp__strv_copy(argv, 0)) == NULL)
        goto out_fail;

    /* Python: shell prepends "/bin/sh -c"; executable replaces argv[0] of the
     * shell, or is the program to run with argv left as given. */
    const char *prog;
    if (o->shell) {
        if ((exec_argv = mp__strv_copy(argv, 2)) == NULL)
            goto out_fail;
        exec_argv[0] = (char *)(o->executable ? o->executable : "/bin/sh");
        exec_argv[1] = "-c";
        prog = exec_argv[0];
    } else {
        exec_argv = p->args;
        prog = o->executable ? o->executable : argv[0];
    }
    if (o->env != NULL || o->env_extra != NULL) {
        static const char *const empty[] = {NULL};
        envp = merge_env(o->env != NULL ? o->env : (o->env_extra ? NULL : empty), o->env_extra);
        if (envp == NULL)
            goto out_fail;
    }
    char *const *child_env = envp != NULL ? envp : environ;
    const char *path = envp != NULL || o->env != NULL ? env_get(child_env, "PATH") : getenv("PATH");
    if ((candidates = exec_candidates(prog, path)) == NULL)
        goto out_fail;

    size_t n_pass = 0;
    if (o->n_pass_fds > 0) {
        if ((pass = malloc(o->n_pass_fds * sizeof *pass)) == NULL)
            goto out_fail;
        for (size_t i = 0; i < o->n_pass_fds; i++)
            if (o->pass_fds[i] >= 3)
                pass[n_pass++] = o->pass_fds[i];
        qsort(pass, n_pass, sizeof *pass, cmp_int);
    }

    const mp_stdio modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int given[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    int *parent_end[3] = {&p->fd_in, &p->fd_out, &p->fd_err};
    for (int i = 0; i < 3; i++) {
        int fd[2];
        switch (modes[i]) {
        case MP_PIPE:
            if ((rc = make_pipe(fd)) != 0)
                goto out_fail;
            *parent_end[i] = i == 0 ? fd[1] : fd[0];
            child_fds[i] = i == 0 ? fd[0] : fd[1];
            break;
        case MP_DEVNULL:
            if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
                rc = -errno;
                goto out_fail;
            }
            break;
        default:
            break;
        }
    }
    p->in_piped = p->fd_in >= 0;
    p->out_piped = p->fd_out >= 0;
    p->err_piped = p->fd_err >= 0;

    mp__spawn_plan plan = {
        .candidates = candidates,
        .argv = exec_argv,
        .envp = child_env,
        .cwd = o->cwd,
        .close_fds = !o->keep_fds || n_pass > 0,
        .pass_fds = pass,
        .n_pass_fds = n_pass,
        .new_session = o->start_new_session,
        .process_group = o->set_process_group ? o->process_group : -1,
        .umask = o->set_umask ? (int)o->umask : -1,
        .restore_signals = !o->keep_signals,
        .preexec = o->preexec,
        .preexec_arg = o->preexec_arg,
        .stderr_to_stdout = modes[2] == MP_STDOUT,
    };
    for (int i = 0; i < 3; i++)
        plan.stdio[i] = modes[i] == MP_PIPE      ? child_fds[i]
                        : modes[i] == MP_DEVNULL ? devnull
                        : modes[i] == MP_FD      ? given[i]
                                                 : -1;

    int step, child_errno;
    rc = mp__spawn(&plan, &p->pid, &step, &child_errno);
    if (rc != 0 && step != MP__STEP_NONE) {
        set_message(p, step, child_errno, prog, o->cwd);
        p->pid = 0;
        p->failed = true;
    }
    if (rc == 0) {
        int fd = mp__pidfd_open(p->pid);
        p->pidfd = fd >= 0 ? fd : -1; /* without one, waits poll with sleeps */
    }

out_fail:
    for (int i = 0; i < 3; i++)
        mp__close_fd(child_fds[i]);
    mp__close_fd(devnull);
    free(pass);
    free(candidates);
    free(envp);
    if (exec_argv != p->args)
        free(exec_argv);
    if (rc != 0) {
        mp__close_fd(p->fd_in);
        mp__close_fd(p->fd_out);
        mp__close_fd(p->fd_err);
        p->fd_in = p->fd_out = p->fd_err = -1;
        if (!p->failed) {
            pthread_mutex_destroy(&p->lock);
            free(p->args);
            free(p);
            return rc;
        }
    }
    *out = p;
    return rc;
}

const char *mp_popen_message(const mp_popen *p)
{
    if (p == NULL)
        return "";
    if (p->failed)
        return p->message;
    const char *note = __atomic_load_n(&p->note, __ATOMIC_RELAXED);
    return note != NULL ? note : "";
}

pid_t mp_popen_pid(const mp_popen *p)
{
    return p != NULL ? p->pid : 0;
}

const char *const *mp_popen_args(const mp_popen *p)
{
    return p != NULL ? (const char *const *)p->args : NULL;
}

int mp_popen_stdin(const mp_popen *p)
{
    return p != NULL ? p->fd_in : -1;
}
int mp_popen_stdout(const mp_popen *p)
{
    return p != NULL ? p->fd_out : -1;
}
int mp_popen_stderr(const mp_popen *p)
{
    return p != NULL ? p->fd_err : -1;
}

static int close_end(mp_popen *p, int *fd)
{
    if (p == NULL)
        return MP_EINVAL;
    mp__close_fd(*fd);
    *fd = -1;
    return 0;
}

/* Hands the descriptor over: the handle forgets it, communicate treats the
 * stream as closed. */
static int take_end(mp_popen *p, int *fd, const char *none)
{
    if (p == NULL)
        return MP_EINVAL;
    if (*fd < 0)
        return mp__popen_note(p, MP_EBADF, none);
    int taken = *fd;
    *fd = -1;
    return taken;
}

int mp_popen_take_stdin(mp_popen *p)
{
    return take_end(p, p ? &p->fd_in : NULL, "stdin is not a pipe, or was closed or taken");
}
int mp_popen_take_stdout(mp_popen *p)
{
    return take_end(p, p ? &p->fd_out : NULL, "stdout is not a pipe, or was closed or taken");
}
int mp_popen_take_stderr(mp_popen *p)
{
    return take_end(p, p ? &p->fd_err : NULL, "stderr is not a pipe, or was closed or taken");
}

int mp_popen_close_stdin(mp_popen *p)
{
    return close_end(p, p ? &p->fd_in : NULL);
}
int mp_popen_close_stdout(mp_popen *p)
{
    return close_end(p, p ? &p->fd_out : NULL);
}
int mp_popen_close_stderr(mp_popen *p)
{
    return close_end(p, p ? &p->fd_err : NULL);
}

/* ---- waiting and signals --------------------------------------------------- */

static int check_running_handle(const mp_popen *p)
{
    if (p == NULL || p->failed)
        return MP_EINVAL;
    if (!mp__id_is_self(p->owner))
        return MP_ECHILD;
    return 0;
}

/* Reaps the child if it has ended, never blocking; the caller holds p->lock.
 * True once reaped (by this call or an earlier one). */
static bool reap_locked(mp_popen *p)
{
    /* A status the program's own waitpid(-1) or SIGCHLD = SIG_IGN took away is
     * reported as 0, as CPython does (ChildProcessError in _try_wait). */
    if (!p->reaped)
        p->reaped = mp__reap_nohang_lost(p->pid, &p->returncode, 0);
    return p->reaped;
}

static bool try_reap(mp_popen *p)
{
    pthread_mutex_lock(&p->lock);
    bool done = reap_locked(p);
    pthread_mutex_unlock(&p->lock);
    return done;
}

/* Several threads may wait at once (and another may signal): each waits for the
 * exit without reaping, then reaps under the lock, and the losers find reaped. */
int mp__popen_wait_deadline(mp_popen *p, const mp__deadline *d)
{
    unsigned sleep_us = 100;
    while (!try_reap(p)) {
        if (p->pidfd >= 0) {
            int r = mp__poll_one(p->pidfd, POLLIN, d, NULL);
            if (r < 0 && r != MP_ETIMEDOUT)
                return r;
            if (r == MP_ETIMEDOUT && !try_reap(p))
                return MP_ETIMEDOUT;
            continue;
        }
        if (d->forever) {
            siginfo_t si;
            int r;
            do
                r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT);
            while (r != 0 && errno == EINTR);
            if (r != 0 && errno != ECHILD) /* ECHILD: reaped meanwhile; try_reap knows */
                return -errno;
            continue;
        }
        /* No pidfd: poll the status with growing sleeps, as CPython does. */
        if (mp__deadline_passed(d))
            return MP_ETIMEDOUT;
        struct timespec left, nap = {0, (long)sleep_us * 1000};
        mp__deadline_left(d, &left);
        if (mp__timespec_before(&left, &nap))
            nap = left;
        nanosleep(&nap, NULL);
        if (sleep_us < 50000)
            sleep_us *= 2;
    }
    return 0;
}

int mp_popen_poll(mp_popen *p, int *returncode)
{
    int rc = check_running_handle(p);
    if (rc != 0)
        return rc;
    if (!try_reap(p))
        return MP_ENOTREADY;
    if (returncode != NULL)
        *returncode = p->returncode;
    return 0;
}

int mp_popen_wait(mp_popen *p, int timeout_ms, int *returncode)
{
    int rc = check_running_handle(p);
    if (rc != 0)
        return rc;
    mp__deadline d;
    if ((rc = mp__deadline_init(&d, timeout_ms)) != 0)
        return rc;
    if ((rc = mp__popen_wait_deadline(p, &d)) != 0)
        return rc;
    if (returncode != NULL)
        *returncode = p->returncode;
    return 0;
}

int mp_popen_returncode(const mp_popen *p, int *returncode)
{
    if (p == NULL || p->failed)
        return MP_EINVAL;
    /* In a forked child the lock may have been copied held; nothing changes there. */
    bool mine = mp__id_is_self(p->owner);
    pthread_mutex_t *lock = (pthread_mutex_t *)&p->lock; /* p is logically const */
    if (mine)
        pthread_mutex_lock(lock);
    int rc = p->reaped ? 0 : MP_ENOTREADY;
    if (rc == 0 && returncode != NULL)
        *returncode = p->returncode;
    if (mine)
        pthread_mutex_unlock(lock);
    return rc;
}

int mp_popen_send_signal(mp_popen *p, int sig)
{
    int rc = check_running_handle(p);
    if (rc != 0)
        return rc;
    if (sig < 0 || sig >= NSIG)
        return MP_EINVAL;
    /* Under the lock and not reaped: the pid is still ours, no thread can reap it
     * before the signal is sent. */
    pthread_mutex_lock(&p->lock);
    if (!reap_locked(p))
        rc = p->pidfd >= 0 ? mp__pidfd_signal(p->pidfd, sig) : kill(p->pid, sig) == 0 ? 0 : -errno;
    pthread_mutex_unlock(&p->lock);
    return rc == MP_ESRCH ? 0 : rc;
}

int mp_popen_terminate(mp_popen *p)
{
    return mp_popen_send_signal(p, SIGTERM);
}
int mp_popen_kill(mp_popen *p)
{
    return mp_popen_send_signal(p, SIGKILL);
}

void mp_popen_destroy(mp_popen *p)
{
    if (p == NULL)
        return;
    mp__close_fd(p->fd_in);
    mp__close_fd(p->fd_out);
    mp__close_fd(p->fd_err);
    mp__close_fd(p->pidfd);
    if (!p->failed && mp__id_is_self(p->owner) && !try_reap(p))
        add_orphan(p->pid);
    pthread_mutex_destroy(&p->lock);
    free(p->out.data);
    free(p->err.data);
    free(p->args);
    free(p);
    reap_orphans();
}
