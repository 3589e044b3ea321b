/* mproc/process.h — processes, as CPython's multiprocessing.Process.
 *
 *     static int work(void *arg) { printf("hello %s\n", (char *)arg); return 0; }
 *
 *     mp_process *p;
 *     mp_process_new(&p, work, "bob", NULL);
 *     mp_process_start(p);
 *     mp_process_join(p, -1);
 *     mp_process_destroy(p);
 *
 * The default start method is fork (the forkserver, below, is the other): the
 * child is a copy of the caller, it runs
 * target(arg), and the target's return value becomes its exit code: the child
 * calls exit() with it, so stdio is flushed and atexit handlers run, including
 * those the parent registered before start (a handler that must run only in the
 * parent should compare getpid() with the pid it recorded, or the target may end
 * with _exit() after fflush). Objects from mproc's shared arena (locks, queues,
 * values) created before start are shared with the child.
 *
 * Randomness: a child inherits the parent's rand(), random() and drand48() state
 * (and that of any other generator in memory), so children that "sleep a random
 * time" all draw the same numbers. CPython reseeds its random module after fork;
 * mproc does not touch the C library's generators. Reseed at the top of the
 * target, with something that differs per child:
 *
 *     srand((unsigned)getpid() ^ (unsigned)time(NULL));
 *     srand48((long)getpid() ^ (long)time(NULL));  // for drand48
 *
 * (or read getrandom() for numbers that must not be guessable; see
 * examples/21_lock_random_sleep.c).
 *
 * Handles are private to the process that created them: only that process may
 * start, join, signal or close a child (others get MP_ECHILD). A handle may be used
 * from several threads of its process at once.
 *
 * Fire-and-forget (Python's `Process(target=f).start()` without keeping the
 * object): a child whose handle was destroyed while it ran is still this
 * process's child, as in Python: mp_active_children counts and lists it (its
 * handle stays usable for join, is_alive, pid, exitcode until the next
 * mp_active_children call), and the exit below waits for it.
 *
 * When a process exits normally (return from main or exit()), mproc terminates
 * its daemon children with SIGTERM and then joins every child it started, as
 * CPython does, so no zombie is left behind: a non-daemon child, fire-and-forget
 * or not, keeps its parent's exit waiting until it ends. An abrupt end (_exit, a
 * signal) waits for nothing; daemon children then get SIGKILL from the kernel,
 * the others live on. mp_process_start and mp_active_children also reap, first,
 * the children whose handles were destroyed and that have ended.
 *
 * If something else reaps a child (a waitpid(-1) of the program's own, or SIGCHLD
 * set to SIG_IGN), mproc cannot learn its status and reports exit code 255.
 * (External commands, mproc/subprocess.h, report 0 then, as CPython's Popen.)
 *
 * Misuse messages: a call that refuses a misuse with an error code leaves
 * Python's text for it in mp_process_message(p) ("cannot start a process twice",
 * "can only join a started process", "process object is closed", ...).
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_process mp_process;

/* The function a child runs. Its return value is the child's exit code (only the
 * low 8 bits reach the parent, as with exit()). */
typedef int (*mp_target)(void *arg);

/* How a child is started.
 *  MP_START_FORK: the child is a copy of the caller (fork()), as described above.
 *    Its cost grows with the caller's size (the kernel copies its page tables:
 *    10-20 ms for a 1 GiB parent), and forking a multi-threaded caller is
 *    unsafe if another thread holds a lock the child needs (malloc's, stdio's).
 *  MP_START_FORKSERVER: a small server process, a fresh exec of this program
 *    (/proc/self/exe) started once (mp_forkserver_ensure_running, or the first
 *    such start), forks each child; the cost is flat whatever the caller's size,
 *    and any thread may start children. See "The forkserver" below.
 *  MP_START_DEFAULT (0): the process-wide default, mp_get_start_method(). */
typedef enum mp_start_method {
    MP_START_DEFAULT = 0,
    MP_START_FORK = 1,
    MP_START_FORKSERVER = 2,
} mp_start_method;

typedef struct mp_process_options {
    /* The process's name, copied. NULL: "Process-N", where N counts the processes
     * this process has created ("Process-1:2" for the second child of Process-1). */
    const char *name;
    /* A daemon child is terminated with SIGTERM when its parent exits normally, and
     * killed with SIGKILL if the parent dies abruptly (the kernel's parent-death
     * signal; it follows the thread that called start, so start daemons from a
     * thread that lives as long as they should). A daemon may not create children. */
    bool daemon;
    /* MP_START_DEFAULT: mp_get_start_method() at start. */
    mp_start_method start_method;
    /* 0: arg is passed as a pointer value (under the forkserver only the value
     * travels: fine for an integer cast to a pointer, meaningless for an address).
     * Otherwise the child gets a pointer to its own copy of the arg_size bytes at
     * arg, read during mp_process_start (keep them valid until it returns); later
     * changes in the parent are not seen. Under fork this is what the child sees
     * anyway; under the forkserver it is how data reaches the child. */
    size_t arg_size;
} mp_process_options;

/* Creates a process object that will run target(arg); nothing is started yet.
 * Under fork arg is passed as is: the child sees the parent's memory as it was at
 * start. Under the forkserver see arg_size.
 * Errors: MP_EINVAL (out or target NULL, arg NULL with arg_size, a start method
 * out of range), MP_ENOMEM. */
MP_EXTERN int mp_process_new(mp_process **out, mp_target target, void *arg,
                             const mp_process_options *opt);

/* Starts the child. stdio buffers (every FILE *) are flushed first, with
 * fflush(NULL), so nothing buffered before start is printed twice (by the parent
 * and by the forked copy). mp_popen_new does not flush (see mproc/subprocess.h).
 * Errors: MP_EALREADY (started before), MP_ECLOSED, MP_ECHILD (handle of another
 * process), MP_EDAEMON (the caller is a daemon process), MP_EAGAIN / MP_ENOMEM
 * (fork failed: process or memory limit). Under the forkserver also: MP_ENOENT
 * (target not in an object the server has loaded), MP_ESRCH (the server died;
 * the next start launches a new one), MP_ETIMEDOUT (the server did not answer
 * within 10 s), MP_EMFILE. */
MP_EXTERN int mp_process_start(mp_process *p);

/* Waits up to timeout_ms (-1: forever, 0: just check) for the child to end and
 * reaps it. Joining an ended child again returns 0 at once. On
 * mp_parent_process(), waits for the parent to end (returns 0 once it has).
 * Errors: MP_ETIMEDOUT (still running), MP_ENOTSTARTED, MP_ECLOSED, MP_ECHILD,
 * MP_EINVAL (timeout below -1, or the current process joining itself),
 * MP_EMFILE (a timed join needs a descriptor and none is left). */
MP_EXTERN int mp_process_join(mp_process *p, int timeout_ms);

/* True from start until the child has ended; false before start, after close,
 * and for a handle of another process. True for mp_current_process(). */
MP_EXTERN bool mp_process_is_alive(mp_process *p);

/* The child's pid; 0 before start. Valid after the child ended, until close. */
MP_EXTERN pid_t mp_process_pid(const mp_process *p);

/* The name given in the options, or the default name; static for the lifetime of p. */
MP_EXTERN const char *mp_process_name(const mp_process *p);

/* Whether p was created as a daemon. */
MP_EXTERN bool mp_process_daemon(const mp_process *p);

/* Stores the exit code in *exitcode once the child has ended: the target's return
 * value or exit() status, or -N when it was killed by signal N. Does not block.
 * Errors: MP_ENOTREADY (still running, or p is not a child), MP_ENOTSTARTED,
 * MP_ECLOSED, MP_ECHILD (a handle of another process), MP_EINVAL. */
MP_EXTERN int mp_process_exitcode(mp_process *p, int *exitcode);

/* Sends SIGTERM (terminate) or SIGKILL (kill). Safe against pid reuse; a no-op
 * returning 0 once the child has ended.
 * Errors: MP_ENOTSTARTED, MP_ECLOSED, MP_ECHILD (not a child of the caller). */
MP_EXTERN int mp_process_terminate(mp_process *p);
MP_EXTERN int mp_process_kill(mp_process *p);

/* A descriptor that becomes readable when the child ends (a pidfd where the kernel
 * has one), to poll() together with other descriptors; owned by p and valid until
 * close or destroy. Works for mp_parent_process() too, where the kernel has
 * pidfds (Linux >= 5.3; MP_ENOSYS before), and returns MP_ESRCH once the parent
 * has ended.
 * Errors: MP_ENOTSTARTED, MP_ECLOSED, MP_ECHILD, MP_EMFILE, MP_EINVAL. */
MP_EXTERN int mp_process_sentinel(mp_process *p);

/* Releases the process's resources (its sentinel); afterwards only destroy is
 * allowed and other calls return MP_ECLOSED. A child that is still running (or
 * being started, or waited for by a timed join in another thread) refuses with
 * MP_EBUSY, as in Python. Closing twice returns 0.
 * Errors: MP_EBUSY, MP_ECHILD (a handle of another process), MP_EINVAL. */
MP_EXTERN int mp_process_close(mp_process *p);

/* Frees the handle. NULL is accepted. A child still running is not killed: it is
 * reaped later, by mp_active_children() or when this process exits.
 * mp_current_process() and mp_parent_process() are not to be destroyed. */
MP_EXTERN void mp_process_destroy(mp_process *p);

/* A short text, in Python's words, of the last misuse a call on p refused
 * ("cannot start a process twice", "can only join a started process", "process
 * object is closed", "Cannot close a process while it is still running. You
 * should first call join() or terminate()."), or "". Static strings; never NULL.
 * mp_current_process() and mp_parent_process() carry none. */
MP_EXTERN const char *mp_process_message(const mp_process *p);

/* The calling process: name "MainProcess" in a program's first process, the
 * child's name in a child. Owned by mproc; never NULL. */
MP_EXTERN mp_process *mp_current_process(void);

/* In a child started with mp_process_start, its parent (name, pid, is_alive,
 * join, sentinel); NULL in the main process. Owned by mproc. */
MP_EXTERN mp_process *mp_parent_process(void);

/* Reaps every child of the caller that has ended and returns how many are still
 * alive, fire-and-forget children (handle destroyed while running) included, as
 * Python's active_children(). When children is not NULL, *children is set to a
 * malloc'd array of their handles (free() the array, not the handles; NULL when
 * there are none). The handle of a fire-and-forget child in the array may be
 * joined, polled and signalled until the next mp_active_children call of this
 * process, which frees it once the child has ended (a join in progress keeps it
 * valid); destroy and close are no-ops on it.
 * Errors: MP_ENOMEM. */
MP_EXTERN int mp_active_children(mp_process ***children);

/* The forkserver (MP_START_FORKSERVER).
 *
 * The server is started once per process by mp_forkserver_ensure_running (call
 * it early, while the program is small and has one thread: it costs one exec of
 * the program), or by the first forkserver start. It is a child of the caller
 * that exits when the caller exits (or calls mp_forkserver_stop); it never runs
 * main: a constructor in mproc takes over the exec'd program. The program itself
 * must link mproc (statically or as a DT_NEEDED library), not dlopen it, and its
 * executable must still be /proc/self/exe.
 *
 * A forkserver child inherits:
 *  - the program's code and the state its constructors made: those of the
 *    libraries it links and those that run before mproc's own (the program's own
 *    constructors may not all have run; do not rely on them);
 *  - the environment and working directory from when the server started;
 *  - the caller's descriptors 0, 1 and 2 at mp_process_start (those open);
 *  - the argument as bytes (arg_size) or as a pointer value (arg_size 0);
 *  - its name and identity, mp_current_process(); mp_parent_process() is the
 *    caller (is_alive, join and sentinel watch the caller through a pidfd).
 * It does not inherit the caller's globals, heap, other descriptors, threads,
 * signal dispositions or mask (all default), atexit handlers, or mproc shared
 * objects (locks, queues, values, pools made by the caller are not shared with
 * it: share by name with mp_shared_memory, or through a connection it opens).
 * Its exit code is target(arg), through exit() (its own atexit handlers run).
 * A daemon child dies (SIGKILL) when the server does, and so when the caller
 * exits or stops the server; at normal exit the caller terminates its daemon
 * children with SIGTERM first, as under fork.
 * The target must be a function of the program or of a library it had loaded
 * when the server started: one from a library dlopen'ed later is refused at
 * start with MP_ENOENT.
 * The spares: the server keeps two children forked in advance, waiting; a
 * start hands one the request (target, argument, names, descriptors), it
 * becomes the child, and the server forks the next spare meanwhile. Since the server's own
 * state (environment, working directory, limits, memory) never changes after it
 * started, a spare is what a fork at start would have made, and the list above
 * holds as written: what the caller has at start (descriptors 0-2, argument,
 * name, daemon flag) comes with the request. Two things show the difference:
 * the child's pid was allocated, and its /proc start time set, when the spare
 * was forked (before mp_process_start); and a spare that cannot be forked
 * (process limit) makes the server fork each child at start instead.
 * The end: where the kernel tells a reaped process's exit status through its
 * pidfd (Linux >= 6.15), it reaps the server's children itself, and join,
 * is_alive and exitcode learn the end and the status from the child's pidfd,
 * which is then the sentinel: no round trip through the server, and a joined
 * child is reaped, as under fork (the kernel may hold its pid number a moment
 * longer). On older kernels the server reaps them and tells the caller; the
 * sentinel is then the socket it tells on.
 * If the server dies (killed), the next start fails with MP_ESRCH and drops
 * it, and the start after that launches a new one. Children whose
 * status the dead server could not report end with exit code 255. A start
 * whose child was killed before it answered fails with MP_ESRCH too, and keeps
 * the server (alive: it is checked). The server raises its soft descriptor limit
 * to the hard one (it holds descriptors for each running child); its children
 * get back the limit it was started with. */

/* Sets the start method used when the options say MP_START_DEFAULT (Python's
 * set_start_method). The initial default is fork, or the value of the
 * environment variable MPROC_START_METHOD ("fork" or "forkserver"; anything else
 * is fork) read at the first call of either function. Thread-safe.
 * Errors: MP_EINVAL (not MP_START_FORK or MP_START_FORKSERVER). */
MP_EXTERN int mp_set_start_method(mp_start_method method);
MP_EXTERN mp_start_method mp_get_start_method(void);

/* Starts this process's forkserver now if it is not running (Python's
 * forkserver.ensure_running); 0 when it runs. Thread-safe. A child made with
 * fork() has no forkserver (its parent's is not inherited) and starts its own.
 * Errors: MP_ESRCH (the server did not come up: the program does not link mproc,
 * or /proc/self/exe is not this program), MP_EMFILE, MP_ENOMEM, MP_EAGAIN. */
MP_EXTERN int mp_forkserver_ensure_running(void);

/* Stops this process's forkserver, if one runs, and reaps it; always 0. Its
 * daemon children die with it; other children keep running but their exit
 * status is lost (exit code 255): join them first. The next forkserver start
 * launches a new server. Thread-safe. */
MP_EXTERN int mp_forkserver_stop(void);

/* The pid of this process's forkserver, 0 when none runs. */
MP_EXTERN pid_t mp_forkserver_pid(void);

/* The number of CPUs in the system (at least 1). */
MP_EXTERN int mp_cpu_count(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_PROCESS_H */
