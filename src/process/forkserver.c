/* process/forkserver.c — the forkserver start method: a small server process,
 * a fresh exec of the program, forks each child, so starting one costs the same
 * whatever the size of the parent and is safe from a multi-threaded parent.
 *
 * The server. mp_forkserver_ensure_running spawns /proc/self/exe (posix_spawn:
 * its cost does not depend on the parent's size) with descriptor 3 the server's
 * end of a SOCK_SEQPACKET socketpair (the control socket), 0/1/2 on /dev/null,
 * no other descriptor, default signal dispositions, and MPROC_FORKSERVER_FD=3 in
 * its environment. The constructor below sees the variable and enters the server
 * loop instead of letting the program reach main; it says hello (its pid) and
 * then serves requests until the control socket closes (the parent stopped it or
 * exited), then _exits: no server outlives its parent. Its daemon children die
 * with it (the kernel's parent-death signal; the server has one thread). It is a
 * child of the parent, reaped by mp_forkserver_stop or when a start finds it dead.
 *
 * A start. The parent sends one message: struct request, then the object name,
 * the child's name and identity, and the argument bytes (inline up to
 * INLINE_ARG_MAX, else in a memfd), with SCM_RIGHTS for the server's end of a
 * fresh status socketpair, the caller's descriptors 0, 1 and 2 (those open), a
 * pidfd of the parent (opened once per server), and the memfd. The target travels as (object name,
 * offset from its load address): the server finds the same object by name (ASLR gives it another
 * base) and checks that the address lies in an executable segment; a library dlopen'ed after the
 * server started is not there, and the start is refused with MP_ENOENT. The spare (below) reads the
 * request and becomes the child: it installs the descriptors as 0/1/2, closes every other (the
 * parent's pidfd stays as 3), becomes the named process and exits with target(arg). It answers on
 * the status socket with REPLY_STARTED (pid, and a pidfd of itself as SCM_RIGHTS) or REPLY_REFUSED
 * (error code; it stays the spare). When the server has no spare it reads the request and forks the
 * child itself, which then does what a spare that took it does. When the child ends (SIGCHLD
 * through a signalfd) the server writes REPLY_EXITED (the exit code as Python
 * reports it) and closes its end: the status socket is readable once the child
 * has ended, and hung up without REPLY_EXITED if the server died (status lost:
 * 255).
 *
 * The end, without the server. Where the kernel tells a reaped process's exit
 * status to any holder of its pidfd (PIDFD_INFO_EXIT, Linux >= 6.15; probed at
 * the server's start, said in its hello) the server sets SA_NOCLDWAIT: the
 * kernel reaps each child in the child's own exit, and its pidfd, readable at
 * that moment, is the parent's sentinel. A join polls the pidfd and the status
 * socket, and takes the status from the pidfd (the server's word, if it came
 * first, counts first): one wake-up (the child's exit waking the starter), as
 * a join of a forked child, where the server's word was two (the child's exit
 * waking the server, the server's write waking the starter), each costing
 * 12 us on a shared CPU and 100-1000 us across idle ones on a VM. The server
 * learns the ends from its own pidfds of the children (their reports carry
 * them) and still writes REPLY_EXITED. Without PIDFD_INFO_EXIT the server
 * reaps with waitpid, the status socket is the sentinel, and a join waits for
 * the server's word (a pidfd readable before it only says the end is near).
 *
 * The spares. The server keeps two children forked in advance (SPARES), blocked
 * in recvmsg on the control socket (the server itself then polls that socket
 * only for the parent's hang-up): a start wakes one, not the server, and costs
 * no fork on its path; two, so that back-to-back starts find one asleep while
 * the server forks the replacement of the last (with one, most starts of a
 * start+join loop found the next spare still being forked). A spare that takes a request first
 * queues for the server its pid, the server's copy of the status socket and a pidfd of itself on a
 * private socketpair (spare_sock) that the server does not poll (nothing wakes), and only then
 * answers the starter: the server knows the child before anything could signal or end it, as it
 * reads those reports before it handles any end. Then it rings the bell (an eventfd the server
 * polls), and the server forks the next spare while the child runs: the fork no longer runs between
 * the spare's report and the starter's answer (the server, woken first, preempted the spare on a
 * shared CPU). A spare has the parent-death signal SIGKILL (it dies with the server), dropped when
 * it becomes a non-daemon child. A spare is a copy of the server, whose state never changes, so the
 * child is what a fork at start would have made (process.h lists what it inherits).
 *
 * Choices, and why:
 *  - The answers come on the child's own status socket, not the control socket:
 *    threads starting children at once only serialise on one sendmsg, never on
 *    the server's round trip, and a dead server shows on every waiting start
 *    as a hang-up (its queued messages, and the descriptors in them, are freed).
 *  - The exit status is read with MSG_PEEK and left in the socket, so the
 *    sentinel stays readable after the reap, whenever the server closes its end.
 *  - The parent sends a pidfd of itself, so the child's mp_parent_process()
 *    watches the starter (not its real parent, the server) without pid reuse.
 *  - The server's stdio is /dev/null and it holds no other descriptor of the
 *    parent (closefrom at spawn): a pipe the parent gives a child hangs up when
 *    the child and the parent are done with it, not when the server exits.
 *
 * A status socket that hangs up without REPLY_STARTED (or brings REPLY_EXITED
 * first) means the server died or the child was killed between taking the
 * request and answering: the starter drops the server only if it is gone (a
 * zombie, or the control socket hung up) and is the one the request went to.
 * The server holds a descriptor or two per running child: it raises its soft
 * RLIMIT_NOFILE to the hard limit, and its children get the old one back.
 *
 * The parent trusts its own server only (an anonymous socketpair), but still
 * checks every length and kind it reads.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fork.h"
#include "linux/pidfd.h"
#include "mproc/error.h"
#include "process/forkserver.h"

extern char **environ;

#define ENV_FD "MPROC_FORKSERVER_FD"
#define ENV_METHOD "MPROC_START_METHOD"
#define ENV_NO_AUTOREAP "MPROC_FORKSERVER_NO_AUTOREAP"
#define SERVER_FD 3
#define REQUEST_MAGIC 0x6d70f5e1u
#define INLINE_ARG_MAX (32 * 1024)
#define NAME_MAX_LEN 4096
#define REPLY_TIMEOUT_MS 10000
#define HELLO_TIMEOUT_MS 10000
#define MAX_FDS 8
#define AUTOREAP_SPINS 1000
#define SPARES 2 /* waiting at once: one is ready while the server forks the next */

enum { HAVE_STDIN = 1, HAVE_STDOUT = 2, HAVE_STDERR = 4, HAVE_PARENT_PIDFD = 8, HAVE_MEMFD = 16 };
/* REPLY_HELLO_AUTOREAP: a hello from a server whose children the kernel reaps. */
enum { REPLY_HELLO = 1, REPLY_STARTED, REPLY_REFUSED, REPLY_EXITED, REPLY_HELLO_AUTOREAP };

struct request {
    uint32_t magic;
    uint32_t fds; /* HAVE_*: which descriptors follow the status socket, in order */
    int32_t parent_pid;
    uint32_t daemon;
    uint32_t object_len, name_len, identity_len, pname_len, pidentity_len;
    uint32_t inline_arg; /* the argument bytes follow the strings */
    uint64_t offset;     /* target - object's load address */
    uint64_t arg_size;   /* 0: arg_value is the argument */
    uint64_t arg_value;
};

struct reply {
    int32_t kind;
    int32_t value; /* pid, error code or exit code */
};

/* ---- the parent's side ---- */

static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;
static int ctl_fd = -1;        /* the parent's end of the control socket; under client_lock */
static pid_t server_pid;       /* 0 when none; under client_lock */
static pid_t client_pid;       /* the process ctl_fd belongs to */
static int starter_pidfd = -1; /* a pidfd of client_pid, sent with each start; under client_lock */
static bool server_autoreaps;  /* its hello said so; under client_lock */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A child of fork() has no forkserver: the parent's is not its to use, and its
 * copy of the control socket must not keep the server alive after the parent.
 * The hub holds client_lock across fork and releases it after this handler. */
static void client_after_fork(void)
{
    mp__close_fd(ctl_fd);
    ctl_fd = -1;
    mp__close_fd(starter_pidfd);
    starter_pidfd = -1;
    server_pid = 0;
}

static void client_register_atfork(void)
{
    static const struct mp__fork_handlers h = {.mutex = &client_lock, .child = client_after_fork};
    mp__fork_register(MP__FORK_FORKSERVER, &h);
}

/* ---- start method ---- */

static int default_method; /* 0: not decided yet */
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static void read_method_env(void)
{
    const char *v = getenv(ENV_METHOD);
    int m = MP_START_FORK;
    if (v != NULL && strcmp(v, "forkserver") == 0)
        m = MP_START_FORKSERVER;
    int expected = 0;
    __atomic_compare_exchange_n(&default_method, &expected, m, false, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

int mp_set_start_method(mp_start_method method)
{
    if (method != MP_START_FORK && method != MP_START_FORKSERVER)
        return MP_EINVAL;
    pthread_once(&method_once, read_method_env);
    __atomic_store_n(&default_method, (int)method, __ATOMIC_RELAXED);
    return 0;
}

mp_start_method mp_get_start_method(void)
{
    pthread_once(&method_once, read_method_env);
    return (mp_start_method)__atomic_load_n(&default_method, __ATOMIC_RELAXED);
}

/* ---- messages ---- */

static int send_with_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

/* Receives one message into buf (at most len bytes) and up to max_fds
 * descriptors (close-on-exec; the rest, if any, closed). Returns the byte count
 * (0: the peer closed), or a negative errno. */
static ssize_t recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds,
                             int flags)
{
    union {
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control};
    *nfds = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < max_fds)
                fds[(*nfds)++] = fd;
            else
                mp__close_fd(fd);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (int i = 0; i < *nfds; i++)
            mp__close_fd(fds[i]);
        *nfds = 0;
        return MP_EPROTO;
    }
    return n;
}

/* ---- finding the target in the same object of another process ---- */

struct find_addr {
    uintptr_t addr;
    const char *name; /* out: the object's name ("" for the program) */
    uintptr_t base;
    bool found;
};

static bool in_exec_segment(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && addr >= start &&
            addr - start < ph->p_memsz)
            return true;
    }
    return false;
}

static int find_by_addr(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find_addr *f = data;
    if (!in_exec_segment(info, f->addr))
        return 0;
    f->name = info->dlpi_name != NULL ? info->dlpi_name : "";
    f->base = info->dlpi_addr;
    f->found = true;
    return 1;
}

struct find_name {
    const char *name;
    uint64_t offset;
    uintptr_t addr; /* out */
    bool found, exec;
};

static int find_by_name(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find_name *f = data;
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    if (strcmp(name, f->name) != 0)
        return 0;
    f->found = true;
    f->addr = info->dlpi_addr + (uintptr_t)f->offset;
    f->exec = f->addr >= info->dlpi_addr && in_exec_segment(info, f->addr);
    return 1;
}

/* ---- launching and stopping the server ---- */

/* Reaps the server (ours, unreaped: its pid is still its own). Caller holds
 * client_lock and has closed ctl_fd. */
static void reap_server(bool kill_it)
{
    if (server_pid <= 0)
        return;
    if (kill_it)
        kill(server_pid, SIGKILL);
    /* Without the control socket it exits at once; give it 2 s, then kill it. */
    for (int i = 0; i < 2000; i++) {
        pid_t r = waitpid(server_pid, NULL, WNOHANG);
        if (r == server_pid || (r < 0 && errno == ECHILD))
            goto done;
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    kill(server_pid, SIGKILL);
    while (waitpid(server_pid, NULL, 0) < 0 && errno == EINTR)
        ;
done:
    server_pid = 0;
}

/* Caller holds client_lock. */
static void drop_server(bool kill_it)
{
    mp__close_fd(ctl_fd);
    ctl_fd = -1;
    mp__close_fd(starter_pidfd);
    starter_pidfd = -1;
    reap_server(kill_it);
}

/* Caller holds client_lock. */
static int launch_locked(void)
{
    if (ctl_fd >= 0 && client_pid == getpid())
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    size_t n_env = 0;
    while (environ != NULL && environ[n_env] != NULL)
        n_env++;
    char **envp = malloc((n_env + 2) * sizeof *envp);
    int rc = envp == NULL ? MP_ENOMEM : 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool have_fa = false, have_attr = false;
    if (rc == 0) {
        size_t k = 0;
        for (size_t i = 0; i < n_env; i++)
            if (strncmp(environ[i], ENV_FD "=", sizeof ENV_FD) != 0)
                envp[k++] = environ[i];
        static char fd_var[] = ENV_FD "=3";
        envp[k++] = fd_var;
        envp[k] = NULL;
        rc = -posix_spawn_file_actions_init(&fa);
        have_fa = rc == 0;
    }
    if (rc == 0)
        rc = -posix_spawn_file_actions_adddup2(&fa, sv[1], SERVER_FD);
    for (int fd = 0; fd < 3 && rc == 0; fd++)
        rc = -posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY,
                                               0);
    if (rc == 0)
        rc = -posix_spawn_file_actions_addclosefrom_np(&fa, SERVER_FD + 1);
    if (rc == 0) {
        rc = -posix_spawnattr_init(&attr);
        have_attr = rc == 0;
    }
    if (rc == 0) {
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        rc = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    pid_t pid = 0;
    if (rc == 0) {
        char *argv[] = {"mproc-forkserver", NULL};
        rc = -posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, envp);
    }
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    if (have_attr)
        posix_spawnattr_destroy(&attr);
    free(envp);
    mp__close_fd(sv[1]);
    if (rc != 0) {
        mp__close_fd(sv[0]);
        return rc;
    }
    ctl_fd = sv[0];
    server_pid = pid;
    client_pid = getpid();
    /* The hello says the constructor took over (not main). */
    mp__deadline d;
    mp__deadline_init(&d, HELLO_TIMEOUT_MS);
    rc = mp__poll_one(ctl_fd, POLLIN, &d, NULL);
    struct reply hello = {0};
    int fds[1], nfds = 0;
    if (rc >= 0) {
        ssize_t got = recv_with_fds(ctl_fd, &hello, sizeof hello, fds, 1, &nfds, MSG_DONTWAIT);
        for (int i = 0; i < nfds; i++)
            mp__close_fd(fds[i]);
        rc = got == (ssize_t)sizeof hello &&
                     (hello.kind == REPLY_HELLO || hello.kind == REPLY_HELLO_AUTOREAP) &&
                     hello.value == pid
                 ? 0
                 : MP_ESRCH;
        server_autoreaps = rc == 0 && hello.kind == REPLY_HELLO_AUTOREAP;
    }
    if (rc == 0)
        starter_pidfd = mp__pidfd_open(client_pid); /* < 0 without pidfds: none sent */
    if (rc != 0)
        drop_server(true);
    return rc;
}

int mp_forkserver_ensure_running(void)
{
    pthread_once(&atfork_once, client_register_atfork);
    pthread_mutex_lock(&client_lock);
    int rc = launch_locked();
    pthread_mutex_unlock(&client_lock);
    return rc;
}

int mp_forkserver_stop(void)
{
    pthread_mutex_lock(&client_lock);
    if (ctl_fd >= 0 && client_pid == getpid())
        drop_server(false);
    pthread_mutex_unlock(&client_lock);
    return 0;
}

pid_t mp_forkserver_pid(void)
{
    pthread_mutex_lock(&client_lock);
    pid_t pid = ctl_fd >= 0 && client_pid == getpid() ? server_pid : 0;
    pthread_mutex_unlock(&client_lock);
    return pid;
}

/* ---- a start, parent side ---- */

#define GONE_GRACE_MS 250

/* Whether the server has died (caller holds client_lock, ctl_fd open): it is
 * a zombie (our child, unreaped: its pid is its own), or the control socket
 * hung up (every holder of its other end is gone). A status socket hangs up
 * as the server's descriptors close, just before it turns zombie, so a dying
 * server is given a moment; one alive after GONE_GRACE_MS is alive (should it
 * die later, the next start's send fails and drops it). */
static bool server_gone_locked(void)
{
    mp__deadline d;
    mp__deadline_init(&d, GONE_GRACE_MS);
    for (;;) {
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)server_pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            si.si_pid == server_pid)
            return true;
        struct pollfd pfd = {.fd = ctl_fd, .events = 0};
        int ms = mp__deadline_poll_ms(&d);
        if (ms == 0)
            return false;
        int n = poll(&pfd, 1, ms < 5 ? ms : 5);
        if (n > 0 && (pfd.revents & (POLLHUP | POLLERR)))
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

int mp__fs_start(const struct mp__fs_request *req, struct mp__fs_child *out)
{
    out->pid = 0;
    out->status_fd = out->pidfd = -1;
    out->ended = out->autoreaped = false;
    struct find_addr where = {.addr = (uintptr_t)req->target};
    dl_iterate_phdr(find_by_addr, &where);
    if (!where.found)
        return MP_ENOENT;
    size_t object_len = strlen(where.name), name_len = strlen(req->name),
           identity_len = strlen(req->identity), pname_len = strlen(req->parent_name),
           pidentity_len = strlen(req->parent_identity);
    if (object_len > PATH_MAX || name_len > NAME_MAX_LEN || identity_len > NAME_MAX_LEN ||
        pname_len > NAME_MAX_LEN || pidentity_len > NAME_MAX_LEN)
        return MP_EINVAL;

    struct request r = {.magic = REQUEST_MAGIC,
                        .parent_pid = getpid(),
                        .daemon = req->daemon,
                        .object_len = (uint32_t)object_len,
                        .name_len = (uint32_t)name_len,
                        .identity_len = (uint32_t)identity_len,
                        .pname_len = (uint32_t)pname_len,
                        .pidentity_len = (uint32_t)pidentity_len,
                        .offset = (uint64_t)((uintptr_t)req->target - where.base),
                        .arg_size = req->arg_size,
                        .arg_value = (uint64_t)(uintptr_t)req->arg};
    int sv[2] = {-1, -1}, memfd = -1;
    int fds[MAX_FDS], nfds = 0;
    pid_t sent_to = 0; /* the server the request went to */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int rc = 0;
    if (req->arg_size > INLINE_ARG_MAX) {
        memfd = memfd_create("mproc-forkserver-arg", MFD_CLOEXEC);
        rc = memfd < 0 ? -errno : 0;
        for (size_t done = 0; rc == 0 && done < req->arg_size;) {
            ssize_t n = write(memfd, (const char *)req->arg + done, req->arg_size - done);
            if (n < 0 && errno != EINTR)
                rc = -errno;
            done += n > 0 ? (size_t)n : 0;
        }
    } else {
        r.inline_arg = req->arg_size > 0;
    }
    fds[nfds++] = sv[1];
    for (int fd = 0; fd < 3; fd++)
        if (fd_open(fd)) {
            r.fds |= HAVE_STDIN << fd;
            fds[nfds++] = fd;
        }
    struct iovec iov[7] = {{&r, sizeof r},
                           {(void *)where.name, object_len},
                           {(void *)req->name, name_len},
                           {(void *)req->identity, identity_len},
                           {(void *)req->parent_name, pname_len},
                           {(void *)req->parent_identity, pidentity_len},
                           {(void *)req->arg, r.inline_arg ? req->arg_size : 0}};
    if (rc == 0) {
        pthread_once(&atfork_once, client_register_atfork);
        pthread_mutex_lock(&client_lock);
        rc = launch_locked();
        if (rc == 0) {
            /* Our pidfd, opened once per server (the header's order: after stdio,
             * before the memfd). */
            if (starter_pidfd >= 0) {
                r.fds |= HAVE_PARENT_PIDFD;
                fds[nfds++] = starter_pidfd;
            }
            if (memfd >= 0) {
                r.fds |= HAVE_MEMFD;
                fds[nfds++] = memfd;
            }
            out->autoreaped = server_autoreaps;
            sent_to = server_pid;
            rc = send_with_fds(ctl_fd, iov, 7, fds, nfds);
            if (rc == MP_EPIPE || rc == MP_ECONNRESET || rc == -ENOTCONN) {
                drop_server(true); /* it died: say so now, relaunch on the next start */
                rc = MP_ESRCH;
            }
        }
        pthread_mutex_unlock(&client_lock);
    }
    mp__close_fd(sv[1]);
    mp__close_fd(memfd);
    if (rc != 0) {
        mp__close_fd(sv[0]);
        return rc;
    }

    /* The answer comes on our own status socket: threads starting children at
     * once do not wait for each other. */
    mp__deadline d;
    mp__deadline_init(&d, REPLY_TIMEOUT_MS);
    rc = mp__poll_one(sv[0], POLLIN, &d, NULL);
    struct reply rep = {0};
    int got_fds[1], n_got = 0;
    ssize_t got = 0;
    if (rc >= 0)
        got = recv_with_fds(sv[0], &rep, sizeof rep, got_fds, 1, &n_got, MSG_DONTWAIT);
    if (rc >= 0 && got == (ssize_t)sizeof rep && rep.kind == REPLY_STARTED && rep.value > 0) {
        out->pid = rep.value;
        out->status_fd = sv[0];
        out->pidfd = n_got > 0 ? got_fds[0] : -1;
        return 0;
    }
    for (int i = 0; i < n_got; i++)
        mp__close_fd(got_fds[i]);
    mp__close_fd(sv[0]);
    if (rc < 0)
        return rc;
    if (got == (ssize_t)sizeof rep && rep.kind == REPLY_REFUSED && rep.value < 0)
        return rep.value;
    /* Hung up without an answer (or the server's REPLY_EXITED first): the
     * server died, or the spare that took the request was killed before it
     * answered (the server then lives on: it is not ours to kill, nor are its
     * children). Only the server the request went to, if it is gone. */
    pthread_mutex_lock(&client_lock);
    if (ctl_fd >= 0 && client_pid == getpid() && server_pid == sent_to && server_gone_locked())
        drop_server(true);
    pthread_mutex_unlock(&client_lock);
    return MP_ESRCH;
}

/* The kernel's pidfd information (linux/pidfd.h of 6.15+, which the build's
 * headers may predate): the exit status of a process once it has been reaped,
 * to anyone holding a pidfd of it. */
struct fs_pidfd_info {
    uint64_t mask, cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code; /* a wait status */
};
#define FS_PIDFD_GET_INFO _IOWR(0xFF, 11, struct fs_pidfd_info)
#define FS_PIDFD_INFO_EXIT (1u << 3)

static int code_of_status(int st)
{
    return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}

/* The exit status of a reaped process, from its pidfd (Linux >= 6.15). */
static bool exit_code_reaped(int pidfd, int *code)
{
    struct fs_pidfd_info info = {.mask = FS_PIDFD_INFO_EXIT};
    if (ioctl(pidfd, FS_PIDFD_GET_INFO, &info) != 0 || !(info.mask & FS_PIDFD_INFO_EXIT))
        return false;
    *code = code_of_status(info.exit_code);
    return true;
}

bool mp__fs_reap_nohang(struct mp__fs_child *c, int *code)
{
    struct reply rep;
    ssize_t n;
    do
        n = recv(c->status_fd, &rep, sizeof rep,
                 MSG_DONTWAIT | MSG_PEEK); /* kept: stays readable */
    while (n < 0 && errno == EINTR);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        *code = n == (ssize_t)sizeof rep && rep.kind == REPLY_EXITED ? rep.value : 255;
        return true;
    }
    /* No word from the server yet: the child's own pidfd says first, where the
     * kernel reaps the server's children (else the status socket is the
     * sentinel, and it must be readable once a join returned: the server's
     * word counts alone). */
    if (c->pidfd < 0 || c->ended || !c->autoreaped)
        return false;
    struct pollfd pfd = {.fd = c->pidfd, .events = POLLIN};
    if (poll(&pfd, 1, 0) != 1)
        return false;
    if (exit_code_reaped(c->pidfd, code))
        return true;
    /* Ended, not reaped yet. A server that lets the kernel reap its children:
     * the ended child's own exit path releases it right after it woke us, so
     * wait the moment out. Otherwise (or if it does not come) the server reaps
     * it and tells on the status socket: wait for that. */
    for (int i = 0; c->autoreaped && i < AUTOREAP_SPINS; i++) {
        sched_yield();
        if (exit_code_reaped(c->pidfd, code))
            return true;
    }
    c->ended = true;
    return false;
}

int mp__fs_exit_fd(const struct mp__fs_child *c)
{
    return c->ended || !c->autoreaped ? -1 : c->pidfd;
}

int mp__fs_wait(int status_fd, int exit_fd, const mp__deadline *d)
{
    struct pollfd pfd[2] = {{.fd = status_fd, .events = POLLIN}, {.fd = exit_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(pfd, exit_fd >= 0 ? 2 : 1, mp__deadline_poll_ms(d));
        if (n > 0)
            return 1;
        if (n == 0)
            return MP_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int mp__fs_signal(const struct mp__fs_child *c, int sig)
{
    if (c->pidfd >= 0)
        return mp__pidfd_signal(c->pidfd, sig);
    return kill(c->pid, sig) == 0 ? 0 : -errno;
}

/* ---- the server ---- */

struct child {
    pid_t pid;
    int status_fd;
    int pidfd; /* -1 unless autoreap */
};

/* The kernel reaps our children (SA_NOCLDWAIT) and tells their status through
 * their pidfds: set at start when it can (PIDFD_INFO_EXIT, Linux >= 6.15). */
static bool autoreap;

static struct child *children;
static size_t n_children, cap_children;
static char *request_buf; /* static: the child's copies stay reachable (LeakSanitizer) */
static void *child_arg;
/* Tests only (MPROC_FORKSERVER_TEST_HOOKS=1 at the server's start): a child so
 * named is killed in become_child, before or after its report to the server,
 * in the window between taking its request and answering its starter. */
static bool test_hooks;
/* The descriptor limit the server was started with (the starter's), which
 * its children get back: the server raises its own soft limit to the hard one,
 * as it holds descriptors for every running child (two under autoreap). */
static struct rlimit starter_nofile;
static bool nofile_raised;
#define ENV_TEST_HOOKS "MPROC_FORKSERVER_TEST_HOOKS"
#define TEST_DIE_BEFORE_REPORT "mproc-test-die-before-report"
#define TEST_DIE_AFTER_REPORT "mproc-test-die-after-report"

static void reply(int fd, int kind, int value, int pass_fd)
{
    struct reply r = {kind, value};
    struct iovec iov = {&r, sizeof r};
    send_with_fds(fd, &iov, 1, &pass_fd, pass_fd >= 0 ? 1 : 0);
}

static bool read_all(int fd, void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* In the server's fresh child: install the descriptors, become the process, run
 * the target. Never returns. */
static _Noreturn void run_child(const struct request *r, char (*names)[NAME_MAX_LEN + 1],
                                mp_target target, const char *inline_arg, int *fds, pid_t server)
{
    int k = 1; /* fds[0] is the status socket: the server's, not the child's */
    int stdio[3] = {-1, -1, -1}, parent_pidfd = -1, memfd = -1;
    for (int i = 0; i < 3; i++)
        if (r->fds & (HAVE_STDIN << i))
            stdio[i] = fds[k++];
    if (r->fds & HAVE_PARENT_PIDFD)
        parent_pidfd = fds[k++];
    if (r->fds & HAVE_MEMFD)
        memfd = fds[k++];
    void *arg = (void *)(uintptr_t)r->arg_value;
    if (r->arg_size > 0) {
        child_arg = malloc(r->arg_size);
        if (child_arg == NULL)
            _exit(255);
        if (r->inline_arg)
            memcpy(child_arg, inline_arg, r->arg_size);
        else if (memfd < 0 || !read_all(memfd, child_arg, r->arg_size))
            _exit(255);
        arg = child_arg;
    }
    /* All received descriptors are >= 4: 0-2 are /dev/null, 3 the control socket. */
    for (int i = 0; i < 3; i++) {
        if (stdio[i] >= 0)
            dup2(stdio[i], i);
        else
            close(i);
    }
    if (parent_pidfd >= 0) {
        dup2(parent_pidfd, SERVER_FD);
        fcntl(SERVER_FD, F_SETFD, FD_CLOEXEC);
        parent_pidfd = SERVER_FD;
    } else {
        close(SERVER_FD);
    }
    syscall(SYS_close_range, SERVER_FD + 1, ~0U, 0);
    if (nofile_raised)
        setrlimit(RLIMIT_NOFILE, &starter_nofile);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    mp__process_become(names[0], names[1], r->daemon != 0, names[2], names[3], (pid_t)r->parent_pid,
                       parent_pidfd, server);
    exit(target(arg));
}

/* The spare: one child the server forks in advance, blocked in recvmsg on the
 * control socket, so that a start costs no fork on its path (see "The spare"
 * above). spare_sock[0] is the server's end of the socket on which a spare that
 * took a request reports its pid and passes the server its copy of the status
 * socket; spare_sock[1] the spares' end. */
static int spare_sock[2] = {-1, -1};
static int bell = -1;            /* eventfd: a spare rings it once its starter has heard */
static pid_t spare_pids[SPARES]; /* 0: an empty slot */
static int spare_pidfds[SPARES] = {-1, -1}; /* autoreap: how we learn a waiting spare died */

static int n_spares(void)
{
    int n = 0;
    for (int k = 0; k < SPARES; k++)
        n += spare_pids[k] > 0;
    return n;
}

static int spare_slot(pid_t pid)
{
    for (int k = 0; k < SPARES; k++)
        if (pid > 0 && spare_pids[k] == pid)
            return k;
    return -1;
}

static void drop_spare(int k)
{
    spare_pids[k] = 0;
    mp__close_fd(spare_pidfds[k]);
    spare_pidfds[k] = -1;
}

struct taken {
    int32_t pid;
};

/* A spare that took a request (or the server's child forked for one): become
 * the child. Our report (pid, the server's copy of the status socket, a pidfd
 * of us) is queued for the server first, before the starter knows our pid, so
 * before anything can end us: the server reads the reports before it handles
 * an end. Nothing wakes for it (the server does not poll spare_sock). Then the
 * starter hears, and only then the bell wakes the server to fork the next
 * spare, so that its fork does not run ahead of the starter's wake-up. A server
 * that died cannot take the report: we end, and the starter sees the status
 * socket hang up (MP_ESRCH). Never returns. */
static _Noreturn void become_child(const struct request *r, char (*names)[NAME_MAX_LEN + 1],
                                   mp_target target, const char *inline_arg, int *fds, pid_t server)
{
    pid_t self = getpid();
    int pidfd = mp__pidfd_open(self);
    struct taken t = {self};
    struct iovec iov = {&t, sizeof t};
    int pass[2] = {fds[0], pidfd};
    if (test_hooks && strcmp(names[0], TEST_DIE_BEFORE_REPORT) == 0)
        raise(SIGKILL);
    if (send_with_fds(spare_sock[1], &iov, 1, pass, pidfd >= 0 ? 2 : 1) != 0)
        _exit(0);
    if (test_hooks && strcmp(names[0], TEST_DIE_AFTER_REPORT) == 0)
        raise(SIGKILL);
    if (!r->daemon)
        prctl(PR_SET_PDEATHSIG, 0); /* a spare's; a non-daemon outlives the server */
    reply(fds[0], REPLY_STARTED, self, pidfd);
    mp__close_fd(pidfd);
    uint64_t one = 1;
    while (write(bell, &one, sizeof one) < 0 && errno == EINTR)
        ;
    run_child(r, names, target, inline_arg, fds, server);
}

/* One request from the control socket, read by the server itself (no spare:
 * as_spare false; it forks the child) or by the spare (as_spare true; it becomes
 * the child). Hostile lengths are refused. */
static void serve_request(int ctl, pid_t server, bool as_spare)
{
    size_t cap = sizeof(struct request) + PATH_MAX + 4 * NAME_MAX_LEN + INLINE_ARG_MAX + 16;
    if (request_buf == NULL && (request_buf = malloc(cap)) == NULL)
        _exit(1);
    int fds[MAX_FDS], nfds = 0;
    ssize_t n = recv_with_fds(ctl, request_buf, cap, fds, MAX_FDS, &nfds, 0);
    if (n == 0 || (n < 0 && n != MP_EPROTO && n != -EAGAIN))
        _exit(0); /* the parent is gone, or stopped us */
    struct request r;
    if (n < (ssize_t)sizeof r || nfds < 1) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        return;
    }
    memcpy(&r, request_buf, sizeof r);
    int status = fds[0];
    int expect = 1 + __builtin_popcount(r.fds & 31);
    size_t arg_inline = r.inline_arg ? (size_t)r.arg_size : 0;
    size_t want = sizeof r + (size_t)r.object_len + r.name_len + r.identity_len + r.pname_len +
                  r.pidentity_len + arg_inline;
    int err = 0;
    if (r.magic != REQUEST_MAGIC || r.object_len > PATH_MAX || r.name_len > NAME_MAX_LEN ||
        r.identity_len > NAME_MAX_LEN || r.pname_len > NAME_MAX_LEN ||
        r.pidentity_len > NAME_MAX_LEN || arg_inline > INLINE_ARG_MAX || (size_t)n != want ||
        nfds != expect || (r.inline_arg && (r.fds & HAVE_MEMFD)) ||
        (r.arg_size > INLINE_ARG_MAX && !(r.fds & HAVE_MEMFD)))
        err = MP_EPROTO;
    char *p = request_buf + sizeof r;
    char object[PATH_MAX + 1];
    static char names[4][NAME_MAX_LEN + 1]; /* name, identity, parent's: the child keeps them */
    mp_target target = NULL;
    if (err == 0) {
        memcpy(object, p, r.object_len);
        object[r.object_len] = '\0';
        p += r.object_len;
        uint32_t lens[4] = {r.name_len, r.identity_len, r.pname_len, r.pidentity_len};
        for (int i = 0; i < 4; i++) {
            memcpy(names[i], p, lens[i]);
            names[i][lens[i]] = '\0';
            p += lens[i];
        }
        struct find_name f = {.name = object, .offset = r.offset};
        dl_iterate_phdr(find_by_name, &f);
        if (!f.found || !f.exec)
            err = MP_ENOENT;
        else
            target = (mp_target)f.addr;
    }
    if (err == 0 && as_spare) {
        become_child(&r, names, target, p, fds, server);
    }
    /* No spare (its fork failed): fork the child here; it reports itself as a
     * spare that took the request does. */
    if (err == 0) {
        pid_t pid = fork();
        if (pid == 0)
            become_child(&r, names, target, p, fds, server);
        if (pid < 0)
            err = -errno;
    }
    if (err != 0)
        reply(status, REPLY_REFUSED, err, -1);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

/* In the server's fresh spare: wait for requests on the control socket (the
 * server does not read it while a spare waits) until one starts us. A request
 * refused (bad target) leaves us the spare. Dies with the server. */
static _Noreturn void spare_loop(int ctl, pid_t server)
{
    close(spare_sock[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != server)
        _exit(0);
    for (;;)
        serve_request(ctl, server, true);
}

/* Forks one spare into an empty slot, if any: true if it did. On failure
 * (process limit) with no spare left, the server serves the requests itself,
 * forking each child (and refusing when that fails). */
static bool make_spare(int ctl, pid_t server)
{
    int k = 0;
    while (k < SPARES && spare_pids[k] > 0)
        k++;
    if (k == SPARES)
        return false;
    pid_t pid = fork();
    if (pid == 0)
        spare_loop(ctl, server);
    if (pid < 0)
        return false;
    spare_pids[k] = pid;
    if (autoreap) {
        /* A spare ends only if killed: that it died before this (and its pid
         * went to another process meanwhile) is not a window we can close
         * without clone3; a spare gone already makes us fork the next. */
        int fd = mp__pidfd_open(pid);
        spare_pidfds[k] = fd >= 0 ? fd : -1;
        /* Out of descriptors: a spare we cannot watch (its report still drops
         * it), not one forgotten while it reads the control socket (then the
         * server's own read of a request would race it, and each turn would
         * fork another). */
        if (fd == MP_ESRCH)
            spare_pids[k] = 0;
    }
    return true;
}

/* Takes in the children that spares became (their pid and status socket). */
static void take_spares(void)
{
    for (;;) {
        struct taken t;
        int fds[2], nfds = 0;
        ssize_t n = recv_with_fds(spare_sock[0], &t, sizeof t, fds, 2, &nfds, MSG_DONTWAIT);
        if (n == -EINTR)
            continue;
        if (n <= 0 && n != MP_EPROTO)
            return;
        if (n != (ssize_t)sizeof t || nfds < 1 || (autoreap && nfds != 2)) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        int pidfd = nfds == 2 ? fds[1] : -1;
        if (!autoreap) {
            mp__close_fd(pidfd);
            pidfd = -1;
        }
        int k = spare_slot(t.pid);
        if (k >= 0)
            drop_spare(k);
        if (n_children == cap_children) {
            size_t cap2 = cap_children ? 2 * cap_children : 16;
            struct child *c = realloc(children, cap2 * sizeof *c);
            if (c == NULL) {
                close(fds[0]); /* its starter sees a hang-up: status lost (255) */
                mp__close_fd(pidfd);
                continue;
            }
            children = c, cap_children = cap2;
        }
        children[n_children++] = (struct child){t.pid, fds[0], pidfd};
    }
}

static void reap_children(void)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno == EINTR)
                continue;
            return;
        }
        /* A spare may have taken a request, and ended, since take_spares last
         * ran: its report is queued (it reports before it can end). */
        size_t i = 0;
        while (i < n_children && children[i].pid != pid)
            i++;
        if (i == n_children) {
            take_spares();
            i = 0;
            while (i < n_children && children[i].pid != pid)
                i++;
        }
        int k = spare_slot(pid);
        if (k >= 0) { /* died waiting (killed): fork another */
            drop_spare(k);
            continue;
        }
        if (i == n_children)
            continue;
        reply(children[i].status_fd, REPLY_EXITED, code_of_status(st), -1);
        close(children[i].status_fd);
        children[i] = children[--n_children];
    }
}

static bool ended(int pidfd)
{
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

/* Autoreap: the children the kernel has reaped, by their pidfds' exit status.
 * True if one has ended but is not released yet (SIGCHLD comes just before
 * the kernel stores the status): scan again in a moment, as no other signal
 * will come for it. */
static bool scan_children(void)
{
    int code;
    bool again = false;
    for (size_t i = 0; i < n_children;) {
        if (!exit_code_reaped(children[i].pidfd, &code)) {
            again = again || ended(children[i].pidfd);
            i++;
            continue;
        }
        reply(children[i].status_fd, REPLY_EXITED, code, -1);
        close(children[i].status_fd);
        close(children[i].pidfd);
        children[i] = children[--n_children];
    }
    for (int k = 0; k < SPARES; k++) {
        if (spare_pids[k] <= 0 || spare_pidfds[k] < 0)
            continue;
        if (exit_code_reaped(spare_pidfds[k], &code))
            drop_spare(k); /* killed while waiting */
        else
            again = again || ended(spare_pidfds[k]);
    }
    return again;
}

/* Whether the kernel can tell a reaped child's status through its pidfd: a
 * child that exits at once, reaped, asked. */
static bool probe_exit_info(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return false;
    int fd = mp__pidfd_open(pid); /* unreaped: still ours */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    int code = -1;
    bool ok = fd >= 0 && exit_code_reaped(fd, &code) && code == 0;
    mp__close_fd(fd);
    return ok;
}

/* The parent is gone or stopped us: end the spare (not a spare that has
 * become a child: its report is read first), leave the children. */
static _Noreturn void shut_down(void)
{
    take_spares();
    /* Unreaped, its pid is still the spare's; under autoreap a pid freed by
     * the kernel may be another's already: the pidfd, where there is one. */
    for (int k = 0; k < SPARES; k++) {
        if (spare_pids[k] > 0 && spare_pidfds[k] >= 0)
            mp__pidfd_signal(spare_pidfds[k], SIGKILL);
        else if (spare_pids[k] > 0)
            kill(spare_pids[k], SIGKILL);
    }
    for (int k = 0; k < SPARES; k++) {
        if (spare_pids[k] > 0 && autoreap && spare_pidfds[k] >= 0) {
            /* Gone (released by the kernel) before we go. */
            struct pollfd pfd = {.fd = spare_pidfds[k], .events = POLLIN};
            poll(&pfd, 1, 2000);
            int code;
            for (int i = 0; i < 100000 && !exit_code_reaped(spare_pidfds[k], &code); i++)
                sched_yield();
        } else if (spare_pids[k] > 0) {
            while (waitpid(spare_pids[k], NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    _exit(0);
}

static _Noreturn void serve(int ctl)
{
    pid_t self = getpid();
    test_hooks = getenv(ENV_TEST_HOOKS) != NULL;
    if (getrlimit(RLIMIT_NOFILE, &starter_nofile) == 0 &&
        starter_nofile.rlim_cur < starter_nofile.rlim_max) {
        struct rlimit raised = {starter_nofile.rlim_max, starter_nofile.rlim_max};
        nofile_raised = setrlimit(RLIMIT_NOFILE, &raised) == 0;
    }
    /* Before SIGCHLD is blocked: the probe's child ends unseen. The variable
     * is for tests of the other way. */
    if (getenv(ENV_NO_AUTOREAP) == NULL && probe_exit_info()) {
        struct sigaction sa = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT};
        sigemptyset(&sa.sa_mask);
        autoreap = sigaction(SIGCHLD, &sa, NULL) == 0;
    }
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || bell < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, spare_sock) != 0)
        _exit(1);
    children = malloc(16 * sizeof *children);
    cap_children = children != NULL ? 16 : 0;
    reply(ctl, autoreap ? REPLY_HELLO_AUTOREAP : REPLY_HELLO, self, -1);
    bool rescan = false;
    for (;;) {
        /* One fork per turn, so that a bell or an end is not kept waiting. */
        bool forked = make_spare(ctl, self);
        int spares = n_spares();
        /* While a spare waits, it reads the control socket: watch only for the
         * parent's hang-up. Without one, serve requests, and retry the fork. */
        struct pollfd pfd[3] = {{.fd = ctl, .events = spares > 0 ? 0 : POLLIN},
                                {.fd = sfd, .events = POLLIN},
                                {.fd = bell, .events = POLLIN}};
        int timeout = spares == 0 ? 100 : spares < SPARES && forked ? 0 : -1;
        if (rescan && timeout != 0)
            timeout = 1;
        if (poll(pfd, 3, timeout) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (pfd[2].revents) {
            uint64_t rings;
            while (read(bell, &rings, sizeof rings) < 0 && errno == EINTR)
                ;
            take_spares();
        }
        if (pfd[1].revents || rescan) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0)
                ;
            take_spares(); /* a spare reports before it can end */
            if (autoreap)
                rescan = scan_children();
            else
                reap_children();
        }
        if (pfd[0].revents & (POLLHUP | POLLERR))
            shut_down(); /* the parent is gone, or stopped us */
        if (n_spares() == 0 && (pfd[0].revents & POLLIN))
            serve_request(ctl, self, false);
    }
}

/* In a program exec'd as a forkserver, take over before main. */
__attribute__((constructor)) static void forkserver_constructor(void)
{
    const char *v = getenv(ENV_FD);
    if (v == NULL || strcmp(v, "3") != 0)
        return;
    unsetenv(ENV_FD);
    if (fcntl(SERVER_FD, F_GETFD) < 0)
        _exit(1);
    fcntl(SERVER_FD, F_SETFD, FD_CLOEXEC);
    serve(SERVER_FD);
}
