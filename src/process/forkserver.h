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
 * child has ended or the server has died; the handle's sentinel) and a pidfd of
 * it (-1 without kernel pidfds). The caller owns both descriptors. */
struct mp__fs_child {
    pid_t pid;
    int status_fd;
    int pidfd;
};

/* Starts a child through the forkserver, launching the server first if none
 * runs. Thread-safe. Errors: MP_ENOENT (target not in an object the server has
 * loaded), MP_ESRCH (the server died; the next call launches a new one),
 * MP_ETIMEDOUT (no answer from the server within a few seconds), MP_EMFILE,
 * MP_ENOMEM, MP_EINVAL (name or identity too long). */
MP__HIDDEN int mp__fs_start(const struct mp__fs_request *req, struct mp__fs_child *out);

/* Reads the child's exit status from its status socket if it has come, never
 * blocking: true with *code set (255 when the server died before telling). */
MP__HIDDEN bool mp__fs_reap_nohang(int status_fd, int *code);

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
