/* mproc/object_io.h — Python values (mproc/object.h) on connections and queues:
 * Python's Connection.send(obj) / recv() and Queue.put(obj) / get().
 *
 *     mp_obj *msg;
 *     mp_obj_build(&msg, "(si)", "hello", 42);
 *     mp_conn_send(conn, msg);            // a Python peer's conn.recv() gives ('hello', 42)
 *     mp_obj_unref(msg);
 *     mp_conn_recv(conn, &msg);           // whatever the peer's conn.send(x) sent
 *
 * A connection message is one pickle (protocol 4, as CPython 3.8-3.13 send) in
 * CPython's framing, so a mproc connection and a CPython Connection on the two ends
 * of a socket or pipe exchange objects. Queue messages are pickles too (mproc queues
 * are shared memory between mproc processes, not CPython's queues).
 *
 * Threads and fork: as the byte forms in mproc/connection.h and mproc/queue.h.
 * The value passed to a send or put is only read; the caller keeps it. A value
 * received is a new reference the caller unrefs.
 */
#ifndef MPROC_OBJECT_IO_H
#define MPROC_OBJECT_IO_H

#include "mproc/connection.h"
#include "mproc/export.h"
#include "mproc/object.h"
#include "mproc/pickle.h"
#include "mproc/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Python's Connection.send(obj): pickles o (protocol 4) and sends it as one message.
 * Errors: those of mp_pickle_dumps (nothing is sent) and mp_conn_send_bytes. */
MP_EXTERN int mp_conn_send(mp_conn *c, const mp_obj *o);

/* Python's Connection.recv(): receives one message and unpickles it into *out.
 * Errors: those of mp_conn_recv_bytes (MP_EEOF when the peer closed), MP_EPROTO
 * (the message is not a pickle mproc accepts: it is consumed and dropped). */
MP_EXTERN int mp_conn_recv(mp_conn *c, mp_obj **out);

/* mp_conn_recv with limits (NULL: defaults; a message longer than limits->max_size
 * is refused with MP_EMSGSIZE and left unread) and an error message (err may be
 * NULL). */
MP_EXTERN int mp_conn_recv_ex(mp_conn *c, mp_obj **out, const mp_pickle_limits *limits,
                              mp_obj_error *err);

/* Queue.put(obj) / get(): the byte forms of mproc/queue.h with a pickle as the
 * message. put errors: those of mp_pickle_dumps and of the byte put. get errors:
 * those of the byte get, plus MP_EPROTO for a message that is not a pickle (it has
 * been taken from the queue and is dropped). */
MP_EXTERN int mp_queue_put_obj(mp_queue *q, const mp_obj *o, int timeout_ms);
MP_EXTERN int mp_queue_put_obj_nowait(mp_queue *q, const mp_obj *o);
MP_EXTERN int mp_queue_get_obj(mp_queue *q, mp_obj **out, int timeout_ms);
MP_EXTERN int mp_queue_get_obj_nowait(mp_queue *q, mp_obj **out);

MP_EXTERN int mp_simple_queue_put_obj(mp_simple_queue *q, const mp_obj *o);
MP_EXTERN int mp_simple_queue_get_obj(mp_simple_queue *q, mp_obj **out);

MP_EXTERN int mp_joinable_queue_put_obj(mp_joinable_queue *q, const mp_obj *o, int timeout_ms);
MP_EXTERN int mp_joinable_queue_put_obj_nowait(mp_joinable_queue *q, const mp_obj *o);
MP_EXTERN int mp_joinable_queue_get_obj(mp_joinable_queue *q, mp_obj **out, int timeout_ms);
MP_EXTERN int mp_joinable_queue_get_obj_nowait(mp_joinable_queue *q, mp_obj **out);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_OBJECT_IO_H */
