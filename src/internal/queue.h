/* internal/queue.h — test hooks of queue.c. */
#ifndef MPROC_INTERNAL_QUEUE_H
#define MPROC_INTERNAL_QUEUE_H

#include "internal/util.h"

/* Points inside put and get where tests may kill the calling process, to check
 * that the queue survives a death at the worst moment. */
enum mp__queue_fault {
    MP__QF_PUT_BEFORE_COMMIT = 1, /* message bytes written, tail not yet advanced */
    MP__QF_STREAM_CHUNK = 2,      /* a streamed message's piece committed */
    MP__QF_GET_BEFORE_COMMIT = 3, /* message copied out, head not yet advanced */
    MP__QF_GET_STREAM_CHUNK = 4,  /* a piece of a streamed message taken */
};

/* When not NULL, called at each point above with the point's number. */
MP__HIDDEN extern void (*mp__queue_fault_hook)(int point);

#endif /* MPROC_INTERNAL_QUEUE_H */
