/* conn_object.c — Connection.send(obj) / recv(): a pickle per message, on top of the
 * byte API of connection.c. Small pickles are built on the stack and received into
 * a stack buffer, so a small object round trip allocates only the value itself. */
#include <stdlib.h>

#include "mproc/connection.h"
#include "mproc/error.h"
#include "mproc/object_io.h"
#include "mproc/pickle.h"
#include "pickle/codec.h"

#define STACK_BYTES 1024

int mp_conn_send(mp_conn *c, const mp_obj *o)
{
    if (c == NULL || o == NULL)
        return MP_EINVAL;
    uint8_t stack[STACK_BYTES];
    mp__wbuf w = {.p = stack, .len = 0, .cap = sizeof stack, .owned = false};
    int rc = mp__pickle_dump(o, 0, &w);
    if (rc == 0)
        rc = mp_conn_send_bytes(c, w.p, w.len);
    mp__wbuf_free(&w);
    return rc;
}

int mp_conn_recv_ex(mp_conn *c, mp_obj **out, const mp_pickle_limits *limits, mp_obj_error *err)
{
    if (err != NULL) {
        err->text[0] = '\0';
        err->position = 0;
    }
    if (c == NULL || out == NULL)
        return MP_EINVAL;
    *out = NULL;
    size_t max = limits != NULL && limits->max_size != 0 ? limits->max_size : (size_t)1 << 30;
    uint8_t stack[STACK_BYTES];
    size_t len = 0;
    void *heap = NULL;
    const void *msg = stack;
    /* A message longer than max is refused by recv_bytes_into and stays unread. */
    int rc = mp_conn_recv_bytes_into(c, stack, max < sizeof stack ? max : sizeof stack, 0, &len);
    if (rc == MP_ETOOSHORT) {
        if (len > max)
            return MP_EMSGSIZE;
        rc = mp_conn_recv_bytes(c, &heap, &len, max);
        msg = heap;
    }
    if (rc < 0)
        return rc;
    rc = mp_pickle_loads(msg, len, limits, out, err);
    free(heap);
    return rc;
}

int mp_conn_recv(mp_conn *c, mp_obj **out)
{
    return mp_conn_recv_ex(c, out, NULL, NULL);
}
