/* queue/queue.h — test hooks of queue.c. */
#ifndef MPROC_INTERNAL_QUEUE_H
#define MPROC_INTERNAL_QUEUE_H

#include "core/util.h"

/* Points inside put and get where tests may kill the calling process, to check
 * that the queue survives a death at the worst moment. */
enum mp__queue_fault {
    MP__QF_PUT_BEFORE_COMMIT = 1,  /* record (and any block) written, tail not yet advanced */
    MP__QF_BLOB_HALF_WRITTEN = 2,  /* block reserved, half of a long message's bytes in it */
    MP__QF_GET_BEFORE_COMMIT = 3,  /* message copied out, head not yet advanced */
    MP__QF_GET_BLOB_HALF_READ = 4, /* half of a long message copied out of its block */
    MP__QF_PUT_AFTER_COMMIT = 5,   /* tail advanced, a sleeping consumer not yet woken */
    MP__QF_GET_AFTER_COMMIT = 6,   /* head advanced, a sleeping producer not yet woken */
    MP__QF_GET_BLOB_TAKEN = 7,     /* a long message taken and unlocked, its block not released */
    MP__QF_DONE_BEFORE_WAKE = 8,   /* task_done counted, sleeping joiners not yet woken */
    MP__QF_ROOM_WAIT_FLAGGED = 9,  /* a producer about to sleep for room has set its flag and
                                      not yet looked at the ring again */
};

/* When not NULL, called at each point above with the point's number. */
MP__HIDDEN extern void (*mp__queue_fault_hook)(int point);

struct mp_queue;

/* Moves an empty, unused queue's indices (and its task_done count) to message
 * count cnt and byte position pos, so tests reach the 2^32 wrap-around quickly.
 * pos must be a multiple of 8. */
MP__HIDDEN void mp__queue_skew(struct mp_queue *q, uint32_t cnt, uint32_t pos);

/* Bytes of memory the queue's blocks of long messages hold now (the memfd's
 * allocated pages), for tests that check nothing leaks. */
MP__HIDDEN uint64_t mp__queue_blob_bytes(struct mp_queue *q);

#endif /* MPROC_INTERNAL_QUEUE_H */
