/* subprocess/subprocess.h — the mp_popen object, shared by popen.c (spawn, wait,
 * signals), communicate.c and run.c. */
#ifndef MPROC_INTERNAL_SUBPROCESS_H
#define MPROC_INTERNAL_SUBPROCESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/identity.h"
#include "core/util.h"
#include "mproc/subprocess.h"

typedef struct mp__buf {
    char *data; /* malloc'd, NUL-terminated when not NULL */
    size_t len, cap;
} mp__buf;

struct mp_popen {
    mp__proc_id owner;         /* the process that created the handle */
    pid_t pid;                 /* 0 when the spawn failed */
    int pidfd;                 /* -1 when the kernel has none; kept open until destroy, so a
                                  thread still polling it never polls a reused number */
    char **args;               /* copy of argv; one allocation */
    int fd_in, fd_out, fd_err; /* the parent's pipe ends; -1 when none or closed */
    bool in_piped, out_piped, err_piped; /* stdin / stdout / stderr were MP_PIPE */
    bool failed;                         /* the child failed before exec; message says why */
    /* Reaping: only ever waitpid(pid, WNOHANG) under lock, so a thread that holds
     * lock and sees !reaped knows the pid is still our child (signals are safe);
     * blocking waits wait for the exit without reaping (pidfd poll or WNOWAIT). */
    pthread_mutex_t lock;
    bool reaped;       /* under lock */
    int returncode;    /* valid once reaped; written under lock */
    char message[512]; /* why the spawn failed; "" otherwise */
    const char *note;  /* static text of the last misuse refused (mp_popen_message) */
    /* communicate: state kept across a timeout */
    bool comm_started;
    size_t in_len;    /* input_len of the first call; resumed calls pass the same */
    size_t in_off;    /* bytes of the input already written */
    mp__buf out, err; /* output read so far */
    bool comm_done;   /* a communicate returned everything: the pipes are gone */
};

/* Records a short static text of a misuse (Python's exception message) for
 * mp_popen_message and returns rc. */
static inline int mp__popen_note(mp_popen *p, int rc, const char *text)
{
    __atomic_store_n(&p->note, text, __ATOMIC_RELAXED);
    return rc;
}

/* Waits for the child until d and reaps it. 0, MP_ETIMEDOUT or -errno. */
MP__HIDDEN int mp__popen_wait_deadline(mp_popen *p, const mp__deadline *d);

/* The communicate loop until d, without waiting for the child; the output stays
 * in p->out / p->err. 0 once every pipe is closed, MP_ETIMEDOUT, or an error. */
MP__HIDDEN int mp__popen_pump(mp_popen *p, const void *input, size_t input_len,
                              const mp__deadline *d);

/* str() of CPython's CalledProcessError(returncode, args) and
 * TimeoutExpired(args, timeout_ms / 1000): "Command '['ls', 'x']' returned non-zero
 * exit status 2.", "... died with <Signals.SIGKILL: 9>.", "... timed out after 1.5
 * seconds". args is NULL-terminated; shell: args[0] alone is a command line.
 * malloc'd; NULL when out of memory. (message.c) */
MP__HIDDEN char *mp__called_process_error_text(char *const *args, bool shell, int returncode);
MP__HIDDEN char *mp__timeout_expired_text(char *const *args, bool shell, int timeout_ms);

#endif /* MPROC_INTERNAL_SUBPROCESS_H */
