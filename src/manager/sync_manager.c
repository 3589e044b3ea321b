/* manager/sync_manager.c — SyncManager's registry and the typed proxy shortcuts
 * of mproc/sync_manager.h. */
#include "mproc/sync_manager.h"

#include <string.h>

#include "manager/sync_types.h"

static const struct {
    const char *typeid;
    const mp_manager_type *type;
} reg[] = {
    {"Queue", &mp_manager_queue_type},
    {"JoinableQueue", &mp_manager_queue_type},
    {"Event", &mp__sm_event_type},
    {"Lock", &mp__sm_lock_type},
    {"RLock", &mp__sm_rlock_type},
    {"Semaphore", &mp__sm_semaphore_type},
    {"BoundedSemaphore", &mp__sm_bounded_semaphore_type},
    {"Condition", &mp__sm_condition_type},
    {"Barrier", &mp__sm_barrier_type},
    {"list", &mp__sm_list_type},
    {"dict", &mp__sm_dict_type},
    {"Value", &mp__sm_value_type},
    {"Array", &mp__sm_array_type},
    {"Namespace", &mp__sm_namespace_type},
    {"Iterator", &mp__sm_iterator_type},
};

const mp_manager_type *mp_sync_manager_type(const char *typeid)
{
    for (size_t i = 0; typeid != NULL && i < sizeof reg / sizeof reg[0]; i++)
        if (strcmp(reg[i].typeid, typeid) == 0)
            return reg[i].type;
    return NULL;
}

int mp_sync_manager_register(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++) {
        int rc = mp_manager_register(m, reg[i].typeid,
                                     &(mp_manager_register_options){.type = reg[i].type});
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- shortcuts ---- */

/* The wait for the reply of an operation that itself waits up to timeout_ms: the
 * operation's time plus a margin for the round trip. */
static int reply_ms(int timeout_ms)
{
    if (timeout_ms < 0 || timeout_ms > 0x7fffffff - 30000)
        return -1;
    return timeout_ms + 30000;
}

/* A timeout argument in seconds, or None for -1. */
static mp_obj *timeout_obj(int timeout_ms)
{
    return timeout_ms < 0 ? mp_none() : mp_float(timeout_ms / 1000.0);
}

/* Calls method with args (taken) and drops or keeps the result. */
static int call_taking(mp_proxy *p, const char *method, mp_obj *args, int timeout_ms,
                       mp_obj **result)
{
    if (args == NULL)
        return MP_ENOMEM;
    int rc = mp_proxy_call(p, method, args, NULL, timeout_ms, result);
    mp_obj_unref(args);
    return rc;
}

/* MP_EREMOTE of an exception named name (any module) becomes code. */
static int remote_as(int rc, const char *name, int code)
{
    if (rc != MP_EREMOTE)
        return rc;
    const mp_obj *exc = NULL;
    if (mp_manager_remote_error(&exc, NULL) == 0 && exc != NULL &&
        mp_obj_is_exception(exc, NULL, name))
        return code;
    return rc;
}

static int bool_result(int rc, mp_obj *r, int when_false)
{
    if (rc < 0)
        return rc;
    bool b = false;
    rc = mp_bool_value(r, &b);
    mp_obj_unref(r);
    if (rc < 0)
        return MP_EPROTO;
    return b ? 0 : when_false;
}

int mp_proxy_acquire(mp_proxy *p, int timeout_ms)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_obj *args = timeout_ms == 0  ? mp_tuple1(mp_bool(false))
                   : timeout_ms < 0 ? mp_tuple1(mp_bool(true))
                                    : mp_tuple2(mp_bool(true), mp_float(timeout_ms / 1000.0));
    mp_obj *r = NULL;
    int rc = call_taking(p, "acquire", args, reply_ms(timeout_ms), &r);
    return bool_result(rc, r, MP_ETIMEDOUT);
}

int mp_proxy_release(mp_proxy *p)
{
    int rc = mp_proxy_call(p, "release", NULL, NULL, 0, NULL);
    rc = remote_as(rc, "RuntimeError", MP_EPERM);
    return remote_as(rc, "ValueError", MP_EPERM);
}

int mp_proxy_condition_wait(mp_proxy *p, int timeout_ms)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_obj *r = NULL;
    int rc = call_taking(p, "wait", mp_tuple1(timeout_obj(timeout_ms)), reply_ms(timeout_ms), &r);
    return bool_result(remote_as(rc, "RuntimeError", MP_EPERM), r, MP_ETIMEDOUT);
}

int mp_proxy_condition_notify(mp_proxy *p, int n)
{
    if (n < 0)
        return MP_EINVAL;
    int rc = call_taking(p, "notify", mp_tuple1(mp_int(n)), 0, NULL);
    return remote_as(rc, "RuntimeError", MP_EPERM);
}

int mp_proxy_condition_notify_all(mp_proxy *p)
{
    return remote_as(mp_proxy_call(p, "notify_all", NULL, NULL, 0, NULL), "RuntimeError", MP_EPERM);
}

int mp_proxy_event_set(mp_proxy *p)
{
    return mp_proxy_call(p, "set", NULL, NULL, 0, NULL);
}

int mp_proxy_event_clear(mp_proxy *p)
{
    return mp_proxy_call(p, "clear", NULL, NULL, 0, NULL);
}

int mp_proxy_event_is_set(mp_proxy *p)
{
    mp_obj *r = NULL;
    int rc = mp_proxy_call(p, "is_set", NULL, NULL, 0, &r);
    rc = bool_result(rc, r, 1);
    return rc == 0 ? 1 : rc == 1 ? 0 : rc;
}

int mp_proxy_event_wait(mp_proxy *p, int timeout_ms)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_obj *r = NULL;
    int rc = call_taking(p, "wait", mp_tuple1(timeout_obj(timeout_ms)), reply_ms(timeout_ms), &r);
    return bool_result(rc, r, MP_ETIMEDOUT);
}

int mp_proxy_barrier_wait(mp_proxy *p, int timeout_ms)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_obj *r = NULL;
    int rc = call_taking(p, "wait", mp_tuple1(timeout_obj(timeout_ms)), reply_ms(timeout_ms), &r);
    rc = remote_as(rc, "BrokenBarrierError", MP_EBROKEN);
    if (rc < 0)
        return rc;
    int64_t index;
    rc = mp_int_value(r, &index);
    mp_obj_unref(r);
    return rc < 0 || index < 0 || index > 0x7fffffff ? MP_EPROTO : (int)index;
}

int mp_proxy_barrier_abort(mp_proxy *p)
{
    return mp_proxy_call(p, "abort", NULL, NULL, 0, NULL);
}

int mp_proxy_barrier_reset(mp_proxy *p)
{
    return mp_proxy_call(p, "reset", NULL, NULL, 0, NULL);
}

int mp_proxy_dict_set(mp_proxy *p, mp_obj *key, mp_obj *value)
{
    if (p == NULL || key == NULL || value == NULL) {
        mp_obj_unref(key);
        mp_obj_unref(value);
        return MP_EINVAL;
    }
    int rc = call_taking(p, "__setitem__", mp_tuple2(key, value), 0, NULL);
    return remote_as(rc, "TypeError", MP_ETYPE);
}

int mp_proxy_dict_set_str(mp_proxy *p, const char *key, mp_obj *value)
{
    if (key == NULL) {
        mp_obj_unref(value);
        return MP_EINVAL;
    }
    mp_obj *k = mp_str_c(key);
    if (k == NULL) {
        mp_obj_unref(value);
        return MP_EINVAL;
    }
    return mp_proxy_dict_set(p, k, value);
}

int mp_proxy_dict_get(mp_proxy *p, const mp_obj *key, mp_obj **value)
{
    if (value != NULL)
        *value = NULL;
    if (p == NULL || key == NULL || value == NULL)
        return MP_EINVAL;
    int rc = call_taking(p, "__getitem__", mp_tuple1(mp_obj_ref(key)), 0, value);
    rc = remote_as(rc, "KeyError", MP_ENOENT);
    return remote_as(rc, "TypeError", MP_ETYPE);
}

int mp_proxy_dict_get_str(mp_proxy *p, const char *key, mp_obj **value)
{
    if (key == NULL)
        return MP_EINVAL;
    mp_obj *k = mp_str_c(key);
    if (k == NULL)
        return MP_EINVAL;
    int rc = mp_proxy_dict_get(p, k, value);
    mp_obj_unref(k);
    return rc;
}

int mp_proxy_dict_del(mp_proxy *p, const mp_obj *key)
{
    if (p == NULL || key == NULL)
        return MP_EINVAL;
    int rc = call_taking(p, "__delitem__", mp_tuple1(mp_obj_ref(key)), 0, NULL);
    rc = remote_as(rc, "KeyError", MP_ENOENT);
    return remote_as(rc, "TypeError", MP_ETYPE);
}

int mp_proxy_list_append(mp_proxy *p, mp_obj *item)
{
    if (p == NULL || item == NULL) {
        mp_obj_unref(item);
        return MP_EINVAL;
    }
    return call_taking(p, "append", mp_tuple1(item), 0, NULL);
}

int mp_proxy_list_get(mp_proxy *p, int64_t index, mp_obj **item)
{
    if (item != NULL)
        *item = NULL;
    if (p == NULL || item == NULL)
        return MP_EINVAL;
    int rc = call_taking(p, "__getitem__", mp_tuple1(mp_int(index)), 0, item);
    return remote_as(rc, "IndexError", MP_ERANGE);
}

int64_t mp_proxy_len(mp_proxy *p)
{
    mp_obj *r = NULL;
    int rc = mp_proxy_call(p, "__len__", NULL, NULL, 0, &r);
    if (rc < 0)
        return rc;
    int64_t n;
    rc = mp_int_value(r, &n);
    mp_obj_unref(r);
    return rc < 0 || n < 0 ? MP_EPROTO : n;
}

int mp_proxy_value_get(mp_proxy *p, mp_obj **value)
{
    if (value != NULL)
        *value = NULL;
    if (p == NULL || value == NULL)
        return MP_EINVAL;
    return mp_proxy_call(p, "get", NULL, NULL, 0, value);
}

int mp_proxy_value_set(mp_proxy *p, mp_obj *value)
{
    if (p == NULL || value == NULL) {
        mp_obj_unref(value);
        return MP_EINVAL;
    }
    return call_taking(p, "set", mp_tuple1(value), 0, NULL);
}
