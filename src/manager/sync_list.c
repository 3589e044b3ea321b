/* manager/sync_list.c — the SyncManager's list (ListProxy), served as CPython's
 * server serves a list: indices and slices, the in-place and copying operators,
 * and a sort that compares in timsort's order.
 *
 * The object has one mutex (mu) guarding its items; items are never changed once
 * stored, so they may be returned by reference (see sync_dict.c).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/sync_types.h"
#include "manager/sync_util.h"

/* ======================================================================== */
/* list                                                                        */

typedef struct sm_list {
    pthread_mutex_t mu;
    mp_obj **v; /* new references; guarded by mu */
    size_t n, cap;
} sm_list;

static int list_reserve(sm_list *l, size_t n)
{
    if (n <= l->cap)
        return 0;
    if (n > SM_MAX_ITEMS)
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
    mp_obj *r = sm_list_of(l->v, l->n);
    pthread_mutex_unlock(&l->mu);
    return r;
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
    return sm_ret(result, r);
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
    return sm_ret(result, mp_bool(in));
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
        return sm_ret(result, r);
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
    mp_obj *v = sm_norm_index(i, l->n, &at) ? mp_obj_ref(l->v[at]) : NULL;
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
        return rc < 0 ? rc : sm_ret(result, mp_none());
    }
    if (!mp_obj_is_int(o) && !mp_obj_is_bool(o))
        return index_type_error(call, o);
    int64_t i;
    if ((rc = sm_index(call, o, true, &i)) < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t at;
    bool ok = sm_norm_index(i, l->n, &at);
    if (ok) {
        mp_obj_unref(l->v[at]);
        l->v[at] = mp_obj_ref(val);
    }
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        return sm_raise(call, "IndexError", "list assignment index out of range");
    return sm_ret(result, mp_none());
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
        return sm_ret(result, mp_none());
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
    bool ok = sm_norm_index(i, l->n, &at);
    if (ok)
        list_delete_range(l, at, 1);
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        return sm_raise(call, "IndexError", "list assignment index out of range");
    return sm_ret(result, mp_none());
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
    if ((uint64_t)n > SM_MAX_ITEMS / len)
        return sm_raise_obj(call, mp_exception_new("builtins", "MemoryError", NULL));
    *out = (size_t)n;
    return 0;
}

/* A new list of l's items times times over (mu held); NULL when out of memory. */
static mp_obj *list_repeated(const sm_list *l, size_t times)
{
    mp_obj *r = mp_list_new();
    for (size_t t = 0; r && t < times; t++)
        for (size_t i = 0; r && i < l->n; i++)
            if (mp_list_append(r, mp_obj_ref(l->v[i])) < 0) {
                mp_obj_unref(r);
                r = NULL;
            }
    return r;
}

/* l's items repeated times over, in place (mu held). */
static int list_repeat_in_place(sm_list *l, size_t times)
{
    if (times == 0) {
        list_free_items(l);
        return 0;
    }
    size_t n = l->n;
    int rc = times > 1 ? list_reserve(l, n * times) : 0;
    for (size_t t = 1; rc == 0 && t < times; t++)
        for (size_t i = 0; i < n; i++)
            l->v[l->n++] = mp_obj_ref(l->v[i]);
    return rc;
}

/* list * n (a new list) and list *= n (in place, answering the list), each under
 * one hold of the lock. */
static int list_repeat(sm_list *l, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       bool in_place, mp_obj **result)
{
    int rc = sm_wrapper(call, args, kwds, in_place ? "__imul__" : "__mul__", 1);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    size_t times = 0;
    rc = repeat_count(call, mp_seq_item(args, 0), l->n, &times);
    if (rc == 0 && in_place)
        rc = list_repeat_in_place(l, times);
    mp_obj *r = rc < 0 ? NULL : in_place ? sm_list_of(l->v, l->n) : list_repeated(l, times);
    pthread_mutex_unlock(&l->mu);
    if (rc < 0)
        return rc;
    return sm_ret(result, r);
}

static int list_mul(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                    mp_obj **result)
{
    return list_repeat(self, call, args, kwds, false, result);
}

static int list_imul(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_obj **result)
{
    return list_repeat(self, call, args, kwds, true, result);
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
    return sm_ret(result, mp_int((int64_t)n));
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
        return sm_ret(result, mp_object_new("builtins", "iter", mp_tuple1(items), NULL));
    return sm_ret(result, mp_object_new("builtins", "reversed", mp_tuple1(items), mp_int(n - 1)));
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
    return sm_ret(result, mp_int(c));
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
    return sm_ret(result, mp_int(found));
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
    if (n > 0 && sm_norm_index(i, n, &at)) {
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
    return sm_ret(result, mp_none());
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
    return sm_ret(result, mp_none());
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
