/* pickle/codec.h — the pickle encoder's buffer, for callers that frame the pickle
 * themselves (connections and queues write it after their own header without a
 * copy). Hidden symbols. */
#ifndef MPROC_PICKLE_CODEC_H
#define MPROC_PICKLE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/object.h"

/* An output buffer. Start it with p = a caller buffer of cap bytes (owned = false)
 * and len = the bytes already there (a header to keep); the encoder appends and
 * moves to the heap (owned = true) when it outgrows it, growing geometrically. */
typedef struct mp__wbuf {
    uint8_t *p;
    size_t len, cap;
    bool owned; /* p is malloc'd: free it with mp__wbuf_free */
} mp__wbuf;

/* Appends the pickle of o (protocol 0: default) to w. On error w->len is back where
 * it was. Errors as mp_pickle_dumps. */
MP__HIDDEN int mp__pickle_dump(const mp_obj *o, int protocol, mp__wbuf *w);

/* Frees w's heap buffer, if any. */
MP__HIDDEN void mp__wbuf_free(mp__wbuf *w);

#endif /* MPROC_PICKLE_CODEC_H */
