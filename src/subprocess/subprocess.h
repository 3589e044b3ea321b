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
    bool out_piped, err_piped; /* stdout / stderr were MP_PIPE */
    bool failed;               /* the child failed before exec; message says why */
    /* Reaping: only ever waitpid(pid, WNOHANG) under lock, so a thread that holds
     * lock and sees !reaped knows the pid is still our child (signals are safe);
     * blocking waits wait for the exit without reaping (pidfd poll or WNOWAIT). */
    pthread_mutex_t lock;
    bool reaped;    /* under lock */
    int returncode; /* valid once reaped; written under lock */
    char message[512];
    /* communicate: state kept across a timeout */
    bool comm_started;
    size_t in_len;    /* input_len of the first call; resumed calls pass the same */
    size_t in_off;    /* bytes of the input already written */
    mp__buf out, err; /* output read so far */
};

/* Waits for the child until d and reaps it. 0, MP_ETIMEDOUT or -errno. */
MP__HIDDEN int mp__popen_wait_deadline(mp_popen *p, const mp__deadline *d);

/* The communicate loop until d, without waiting for the child; the output stays
 * in p->out / p->err. 0 once every pipe is closed, MP_ETIMEDOUT, or an error. */
MP__HIDDEN int mp__popen_pump(mp_popen *p, const void *input, size_t input_len,
                              const mp__deadline *d);

#endif /* MPROC_INTERNAL_SUBPROCESS_H */
