/* mproc/subprocess.h — external commands, as CPython's subprocess module.
 *
 *     const char *argv[] = {"echo", "Hello", NULL};
 *     mp_completed_process r;
 *     int rc = mp_run(&r, argv, &(mp_run_options){.capture_output = true});
 *     if (rc == 0)
 *         printf("%d: %s", r.returncode, r.stdout_data);
 *     mp_completed_process_free(&r);
 *
 * A command is a NULL-terminated argv array. argv[0] is searched on PATH (the
 * PATH of the child's environment when env is given; "/bin:/usr/bin" when that
 * environment has none) unless it contains a '/'. With shell set, argv[0] is a
 * command line run by "/bin/sh -c", and argv[1..] become $0, $1, ...
 *
 * Children start with clone(CLONE_VM|CLONE_VFORK), so the cost does not grow
 * with the parent's memory; a child-setup callback (preexec) forces fork().
 * A failure of the child before exec (no such program, not executable, missing
 * cwd, ...) comes back as the matching negative errno (MP_ENOENT, MP_EACCES,
 * MP_ENOTDIR, ...) with a message naming the path, and no child is left behind.
 *
 * Waiting uses a pidfd where the kernel has one. mproc never installs a SIGCHLD
 * handler, and only ever waits for the pid of its own child, so it does not steal
 * other children's statuses. Do not reap mproc's children yourself
 * (waitpid(-1, ...)): their exit status would be lost (reported as 255).
 *
 * A mp_popen handle belongs to the process that created it (in a forked child,
 * wait, poll, communicate and signals return MP_ECHILD; destroy only closes the
 * pipes) and is used by one thread at a time, except that wait, poll, returncode
 * and send_signal / terminate / kill may be called from several threads at once
 * (a timer thread killing a child another thread waits for; every waiter gets the
 * real returncode). Different handles may be used from different threads. Every
 * descriptor mproc creates is close-on-exec, so concurrent spawns from other
 * threads do not inherit each other's pipes. Without env / env_extra the child
 * gets the caller's environ as it is at the spawn, as with posix_spawn: do not
 * call setenv from another thread meanwhile.
 */
#ifndef MPROC_SUBPROCESS_H
#define MPROC_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_popen mp_popen;

/* What a child's stdin, stdout or stderr is connected to. */
typedef enum mp_stdio {
    MP_INHERIT = 0, /* the parent's own descriptor (Python's None) */
    MP_PIPE,        /* a new pipe; the parent's end is mp_popen_stdin/stdout/stderr */
    MP_DEVNULL,     /* /dev/null */
    MP_FD,          /* the descriptor given in stdin_fd / stdout_fd / stderr_fd */
    MP_STDOUT,      /* stderr only: the same as the child's stdout */
} mp_stdio;

/* Options of mp_popen_new. The zero value is Python's default everywhere. */
typedef struct mp_popen_options {
    bool shell;             /* argv[0] is a command line for /bin/sh -c */
    const char *executable; /* the program to run instead of argv[0] (argv[0] is still
                               what the child sees); with shell, replaces /bin/sh */
    mp_stdio stdin_mode, stdout_mode, stderr_mode;
    int stdin_fd, stdout_fd, stderr_fd; /* for MP_FD; the caller keeps them */
    const char *cwd;                    /* directory of the child; NULL: the parent's */
    /* NULL-terminated "NAME=value" strings. env replaces the environment (an empty
     * array gives an empty one); env_extra adds to or overrides env, or the
     * parent's environment when env is NULL (os.environ.copy() + update()); an
     * entry "NAME" without '=' in env_extra removes NAME. */
    const char *const *env;
    const char *const *env_extra;
    bool keep_fds;       /* close_fds=False: the child inherits every descriptor
                            that is not close-on-exec. Default: only 0, 1, 2 and
                            pass_fds survive (close_range where available). */
    const int *pass_fds; /* descriptors the child keeps open (at the same number) */
    size_t n_pass_fds;
    bool start_new_session; /* setsid() in the child */
    bool set_process_group; /* setpgid(0, process_group) in the child */
    pid_t process_group;    /* 0: a new group led by the child */
    bool set_umask;         /* umask(umask) in the child */
    unsigned umask;
    bool keep_signals; /* restore_signals=False: SIGPIPE and SIGXFSZ stay ignored
                          if the parent ignores them. Default: reset to SIG_DFL.
                          Handlers are always reset (they cannot survive exec). */
    /* Called in the child after the descriptors, cwd, umask and session are set,
     * before exec (preexec_fn). A non-zero return aborts the spawn with MP_ESPAWN.
     * Hazards, as in Python: it runs in a forked copy of a possibly multi-threaded
     * process, so only async-signal-safe calls are safe (no malloc, no stdio, no
     * locks). It forces the slower fork() path. */
    int (*preexec)(void *arg);
    void *preexec_arg;
} mp_popen_options;

/* Starts argv as a child (Popen(args, ...)). argv is copied; the caller keeps it.
 * On success *out is a new handle to destroy with mp_popen_destroy.
 * Errors: MP_EINVAL (out or argv NULL, argv empty, bad option: MP_FD with a negative
 * descriptor, MP_STDOUT other than for stderr, negative pass_fds), MP_EBADF (a
 * MP_FD or pass_fds descriptor is not open; checked before anything starts), MP_ENOMEM,
 * MP_EMFILE, MP_EAGAIN (process limit); when the child failed before exec, the
 * negative errno of the failed step (MP_ENOENT, MP_EACCES, MP_ENOEXEC, MP_ENOTDIR,
 * ...) or MP_ESPAWN (preexec returned non-zero). For these child-side failures
 * only, *out is still set, to a handle without a process (the failed child was
 * reaped) whose mp_popen_message() says what failed, e.g. "No such file or
 * directory: 'nosuchcmd'": destroy it. On every other error *out is NULL.
 * Thread-safe (spawns from several threads at once are fine); fork-safe. */
MP_EXTERN int mp_popen_new(mp_popen **out, const char *const *argv, const mp_popen_options *opt);

/* The message of a failed spawn, "" otherwise. Owned by p. */
MP_EXTERN const char *mp_popen_message(const mp_popen *p);

/* The child's pid (0 for a handle whose spawn failed). */
MP_EXTERN pid_t mp_popen_pid(const mp_popen *p);

/* The argv given to mp_popen_new (a copy owned by p), NULL-terminated. */
MP_EXTERN const char *const *mp_popen_args(const mp_popen *p);

/* The parent's ends of the pipes (MP_PIPE), owned by p; -1 when that stream is not
 * a pipe or was closed. Read and write them directly to stream data. */
MP_EXTERN int mp_popen_stdin(const mp_popen *p);
MP_EXTERN int mp_popen_stdout(const mp_popen *p);
MP_EXTERN int mp_popen_stderr(const mp_popen *p);

/* Close the parent's end of a pipe: p.stdin.close() (the child reads end-of-file),
 * p.stdout.close() / p.stderr.close() (after handing the descriptor to another
 * child, as in a pipeline; communicate then returns what was read before).
 * Closing again is a no-op returning 0. Errors: MP_EINVAL. */
MP_EXTERN int mp_popen_close_stdin(mp_popen *p);
MP_EXTERN int mp_popen_close_stdout(mp_popen *p);
MP_EXTERN int mp_popen_close_stderr(mp_popen *p);

/* poll(): reaps the child if it has ended and stores its returncode in
 * *returncode: the exit status, or -N if signal N killed it. returncode may be
 * NULL: then only whether the child has ended is returned (mp_popen_returncode
 * gives the code later). Never blocks.
 * Errors: MP_ENOTREADY (still running), MP_EINVAL (p NULL, or a failed spawn),
 * MP_ECHILD (handle of another process). */
MP_EXTERN int mp_popen_poll(mp_popen *p, int *returncode);

/* wait(timeout): waits up to timeout_ms (-1: forever, 0: just check) for the
 * child to end, reaps it and stores its returncode (returncode may be NULL).
 * Waiting again after the end returns the same code at once. Does not read the
 * pipes: a child writing a lot to a MP_PIPE may block forever, use communicate.
 * Errors: MP_ETIMEDOUT (still running), MP_EINVAL, MP_ECHILD. */
MP_EXTERN int mp_popen_wait(mp_popen *p, int timeout_ms, int *returncode);

/* The returncode once the child has been reaped (by poll, wait, communicate).
 * Errors: MP_ENOTREADY (not reaped yet), MP_EINVAL. */
MP_EXTERN int mp_popen_returncode(const mp_popen *p, int *returncode);

/* send_signal(sig), terminate() (SIGTERM) and kill() (SIGKILL). Safe against pid
 * reuse (mproc reaps the child itself, through a pidfd where available); a no-op
 * returning 0 once the child has ended. Errors: MP_EINVAL (bad signal or handle),
 * MP_ECHILD. */
MP_EXTERN int mp_popen_send_signal(mp_popen *p, int sig);
MP_EXTERN int mp_popen_terminate(mp_popen *p);
MP_EXTERN int mp_popen_kill(mp_popen *p);

/* communicate(input, timeout): writes input_len bytes of input to the child's
 * stdin (which must be MP_PIPE if input_len > 0) and closes it, reads stdout and
 * stderr (those that are MP_PIPE) until end-of-file, all at once with poll() so it
 * never deadlocks, then waits for the child.
 *
 * On success, *out / *err (each may be NULL) receive malloc'd NUL-terminated
 * buffers the caller frees, NULL for streams that are not pipes; *out_len /
 * *err_len (may be NULL) their lengths. A child that exits or closes its stdin
 * without reading everything is not an error (EPIPE is absorbed, no SIGPIPE).
 *
 * On MP_ETIMEDOUT nothing is lost: the output read so far stays in p, and calling
 * communicate again resumes (pass the same input: the bytes already written are
 * skipped); the final call returns everything. The caller keeps input; it must stay
 * valid across resumed calls. The returncode is then available from
 * mp_popen_returncode. Errors: MP_ETIMEDOUT, MP_EINVAL (input without a stdin pipe,
 * timeout below -1, a resumed call with an input_len other than the first call's,
 * as Python's "Cannot send input after starting communication"), MP_ECHILD,
 * MP_ENOMEM, MP_EIO. */
MP_EXTERN int mp_popen_communicate(mp_popen *p, const void *input, size_t input_len, int timeout_ms,
                                   char **out, size_t *out_len, char **err, size_t *err_len);

/* Closes the pipes and frees the handle; NULL is accepted. A child still running
 * is not killed or waited for (as in Python): mproc reaps it later, at the next
 * mp_popen_new or mp_popen_destroy after it ended. */
MP_EXTERN void mp_popen_destroy(mp_popen *p);

/* ---- convenience functions ------------------------------------------------ */

/* CompletedProcess. Filled by mp_run; release with mp_completed_process_free. */
typedef struct mp_completed_process {
    char **args;       /* copy of argv, NULL-terminated */
    int returncode;    /* exit status, or -N after signal N; -1 if never started */
    char *stdout_data; /* captured stdout, NUL-terminated; NULL when not captured */
    size_t stdout_len;
    char *stderr_data; /* captured stderr (or NULL) */
    size_t stderr_len;
    char *message; /* why the spawn failed, or NULL */
} mp_completed_process;

typedef struct mp_run_options {
    const void *input; /* written to the child's stdin (then closed); implies a pipe */
    size_t input_len;
    bool capture_output; /* stdout and stderr as MP_PIPE */
    int timeout_ms;      /* 0 or -1: no limit (Python's None); > 0: the child is
                            killed and reaped when it expires */
    bool check;          /* a non-zero returncode is the error MP_ENONZERO */
    mp_popen_options popen;
} mp_run_options;

/* run(args, ...): starts argv, communicates, waits, and fills *result (always,
 * even on error: free it with mp_completed_process_free).
 * Errors: every error of mp_popen_new (result->message says why the child could
 * not start); MP_ETIMEDOUT (the child was killed and reaped; the output read
 * before the timeout is in *result); MP_ENONZERO (check set and returncode != 0;
 * *result complete); MP_EINVAL (input together with popen.stdin_mode, or
 * capture_output together with stdout_mode / stderr_mode). Thread-safe. */
MP_EXTERN int mp_run(mp_completed_process *result, const char *const *argv,
                     const mp_run_options *opt);

/* Frees what mp_run put in r and zeroes it; NULL is accepted. */
MP_EXTERN void mp_completed_process_free(mp_completed_process *r);

/* call(args, timeout): runs argv, waits up to timeout_ms (-1: forever), stores
 * the returncode in *returncode (may be NULL). On timeout the child is killed and
 * reaped, and MP_ETIMEDOUT returned. Errors: those of mp_popen_new, MP_ETIMEDOUT. */
MP_EXTERN int mp_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms,
                      int *returncode);

/* check_call: as mp_call, but a non-zero returncode is MP_ENONZERO (with
 * *returncode set). */
MP_EXTERN int mp_check_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms,
                            int *returncode);

/* check_output: runs argv with stdout captured and check set; *out receives the
 * output (malloc'd, NUL-terminated, the caller frees it; also set, possibly
 * partial, on MP_ENONZERO and MP_ETIMEDOUT; NULL on other errors), *out_len (may be
 * NULL) its length. opt may be NULL; its popen.stdout_mode must be left 0.
 * Errors: those of mp_run. */
MP_EXTERN int mp_check_output(const char *const *argv, const mp_run_options *opt, char **out,
                              size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SUBPROCESS_H */
