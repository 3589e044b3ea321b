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
 * other children's statuses. If something else reaps one of its children (a
 * waitpid(-1, ...) of the program's own, or SIGCHLD set to SIG_IGN, under which
 * the kernel reaps every child itself), its status is lost and mproc reports
 * returncode 0, as CPython does (mp_process children report 255 then; see
 * mproc/process.h). So do not reap mproc's children yourself: the real status
 * would be lost.
 *
 * Descriptors: a live handle holds the parent's pipe ends it was asked for and,
 * where the kernel has pidfds, one more descriptor (the child's pidfd) until
 * mp_popen_destroy, even after the child ended: a program that starts many
 * commands at once should destroy the handles it is done with.
 *
 * stdio: mp_popen_new does not flush the caller's stdio buffers (as CPython's
 * Popen does not; exec discards the child's copy, so nothing is printed twice),
 * so text printed before may appear after the child's own output: fflush(stdout)
 * first when the order matters. (mp_process_start does flush: a forked child
 * would print the buffer a second time.)
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
#include "mproc/timeout.h"

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
 * An empty program name (argv[0] "" without executable, or executable "") is
 * searched on PATH as CPython does, so it fails with MP_EACCES, "Permission
 * denied: ''" (each "dir/" is a directory).
 * Thread-safe (spawns from several threads at once are fine); fork-safe. */
MP_EXTERN int mp_popen_new(mp_popen **out, const char *const *argv, const mp_popen_options *opt);

/* What went wrong, in Python's words: the message of a failed spawn ("No such
 * file or directory: 'nosuchcmd'"), else a short text of the last misuse a call
 * on p refused ("read of closed file", "Cannot send input after starting
 * communication"), else "". Owned by p (static texts for misuses); valid until
 * destroy. */
MP_EXTERN const char *mp_popen_message(const mp_popen *p);

/* The child's pid (0 for a handle whose spawn failed). */
MP_EXTERN pid_t mp_popen_pid(const mp_popen *p);

/* The argv given to mp_popen_new (a copy owned by p), NULL-terminated. */
MP_EXTERN const char *const *mp_popen_args(const mp_popen *p);

/* The parent's ends of the pipes (MP_PIPE); -1 when that stream is not a pipe or
 * was closed or taken. Ownership: the descriptor stays owned by p, which closes it
 * in communicate, mp_popen_close_* and mp_popen_destroy. Read and write it
 * directly (read(), write(), poll()), but never close it and never wrap it in a
 * FILE * that you fclose (fdopen + fclose closes it: the handle's later close
 * would then close an unrelated descriptor that took the same number). To keep
 * a stream for yourself, take it over with mp_popen_take_*. */
MP_EXTERN int mp_popen_stdin(const mp_popen *p);
MP_EXTERN int mp_popen_stdout(const mp_popen *p);
MP_EXTERN int mp_popen_stderr(const mp_popen *p);

/* Takes the parent's end of a pipe over: returns the descriptor, which the caller
 * now owns and must close (fclose of a FILE * made of it with fdopen is fine);
 * the handle forgets it (mp_popen_stdout returns -1, destroy does not close it,
 * communicate treats that stream as closed). Reading a child's output as it
 * comes, Python's `for line in p.stdout:`:
 *
 *     FILE *f = fdopen(mp_popen_take_stdout(p), "r");
 *     char *line = NULL;
 *     size_t cap = 0;
 *     while (getline(&line, &cap, f) > 0)
 *         handle(line);
 *     free(line);
 *     fclose(f);                       // closes the descriptor: it is yours
 *     mp_popen_wait(p, -1, &code);
 *
 * The descriptor is close-on-exec and blocking. Not thread-safe against other
 * calls on the same stream of p. Errors: MP_EINVAL (p NULL), MP_EBADF (that
 * stream is not a pipe, or was closed or taken before). */
MP_EXTERN int mp_popen_take_stdin(mp_popen *p);
MP_EXTERN int mp_popen_take_stdout(mp_popen *p);
MP_EXTERN int mp_popen_take_stderr(mp_popen *p);

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
 * *err_len (may be NULL) their lengths. Every parent pipe end is closed by then
 * (mp_popen_stdin/stdout/stderr return -1), as in Python, and the output is the
 * caller's: a second communicate after one that succeeded is MP_ECLOSED with
 * mp_popen_message "read of closed file" when stdout or stderr was a pipe
 * ("write to closed file" for new input to a stdin pipe); for a command without
 * pipes it just waits again and returns 0. A child that exits or closes its stdin
 * without reading everything is not an error (EPIPE is absorbed, no SIGPIPE).
 *
 * On MP_ETIMEDOUT nothing is lost: the output read so far stays in p, and calling
 * communicate again resumes (pass the same input: the bytes already written are
 * skipped); the final call returns everything. The caller keeps input; it must stay
 * valid across resumed calls. The returncode is then available from
 * mp_popen_returncode. Errors: MP_ETIMEDOUT, MP_EINVAL (input without a stdin pipe,
 * timeout below -1, a resumed call with an input_len other than the first call's,
 * as Python's "Cannot send input after starting communication"), MP_ECLOSED (a
 * second communicate, above), MP_ECHILD, MP_ENOMEM, MP_EIO. The misuses leave a
 * text in mp_popen_message. */
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
    /* What went wrong, as Python's exception says it, or NULL. After a failed
     * spawn: "No such file or directory: 'nosuchcmd'". MP_ENONZERO
     * (CalledProcessError): "Command '['ls', 'x']' returned non-zero exit status
     * 2." or "Command '['sleep', '9']' died with <Signals.SIGKILL: 9>.".
     * MP_ETIMEDOUT (TimeoutExpired): "Command '['sleep', '9']' timed out after
     * 1.5 seconds". The command is shown as Python shows Popen.args: the repr of
     * the argv list, or, for a shell command given alone (popen.shell with only
     * argv[0]), the command line as it is. A misuse refused with MP_EINVAL:
     * Python's ValueError text ("stdin and input arguments may not both be
     * used."). */
    char *message;
} mp_completed_process;

typedef struct mp_run_options {
    const void *input; /* written to the child's stdin (then closed); implies a pipe */
    size_t input_len;
    bool capture_output; /* stdout and stderr as MP_PIPE */
    int timeout_ms;      /* an options field (mproc/timeout.h): 0 or -1: no limit
                            (Python's None); > 0: that many ms; MP_TIMEOUT_NOW: at
                            once (Python's timeout=0). When it expires the child is
                            killed and reaped. */
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

/* call(args, timeout): runs argv, waits up to timeout_ms (-1: forever; 0: the child
 * is killed unless it has already ended, Python's timeout=0), stores
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
 * NULL) its length, *returncode (may be NULL) the returncode, as
 * CalledProcessError.returncode: also set on MP_ENONZERO and MP_ETIMEDOUT (-9
 * there: the child was killed), -1 when the command did not start. opt may be
 * NULL; its popen.stdout_mode must be left 0. Errors: those of mp_run. */
MP_EXTERN int mp_check_output(const char *const *argv, const mp_run_options *opt, char **out,
                              size_t *out_len, int *returncode);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SUBPROCESS_H */
