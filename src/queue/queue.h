/* queue/queue.h — test hooks of queue.c. */
#ifndef MPROC_INTERNAL_QUEUE_H
#define MPROC_INTERNAL_QUEUE_H

#include "core/util.h"

/* Points inside put and get where tests may kill the calling process, to check
 * that the queue survives a death at the worst moment. */
enum mp__queue_fault {
    MP__QF_PUT_BEFORE_COMMIT = 1, /* message bytes written, tail not yet advanced */
    MP__QF_STREAM_CHUNK = 2,      /* a streamed message's piece committed */
    MP__QF_GET_BEFORE_COMMIT = 3, /* message copied out, head not yet advanced */
    MP__QF_GET_STREAM_CHUNK = 4,  /* a piece of a streamed message taken */
    MP__QF_PUT_AFTER_COMMIT = 5,  /* tail advanced, a sleeping consumer not yet woken */
    MP__QF_GET_AFTER_COMMIT = 6,  /* head advanced, a sleeping producer not yet woken */
    MP__QF_GET_HOLDS_BOTH = 7,    /* a consumer inside a stream holds put_lock too */
    MP__QF_DONE_BEFORE_WAKE = 8,  /* task_done counted, sleeping joiners not yet woken */
};

/* When not NULL, called at each point above with the point's number. */
MP__HIDDEN extern void (*mp__queue_fault_hook)(int point);

struct mp_queue;

/* Moves an empty, unused queue's indices (and its task_done count) to message
 * count cnt and byte position pos, so tests reach the 2^32 wrap-around quickly.
 * pos must be a multiple of 8. */
MP__HIDDEN void mp__queue_skew(struct mp_queue *q, uint32_t cnt, uint32_t pos);

#endif /* MPROC_INTERNAL_QUEUE_H */
