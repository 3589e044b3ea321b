/* mproc/pool.h — a pool of worker processes (or threads), as CPython's
 * multiprocessing.Pool and multiprocessing.pool.ThreadPool.
 *
 *     static int square(const void *arg, size_t len, mp_task *t)
 *     {
 *         int x = *(const int *)arg;
 *         int y = x * x;
 *         return mp_task_return(t, &y, sizeof y);
 *     }
 *
 *     mp_pool *pool;
 *     mp_pool_new(&pool, &(mp_pool_options){.processes = 4});
 *     int in[100], out[100];
 *     ...
 *     mp_pool_map(pool, square, in, sizeof in[0], 100, out, sizeof out[0], NULL);
 *     mp_pool_close(pool);
 *     mp_pool_join(pool, -1);
 *     mp_pool_destroy(pool);
 *
 * Tasks are C functions. A task receives its argument as bytes (copied into the
 * task when it is submitted, of any size) and produces its result as bytes of any
 * size (mp_task_return / mp_task_result_buffer), or fails by returning a non-zero
 * code, optionally with a message (mp_task_fail).
 *
 * Function pointers travel to the workers as addresses. Workers are forked from the
 * pool's process, so every function of the program and of the libraries loaded
 * before the pool was created is valid in them; a function from a library loaded
 * (dlopen) after the pool was created is NOT, and calling it crashes the worker.
 * The same holds for pointers in the data a task reads: a worker sees the parent's
 * memory as it was when the worker was forked (at pool creation, or later for a
 * replacement worker); only the argument bytes reflect the time of submission.
 *
 * Output: a process worker flushes its stdout and stderr after each task (and
 * when it exits), so what a task printed with stdio reaches the terminal or file
 * promptly and is not lost if the worker dies later; the order between the lines
 * of different workers is still not defined. mp_pool_new flushes the caller's
 * stdio buffers before it forks the workers, so nothing is printed twice.
 *
 * Beyond Python: a worker that dies while running a task (killed, segfault, exit
 * or _exit from the task) makes exactly that task (or map chunk) fail with
 * MP_EWORKERDIED, with a message naming the signal or the exit status; the worker is
 * replaced and every other task still runs. No call hangs because a worker died.
 * Workers report small results in batches, kept in the pool's shared memory: a
 * task that the dying worker had finished keeps its result and does not run again.
 * Only when the batches do not fit (shared_size below 8 * processes * 96 KiB) is a
 * task the dying worker had finished but not yet reported run again on another
 * worker (each task still gets exactly one result). A worker that dies in the
 * initializer fails the first task (or map_shared) given to it.
 *
 * Callbacks (callback, error_callback) run in the pool's process, on its result
 * handler thread, one at a time, in completion order. A callback must return
 * promptly and must not wait for another result of the same pool (that result is
 * delivered by the thread running the callback: such a wait, and the synchronous
 * calls apply, map, starmap and map_shared, return MP_EBUSY at once, or
 * MP_ETIMEDOUT for a timeout of 0; a result already complete may be read); it may
 * submit new tasks.
 *
 * Thread pools (mp_pool_options.threads): the same API with worker threads in the
 * calling process. There is no isolation: a task that crashes crashes the whole
 * process, a task that calls exit() ends it, and terminate cannot stop a running
 * task (it waits for it; its result is discarded).
 *
 * Thread safety: every function may be called from any thread of the process that
 * created the pool, concurrently, except destroy (no other call on the pool or its
 * results may be running). Pools are not usable from other processes (children
 * get MP_ECHILD).
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "mproc/export.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_pool mp_pool;
typedef struct mp_async_result mp_async_result;
typedef struct mp_task mp_task;

/* A buffer: len bytes at data. */
typedef struct mp_buf {
    const void *data;
    size_t len;
} mp_buf;

/* A task: arg is the argument's len bytes (readable until the task returns).
 * Return 0 for success (the result is what mp_task_return / mp_task_result_buffer
 * set, or empty), non-zero for failure (see mp_task_fail). */
typedef int (*mp_task_fn)(const void *arg, size_t len, mp_task *t);

/* A starmap task: the item is a tuple of argc buffers. */
typedef int (*mp_star_fn)(size_t argc, const mp_buf *argv, mp_task *t);

/* A zero-copy map kernel: n items at in (in_size bytes each) to n results at out
 * (out_size bytes each), written in place. Non-zero fails the chunk. ctx is the
 * pointer given to the map, passed as is. */
typedef int (*mp_kernel_fn)(const void *in, void *out, size_t n, void *ctx);

/* The signature of callback and error_callback: r is the completed result (its
 * get/successful/item functions work inside the callback). arg is cb_arg. */
typedef void (*mp_result_callback)(mp_async_result *r, void *arg);

/* Inside a task: sets the result to a copy of len bytes of data (replacing any
 * earlier one). In a fixed-size map, len must equal the map's out_size.
 * Errors: MP_ENOMEM, MP_EINVAL (t NULL, or data NULL with len > 0).
 * It is also a macro: in a fixed-size map its common case (len == out_size) is
 * inlined into the task, one store into the item's slot, because it runs once per
 * item; `(mp_task_return)(...)` and its address reach the function itself. */
MP_EXTERN int mp_task_return(mp_task *t, const void *data, size_t len);

/* Internal, for the macro below: the first fields of every mp_task. */
struct mp__task_head {
    void *fixed;       /* a fixed-size map's slot for the item's result, or NULL */
    size_t fixed_size; /* the map's out_size */
    bool fixed_set;    /* the slot was written */
};

static inline int mp__task_return_inline(mp_task *t, const void *data, size_t len)
{
    struct mp__task_head *h = (struct mp__task_head *)(void *)t;
    if (t != NULL && data != NULL && h->fixed != NULL && len == h->fixed_size) {
        memcpy(h->fixed, data, len);
        h->fixed_set = true;
        return 0;
    }
    return (mp_task_return)(t, data, len);
}
#define mp_task_return(t, data, len) mp__task_return_inline((t), (data), (len))

/* Inside a task: a buffer of len bytes that becomes the result; the task fills it
 * before returning. Owned by the pool. NULL when out of memory or len is 0. In a
 * fixed-size map with len == out_size it is the item's slot in the output. */
MP_EXTERN void *mp_task_result_buffer(mp_task *t, size_t len);

/* Inside a task: records a printf-style message for the failure and returns code,
 * for `return mp_task_fail(t, -1, "bad input %d", x);`. code should be non-zero:
 * the task's caller then gets MP_ETASKFAILED, with code as task code and the
 * message as message. */
MP_EXTERN int mp_task_fail(mp_task *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct mp_pool_options {
    /* Number of workers; 0: mp_cpu_count(). Negative or above 4096: MP_EINVAL. */
    int processes;
    /* Called once in each worker (each replacement too) before its first task. */
    void (*initializer)(void *initarg);
    void *initarg;
    /* A worker that has run this many tasks (a map chunk is one task) exits and is
     * replaced by a fresh one. 0: workers live as long as the pool. */
    unsigned maxtasksperchild;
    /* Workers are threads of this process (multiprocessing.pool.ThreadPool). */
    bool threads;
    /* Bytes of shared memory the pool reserves (address space only, pages are
     * used as touched) for mp_pool_shared_alloc, for large task arguments and for
     * the workers' result batches (96 KiB per worker, when that is at most an
     * eighth of it). 0: 1 GiB. */
    size_t shared_size;
    /* How process workers are started. MP_START_DEFAULT and MP_START_FORK: forked
     * from the pool's process (the process-wide default, mp_get_start_method(),
     * is not consulted: a pool started under MPROC_START_METHOD=forkserver still
     * forks its workers). MP_START_FORKSERVER: not implemented, mp_pool_new
     * returns MP_ENOSYS. Why: a worker is built on fork's inheritance. The
     * pool's shared region (task slots, result batches, payloads, map_shared
     * jobs) is anonymous MAP_SHARED memory whose absolute addresses travel in
     * every task header and which workers use in place; task functions,
     * kernels and the initializer travel as addresses of the pool's process;
     * the worker loop reads the pool's structure and descriptor lists from its
     * fork-time copy; and worker death is learnt from a pidfd of a child of the
     * pool's process. A forkserver worker has another address space (other
     * ASLR bases, no copy of the pool) and is the server's child: it would need
     * the region as a memfd mapped at the same address (not guaranteed free),
     * every function pointer translated per object, the pool's state sent at
     * start, and the server's status socket for its end. Ignored (must be 0)
     * for a thread pool. Out of range: MP_EINVAL. */
    mp_start_method start_method;
} mp_pool_options;

/* Options of the asynchronous and map calls; NULL or zero: Python's defaults. */
typedef struct mp_async_options {
    mp_result_callback callback;       /* run on success */
    mp_result_callback error_callback; /* run on failure (task error, worker death, terminate) */
    void *cb_arg;
    /* Items per task for the map forms; 0: Python's defaults, ceil(n / (4 * workers))
     * for map, starmap and map_shared, 1 for imap and imap_unordered. */
    size_t chunksize;
    /* map_shared on a process pool: in and out are MAP_SHARED memory that every
     * worker maps at the same address, though not from mp_pool_shared_alloc (e.g. an
     * mp_array, or an mmap, created before mp_pool_new). The pool cannot check it:
     * with private memory the workers write into their own copies. */
    bool any_shared_memory;
} mp_async_options;

/* Creates a pool and starts its workers (all forked, or started, before return).
 * Errors: MP_EINVAL (out NULL, processes < 0, start_method out of range, or set
 * for a thread pool), MP_ENOMEM, MP_EAGAIN (fork failed), MP_EMFILE, MP_ENOSYS
 * (start_method MP_START_FORKSERVER: see mp_pool_options; or no kernel pidfds). */
MP_EXTERN int mp_pool_new(mp_pool **out, const mp_pool_options *opt);

/* The number of workers. */
MP_EXTERN int mp_pool_processes(const mp_pool *pool);

/* The pids of the current workers, up to max of them, into pids; returns how many
 * (0 for a thread pool). pids may be NULL when max is 0. For tests and diagnostics.
 * Errors: MP_EINVAL (pool NULL, max < 0, or pids NULL with max > 0), MP_ECHILD. */
MP_EXTERN int mp_pool_worker_pids(mp_pool *pool, int *pids, int max);

/* Submits fn(arg) and returns at once. The len bytes of arg are copied; the caller
 * keeps arg. *out receives a new result handle that the caller must destroy;
 * out may be NULL when only the callbacks matter (the pool then owns the result).
 * Errors: MP_EINVAL, MP_ECLOSED (closed or terminated), MP_ENOMEM, MP_ECHILD. */
MP_EXTERN int mp_pool_apply_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn,
                                  const void *arg, size_t len, const mp_async_options *opt);

/* Runs fn(arg) in a worker and waits for it. On success *result (may be NULL to
 * discard) is a malloc'd buffer of *result_len bytes that the caller frees (NULL
 * when empty). Errors: those of apply_async, MP_ETASKFAILED, MP_EWORKERDIED,
 * MP_ETERMINATED; the failure's message is then mp_pool_last_message(). */
MP_EXTERN int mp_pool_apply(mp_pool *pool, mp_task_fn fn, const void *arg, size_t len,
                            void **result, size_t *result_len);

/* The message of the last failed synchronous call (apply, map, starmap, map_shared)
 * made by the calling thread; "" when none. Thread-local; valid until the next call. */
MP_EXTERN const char *mp_pool_last_message(void);

/* The map forms. The n input items are either fixed-size (in_size > 0: n items of
 * in_size bytes back to back at in) or buffers (in_size == 0: in is an array of n
 * mp_buf). All input bytes are copied before the call returns. Results are
 * fixed-size (out_size > 0: every item's result must be exactly out_size bytes,
 * otherwise that item fails with MP_EMSGSIZE) or of any size (out_size == 0,
 * async forms only). Items go to workers in chunks of opt->chunksize; a failing
 * item fails its whole chunk (the rest of the chunk is not run), a dying worker
 * fails the chunk it was running.
 *
 * map: blocks until every item is done and writes the n results to out
 * (n * out_size bytes). Returns 0, or the error of the first failing chunk in item
 * order (MP_ETASKFAILED, MP_EWORKERDIED, MP_ETERMINATED, ...), message in
 * mp_pool_last_message(); out then holds the results of the chunks that succeeded.
 * map (and starmap) stream: each chunk goes to the workers as soon as it is copied,
 * and chunks whose payload travels through the shared memory wait until at most
 * 64 MiB (a quarter of a smaller shared_size) of this map's payloads and result
 * blocks are in flight, one chunk per worker always allowed; the pool closed or
 * terminated while chunks are still to be sent: MP_ECLOSED, once those sent are
 * answered. A chunk whose items are at least twice a feed's ring (2 MiB, or the
 * chunk's largest item rounded up to a power of two, when that is at most an
 * eighth of shared_size) does not travel whole: its items stream through that
 * ring as the worker running the chunk consumes them (up to one such chunk per
 * worker and one more at a time), so a map of large items holds a few rings of
 * shared memory, not a chunk per worker. Fixed-size
 * results of a chunk of at least 64 KiB are written by the worker into the shared
 * memory and copied once into out (synchronous map and starmap only: the async
 * forms get theirs through the socket, so their backlog holds no shared memory).
 * n == 0 returns 0 at once. Errors also (of every map form): MP_EINVAL,
 * MP_EOVERFLOW (n * in_size or n * out_size does not fit in a size_t), MP_ECLOSED,
 * MP_ENOMEM. */
MP_EXTERN int mp_pool_map(mp_pool *pool, mp_task_fn fn, const void *in, size_t in_size, size_t n,
                          void *out, size_t out_size, const mp_async_options *opt);

/* map without blocking: *out is a result whose get() returns, with fixed-size
 * results, the n * out_size bytes of all results; per-item access with
 * mp_async_result_item. Progress with mp_async_result_progress. */
MP_EXTERN int mp_pool_map_async(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                                size_t in_size, size_t n, size_t out_size,
                                const mp_async_options *opt);

/* imap and imap_unordered: *out is a result to iterate with mp_imap_next, in item
 * order (imap) or in completion order (imap_unordered), each result as soon as
 * its chunk is done. The iterator is also an ordinary result (get waits for all). */
MP_EXTERN int mp_pool_imap(mp_pool *pool, mp_async_result **out, mp_task_fn fn, const void *in,
                           size_t in_size, size_t n, size_t out_size, const mp_async_options *opt);
MP_EXTERN int mp_pool_imap_unordered(mp_pool *pool, mp_async_result **out, mp_task_fn fn,
                                     const void *in, size_t in_size, size_t n, size_t out_size,
                                     const mp_async_options *opt);

/* A tuple of arguments for starmap. */
typedef struct mp_args {
    size_t argc;
    const mp_buf *argv;
} mp_args;

/* starmap: fn(argc, argv) for each of the n tuples; otherwise as map / map_async. */
MP_EXTERN int mp_pool_starmap(mp_pool *pool, mp_star_fn fn, const mp_args *tuples, size_t n,
                              void *out, size_t out_size, const mp_async_options *opt);
MP_EXTERN int mp_pool_starmap_async(mp_pool *pool, mp_async_result **out, mp_star_fn fn,
                                    const mp_args *tuples, size_t n, size_t out_size,
                                    const mp_async_options *opt);

/* Shared memory for the zero-copy map: size bytes, zeroed, 64-byte aligned,
 * mapped at the same address in the pool's process and every worker; NULL when the
 * pool's shared reservation (mp_pool_options.shared_size) is exhausted or size is 0.
 * Freed with mp_pool_shared_free or with the pool. Any thread of the pool's process. */
MP_EXTERN void *mp_pool_shared_alloc(mp_pool *pool, size_t size);
MP_EXTERN void mp_pool_shared_free(mp_pool *pool, void *p);

/* Zero-copy map: workers take chunks of items on their own (an atomic counter in
 * shared memory) and run kernel(in + i*in_size, out + i*out_size, count, ctx) on
 * them, writing results in place. in and out must be memory from
 * mp_pool_shared_alloc of this pool (any memory for a thread pool; see also
 * mp_async_options.any_shared_memory); in_size may be
 * 0 (no input), out_size may be 0 (no output). Returns 0 or the error of the first
 * failing chunk (MP_ETASKFAILED with the kernel's code as task code,
 * MP_EWORKERDIED, MP_ETERMINATED). Errors also: MP_EINVAL (memory outside the
 * pool's shared memory, fn NULL), MP_EOVERFLOW (n * in_size or n * out_size does not
 * fit in a size_t), MP_ECLOSED, MP_ENOMEM (also: n / chunksize
 * chunks too many to track). A worker that cannot take the map when it starts
 * (it has its last task under maxtasksperchild) is replaced, and the replacement
 * joins it. */
MP_EXTERN int mp_pool_map_shared(mp_pool *pool, mp_kernel_fn kernel, const void *in, size_t in_size,
                                 void *out, size_t out_size, size_t n, void *ctx,
                                 const mp_async_options *opt);
MP_EXTERN int mp_pool_map_shared_async(mp_pool *pool, mp_async_result **out, mp_kernel_fn kernel,
                                       const void *in, size_t in_size, void *out_array,
                                       size_t out_size, size_t n, void *ctx,
                                       const mp_async_options *opt);

/* Stops accepting tasks; workers exit once every submitted task is done.
 * Calling it again returns 0. Errors: MP_EINVAL, MP_ECHILD. */
MP_EXTERN int mp_pool_close(mp_pool *pool);

/* Stops the workers at once (SIGKILL; a thread pool lets running tasks return) and
 * waits until they have ended (from a callback it returns at once). Every task not
 * yet completed fails with MP_ETERMINATED (error callbacks run). Calling it again
 * returns 0. Errors: MP_EINVAL, MP_ECHILD. */
MP_EXTERN int mp_pool_terminate(mp_pool *pool);

/* Waits up to timeout_ms for the workers of a closed or terminated pool to exit
 * (after a close: for every task to complete). Errors: MP_EBUSY (the pool is still
 * running: close or terminate first, as Python's ValueError; or called from a
 * callback), MP_ETIMEDOUT, MP_EINVAL, MP_ECHILD. */
MP_EXTERN int mp_pool_join(mp_pool *pool, int timeout_ms);

/* Terminates the pool (as leaving Python's `with Pool()` block does: tasks not yet
 * completed fail with MP_ETERMINATED; close and join first to let them finish),
 * joins it and frees it, with its shared memory. From a callback it terminates the
 * pool and returns; the pool is freed once its handler thread ends and no call on
 * the pool that had begun before is still running in another thread (such as the
 * apply_async that submitted the callback's task; a join or terminate waiting there
 * returns). The callback must not touch the pool, or its shared memory, after the
 * call, and no call may begin on it from then on. Results still held by the
 * caller stay valid (completed, MP_ETERMINATED if they never ran) until destroyed,
 * and may be read, waited for and destroyed from any thread while a pool destroyed
 * from a callback is being freed. NULL is accepted. Apart from that case, no other
 * call on the pool or its results may run during destroy. */
MP_EXTERN void mp_pool_destroy(mp_pool *pool);

/* --- AsyncResult ---
 * A result handle owns every buffer it returns: the pointers from get and item
 * stay valid, unchanged, until mp_async_result_destroy. Any thread may wait on it. */

/* Waits up to timeout_ms for the result. On success, *data / *len (either may be
 * NULL) are the result bytes: an apply's result; a fixed-size map's n * out_size
 * bytes of results; NULL / 0 for maps with variable-size results (use
 * mp_async_result_item). Errors: MP_ETIMEDOUT (not ready; call again),
 * MP_ETASKFAILED (see task_code and message), MP_EWORKERDIED, MP_ETERMINATED,
 * MP_EINVAL, MP_ECHILD (a copy of the handle in a forked child: it never completes
 * there; wait and mp_imap_next refuse the same way), MP_EBUSY (from a callback of
 * the same pool, r not complete: it would wait for its own thread; wait and
 * mp_imap_next refuse the same way). */
MP_EXTERN int mp_async_result_get(mp_async_result *r, int timeout_ms, const void **data,
                                  size_t *len);

/* Waits up to timeout_ms; 0 once ready, MP_ETIMEDOUT, MP_EINVAL, MP_ECHILD, MP_EBUSY
 * (see get). */
MP_EXTERN int mp_async_result_wait(mp_async_result *r, int timeout_ms);

/* True once the result is complete (and its callback has run). */
MP_EXTERN bool mp_async_result_ready(mp_async_result *r);

/* Whether the task succeeded: 1 yes, 0 no, MP_ENOTREADY before it is ready (as
 * Python's ValueError), MP_EINVAL. */
MP_EXTERN int mp_async_result_successful(mp_async_result *r);

/* The failed task's own non-zero return value (the kernel's for map_shared), 0
 * when the task did not fail by returning a code. */
MP_EXTERN int mp_async_result_task_code(mp_async_result *r);

/* The failure's message ("" when none), owned by r. */
MP_EXTERN const char *mp_async_result_message(mp_async_result *r);

/* Result of item i of a completed map (or of a chunk already done): its status
 * (0 or the error of its chunk) and bytes (owned by r). Errors: MP_ERANGE (i >= n),
 * MP_ENOTREADY (its chunk is not done), MP_EINVAL. */
MP_EXTERN int mp_async_result_item(mp_async_result *r, size_t i, const void **data, size_t *len);

/* Items done so far and the total, without waiting (an apply counts as 1 item).
 * Errors: MP_EINVAL. */
MP_EXTERN int mp_async_result_progress(mp_async_result *r, size_t *done, size_t *total);

/* The next result of an imap / imap_unordered / map iterator, waiting up to
 * timeout_ms for it: *index (may be NULL) is the item's position in the input,
 * *data / *len its bytes (owned by r). Returns 0, the item's error (the error of
 * its chunk: each item of a failed chunk reports it), MP_EEOF once every item was
 * returned, MP_ETIMEDOUT, MP_EINVAL, MP_ECHILD, MP_EBUSY (see get). One iterating
 * thread at a time. */
MP_EXTERN int mp_imap_next(mp_async_result *r, size_t *index, const void **data, size_t *len,
                           int timeout_ms);

/* Releases the handle and its buffers. A task still running completes in the
 * pool (its callbacks still run). NULL is accepted. In a forked child, releases the
 * child's copy only. */
MP_EXTERN void mp_async_result_destroy(mp_async_result *r);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_POOL_H */
