/* queue_object.c — put/get of objects on Queue, SimpleQueue and JoinableQueue: the
 * message is the object's pickle (protocol 4). Small pickles are built on the stack
 * and small messages taken into a stack buffer. */
#include <stdlib.h>

#include "mproc/error.h"
#include "mproc/object_io.h"
#include "mproc/pickle.h"
#include "mproc/queue.h"
#include "pickle/codec.h"

#define STACK_BYTES 1024

/* Pickles o on the stack (or heap for large values) and hands the bytes to put. */
#define PUT_OBJ(q, o, call)                                                                        \
    do {                                                                                           \
        if ((q) == NULL || (o) == NULL)                                                            \
            return MP_EINVAL;                                                                      \
        uint8_t stack_[STACK_BYTES];                                                               \
        mp__wbuf w = {.p = stack_, .len = 0, .cap = sizeof stack_, .owned = false};                \
        int rc_ = mp__pickle_dump((o), 0, &w);                                                     \
        if (rc_ == 0)                                                                              \
            rc_ = (call);                                                                          \
        mp__wbuf_free(&w);                                                                         \
        return rc_;                                                                                \
    } while (0)

typedef int (*get_into_fn)(void *q, void *buf, size_t cap, size_t *len, int timeout_ms);
typedef int (*get_fn)(void *q, void **out, size_t *len, int timeout_ms);

static int unpickle(const void *msg, size_t len, mp_obj **out)
{
    return mp_pickle_loads(msg, len, NULL, out, NULL);
}

/* get_into with a stack buffer; on MP_ETOOSHORT the message is still queued, so a
 * plain get takes it. */
static int get_obj(void *q, mp_obj **out, int timeout_ms, get_into_fn into, get_fn get)
{
    if (q == NULL || out == NULL)
        return MP_EINVAL;
    *out = NULL;
    uint8_t stack[STACK_BYTES];
    size_t len = 0;
    int rc = into ? into(q, stack, sizeof stack, &len, timeout_ms) : MP_ETOOSHORT;
    if (rc == 0)
        return unpickle(stack, len, out);
    if (rc != MP_ETOOSHORT)
        return rc;
    void *msg = NULL;
    rc = get(q, &msg, &len, timeout_ms);
    if (rc < 0)
        return rc;
    rc = unpickle(msg, len, out);
    free(msg);
    return rc;
}

static int q_into(void *q, void *buf, size_t cap, size_t *len, int t)
{
    return mp_queue_get_into(q, buf, cap, len, t);
}
static int q_get(void *q, void **out, size_t *len, int t)
{
    return mp_queue_get(q, out, len, t);
}
static int jq_into(void *q, void *buf, size_t cap, size_t *len, int t)
{
    return mp_joinable_queue_get_into(q, buf, cap, len, t);
}
static int jq_get(void *q, void **out, size_t *len, int t)
{
    return mp_joinable_queue_get(q, out, len, t);
}
static int sq_get(void *q, void **out, size_t *len, int t)
{
    (void)t;
    return mp_simple_queue_get(q, out, len);
}

int mp_queue_put_obj(mp_queue *q, const mp_obj *o, int timeout_ms)
{
    PUT_OBJ(q, o, mp_queue_put(q, w.p, w.len, timeout_ms));
}

int mp_queue_put_obj_nowait(mp_queue *q, const mp_obj *o)
{
    return mp_queue_put_obj(q, o, 0);
}

int mp_queue_get_obj(mp_queue *q, mp_obj **out, int timeout_ms)
{
    return get_obj(q, out, timeout_ms, q_into, q_get);
}

int mp_queue_get_obj_nowait(mp_queue *q, mp_obj **out)
{
    return mp_queue_get_obj(q, out, 0);
}

int mp_simple_queue_put_obj(mp_simple_queue *q, const mp_obj *o)
{
    PUT_OBJ(q, o, mp_simple_queue_put(q, w.p, w.len));
}

int mp_simple_queue_get_obj(mp_simple_queue *q, mp_obj **out)
{
    return get_obj(q, out, -1, NULL, sq_get);
}

int mp_joinable_queue_put_obj(mp_joinable_queue *q, const mp_obj *o, int timeout_ms)
{
    PUT_OBJ(q, o, mp_joinable_queue_put(q, w.p, w.len, timeout_ms));
}

int mp_joinable_queue_put_obj_nowait(mp_joinable_queue *q, const mp_obj *o)
{
    return mp_joinable_queue_put_obj(q, o, 0);
}

int mp_joinable_queue_get_obj(mp_joinable_queue *q, mp_obj **out, int timeout_ms)
{
    return get_obj(q, out, timeout_ms, jq_into, jq_get);
}

int mp_joinable_queue_get_obj_nowait(mp_joinable_queue *q, mp_obj **out)
{
    return mp_joinable_queue_get_obj(q, out, 0);
}
