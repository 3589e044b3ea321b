/* process/forkserver.h — the forkserver start method's two sides, as process.c
 * uses them. The protocol, the server and the client live in forkserver.c;
 * process.c keeps its registry and only asks, for a child started this way, how
 * to start it, whether it has ended and how to signal it. */
#ifndef MPROC_INTERNAL_FORKSERVER_H
#define MPROC_INTERNAL_FORKSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/util.h"
#include "mproc/process.h"

/* What a start sends. arg_size 0: the pointer value arg itself travels. */
struct mp__fs_request {
    mp_target target;
    const void *arg;
    size_t arg_size;
    const char *name;
    const char *identity;
    const char *parent_name; /* the caller's, for the child's mp_parent_process */
    const char *parent_identity;
    bool daemon;
};

/* A child the forkserver started: its pid, the status socket (readable once the
 * server has told the child's end, or has died; the handle's sentinel) and a
 * pidfd of it (-1 without kernel pidfds; readable as soon as the child has
 * ended, before the server's word). The caller owns both descriptors. ended:
 * the pidfd said the child ended but its status could not be read here; the
 * server's word is awaited. autoreaped: the kernel reaps the server's children
 * (and tells their status through the pidfd), so a join learns the end and the
 * status without the server. */
struct mp__fs_child {
    pid_t pid;
    int status_fd;
    int pidfd;
    bool ended;
    bool autoreaped; /* the server lets the kernel reap its children */
};

/* Starts a child through the forkserver, launching the server first if none
 * runs. Thread-safe. Errors: MP_ENOENT (target not in an object the server has
 * loaded), MP_ESRCH (the server died; the next call launches a new one),
 * MP_ETIMEDOUT (no answer from the server within a few seconds), MP_EMFILE,
 * MP_ENOMEM, MP_EINVAL (name or identity too long). */
MP__HIDDEN int mp__fs_start(const struct mp__fs_request *req, struct mp__fs_child *out);

/* Whether the child has ended (and been reaped), never blocking: true with
 * *code set. The server's word on the status socket counts first (255 when the
 * server died before telling); before it comes, a readable pidfd and the
 * kernel's exit status of the reaped child (PIDFD_INFO_EXIT): so a join does not
 * wait for the server's hop. Caller serialises calls on one child (it may set
 * c->ended). */
MP__HIDDEN bool mp__fs_reap_nohang(struct mp__fs_child *c, int *code);

/* The descriptor besides the status socket that a wait for the child's end
 * polls: its pidfd, or -1 (none, it already said so, or the server reaps:
 * then its word alone counts). */
MP__HIDDEN int mp__fs_exit_fd(const struct mp__fs_child *c);

/* Polls status_fd and exit_fd (-1: only status_fd) until either is readable:
 * 1, MP_ETIMEDOUT at d, or a negative errno. Then mp__fs_reap_nohang. */
MP__HIDDEN int mp__fs_wait(int status_fd, int exit_fd, const mp__deadline *d);

/* Sends sig to the child: through its pidfd (race-free), or kill() on its pid
 * without pidfds. 0, or a negative errno (MP_ESRCH once it has ended). */
MP__HIDDEN int mp__fs_signal(const struct mp__fs_child *c, int sig);

/* In process.c: makes the calling process (the server's fresh child) the named
 * child of parent_pid. The strings must live as long as the process. parent_pidfd
 * (or -1) names the parent for is_alive, join and sentinel; server_pid is the
 * process whose death the kernel reports to a daemon child. */
MP__HIDDEN void mp__process_become(const char *name, const char *identity, bool daemon,
                                   const char *parent_name, const char *parent_identity,
                                   pid_t parent_pid, int parent_pidfd, pid_t server_pid);

#endif /* MPROC_INTERNAL_FORKSERVER_H */
