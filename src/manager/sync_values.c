/* manager/sync_values.c — the SyncManager's Value (ValueProxy), Array
 * (ArrayProxy: array.array of one typecode) and Namespace (NamespaceProxy), served
 * as CPython's server serves them. Each object has one mutex (mu) guarding it.
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
    int rc = sm_pyargs(call, args, kwds, "Value.get", sm_no_names, 0, none);
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
    return sm_ret(result, mp_none());
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
    if (n > SM_MAX_ITEMS)
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
    return sm_ret(result, mp_int((int64_t)n));
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
        return sm_ret(result, r);
    }
    pthread_mutex_unlock(&a->mu);
    int64_t i;
    if (rc < 0 || (rc = array_index_arg(call, o, &i)) < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    size_t at;
    bool in = sm_norm_index(i, a->n, &at);
    mp_obj *v = in ? from_cell(a->tc, a->v[at]) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array index out of range");
    return sm_ret(result, v);
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
        return rc < 0 ? rc : sm_ret(result, mp_none());
    }
    int64_t i;
    if ((rc = array_index_arg(call, o, &i)) < 0)
        return rc;
    sm_cell c;
    pthread_mutex_lock(&a->mu);
    size_t at;
    bool in = sm_norm_index(i, a->n, &at);
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array assignment index out of range");
    if ((rc = to_cell(call, a->tc, val, &c)) < 0)
        return rc;
    pthread_mutex_lock(&a->mu);
    in = sm_norm_index(i, a->n, &at);
    if (in)
        a->v[at] = c;
    pthread_mutex_unlock(&a->mu);
    if (!in)
        return sm_raise(call, "IndexError", "array assignment index out of range");
    return sm_ret(result, mp_none());
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
    ns->attrs = kwds ? sm_dict_copy(kwds) : mp_dict_new();
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
    mp_obj *v = strcmp(name, "__dict__") == 0 ? sm_dict_copy(ns->attrs)
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
    return rc < 0 ? rc : sm_ret(result, mp_none());
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
    mp_obj *state = sm_dict_copy(ns->attrs);
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
