/* mproc/queue.h — queues between processes, as CPython's multiprocessing.Queue,
 * SimpleQueue and JoinableQueue, carrying messages of bytes.
 *
 *     mp_queue *q;
 *     mp_queue_new(&q, 0, NULL);                // Queue(): no item limit
 *     ... fork / mp_process_start ...
 *     mp_queue_put(q, "job", 3, -1);            // in a producer
 *     void *msg; size_t len;
 *     mp_queue_get(q, &msg, &len, -1);          // in a consumer; free(msg)
 *     mp_queue_destroy(q);                      // everywhere; frees in the creator
 *
 * A queue lives in shared memory: a ring of bytes that producers append whole
 * messages to and consumers take them from, with futex waits; there is no pipe and
 * no feeder thread. A handle made before fork() works in the parent and in every
 * child forked after, and from any number of threads in each. Any number of
 * producers and consumers may use a queue at once. Messages from one producer
 * (thread) arrive in the order it put them.
 *
 * Messages are byte strings of any length, including 0 and lengths larger than the
 * ring: a message that does not fit the ring is written into a block of shared
 * memory outside it (in a memory file the queue made at creation, so a queue holds
 * one file descriptor, close-on-exec, in each process, which the program must not
 * close behind its back, and a mapping of 4 times ring_bytes once it has carried
 * such a message) and the ring carries only a reference to the block. A message
 * is delivered whole or not at all, and exactly once: see the kills below.
 *
 * Differences from CPython, all on the safe side:
 * - put copies the bytes into shared memory before it returns; a process that put
 *   messages and exits never blocks on exit, and data put before exit stays in the
 *   queue for others (no "joining processes that use queues" deadlock).
 * - The ring has a fixed size in bytes (options.ring_bytes); when it is full, put
 *   waits even for a queue without an item limit (CPython's buffer grows without
 *   bound in the feeder thread). Messages longer than the ring are bounded too: at
 *   most 4 times ring_bytes of them (each rounded up to 4 KiB pages) wait in the
 *   queue at once, beyond which put waits likewise, except that a message of any
 *   length is accepted when no other long message is queued (and then no other
 *   long one until it is taken). That memory, touched as used, is kept for reuse
 *   until destroy; a message longer than 4 rings gets memory of its own, given
 *   back once it is taken (at the latest at the next long put).
 * - A producer or consumer killed in the middle of put or get (even SIGKILL), at
 *   any point and whatever the message's length, leaves the queue consistent for
 *   everyone else: a message it had not finished putting is never delivered (its
 *   memory is reused); a message it had not finished
 *   taking stays in the queue, whole, for the next consumer. Delivery is
 *   at-most-once only towards a consumer that dies in the instant between taking
 *   a message and get returning it, or after: the message is then its own.
 *   The next put (or get) after such a death waits up to 50 ms for the dead
 *   process's side lock: the lock names a process, and waiters check that it
 *   lives after each 50 ms of sleep (a put_nowait / get_nowait checks at once).
 * - close() affects only the calling process, as in CPython, and does not
 *   interrupt calls already blocked in other threads.
 *
 * Lifetime: the process that created a queue owns its shared memory. destroy frees
 * the handle in every process, and the shared memory only in the creating process
 * (a no-op on shared memory elsewhere), so the creator must destroy it last, after
 * every other process is done with it (for example after joining them).
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_queue mp_queue;
typedef struct mp_simple_queue mp_simple_queue;
typedef struct mp_joinable_queue mp_joinable_queue;

typedef struct mp_queue_options {
    /* Bytes of the shared ring, rounded up to a power of two between 4 KiB and
     * 1 GiB. 0: 1 MiB. Each message takes its length rounded up to 8 plus 8 bytes;
     * messages longer than the ring take 16 bytes of it and live outside it (see
     * above). Memory is touched only as it is used. */
    size_t ring_bytes;
} mp_queue_options;

/* ---- Queue ---- */

/* Creates a queue of at most maxsize messages (0: no limit but the ring's bytes,
 * as Python's maxsize <= 0). The caller becomes the owner of the shared memory.
 * Errors: MP_EINVAL (out NULL, ring_bytes above 1 GiB), MP_ENOMEM, MP_EMFILE (no
 * descriptor left for the queue's memory file). */
MP_EXTERN int mp_queue_new(mp_queue **out, size_t maxsize, const mp_queue_options *opt);

/* Copies len bytes of buf into the queue as one message; the caller keeps buf.
 * Waits up to timeout_ms (-1: forever, 0: not at all) for room: fewer than maxsize
 * messages, enough free ring bytes and, for a message longer than the ring, room
 * in the budget of long messages (see above). Safe from any thread of any process
 * forked after q was created.
 * Errors: MP_EFULL (no room in time; nothing of the message will be delivered),
 * MP_ENOMEM (no memory for a long message's block; nothing delivered),
 * MP_ECLOSED (closed in this process), MP_EINVAL (q NULL, buf NULL with len > 0,
 * len above 2^56 - 1, timeout below -1). (MP_ENOTRECOVERABLE, listed here before,
 * is no longer returned: recovering from a dead process cannot itself fail.) */
MP_EXTERN int mp_queue_put(mp_queue *q, const void *buf, size_t len, int timeout_ms);

/* mp_queue_put(q, buf, len, 0). */
MP_EXTERN int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t len);

/* Takes the oldest message: *out receives a malloc'd copy the caller frees (never
 * NULL on success, even for an empty message) and *len its length. Waits up to
 * timeout_ms for a message (a message is there whole or not at all).
 * Errors: MP_EEMPTY (no message in time), MP_ECLOSED, MP_ENOMEM (no memory for
 * the copy, or to map a long message's block; the message stays in the queue),
 * MP_EINVAL. */
MP_EXTERN int mp_queue_get(mp_queue *q, void **out, size_t *len, int timeout_ms);

/* Like mp_queue_get, into the caller's buffer of cap bytes. A message longer than
 * cap is not taken: MP_ETOOSHORT, with *len set to its length. */
MP_EXTERN int mp_queue_get_into(mp_queue *q, void *buf, size_t cap, size_t *len, int timeout_ms);

/* mp_queue_get(q, out, len, 0). */
MP_EXTERN int mp_queue_get_nowait(mp_queue *q, void **out, size_t *len);

/* The number of messages in the queue at one recent instant, so between 0 and
 * maxsize, but possibly out of date once returned while others put and get (as in
 * Python). Errors: MP_EINVAL, MP_ECLOSED. */
MP_EXTERN int mp_queue_qsize(mp_queue *q);

/* Whether the queue holds no message / has no room for even an empty message;
 * approximate, as in Python. False for NULL. */
MP_EXTERN bool mp_queue_empty(mp_queue *q);
MP_EXTERN bool mp_queue_full(mp_queue *q);

/* Python's close(): this process will not use the queue any more; put, get, qsize
 * then return MP_ECLOSED here. Other processes are unaffected; nothing already put
 * is lost. Closing twice returns 0. Errors: MP_EINVAL. */
MP_EXTERN int mp_queue_close(mp_queue *q);

/* Frees this process's handle, and the shared memory if this process created the
 * queue (see Lifetime above). NULL is accepted. */
MP_EXTERN void mp_queue_destroy(mp_queue *q);

/* ---- SimpleQueue: no item limit, no timeouts ---- */

/* Creates a SimpleQueue; opt may set ring_bytes. Errors as mp_queue_new. */
MP_EXTERN int mp_simple_queue_new(mp_simple_queue **out, const mp_queue_options *opt);

/* Puts one message, waiting as long as the ring has no room.
 * Errors: MP_ECLOSED, MP_EINVAL. */
MP_EXTERN int mp_simple_queue_put(mp_simple_queue *q, const void *buf, size_t len);

/* Takes one message into a malloc'd *out, waiting as long as there is none.
 * Errors: MP_ECLOSED, MP_ENOMEM, MP_EINVAL. */
MP_EXTERN int mp_simple_queue_get(mp_simple_queue *q, void **out, size_t *len);

/* Whether no message is waiting; false for NULL. */
MP_EXTERN bool mp_simple_queue_empty(mp_simple_queue *q);

/* As mp_queue_close and mp_queue_destroy. */
MP_EXTERN int mp_simple_queue_close(mp_simple_queue *q);
MP_EXTERN void mp_simple_queue_destroy(mp_simple_queue *q);

/* ---- JoinableQueue: a Queue that counts unfinished tasks ---- */

/* Creates a JoinableQueue; as mp_queue_new. Every message put adds one unfinished
 * task; mp_joinable_queue_task_done removes one. */
MP_EXTERN int mp_joinable_queue_new(mp_joinable_queue **out, size_t maxsize,
                                    const mp_queue_options *opt);

/* The Queue operations, with the same contracts. */
MP_EXTERN int mp_joinable_queue_put(mp_joinable_queue *q, const void *buf, size_t len,
                                    int timeout_ms);
MP_EXTERN int mp_joinable_queue_put_nowait(mp_joinable_queue *q, const void *buf, size_t len);
MP_EXTERN int mp_joinable_queue_get(mp_joinable_queue *q, void **out, size_t *len, int timeout_ms);
MP_EXTERN int mp_joinable_queue_get_into(mp_joinable_queue *q, void *buf, size_t cap, size_t *len,
                                         int timeout_ms);
MP_EXTERN int mp_joinable_queue_get_nowait(mp_joinable_queue *q, void **out, size_t *len);
MP_EXTERN int mp_joinable_queue_qsize(mp_joinable_queue *q);
MP_EXTERN bool mp_joinable_queue_empty(mp_joinable_queue *q);
MP_EXTERN bool mp_joinable_queue_full(mp_joinable_queue *q);
MP_EXTERN int mp_joinable_queue_close(mp_joinable_queue *q);
MP_EXTERN void mp_joinable_queue_destroy(mp_joinable_queue *q);

/* Marks one task taken from the queue as finished (a message whose put failed or
 * whose producer died inside put never counted as a task).
 * Errors: MP_ERANGE (called more times than messages were put; nothing changed),
 * MP_ECLOSED, MP_EINVAL. */
MP_EXTERN int mp_joinable_queue_task_done(mp_joinable_queue *q);

/* Waits up to timeout_ms until every message put so far has been marked done.
 * A consumer that dies before task_done leaves its task unfinished, as in Python;
 * another process may call task_done for it.
 * Errors: MP_ETIMEDOUT, MP_ECLOSED, MP_EINVAL. */
MP_EXTERN int mp_joinable_queue_join(mp_joinable_queue *q, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_QUEUE_H */
