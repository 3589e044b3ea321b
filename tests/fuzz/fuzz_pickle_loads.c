/* fuzz_pickle_loads.c — libFuzzer target for the pickle decoder: whatever bytes a
 * peer sends, mp_pickle_loads must end in a value or a clean MP_EPROTO (with a
 * message), never a crash, an overread, a leak or a hang. A decoded value must
 * print, compare equal to itself (NaN aside, by repr), and re-encode to a pickle
 * that decodes to an equal value. Built and run by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

/* Nodes of o counted as a tree (a shared value once per reference), stopping once
 * budget runs out: memo references can make a short pickle a DAG whose tree, and
 * so whose repr, is exponentially large (in CPython too). */
static long tree_size(const mp_obj *o, long budget)
{
    long n = 1;
    int64_t len = mp_obj_len(o);
    mp_obj_kind k = mp_obj_kind_of(o);
    if (k == MP_OBJ_TUPLE || k == MP_OBJ_LIST) {
        for (int64_t i = 0; i < len && n < budget; i++)
            n += tree_size(mp_seq_item(o, (size_t)i), budget - n);
    } else if (k == MP_OBJ_DICT) {
        size_t it = 0;
        mp_obj *key, *v;
        while (n < budget && mp_dict_next(o, &it, &key, &v))
            n += tree_size(key, budget - n) + tree_size(v, budget - n);
    } else if (k == MP_OBJ_SET || k == MP_OBJ_FROZENSET) {
        size_t it = 0;
        mp_obj *item;
        while (n < budget && mp_set_next(o, &it, &item))
            n += tree_size(item, budget - n);
    } else if (k == MP_OBJ_OBJECT) {
        const mp_obj *parts[] = {mp_object_args(o), mp_object_kwargs(o), mp_object_state(o),
                                 mp_object_listitems(o), mp_object_dictitems(o)};
        for (int i = 0; i < 5 && n < budget; i++)
            if (parts[i] != NULL)
                n += tree_size(parts[i], budget - n);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_obj *o = NULL;
    mp_obj_error err;
    mp_pickle_limits lim = {.max_depth = 200, .max_items = 1 << 16};
    int rc = mp_pickle_loads(data, size, &lim, &o, &err);
    if (rc < 0) {
        if (o != NULL || err.text[0] == '\0' || (rc != MP_EPROTO && rc != MP_ENOMEM))
            abort();
        return 0;
    }
    if (tree_size(o, 100000) >= 100000) {
        mp_obj_unref(o);
        return 0;
    }
    mp_pickle_limits relim = {.max_depth = 20000};
    char *r = mp_obj_repr(o);
    if (r == NULL)
        abort();
    for (int p = 2; p <= 5; p++) {
        void *buf;
        size_t len;
        rc = mp_pickle_dumps(o, p, &buf, &len);
        if (rc == MP_EINVAL)
            continue; /* e.g. a NEWOBJ_EX node below protocol 4, a '\n' in a GLOBAL name */
        if (rc < 0)
            abort();
        mp_obj *back = NULL;
        if (mp_pickle_loads(buf, len, &relim, &back, &err) < 0)
            abort();
        char *r2 = mp_obj_repr(back);
        if (r2 == NULL || strcmp(r, r2) != 0)
            abort();
        free(r2);
        mp_obj_unref(back);
        free(buf);
    }
    free(r);
    mp_obj_unref(o);
    return 0;
}
