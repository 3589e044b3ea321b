/* mproc/connection.h — pipes and connections, as CPython's multiprocessing.Pipe
 * and multiprocessing.connection.Connection, plus connection.wait.
 *
 *     mp_conn *a, *b;
 *     mp_pipe(&a, &b, true);          // duplex: a socketpair
 *     mp_conn_send_bytes(a, "hello", 5);
 *     void *msg; size_t len;
 *     mp_conn_recv_bytes(b, &msg, &len, 0);   // msg = "hello", len = 5; free(msg)
 *     mp_conn_destroy(a);
 *     mp_conn_destroy(b);
 *
 * Messages are never merged or split: one send is one receive, from 0 bytes to
 * gigabytes. The wire format is CPython's: a signed 32-bit big-endian length and
 * the payload, or, for payloads longer than 0x7fffffff bytes, the length -1 and an
 * unsigned 64-bit big-endian length. A mproc connection and a CPython Connection on
 * the two ends of one socket or pipe exchange send_bytes/recv_bytes messages.
 *
 * Fork: a connection created before fork() works in the child (its descriptor is
 * inherited); as in Python, each end should be used by one process, and the end a
 * process does not use should be closed there so that end-of-file can be seen.
 * Threads: a connection may be used by two threads at once only if one only sends
 * and the other only receives; two concurrent senders (or receivers) on one
 * connection must be serialized by the caller, as in Python.
 *
 * Receiving reads ahead: a connection may hold the beginning of the next message in
 * its own buffer, so polling mp_conn_fileno() yourself can miss a message that is
 * already there. Use mp_conn_poll or mp_wait, which know about the buffer.
 */
#ifndef MPROC_CONNECTION_H
#define MPROC_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>

#include "mproc/export.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_conn mp_conn;

/* A size argument meaning "everything from offset to the end of the buffer"
 * (Python's size=None). */
#define MP_CONN_REST ((size_t)-1)

/* Creates a pair of connected connections, as Python's Pipe(duplex). duplex: both
 * ends send and receive (a socketpair). Not duplex: *conn1 only receives and *conn2
 * only sends (a pipe). Both descriptors are close-on-exec.
 * Errors: MP_EINVAL (NULL out pointer), MP_EMFILE, MP_ENOMEM. */
MP_EXTERN int mp_pipe(mp_conn **conn1, mp_conn **conn2, bool duplex);

/* Wraps a descriptor the caller already has (a connected stream socket or a pipe
 * end), as Python's Connection(handle, readable, writable). The connection owns fd
 * from then on and closes it; on error fd is left untouched.
 * Errors: MP_EINVAL (fd < 0, or neither readable nor writable), MP_EBADF (fd is not
 * open), MP_ENOMEM. */
MP_EXTERN int mp_conn_from_fd(mp_conn **out, int fd, bool readable, bool writable);

/* Sends len bytes of buf as one message; the caller keeps buf. Blocks until the
 * whole message has been written (the peer must be receiving for large ones);
 * signals do not interrupt it. A closed peer never raises SIGPIPE.
 * Errors: MP_EINVAL (buf NULL with len > 0), MP_ECLOSED (closed here), MP_EBADF
 * (receive-only end), MP_EPIPE or MP_ECONNRESET (the peer closed its end; part of
 * the message may have been written). */
MP_EXTERN int mp_conn_send_bytes(mp_conn *c, const void *buf, size_t len);

/* Python's send_bytes(buf, offset, size): sends bytes [offset, offset + size) of a
 * buffer of buflen bytes; size MP_CONN_REST means up to the end. Errors as
 * mp_conn_send_bytes, plus MP_EINVAL when offset > buflen or offset + size > buflen
 * (nothing is sent). */
MP_EXTERN int mp_conn_send_bytes_range(mp_conn *c, const void *buf, size_t buflen, size_t offset,
                                       size_t size);

/* Receives one message into a new malloc'd buffer stored in *out (the caller frees
 * it; never NULL on success, even for an empty message) and its length in *len.
 * Blocks until a whole message has arrived. maxlength 0 means no limit; a message
 * longer than a non-zero maxlength is refused with MP_EMSGSIZE, *len set to its
 * length and the message kept for the next receive (Python closes the connection
 * instead). The length in a header is not trusted: memory for the payload grows
 * as its bytes arrive (at most 256 KiB before the first byte), so a peer claiming
 * gigabytes it does not send costs nothing.
 * Errors: MP_EEOF (the peer closed its end between messages), MP_ETRUNCATED (the
 * peer closed in the middle of a message: the partial message is dropped),
 * MP_EMSGSIZE (longer than maxlength, or, on 32-bit systems, than memory can
 * address), MP_EPROTO (a length CPython cannot have sent: a negative 32-bit one
 * other than -1, or a 64-bit one above 2^63 - 1, whatever maxlength; every later
 * receive returns it again), MP_ENOMEM (the message is kept: the next receive goes
 * on with what has arrived), MP_ECLOSED, MP_EBADF (send-only end), MP_EINVAL. */
MP_EXTERN int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *len, size_t maxlength);

/* Python's recv_bytes_into(buffer, offset): receives one message into
 * buf[offset, buflen) and stores its length in *len. When the message does not fit,
 * returns MP_ETOOSHORT with *len set to the message's length and the message kept
 * for the next receive (Python's BufferTooShort). Errors as mp_conn_recv_bytes,
 * plus MP_EINVAL (offset > buflen, len NULL, buf NULL with buflen > 0). */
MP_EXTERN int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t buflen, size_t offset,
                                      size_t *len);

/* Python's poll: 1 when data (or end-of-file) is there to receive, 0 when none
 * came within timeout_ms (-1: wait forever, 0: just check). As in Python, "data"
 * may be only the start of a message: a receive after 1 can still wait for the
 * rest of it, for as long as the sender takes to send it.
 * Errors: MP_EINVAL (timeout below -1), MP_ECLOSED, MP_EBADF (send-only end). */
MP_EXTERN int mp_conn_poll(mp_conn *c, int timeout_ms);

/* The connection's descriptor, still owned by c. Errors: MP_ECLOSED, MP_EINVAL. */
MP_EXTERN int mp_conn_fileno(const mp_conn *c);

/* Whether the connection may receive / send, and whether it has been closed. */
MP_EXTERN bool mp_conn_readable(const mp_conn *c);
MP_EXTERN bool mp_conn_writable(const mp_conn *c);
MP_EXTERN bool mp_conn_closed(const mp_conn *c);

/* Closes the descriptor; afterwards every call but destroy returns MP_ECLOSED.
 * Closing twice returns 0. Errors: MP_EINVAL (c NULL). */
MP_EXTERN int mp_conn_close(mp_conn *c);

/* Closes (if needed) and frees c. NULL is accepted. */
MP_EXTERN void mp_conn_destroy(mp_conn *c);

/* One object for mp_wait: set exactly one of conn, process, or (when both are
 * NULL) fd. ready is an output. */
typedef struct mp_wait_object {
    mp_conn *conn;       /* ready when data or end-of-file is there (as mp_conn_poll) */
    mp_process *process; /* ready once the process has ended (its sentinel) */
    int fd;              /* used when conn and process are NULL: ready when readable */
    bool ready;          /* set by mp_wait */
} mp_wait_object;

/* Python's multiprocessing.connection.wait: waits up to timeout_ms until at least
 * one of the n objects is ready, then sets each one's ready flag and returns how
 * many are ready; 0 when the timeout passed first. Signals do not shorten the wait.
 * Readiness is a state, not an event: a process that has ended (and a connection
 * at end-of-file) stays ready, so every later mp_wait that includes it returns at
 * once. Take such an object out of the array once it has been handled, as Python
 * programs remove it from their list.
 * Errors: MP_EINVAL (objs NULL with n > 0, an object with none or two of its
 * fields set, timeout below -1), MP_ECLOSED (a closed connection), MP_EBADF
 * (send-only connection), errors of mp_process_sentinel, MP_ENOMEM. */
MP_EXTERN int mp_wait(mp_wait_object *objs, size_t n, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_CONNECTION_H */
