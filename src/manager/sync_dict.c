/* manager/sync_dict.c — the SyncManager's dict (DictProxy), with __iter__
 * returning an Iterator proxy, served as CPython's server serves a dict.
 *
 * The object has one mutex (mu) guarding its contents. Items are mp_obj values
 * that are never changed once stored (a method replaces an item, it never edits
 * one), so a method may return a stored item by reference and the reply may be
 * pickled after mu is released; a method that returns the contents (copy, keys,
 * items) builds a new container under mu.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/sync_types.h"
#include "manager/sync_util.h"

static int key_error(mp_manager_call *call, const mp_obj *key)
{
    return sm_raise_obj(call, mp_exception_new("builtins", "KeyError", mp_tuple1(mp_obj_ref(key))));
}

/* ======================================================================== */
/* dict                                                                        */

typedef struct sm_dict {
    pthread_mutex_t mu;
    atomic_int refs; /* the served object's and each Iterator's */
    mp_obj *d;       /* guarded by mu */
} sm_dict;

static void dict_release(sm_dict *d)
{
    if (atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    mp_obj_unref(d->d);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Python's dict.update(src) into d: a dict, or an iterable of 2-item sequences. */
static int update_from(mp_manager_call *call, mp_obj *d, const mp_obj *src)
{
    int rc;
    if (mp_obj_is_dict(src)) {
        size_t it = 0;
        mp_obj *k, *v;
        while (mp_dict_next(src, &it, &k, &v))
            if ((rc = mp_dict_set_ref(d, k, v)) < 0)
                return rc;
        return 0;
    }
    mp_obj **items;
    size_t n;
    if ((rc = sm_items(call, src, &items, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        mp_obj *e = items[i];
        mp_obj **pair = NULL;
        size_t np = 0;
        if (mp_obj_is_number(e) || mp_obj_is_none(e) || mp_obj_is_object(e)) {
            rc =
                sm_raise(call, "TypeError",
                         "cannot convert dictionary update sequence element #%zu to a sequence", i);
            break;
        }
        if ((rc = sm_items(call, e, &pair, &np)) < 0)
            break;
        if (np != 2)
            rc = sm_raise(call, "ValueError",
                          "dictionary update sequence element #%zu has length %zu; 2 is required",
                          i, np);
        else if ((rc = sm_check_hashable(call, pair[0])) == 0)
            rc = mp_dict_set_ref(d, pair[0], pair[1]);
        sm_items_free(pair, np);
    }
    sm_items_free(items, n);
    return rc;
}

/* Python's dict(*args, **kwds) / d.update(*args, **kwds) into d. */
static int update_call(mp_manager_call *call, mp_obj *d, const mp_obj *args, const mp_obj *kwds,
                       const char *name)
{
    size_t n = sm_nargs(args);
    if (n > 1)
        return sm_raise(call, "TypeError", "%s expected at most 1 argument, got %zu", name, n);
    int rc = 0;
    if (n == 1 && (rc = update_from(call, d, mp_seq_item(args, 0))) < 0)
        return rc;
    if (kwds != NULL) {
        size_t it = 0;
        mp_obj *k, *v;
        while (mp_dict_next(kwds, &it, &k, &v))
            if ((rc = mp_dict_set_ref(d, k, v)) < 0)
                return rc;
    }
    return 0;
}

static int dict_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    sm_dict *d = calloc(1, sizeof *d);
    if (d == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    atomic_init(&d->refs, 1);
    d->d = mp_dict_new();
    int rc = d->d ? update_call(call, d->d, args, kwds, "dict") : MP_ENOMEM;
    if (rc < 0) {
        dict_release(d);
        return rc;
    }
    *self = d;
    return 0;
}

static void dict_destroy(void *self)
{
    dict_release(self);
}

static int dict_contains(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_onearg(call, args, kwds, "dict.__contains__");
    if (rc < 0 || (rc = sm_check_hashable(call, mp_seq_item(args, 0))) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    bool in = mp_dict_get(d->d, mp_seq_item(args, 0)) != NULL;
    pthread_mutex_unlock(&d->mu);
    return sm_ret(result, mp_bool(in));
}

static int dict_delitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_wrapper(call, args, kwds, "__delitem__", 1);
    const mp_obj *k = rc == 0 ? mp_seq_item(args, 0) : NULL;
    if (rc < 0 || (rc = sm_check_hashable(call, k)) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    rc = mp_dict_del(d->d, k);
    pthread_mutex_unlock(&d->mu);
    if (rc == MP_ENOENT)
        return key_error(call, k);
    return rc < 0 ? rc : sm_ret(result, mp_none());
}

static int dict_getitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_onearg(call, args, kwds, "dict.__getitem__");
    const mp_obj *k = rc == 0 ? mp_seq_item(args, 0) : NULL;
    if (rc < 0 || (rc = sm_check_hashable(call, k)) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    mp_obj *v = mp_obj_ref(mp_dict_get(d->d, k));
    pthread_mutex_unlock(&d->mu);
    if (v == NULL)
        return key_error(call, k);
    *result = v;
    return 0;
}

/* The Iterator typeid: a dict's keys at the time __iter__ was called, and a
 * reference to the dict to notice a change of size, as a dict iterator does. */
typedef struct sm_iter {
    pthread_mutex_t mu;
    sm_dict *dict; /* referenced */
    mp_obj **keys; /* new references */
    size_t n, pos; /* guarded by mu */
    int64_t len;   /* the dict's size when iteration began */
    bool broken;   /* raised RuntimeError once: keeps raising it */
} sm_iter;

static void iter_destroy(void *self)
{
    sm_iter *it = self;
    sm_items_free(it->keys, it->n);
    dict_release(it->dict);
    pthread_mutex_destroy(&it->mu);
    free(it);
}

static int dict_iter(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_wrapper(call, args, kwds, "__iter__", 0);
    if (rc < 0)
        return rc;
    sm_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&it->mu, NULL);
    pthread_mutex_lock(&d->mu);
    rc = sm_items(call, d->d, &it->keys, &it->n);
    it->len = mp_obj_len(d->d);
    pthread_mutex_unlock(&d->mu);
    atomic_fetch_add(&d->refs, 1);
    it->dict = d;
    if (rc < 0) {
        iter_destroy(it);
        return rc;
    }
    mp_served *o;
    if ((rc = mp_served_wrap(&o, &mp__sm_iterator_type, it)) < 0) {
        iter_destroy(it);
        return rc;
    }
    rc = mp_manager_call_return_proxy(call, o, "Iterator");
    mp_served_unref(o);
    *result = NULL;
    return rc;
}

static int iter_next(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_iter *it = self;
    int rc = sm_wrapper(call, args, kwds, "__next__", 0);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&it->dict->mu);
    int64_t len = mp_obj_len(it->dict->d);
    pthread_mutex_unlock(&it->dict->mu);
    pthread_mutex_lock(&it->mu);
    mp_obj *k = NULL;
    bool changed = it->broken || (len != it->len && it->pos < it->n);
    if (changed)
        it->broken = true;
    else if (it->pos < it->n)
        k = mp_obj_ref(it->keys[it->pos++]);
    pthread_mutex_unlock(&it->mu);
    if (changed)
        return sm_raise(call, "RuntimeError", "dictionary changed size during iteration");
    if (k == NULL)
        return sm_raise_obj(call, mp_exception_new("builtins", "StopIteration", NULL));
    *result = k;
    return 0;
}

static const mp_manager_method iter_methods[] = {
    {"__next__", iter_next, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_iterator_type = {
    .name = "dict_keyiterator",
    .destroy = iter_destroy,
    .methods = iter_methods,
};

static int dict_len(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_wrapper(call, args, kwds, "__len__", 0);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    int64_t n = mp_obj_len(d->d);
    pthread_mutex_unlock(&d->mu);
    return sm_ret(result, mp_int(n));
}

static int dict_setitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_wrapper(call, args, kwds, "__setitem__", 2);
    if (rc < 0 || (rc = sm_check_hashable(call, mp_seq_item(args, 0))) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    rc = mp_dict_set_ref(d->d, mp_seq_item(args, 0), mp_seq_item(args, 1));
    pthread_mutex_unlock(&d->mu);
    return rc < 0 ? rc : sm_ret(result, mp_none());
}

static int dict_clear(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_noargs(call, args, kwds, "dict.clear");
    if (rc < 0)
        return rc;
    mp_obj *fresh = mp_dict_new();
    if (fresh == NULL)
        return MP_ENOMEM;
    pthread_mutex_lock(&d->mu);
    mp_obj *old = d->d;
    d->d = fresh;
    pthread_mutex_unlock(&d->mu);
    mp_obj_unref(old);
    return sm_ret(result, mp_none());
}

static int dict_copy(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_noargs(call, args, kwds, "dict.copy");
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    mp_obj *c = sm_dict_copy(d->d);
    pthread_mutex_unlock(&d->mu);
    return sm_ret(result, c);
}

static int dict_get(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_range(call, args, kwds, "get", "dict.get", 1, 2);
    const mp_obj *k = rc == 0 ? mp_seq_item(args, 0) : NULL;
    if (rc < 0 || (rc = sm_check_hashable(call, k)) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    mp_obj *v = mp_obj_ref(mp_dict_get(d->d, k));
    pthread_mutex_unlock(&d->mu);
    if (v == NULL)
        v = sm_nargs(args) == 2 ? mp_obj_ref(mp_seq_item(args, 1)) : mp_none();
    return sm_ret(result, v);
}

/* keys(), values(), items() as lists: CPython's server pickles dict views as
 * lists (managers.py registers rebuild_as_list for them). */
static int dict_view(sm_dict *d, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     const char *qual, int which, mp_obj **result)
{
    int rc = sm_noargs(call, args, kwds, qual);
    if (rc < 0)
        return rc;
    mp_obj *l = mp_list_new();
    pthread_mutex_lock(&d->mu);
    size_t it = 0;
    mp_obj *k, *v;
    while (l && mp_dict_next(d->d, &it, &k, &v)) {
        mp_obj *e = which == 0   ? mp_obj_ref(k)
                    : which == 1 ? mp_obj_ref(v)
                                 : mp_tuple2(mp_obj_ref(k), mp_obj_ref(v));
        if (mp_list_append(l, e) < 0) {
            mp_obj_unref(l);
            l = NULL;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return sm_ret(result, l);
}

static int dict_keys(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    return dict_view(self, call, args, kwds, "dict.keys", 0, result);
}

static int dict_values(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    return dict_view(self, call, args, kwds, "dict.values", 1, result);
}

static int dict_items(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    return dict_view(self, call, args, kwds, "dict.items", 2, result);
}

static int dict_pop(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_range(call, args, kwds, "pop", "dict.pop", 1, 2);
    const mp_obj *k = rc == 0 ? mp_seq_item(args, 0) : NULL;
    if (rc < 0 || (rc = sm_check_hashable(call, k)) < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    mp_obj *v = mp_obj_ref(mp_dict_get(d->d, k));
    if (v != NULL)
        mp_dict_del(d->d, k);
    pthread_mutex_unlock(&d->mu);
    if (v == NULL) {
        if (sm_nargs(args) == 2)
            return sm_ret(result, mp_obj_ref(mp_seq_item(args, 1)));
        return key_error(call, k);
    }
    *result = v;
    return 0;
}

static int dict_popitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_noargs(call, args, kwds, "dict.popitem");
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    /* LIFO, as Python: the last entry in insertion order. */
    size_t it = 0;
    mp_obj *k, *v, *lk = NULL, *lv = NULL;
    while (mp_dict_next(d->d, &it, &k, &v)) {
        lk = k;
        lv = v;
    }
    mp_obj *pair = lk ? mp_tuple2(mp_obj_ref(lk), mp_obj_ref(lv)) : NULL;
    if (pair != NULL)
        mp_dict_del(d->d, lk);
    pthread_mutex_unlock(&d->mu);
    if (lk == NULL)
        return sm_raise_obj(
            call, mp_exception_new("builtins", "KeyError",
                                   mp_tuple1(mp_str_c("popitem(): dictionary is empty"))));
    return sm_ret(result, pair);
}

static int dict_setdefault(void *self, mp_manager_call *call, const mp_obj *args,
                           const mp_obj *kwds, mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_range(call, args, kwds, "setdefault", "dict.setdefault", 1, 2);
    const mp_obj *k = rc == 0 ? mp_seq_item(args, 0) : NULL;
    if (rc < 0 || (rc = sm_check_hashable(call, k)) < 0)
        return rc;
    mp_obj *dflt = sm_nargs(args) == 2 ? mp_obj_ref(mp_seq_item(args, 1)) : mp_none();
    pthread_mutex_lock(&d->mu);
    mp_obj *v = mp_obj_ref(mp_dict_get(d->d, k));
    if (v == NULL) {
        rc = mp_dict_set_ref(d->d, k, dflt);
        v = rc < 0 ? NULL : mp_obj_ref(dflt);
    }
    pthread_mutex_unlock(&d->mu);
    mp_obj_unref(dflt);
    if (rc < 0)
        return rc;
    return sm_ret(result, v);
}

static int dict_update(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_dict *d = self;
    /* Build the changes apart, so a failing update changes nothing it did not reach
     * in Python either (Python applies items up to the bad one; so do we). */
    pthread_mutex_lock(&d->mu);
    int rc = update_call(call, d->d, args, kwds, "update");
    pthread_mutex_unlock(&d->mu);
    return rc < 0 ? rc : sm_ret(result, mp_none());
}

static char *dict_repr(void *self)
{
    sm_dict *d = self;
    pthread_mutex_lock(&d->mu);
    char *r = sm_repr(d->d);
    pthread_mutex_unlock(&d->mu);
    return r;
}

static mp_obj *dict_getvalue(void *self, mp_manager_call *call)
{
    (void)call;
    sm_dict *d = self;
    pthread_mutex_lock(&d->mu);
    mp_obj *c = sm_dict_copy(d->d);
    pthread_mutex_unlock(&d->mu);
    return c;
}

static const mp_manager_method dict_methods[] = {
    {"__contains__", dict_contains, 0},
    {"__delitem__", dict_delitem, 0},
    {"__getitem__", dict_getitem, 0},
    {"__iter__", dict_iter, 0},
    {"__len__", dict_len, 0},
    {"__setitem__", dict_setitem, 0},
    {"clear", dict_clear, 0},
    {"copy", dict_copy, 0},
    {"get", dict_get, 0},
    {"items", dict_items, 0},
    {"keys", dict_keys, 0},
    {"pop", dict_pop, 0},
    {"popitem", dict_popitem, 0},
    {"setdefault", dict_setdefault, 0},
    {"update", dict_update, 0},
    {"values", dict_values, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_dict_type = {
    .name = "dict",
    .create = dict_create,
    .destroy = dict_destroy,
    .methods = dict_methods,
    .repr = dict_repr,
    .getvalue = dict_getvalue,
};
