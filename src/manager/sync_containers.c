/* manager/sync_containers.c — the SyncManager's data types, served to CPython's
 * proxies as CPython's server serves the Python objects: dict (DictProxy, with
 * __iter__ returning an Iterator proxy), list (ListProxy), Value (ValueProxy),
 * Array (ArrayProxy, array.array) and Namespace (NamespaceProxy).
 *
 * Each object has one mutex (mu) guarding its contents. Items are mp_obj values
 * that are never changed once stored (a method replaces an item, it never edits
 * one), so a method may return a stored item by reference and the reply may be
 * pickled after mu is released; a method that returns a container's contents
 * (copy, keys, a slice) builds a new container under mu.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/sync_types.h"
#include "manager/sync_util.h"

static const char *const no_names[] = {NULL};

static int ret(mp_obj **result, mp_obj *value)
{
    *result = value;
    return value ? 0 : MP_ENOMEM;
}

static int key_error(mp_manager_call *call, const mp_obj *key)
{
    return sm_raise_obj(call, mp_exception_new("builtins", "KeyError", mp_tuple1(mp_obj_ref(key))));
}

static mp_obj *list_of(mp_obj *const *v, size_t n)
{
    mp_obj *l = mp_list_new();
    for (size_t i = 0; l && i < n; i++)
        if (mp_list_append(l, mp_obj_ref(v[i])) < 0) {
            mp_obj_unref(l);
            return NULL;
        }
    return l;
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
    return ret(result, mp_bool(in));
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
    return rc < 0 ? rc : ret(result, mp_none());
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
    return ret(result, mp_int(n));
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
    return rc < 0 ? rc : ret(result, mp_none());
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
    return ret(result, mp_none());
}

static mp_obj *dict_copy_locked(const mp_obj *src)
{
    mp_obj *c = mp_dict_new();
    size_t it = 0;
    mp_obj *k, *v;
    while (c && mp_dict_next(src, &it, &k, &v))
        if (mp_dict_set_ref(c, k, v) < 0) {
            mp_obj_unref(c);
            return NULL;
        }
    return c;
}

static int dict_copy(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_dict *d = self;
    int rc = sm_noargs(call, args, kwds, "dict.copy");
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    mp_obj *c = dict_copy_locked(d->d);
    pthread_mutex_unlock(&d->mu);
    return ret(result, c);
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
    return ret(result, v);
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
    return ret(result, l);
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
            return ret(result, mp_obj_ref(mp_seq_item(args, 1)));
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
    return ret(result, pair);
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
    return ret(result, v);
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
    return rc < 0 ? rc : ret(result, mp_none());
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
    mp_obj *c = dict_copy_locked(d->d);
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

/* ======================================================================== */
/* list                                                                        */

typedef struct sm_list {
    pthread_mutex_t mu;
    mp_obj **v; /* new references; guarded by mu */
    size_t n, cap;
} sm_list;

/* Beyond this many items a result is refused with MemoryError (Python would try
 * and perhaps take the machine down with it). */
#define LIST_MAX_ITEMS ((size_t)1 << 28)

static int list_reserve(sm_list *l, size_t n)
{
    if (n <= l->cap)
        return 0;
    if (n > LIST_MAX_ITEMS)
        return MP_ENOMEM;
    size_t cap = l->cap ? l->cap : 8;
    while (cap < n)
        cap *= 2;
    mp_obj **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL)
        return MP_ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

/* Inserts n items (references taken) at position at. */
static int list_insert_items(sm_list *l, size_t at, mp_obj **items, size_t n)
{
    int rc = list_reserve(l, l->n + n);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            mp_obj_unref(items[i]);
        return rc;
    }
    memmove(l->v + at + n, l->v + at, (l->n - at) * sizeof *l->v);
    memcpy(l->v + at, items, n * sizeof *items);
    l->n += n;
    return 0;
}

static void list_delete_range(sm_list *l, size_t at, size_t n)
{
    for (size_t i = at; i < at + n; i++)
        mp_obj_unref(l->v[i]);
    memmove(l->v + at, l->v + at + n, (l->n - at - n) * sizeof *l->v);
    l->n -= n;
}

static void list_free_items(sm_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        mp_obj_unref(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int list_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    if (sm_has_kwds(kwds))
        return sm_raise(call, "TypeError", "list() takes no keyword arguments");
    size_t na = sm_nargs(args);
    if (na > 1)
        return sm_raise(call, "TypeError", "list expected at most 1 argument, got %zu", na);
    sm_list *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&l->mu, NULL);
    if (na == 1) {
        mp_obj **items;
        size_t n;
        int rc = sm_items(call, mp_seq_item(args, 0), &items, &n);
        if (rc == 0) {
            rc = list_insert_items(l, 0, items, n);
            free(items);
        }
        if (rc < 0) {
            pthread_mutex_destroy(&l->mu);
            free(l);
            return rc;
        }
    }
    *self = l;
    return 0;
}

static void list_destroy(void *self)
{
    sm_list *l = self;
    list_free_items(l);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static mp_obj *list_snapshot(sm_list *l)
{
    pthread_mutex_lock(&l->mu);
    mp_obj *r = list_of(l->v, l->n);
    pthread_mutex_unlock(&l->mu);
    return r;
}

/* An index for an item of a list of length n, as list_subscript: negative counts
 * from the end. false when out of range. */
static bool norm_index(int64_t i, size_t n, size_t *out)
{
    if (i < 0)
        i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n)
        return false;
    *out = (size_t)i;
    return true;
}

static int list_add(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    int rc = sm_wrapper(call, args, kwds, "__add__", 1);
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0);
    if (!mp_obj_is_list(o))
        return sm_raise(call, "TypeError", "can only concatenate list (not \"%s\") to list",
                        mp_obj_type_name(o));
    mp_obj *r = list_snapshot(self);
    for (size_t i = 0; r && i < (size_t)mp_obj_len(o); i++)
        if (mp_list_append(r, mp_obj_ref(mp_seq_item(o, i))) < 0) {
            mp_obj_unref(r);
            r = NULL;
        }
    return ret(result, r);
}

static int list_contains(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__contains__", 1);
    if (rc < 0)
        return rc;
    const mp_obj *x = mp_seq_item(args, 0);
    bool in = false;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n && !in; i++)
        in = mp_obj_equal(l->v[i], x);
    pthread_mutex_unlock(&l->mu);
    return ret(result, mp_bool(in));
}

static int index_type_error(mp_manager_call *call, const mp_obj *o)
{
    return sm_raise(call, "TypeError", "list indices must be integers or slices, not %s",
                    mp_obj_type_name(o));
}

static int list_getitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_onearg(call, args, kwds, "list.__getitem__");
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0);
    pthread_mutex_lock(&l->mu);
    int64_t start, step, count;
    rc = sm_slice(call, o, (int64_t)l->n, &start, &step, &count);
    if (rc == 1) {
        mp_obj *r = mp_list_new();
        for (int64_t k = 0; r && k < count; k++)
            if (mp_list_append(r, mp_obj_ref(l->v[start + k * step])) < 0) {
                mp_obj_unref(r);
                r = NULL;
            }
        pthread_mutex_unlock(&l->mu);
        return ret(result, r);
    }
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return index_type_error(call, o);
    int64_t i;
    if ((rc = sm_index(call, o, true, &i)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t at;
    mp_obj *v = norm_index(i, l->n, &at) ? mp_obj_ref(l->v[at]) : NULL;
    pthread_mutex_unlock(&l->mu);
    if (v == NULL)
        return sm_raise(call, "IndexError", "list index out of range");
    *result = v;
    return 0;
}

/* Assigns items (references kept by the caller) to the slice start/step/count. */
static int list_assign_slice(sm_list *l, mp_manager_call *call, int64_t start, int64_t step,
                             int64_t count, mp_obj **items, size_t n)
{
    if (step == 1) {
        for (size_t i = 0; i < n; i++)
            mp_obj_ref(items[i]);
        list_delete_range(l, (size_t)start, (size_t)count);
        return list_insert_items(l, (size_t)start, items, n);
    }
    if ((int64_t)n != count)
        return sm_raise(call, "ValueError",
                        "attempt to assign sequence of size %zu to extended slice of size %lld", n,
                        (long long)count);
    for (int64_t k = 0; k < count; k++) {
        mp_obj **slot = &l->v[start + k * step];
        mp_obj_unref(*slot);
        *slot = mp_obj_ref(items[k]);
    }
    return 0;
}

static int list_setitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__setitem__", 2);
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0), *val = mp_seq_item(args, 1);
    if (mp_object_is(o, "builtins", "slice")) {
        mp_obj **items;
        size_t n;
        if (mp_obj_is_number(val) || mp_obj_is_none(val) || mp_obj_is_object(val))
            return sm_raise(call, "TypeError", "%s",
                            mp_manager_call_python_version(call) >= 313
                                ? "must assign iterable to extended slice"
                                : "can only assign an iterable");
        if ((rc = sm_items(call, val, &items, &n)) < 0)
            return rc;
        pthread_mutex_lock(&l->mu);
        int64_t start, step, count;
        rc = sm_slice(call, o, (int64_t)l->n, &start, &step, &count);
        if (rc == 1)
            rc = list_assign_slice(l, call, start, step, count, items, n);
        pthread_mutex_unlock(&l->mu);
        sm_items_free(items, n);
        return rc < 0 ? rc : ret(result, mp_none());
    }
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return index_type_error(call, o);
    int64_t i;
    if ((rc = sm_index(call, o, true, &i)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t at;
    bool ok = norm_index(i, l->n, &at);
    if (ok) {
        mp_obj_unref(l->v[at]);
        l->v[at] = mp_obj_ref(val);
    }
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        return sm_raise(call, "IndexError", "list assignment index out of range");
    return ret(result, mp_none());
}

static int list_delitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__delitem__", 1);
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0);
    pthread_mutex_lock(&l->mu);
    int64_t start, step, count;
    rc = sm_slice(call, o, (int64_t)l->n, &start, &step, &count);
    if (rc == 1) {
        if (step < 0) {
            start = start + (count - 1) * step;
            step = -step;
        }
        for (int64_t k = count - 1; k >= 0; k--)
            list_delete_range(l, (size_t)(start + k * step), 1);
        pthread_mutex_unlock(&l->mu);
        return ret(result, mp_none());
    }
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return sm_raise(call, "TypeError", "list indices must be integers or slices, not %s",
                        mp_obj_type_name(o));
    int64_t i;
    if ((rc = sm_index(call, o, true, &i)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t at;
    bool ok = norm_index(i, l->n, &at);
    if (ok)
        list_delete_range(l, at, 1);
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        return sm_raise(call, "IndexError", "list assignment index out of range");
    return ret(result, mp_none());
}

/* The repeat count of list * n. */
static int repeat_count(mp_manager_call *call, const mp_obj *o, size_t len, size_t *out)
{
    int64_t n;
    int rc = sm_index(call, o, false, &n);
    if (rc < 0)
        return rc;
    if (n <= 0 || len == 0) {
        *out = 0;
        return 0;
    }
    if ((uint64_t)n > LIST_MAX_ITEMS / len)
        return sm_raise_obj(call, mp_exception_new("builtins", "MemoryError", NULL));
    *out = (size_t)n;
    return 0;
}

static int list_mul(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__mul__", 1);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t times;
    rc = repeat_count(call, mp_seq_item(args, 0), l->n, &times);
    mp_obj *r = rc < 0 ? NULL : mp_list_new();
    for (size_t t = 0; r && t < times; t++)
        for (size_t i = 0; r && i < l->n; i++)
            if (mp_list_append(r, mp_obj_ref(l->v[i])) < 0) {
                mp_obj_unref(r);
                r = NULL;
            }
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    return ret(result, r);
}

static int list_imul(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__imul__", 1);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t times;
    rc = repeat_count(call, mp_seq_item(args, 0), l->n, &times);
    if (rc == 0 && times == 0) {
        list_free_items(l);
    } else if (rc == 0 && times > 1) {
        size_t n = l->n;
        rc = list_reserve(l, n * times);
        for (size_t t = 1; rc == 0 && t < times; t++)
            for (size_t i = 0; i < n; i++)
                l->v[l->n++] = mp_obj_ref(l->v[i]);
    }
    mp_obj *r = rc < 0 ? NULL : list_of(l->v, l->n);
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    return ret(result, r);
}

static int list_len(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_wrapper(call, args, kwds, "__len__", 0);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    pthread_mutex_unlock(&l->mu);
    return ret(result, mp_int((int64_t)n));
}

static int list_reversed(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    int rc = sm_noargs(call, args, kwds, "list.__reversed__");
    if (rc < 0)
        return rc;
    mp_obj *items = list_snapshot(self);
    if (items == NULL)
        return MP_ENOMEM;
    /* A list_reverseiterator pickles as reversed(list) with its position as state. */
    int64_t n = mp_obj_len(items);
    if (n == 0)
        return ret(result, mp_object_new("builtins", "iter", mp_tuple1(items), NULL));
    return ret(result, mp_object_new("builtins", "reversed", mp_tuple1(items), mp_int(n - 1)));
}

static int list_append(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_onearg(call, args, kwds, "list.append");
    if (rc < 0)
        return rc;
    mp_obj *x = mp_obj_ref(mp_seq_item(args, 0));
    pthread_mutex_lock(&l->mu);
    rc = list_insert_items(l, l->n, &x, 1);
    pthread_mutex_unlock(&l->mu);
    return rc < 0 ? rc : ret(result, mp_none());
}

static int list_count(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_onearg(call, args, kwds, "list.count");
    if (rc < 0)
        return rc;
    const mp_obj *x = mp_seq_item(args, 0);
    int64_t c = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++)
        c += mp_obj_equal(l->v[i], x);
    pthread_mutex_unlock(&l->mu);
    return ret(result, mp_int(c));
}

static int list_extend(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_onearg(call, args, kwds, "list.extend");
    if (rc < 0)
        return rc;
    mp_obj **items;
    size_t n;
    if ((rc = sm_items(call, mp_seq_item(args, 0), &items, &n)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    rc = list_insert_items(l, l->n, items, n);
    pthread_mutex_unlock(&l->mu);
    free(items);
    return rc < 0 ? rc : ret(result, mp_none());
}

/* A start/stop argument of index(): clamped to the list as a slice bound. */
static int bound_arg(mp_manager_call *call, const mp_obj *o, size_t n, int64_t dflt, int64_t *out)
{
    if (o == NULL) {
        *out = dflt;
        return 0;
    }
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return sm_raise(call, "TypeError",
                        "slice indices must be integers or have an __index__ method");
    int64_t v;
    if (mp_int_value(o, &v) != 0) {
        double d = 0;
        mp_float_value(o, &d);
        v = d < 0 ? INT64_MIN / 2 : INT64_MAX;
    }
    if (v < 0) {
        v += (int64_t)n;
        if (v < 0)
            v = 0;
    }
    *out = v;
    return 0;
}

static int list_index(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_range(call, args, kwds, "index", "list.index", 1, 3);
    if (rc < 0)
        return rc;
    size_t na = sm_nargs(args);
    const mp_obj *x = mp_seq_item(args, 0);
    pthread_mutex_lock(&l->mu);
    int64_t start, stop;
    if ((rc = bound_arg(call, na > 1 ? mp_seq_item(args, 1) : NULL, l->n, 0, &start)) == 0)
        rc = bound_arg(call, na > 2 ? mp_seq_item(args, 2) : NULL, l->n, INT64_MAX, &stop);
    int64_t found = -1;
    for (int64_t i = start; rc == 0 && i < stop && (size_t)i < l->n; i++)
        if (mp_obj_equal(l->v[i], x)) {
            found = i;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    if (found < 0) {
        char *r = sm_repr(x);
        rc = sm_raise(call, "ValueError", "%s is not in list", r ? r : "?");
        free(r);
        return rc;
    }
    return ret(result, mp_int(found));
}

static int list_insert(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_range(call, args, kwds, "insert", "list.insert", 2, 2);
    if (rc < 0)
        return rc;
    int64_t i;
    if ((rc = sm_index(call, mp_seq_item(args, 0), false, &i)) < 0)
        return rc;
    mp_obj *x = mp_obj_ref(mp_seq_item(args, 1));
    pthread_mutex_lock(&l->mu);
    int64_t n = (int64_t)l->n;
    if (i < 0) {
        i += n;
        if (i < 0)
            i = 0;
    }
    if (i > n)
        i = n;
    rc = list_insert_items(l, (size_t)i, &x, 1);
    pthread_mutex_unlock(&l->mu);
    return rc < 0 ? rc : ret(result, mp_none());
}

static int list_pop(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_range(call, args, kwds, "pop", "list.pop", 0, 1);
    if (rc < 0)
        return rc;
    int64_t i = -1;
    if (sm_nargs(args) == 1 && (rc = sm_index(call, mp_seq_item(args, 0), false, &i)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t n = l->n, at;
    mp_obj *v = NULL;
    if (n > 0 && norm_index(i, n, &at)) {
        v = l->v[at];
        memmove(l->v + at, l->v + at + 1, (n - at - 1) * sizeof *l->v);
        l->n--;
    }
    pthread_mutex_unlock(&l->mu);
    if (n == 0)
        return sm_raise(call, "IndexError", "pop from empty list");
    if (v == NULL)
        return sm_raise(call, "IndexError", "pop index out of range");
    *result = v;
    return 0;
}

static int list_remove(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_onearg(call, args, kwds, "list.remove");
    if (rc < 0)
        return rc;
    const mp_obj *x = mp_seq_item(args, 0);
    bool found = false;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++)
        if (mp_obj_equal(l->v[i], x)) {
            list_delete_range(l, i, 1);
            found = true;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    if (!found)
        return sm_raise(call, "ValueError", "list.remove(x): x not in list");
    return ret(result, mp_none());
}

static void reverse_items(mp_obj **v, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        mp_obj *t = v[i];
        v[i] = v[n - 1 - i];
        v[n - 1 - i] = t;
    }
}

static int list_reverse(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        mp_obj **result)
{
    sm_list *l = self;
    int rc = sm_noargs(call, args, kwds, "list.reverse");
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    reverse_items(l->v, l->n);
    pthread_mutex_unlock(&l->mu);
    return ret(result, mp_none());
}

/* ---- sort: timsort's comparison order for short lists (count_run, then binary
 * insertion), so that a list Python cannot sort fails with the same pair of types
 * named; a stable merge sort beyond. Entries are (key, item) pairs. */

typedef struct sort_entry {
    const mp_obj *key;
    mp_obj *item;
} sort_entry;

static int binary_insertion(mp_manager_call *call, sort_entry *v, size_t n, size_t start)
{
    for (size_t s = start; s < n; s++) {
        sort_entry pivot = v[s];
        size_t lo = 0, hi = s;
        while (lo < hi) {
            size_t p = lo + ((hi - lo) >> 1);
            int lt = sm_lt(call, pivot.key, v[p].key);
            if (lt < 0)
                return lt;
            if (lt)
                hi = p;
            else
                lo = p + 1;
        }
        memmove(v + lo + 1, v + lo, (s - lo) * sizeof *v);
        v[lo] = pivot;
    }
    return 0;
}

static int count_run(mp_manager_call *call, sort_entry *v, size_t n, size_t *run)
{
    if (n < 2) {
        *run = n;
        return 0;
    }
    int lt = sm_lt(call, v[1].key, v[0].key);
    if (lt < 0)
        return lt;
    size_t k = 2;
    if (lt) {
        for (; k < n; k++) {
            if ((lt = sm_lt(call, v[k].key, v[k - 1].key)) < 0)
                return lt;
            if (!lt)
                break;
        }
        for (size_t i = 0; i < k / 2; i++) {
            sort_entry t = v[i];
            v[i] = v[k - 1 - i];
            v[k - 1 - i] = t;
        }
    } else {
        for (; k < n; k++) {
            if ((lt = sm_lt(call, v[k].key, v[k - 1].key)) < 0)
                return lt;
            if (lt)
                break;
        }
    }
    *run = k;
    return 0;
}

static int merge_sort(mp_manager_call *call, sort_entry *v, sort_entry *tmp, size_t n)
{
    if (n <= 32) {
        size_t run;
        int rc = count_run(call, v, n, &run);
        return rc < 0 ? rc : binary_insertion(call, v, n, run);
    }
    size_t h = n / 2;
    int rc;
    if ((rc = merge_sort(call, v, tmp, h)) < 0 || (rc = merge_sort(call, v + h, tmp, n - h)) < 0)
        return rc;
    memcpy(tmp, v, h * sizeof *v);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int lt = sm_lt(call, v[j].key, tmp[i].key);
        if (lt < 0) {
            /* Put the rest back so every item is still in v exactly once. */
            memcpy(v + k, tmp + i, (h - i) * sizeof *v);
            return lt;
        }
        v[k++] = lt ? v[j++] : tmp[i++];
    }
    while (i < h)
        v[k++] = tmp[i++];
    return 0;
}

static int list_sort(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_list *l = self;
    if (sm_nargs(args) > 0)
        return sm_raise(call, "TypeError", "sort() takes no positional arguments");
    static const char *const names[] = {"key", "reverse", NULL};
    const mp_obj *a[2];
    int rc = sm_pyargs(call, args, kwds, "sort", names, 0, a);
    if (rc < 0)
        return rc;
    bool by_len = false;
    if (a[0] != NULL && !mp_obj_is_none(a[0])) {
        if (!mp_object_is(a[0], "builtins", "len") || mp_object_form_of(a[0]) != MP_OBJECT_GLOBAL)
            return sm_raise(call, "TypeError",
                            "sort(key=...): the mproc server cannot call Python functions "
                            "(only key=len or no key)");
        by_len = true;
    }
    bool reverse = mp_manager_truthy(a[1], false);
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    sort_entry *v = calloc(n + 1, sizeof *v), *tmp = calloc(n / 2 + 1, sizeof *tmp);
    mp_obj **keys = by_len ? calloc(n + 1, sizeof *keys) : NULL;
    rc = (v && tmp && (!by_len || keys)) ? 0 : MP_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        v[i].item = l->v[i];
        v[i].key = l->v[i];
        if (by_len) {
            int64_t len = mp_obj_len(l->v[i]);
            if (len < 0) {
                rc = sm_raise(call, "TypeError", "object of type '%s' has no len()",
                              mp_obj_type_name(l->v[i]));
                break;
            }
            v[i].key = keys[i] = mp_int(len);
        }
    }
    if (rc == 0) {
        if (reverse)
            for (size_t i = 0; i < n / 2; i++) {
                sort_entry t = v[i];
                v[i] = v[n - 1 - i];
                v[n - 1 - i] = t;
            }
        rc = merge_sort(call, v, tmp, n);
        if (reverse)
            for (size_t i = 0; i < n / 2; i++) {
                sort_entry t = v[i];
                v[i] = v[n - 1 - i];
                v[n - 1 - i] = t;
            }
        /* Python leaves a list it failed to sort in some order of its items. */
        for (size_t i = 0; i < n; i++)
            l->v[i] = v[i].item;
    }
    pthread_mutex_unlock(&l->mu);
    if (keys)
        for (size_t i = 0; i < n; i++)
            mp_obj_unref(keys[i]);
    free(keys);
    free(v);
    free(tmp);
    return rc < 0 ? rc : ret(result, mp_none());
}

static char *list_repr(void *self)
{
    mp_obj *s = list_snapshot(self);
    char *r = s ? sm_repr(s) : NULL;
    mp_obj_unref(s);
    return r;
}

static mp_obj *list_getvalue(void *self, mp_manager_call *call)
{
    (void)call;
    return list_snapshot(self);
}

static const mp_manager_method list_methods[] = {
    {"__add__", list_add, 0},         {"__contains__", list_contains, 0},
    {"__delitem__", list_delitem, 0}, {"__getitem__", list_getitem, 0},
    {"__imul__", list_imul, 0},       {"__len__", list_len, 0},
    {"__mul__", list_mul, 0},         {"__reversed__", list_reversed, 0},
    {"__rmul__", list_mul, 0},        {"__setitem__", list_setitem, 0},
    {"append", list_append, 0},       {"count", list_count, 0},
    {"extend", list_extend, 0},       {"index", list_index, 0},
    {"insert", list_insert, 0},       {"pop", list_pop, 0},
    {"remove", list_remove, 0},       {"reverse", list_reverse, 0},
    {"sort", list_sort, 0},           {NULL, NULL, 0},
};

const mp_manager_type mp__sm_list_type = {
    .name = "list",
    .create = list_create,
    .destroy = list_destroy,
    .methods = list_methods,
    .repr = list_repr,
    .getvalue = list_getvalue,
};

/* ======================================================================== */
/* Value (multiprocessing.managers.Value: a typecode and any value, unchecked)  */

typedef struct sm_value {
    pthread_mutex_t mu;
    mp_obj *typecode; /* as given; never changes */
    mp_obj *value;    /* guarded by mu */
} sm_value;

static int value_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    static const char *const names[] = {"typecode", "value", "lock", NULL};
    const mp_obj *a[3];
    int rc = sm_pyargs(call, args, kwds, "Value.__init__", names, 2, a);
    if (rc < 0)
        return rc;
    sm_value *v = calloc(1, sizeof *v);
    if (v == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&v->mu, NULL);
    v->typecode = mp_obj_ref(a[0]);
    v->value = mp_obj_ref(a[1]);
    *self = v;
    return 0;
}

static void value_destroy(void *self)
{
    sm_value *v = self;
    mp_obj_unref(v->typecode);
    mp_obj_unref(v->value);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

static int value_get(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_value *v = self;
    const mp_obj *none[1];
    int rc = sm_pyargs(call, args, kwds, "Value.get", no_names, 0, none);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&v->mu);
    *result = mp_obj_ref(v->value);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

static int value_set(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_value *v = self;
    static const char *const names[] = {"value", NULL};
    const mp_obj *a[1];
    int rc = sm_pyargs(call, args, kwds, "Value.set", names, 1, a);
    if (rc < 0)
        return rc;
    mp_obj *nv = mp_obj_ref(a[0]);
    pthread_mutex_lock(&v->mu);
    mp_obj *old = v->value;
    v->value = nv;
    pthread_mutex_unlock(&v->mu);
    mp_obj_unref(old);
    return ret(result, mp_none());
}

static char *value_repr(void *self)
{
    sm_value *v = self;
    pthread_mutex_lock(&v->mu);
    char *t = sm_repr(v->typecode), *x = sm_repr(v->value);
    pthread_mutex_unlock(&v->mu);
    char *r = (t && x) ? sm_strdupf("Value(%s, %s)", t, x) : NULL;
    free(t);
    free(x);
    return r;
}

static mp_obj *value_getvalue(void *self, mp_manager_call *call)
{
    (void)call;
    sm_value *v = self;
    mp_obj *state = mp_dict_new();
    pthread_mutex_lock(&v->mu);
    if (state && (mp_dict_set_str(state, "_typecode", mp_obj_ref(v->typecode)) < 0 ||
                  mp_dict_set_str(state, "_value", mp_obj_ref(v->value)) < 0)) {
        mp_obj_unref(state);
        state = NULL;
    }
    pthread_mutex_unlock(&v->mu);
    if (state == NULL)
        return NULL;
    return mp_object_new_form("multiprocessing.managers", "Value", MP_OBJECT_NEWOBJ,
                              mp_tuple_new(0), NULL, state);
}

static const mp_manager_method value_methods[] = {
    {"get", value_get, 0},
    {"set", value_set, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_value_type = {
    .name = "multiprocessing.managers.Value",
    .create = value_create,
    .destroy = value_destroy,
    .methods = value_methods,
    .repr = value_repr,
    .getvalue = value_getvalue,
};

/* ======================================================================== */
/* Array (array.array of one typecode)                                          */

typedef union sm_cell {
    int64_t i;
    uint64_t u;
    double d;
} sm_cell;

typedef struct sm_array {
    pthread_mutex_t mu;
    char tc;       /* b B h H i I l L q Q f d; never changes */
    sm_cell *v;    /* guarded by mu */
    size_t n, cap; /* guarded by mu */
} sm_array;

static bool tc_float(char tc)
{
    return tc == 'f' || tc == 'd';
}
static bool tc_unsigned(char tc)
{
    return tc == 'B' || tc == 'H' || tc == 'I' || tc == 'L' || tc == 'Q';
}

/* Converts o to a cell of typecode tc with array.array's checks and messages. */
static int to_cell(mp_manager_call *call, char tc, const mp_obj *o, sm_cell *out)
{
    bool intlike = mp_obj_is_int(o) || mp_obj_is_bool(o);
    if (tc_float(tc)) {
        double d;
        if (mp_obj_is_float(o)) {
            mp_float_value(o, &d);
        } else if (intlike) {
            if (mp_float_value(o, &d) != 0)
                return sm_raise(call, "OverflowError", "int too large to convert to float");
        } else {
            return sm_raise(call, "TypeError", "must be real number, not %s", mp_obj_type_name(o));
        }
        out->d = tc == 'f' ? (double)(float)d : d;
        return 0;
    }
    if (!intlike)
        return sm_raise(call, "TypeError", "'%s' object cannot be interpreted as an integer",
                        mp_obj_type_name(o));
    int64_t v;
    uint64_t u;
    bool fits = mp_int_value(o, &v) == 0;
    bool negative;
    if (fits) {
        negative = v < 0;
    } else {
        double d = 0;
        mp_float_value(o, &d);
        negative = d < 0;
    }
    static const struct {
        char tc;
        int64_t lo;
        uint64_t hi;
        const char *name;
    } ranges[] = {
        {'b', -128, 127, "signed char"},
        {'B', 0, 255, "unsigned byte integer"},
        {'h', -32768, 32767, "signed short integer"},
        {'H', 0, 65535, "unsigned short"},
        {'i', INT32_MIN, INT32_MAX, "signed integer"},
        {'I', 0, UINT32_MAX, "unsigned int"},
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        if (ranges[k].tc != tc)
            continue;
        if (tc == 'I' && negative)
            return sm_raise(call, "OverflowError", "can't convert negative value to unsigned int");
        if (!fits || v < ranges[k].lo || (v > 0 && (uint64_t)v > ranges[k].hi))
            return sm_raise(call, "OverflowError", "%s is %s", ranges[k].name,
                            negative ? "less than minimum" : "greater than maximum");
        out->i = v;
        return 0;
    }
    switch (tc) {
    case 'l':
        if (!fits)
            return sm_raise(call, "OverflowError", "Python int too large to convert to C long");
        out->i = v;
        return 0;
    case 'q':
        if (!fits)
            return sm_raise(call, "OverflowError", "int too big to convert");
        out->i = v;
        return 0;
    case 'L':
        if (negative)
            return sm_raise(call, "OverflowError", "can't convert negative value to unsigned int");
        if (mp_uint_value(o, &u) != 0)
            return sm_raise(call, "OverflowError",
                            "Python int too large to convert to C unsigned long");
        out->u = u;
        return 0;
    default: /* 'Q' */
        if (negative)
            return sm_raise(call, "OverflowError", "can't convert negative int to unsigned");
        if (mp_uint_value(o, &u) != 0)
            return sm_raise(call, "OverflowError", "int too big to convert");
        out->u = u;
        return 0;
    }
}

static mp_obj *from_cell(char tc, sm_cell c)
{
    if (tc_float(tc))
        return mp_float(c.d);
    if (tc_unsigned(tc))
        return mp_uint(c.u);
    return mp_int(c.i);
}

static int array_reserve(sm_array *a, size_t n)
{
    if (n <= a->cap)
        return 0;
    if (n > LIST_MAX_ITEMS)
        return MP_ENOMEM;
    size_t cap = a->cap ? a->cap : 8;
    while (cap < n)
        cap *= 2;
    sm_cell *v = realloc(a->v, cap * sizeof *v);
    if (v == NULL)
        return MP_ENOMEM;
    a->v = v;
    a->cap = cap;
    return 0;
}

/* An array.array node as the server's pickler writes one: array.array(tc, list). */
static mp_obj *array_node(char tc, const sm_cell *v, size_t n, int64_t step)
{
    mp_obj *l = mp_list_new();
    for (size_t k = 0; l && k < n; k++)
        if (mp_list_append(l, from_cell(tc, v[(int64_t)k * step])) < 0) {
            mp_obj_unref(l);
            l = NULL;
        }
    if (l == NULL)
        return NULL;
    return mp_object_new("array", "array", mp_tuple2(mp_str(&tc, 1), l), NULL);
}

/* The typecode and payload of an array.array node: array.array(tc, list) as a
 * CPython server's pickler writes it, or array.array(tc, bytes) (machine format)
 * as a CPython client's does. */
static bool array_node_parts(const mp_obj *o, char *tc, const mp_obj **payload)
{
    if (!mp_object_is(o, "array", "array"))
        return false;
    const mp_obj *a = mp_object_args(o);
    if (a == NULL || mp_obj_len(a) != 2 || !mp_obj_is_str(mp_seq_item(a, 0)) ||
        mp_obj_len(mp_seq_item(a, 0)) != 1)
        return false;
    const mp_obj *p = mp_seq_item(a, 1);
    if (!mp_obj_is_list(p) && !mp_obj_is_bytes(p) && !mp_obj_is_bytearray(p))
        return false;
    *tc = mp_str_cstr(mp_seq_item(a, 0))[0];
    *payload = p;
    return strchr("bBhHiIlLqQfd", *tc) != NULL;
}

static size_t tc_size(char tc)
{
    switch (tc) {
    case 'b':
    case 'B':
        return 1;
    case 'h':
    case 'H':
        return 2;
    case 'i':
    case 'I':
    case 'f':
        return 4;
    default:
        return 8;
    }
}

/* One item of machine-format bytes (this machine's layout, as array.frombytes). */
static sm_cell cell_from_bytes(char tc, const unsigned char *p)
{
    sm_cell c = {0};
    switch (tc) {
    case 'b':
        c.i = (signed char)p[0];
        break;
    case 'B':
        c.i = p[0];
        break;
    case 'h': {
        int16_t v;
        memcpy(&v, p, 2);
        c.i = v;
        break;
    }
    case 'H': {
        uint16_t v;
        memcpy(&v, p, 2);
        c.i = v;
        break;
    }
    case 'i': {
        int32_t v;
        memcpy(&v, p, 4);
        c.i = v;
        break;
    }
    case 'I': {
        uint32_t v;
        memcpy(&v, p, 4);
        c.i = v;
        break;
    }
    case 'l':
    case 'q':
        memcpy(&c.i, p, 8);
        break;
    case 'L':
    case 'Q':
        memcpy(&c.u, p, 8);
        break;
    case 'f': {
        float v;
        memcpy(&v, p, 4);
        c.d = v;
        break;
    }
    default:
        memcpy(&c.d, p, 8);
        break;
    }
    return c;
}

/* The cells of an array of typecode tc made from seq, as array.array(tc, seq): an
 * iterable of numbers, machine-format bytes, or another array. *cells is malloc'd. */
static int cells_from(mp_manager_call *call, char tc, const mp_obj *seq, sm_cell **cells, size_t *n)
{
    *cells = NULL;
    *n = 0;
    char other = tc;
    const mp_obj *payload;
    bool node = array_node_parts(seq, &other, &payload);
    if (node)
        seq = payload;
    if (mp_obj_is_str(seq))
        return sm_raise(call, "TypeError",
                        "cannot use a str to initialize an array with typecode '%c'", tc);
    int rc = 0;
    if (mp_obj_is_bytes(seq) || mp_obj_is_bytearray(seq)) {
        const void *b;
        size_t len, size = tc_size(other);
        mp_bytes_value(seq, &b, &len);
        if (len % size != 0)
            return sm_raise(call, "ValueError", "bytes length not a multiple of item size");
        sm_cell *v = calloc(len / size + 1, sizeof *v);
        if (v == NULL)
            return MP_ENOMEM;
        for (size_t k = 0; k < len / size && rc == 0; k++) {
            v[k] = cell_from_bytes(other, (const unsigned char *)b + k * size);
            if (other != tc) { /* array('d', array('i', ...)) converts each item */
                mp_obj *x = from_cell(other, v[k]);
                rc = x ? to_cell(call, tc, x, &v[k]) : MP_ENOMEM;
                mp_obj_unref(x);
            }
        }
        if (rc < 0) {
            free(v);
            return rc;
        }
        *cells = v;
        *n = len / size;
        return 0;
    }
    mp_obj **items;
    size_t count;
    if ((rc = sm_items(call, seq, &items, &count)) < 0)
        return rc;
    sm_cell *v = calloc(count + 1, sizeof *v);
    rc = v ? 0 : MP_ENOMEM;
    for (size_t k = 0; rc == 0 && k < count; k++)
        rc = to_cell(call, tc, items[k], &v[k]);
    sm_items_free(items, count);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *cells = v;
    *n = count;
    return 0;
}

static int array_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    static const char *const names[] = {"typecode", "sequence", "lock", NULL};
    const mp_obj *a[3];
    int rc = sm_pyargs(call, args, kwds, "Array", names, 2, a);
    if (rc < 0)
        return rc;
    const char *tcs = mp_str_cstr(a[0]);
    if (tcs == NULL || mp_obj_len(a[0]) != 1)
        return sm_raise(call, "TypeError", "array() argument 1 must be a unicode character, not %s",
                        mp_obj_type_name(a[0]));
    char tc = tcs[0];
    if (tc == 'u' || tc == 'w')
        return sm_raise(call, "ValueError", "the mproc server does not serve '%c' arrays", tc);
    if (strchr("bBhHiIlLqQfd", tc) == NULL)
        return sm_raise(call, "ValueError",
                        "bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)");
    sm_cell *cells;
    size_t n;
    if ((rc = cells_from(call, tc, a[1], &cells, &n)) < 0)
        return rc;
    sm_array *arr = calloc(1, sizeof *arr);
    if (arr == NULL) {
        free(cells);
        return MP_ENOMEM;
    }
    arr->v = cells;
    arr->cap = n + 1;
    pthread_mutex_init(&arr->mu, NULL);
    arr->tc = tc;
    arr->n = n;
    *self = arr;
    return 0;
}

static void array_destroy(void *self)
{
    sm_array *a = self;
    pthread_mutex_destroy(&a->mu);
    free(a->v);
    free(a);
}

static int array_len(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    sm_array *a = self;
    int rc = sm_wrapper(call, args, kwds, "__len__", 0);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    return ret(result, mp_int((int64_t)n));
}

static int array_index_arg(mp_manager_call *call, const mp_obj *o, int64_t *i)
{
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return sm_raise(call, "TypeError", "array indices must be integers");
    return sm_index(call, o, true, i);
}

static int array_getitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_array *a = self;
    int rc = sm_wrapper(call, args, kwds, "__getitem__", 1);
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0);
    pthread_mutex_lock(&a->mu);
    int64_t start, step, count;
    rc = sm_slice(call, o, (int64_t)a->n, &start, &step, &count);
    if (rc == 1) {
        mp_obj *r = array_node(a->tc, a->v + start, (size_t)count, step);
        pthread_mutex_unlock(&a->mu);
        return ret(result, r);
    }
    pthread_mutex_unlock(&a->mu);
    int64_t i;
    if (rc < 0 || (rc = array_index_arg(call, o, &i)) < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    size_t at;
    bool in = norm_index(i, a->n, &at);
    mp_obj *v = in ? from_cell(a->tc, a->v[at]) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array index out of range");
    return ret(result, v);
}

static int array_setitem(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         mp_obj **result)
{
    sm_array *a = self;
    int rc = sm_wrapper(call, args, kwds, "__setitem__", 2);
    if (rc < 0)
        return rc;
    const mp_obj *o = mp_seq_item(args, 0), *val = mp_seq_item(args, 1);
    if (mp_object_is(o, "builtins", "slice")) {
        char tc;
        const mp_obj *payload;
        if (!array_node_parts(val, &tc, &payload))
            return sm_raise(call, "TypeError", "can only assign array (not \"%s\") to array slice",
                            mp_obj_type_name(val));
        if (tc != a->tc)
            return sm_raise(call, "TypeError", "bad argument type for built-in operation");
        sm_cell *cells;
        size_t n;
        if ((rc = cells_from(call, tc, val, &cells, &n)) < 0)
            return rc;
        pthread_mutex_lock(&a->mu);
        int64_t start, step, count;
        if (rc == 0)
            rc = sm_slice(call, o, (int64_t)a->n, &start, &step, &count);
        if (rc == 1 && step == 1) {
            rc = array_reserve(a, a->n - (size_t)count + n);
            if (rc == 0) {
                memmove(a->v + start + n, a->v + start + count,
                        (a->n - (size_t)start - (size_t)count) * sizeof *a->v);
                memcpy(a->v + start, cells, n * sizeof *cells);
                a->n = a->n - (size_t)count + n;
            }
        } else if (rc == 1) {
            if ((int64_t)n != count)
                rc = sm_raise(call, "ValueError",
                              "attempt to assign array of size %zu to extended slice of size %lld",
                              n, (long long)count);
            else
                for (int64_t k = 0; k < count; k++)
                    a->v[start + k * step] = cells[k];
        }
        pthread_mutex_unlock(&a->mu);
        free(cells);
        return rc < 0 ? rc : ret(result, mp_none());
    }
    int64_t i;
    if ((rc = array_index_arg(call, o, &i)) < 0)
        return rc;
    sm_cell c;
    pthread_mutex_lock(&a->mu);
    size_t at;
    bool in = norm_index(i, a->n, &at);
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array assignment index out of range");
    if ((rc = to_cell(call, a->tc, val, &c)) < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    in = norm_index(i, a->n, &at);
    if (in)
        a->v[at] = c;
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array assignment index out of range");
    return ret(result, mp_none());
}

static char *array_repr(void *self)
{
    sm_array *a = self;
    pthread_mutex_lock(&a->mu);
    mp_obj *node = array_node(a->tc, a->v, a->n, 1);
    char tc = a->tc;
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    if (node == NULL)
        return NULL;
    char *items = sm_repr(mp_seq_item(mp_object_args(node), 1));
    mp_obj_unref(node);
    char *r = n == 0 ? sm_strdupf("array('%c')", tc) : sm_strdupf("array('%c', %s)", tc, items);
    free(items);
    return r;
}

static mp_obj *array_getvalue(void *self, mp_manager_call *call)
{
    (void)call;
    sm_array *a = self;
    pthread_mutex_lock(&a->mu);
    mp_obj *node = array_node(a->tc, a->v, a->n, 1);
    pthread_mutex_unlock(&a->mu);
    return node;
}

static const mp_manager_method array_methods[] = {
    {"__getitem__", array_getitem, 0},
    {"__len__", array_len, 0},
    {"__setitem__", array_setitem, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_array_type = {
    .name = "array.array",
    .create = array_create,
    .destroy = array_destroy,
    .methods = array_methods,
    .repr = array_repr,
    .getvalue = array_getvalue,
};

/* ======================================================================== */
/* Namespace                                                                   */

typedef struct sm_ns {
    pthread_mutex_t mu;
    mp_obj *attrs; /* str -> value; guarded by mu */
} sm_ns;

static int ns_create(void **self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds)
{
    size_t n = sm_nargs(args);
    if (n > 0)
        return sm_raise(call, "TypeError",
                        "Namespace.__init__() takes 1 positional argument but %zu were given",
                        n + 1);
    sm_ns *ns = calloc(1, sizeof *ns);
    if (ns == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&ns->mu, NULL);
    ns->attrs = kwds ? dict_copy_locked(kwds) : mp_dict_new();
    if (ns->attrs == NULL) {
        pthread_mutex_destroy(&ns->mu);
        free(ns);
        return MP_ENOMEM;
    }
    *self = ns;
    return 0;
}

static void ns_destroy(void *self)
{
    sm_ns *ns = self;
    mp_obj_unref(ns->attrs);
    pthread_mutex_destroy(&ns->mu);
    free(ns);
}

static int attr_name(mp_manager_call *call, const mp_obj *o, const char **name)
{
    *name = mp_str_cstr(o);
    if (*name == NULL)
        return sm_raise(call, "TypeError", "attribute name must be string, not '%s'",
                        mp_obj_type_name(o));
    return 0;
}

static int no_attr(mp_manager_call *call, const char *name)
{
    return sm_raise(call, "AttributeError", "'Namespace' object has no attribute '%s'", name);
}

static int ns_getattr(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_ns *ns = self;
    const char *name;
    int rc = sm_wrapper(call, args, kwds, "__getattribute__", 1);
    if (rc < 0 || (rc = attr_name(call, mp_seq_item(args, 0), &name)) < 0)
        return rc;
    pthread_mutex_lock(&ns->mu);
    mp_obj *v = strcmp(name, "__dict__") == 0 ? dict_copy_locked(ns->attrs)
                                              : mp_obj_ref(mp_dict_get_str(ns->attrs, name));
    pthread_mutex_unlock(&ns->mu);
    if (v == NULL)
        return no_attr(call, name);
    *result = v;
    return 0;
}

static int ns_setattr(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_ns *ns = self;
    const char *name;
    int rc = sm_wrapper(call, args, kwds, "__setattr__", 2);
    if (rc < 0 || (rc = attr_name(call, mp_seq_item(args, 0), &name)) < 0)
        return rc;
    pthread_mutex_lock(&ns->mu);
    rc = mp_dict_set_ref(ns->attrs, mp_seq_item(args, 0), mp_seq_item(args, 1));
    pthread_mutex_unlock(&ns->mu);
    return rc < 0 ? rc : ret(result, mp_none());
}

static int ns_delattr(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                      mp_obj **result)
{
    sm_ns *ns = self;
    const char *name;
    int rc = sm_wrapper(call, args, kwds, "__delattr__", 1);
    if (rc < 0 || (rc = attr_name(call, mp_seq_item(args, 0), &name)) < 0)
        return rc;
    pthread_mutex_lock(&ns->mu);
    rc = mp_dict_del(ns->attrs, mp_seq_item(args, 0));
    pthread_mutex_unlock(&ns->mu);
    if (rc == MP_ENOENT)
        return no_attr(call, name);
    return rc < 0 ? rc : ret(result, mp_none());
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *ns_repr(void *self)
{
    sm_ns *ns = self;
    pthread_mutex_lock(&ns->mu);
    size_t n = (size_t)mp_obj_len(ns->attrs), k = 0, total = 16;
    char **parts = calloc(n + 1, sizeof *parts);
    size_t it = 0;
    mp_obj *key, *val;
    while (parts && mp_dict_next(ns->attrs, &it, &key, &val)) {
        const char *name = mp_str_cstr(key);
        if (name[0] == '_')
            continue;
        char *r = sm_repr(val);
        parts[k] = sm_strdupf("%s=%s", name, r ? r : "?");
        free(r);
        if (parts[k])
            total += strlen(parts[k++]) + 2;
    }
    pthread_mutex_unlock(&ns->mu);
    if (parts == NULL)
        return NULL;
    qsort(parts, k, sizeof *parts, cmp_cstr);
    char *out = malloc(total);
    if (out) {
        strcpy(out, "Namespace(");
        for (size_t i = 0; i < k; i++) {
            if (i)
                strcat(out, ", ");
            strcat(out, parts[i]);
        }
        strcat(out, ")");
    }
    for (size_t i = 0; i < k; i++)
        free(parts[i]);
    free(parts);
    return out;
}

static mp_obj *ns_getvalue(void *self, mp_manager_call *call)
{
    (void)call;
    sm_ns *ns = self;
    pthread_mutex_lock(&ns->mu);
    mp_obj *state = dict_copy_locked(ns->attrs);
    pthread_mutex_unlock(&ns->mu);
    if (state == NULL)
        return NULL;
    return mp_object_new_form("multiprocessing.managers", "Namespace", MP_OBJECT_NEWOBJ,
                              mp_tuple_new(0), NULL, state);
}

static const mp_manager_method ns_methods[] = {
    {"__delattr__", ns_delattr, 0},
    {"__getattribute__", ns_getattr, 0},
    {"__setattr__", ns_setattr, 0},
    {NULL, NULL, 0},
};

const mp_manager_type mp__sm_namespace_type = {
    .name = "multiprocessing.managers.Namespace",
    .create = ns_create,
    .destroy = ns_destroy,
    .methods = ns_methods,
    .repr = ns_repr,
    .getvalue = ns_getvalue,
};
