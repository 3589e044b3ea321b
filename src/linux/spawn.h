/* linux/spawn.h — starting a program in a new child: the plan the parent
 * prepares, and the one entry point that runs it (src/linux/spawn.c).
 *
 * Everything the child needs is computed by the parent before the child exists:
 * the candidate paths of the PATH search, the environment, the descriptors. The
 * child only performs system calls on this plan, so it never allocates.
 */
#ifndef MPROC_INTERNAL_SPAWN_H
#define MPROC_INTERNAL_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/util.h"

/* The step of the child's setup that failed, sent back with its errno. */
enum mp__spawn_step {
    MP__STEP_NONE = 0,
    MP__STEP_EXEC,    /* execve of every candidate failed */
    MP__STEP_CHDIR,   /* chdir(cwd) */
    MP__STEP_DUP,     /* moving the stdio descriptors into place */
    MP__STEP_FDS,     /* close_fds / pass_fds */
    MP__STEP_SETSID,  /* start_new_session */
    MP__STEP_SETPGID, /* process_group */
    MP__STEP_SIGNALS, /* resetting signal dispositions or the mask */
    MP__STEP_PREEXEC, /* the caller's child-setup callback returned non-zero */
};

typedef struct mp__spawn_plan {
    char *const *candidates; /* full paths to try with execve, in order; NULL-terminated */
    char *const *argv;       /* NULL-terminated */
    char *const *envp;       /* NULL-terminated */
    int stdio[3];            /* descriptor to install as 0, 1, 2; -1 leaves it as is */
    bool stderr_to_stdout;   /* make 2 a copy of the final 1 (after stdio[1]) */
    const char *cwd;         /* NULL: keep */
    bool close_fds;          /* mark every descriptor >= 3 close-on-exec */
    const int *pass_fds;     /* sorted, each >= 3, kept open across exec */
    size_t n_pass_fds;
    bool new_session;
    pid_t process_group;       /* >= 0: setpgid(0, process_group); -1: keep */
    int umask;                 /* >= 0: umask(umask); -1: keep */
    bool restore_signals;      /* SIGPIPE and SIGXFSZ back to SIG_DFL if ignored */
    int (*preexec)(void *arg); /* forces the fork path; NULL: none */
    void *preexec_arg;
} mp__spawn_plan;

/* Runs the plan in a new child. On success sets *pid and returns 0: the child has
 * called exec (or, on the fork path, is about to). When the child fails before
 * exec it is reaped, *step and *child_errno say why, and the return value is
 * -child_errno (MP_ESPAWN for a failed preexec callback). A failure in the parent
 * (pipe2, clone: MP_EAGAIN, MP_ENOMEM, MP_EMFILE) leaves *step at MP__STEP_NONE.
 * Thread-safe. No signal handler of the caller runs in the child. */
MP__HIDDEN int mp__spawn(const mp__spawn_plan *plan, pid_t *pid, int *step, int *child_errno);

/* A short name of a step for messages ("chdir", "dup2", ...). */
MP__HIDDEN const char *mp__spawn_step_name(int step);

#endif /* MPROC_INTERNAL_SPAWN_H */
