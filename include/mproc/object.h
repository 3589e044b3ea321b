/* mproc/object.h — Python values in C: None, bool, int, float, complex, str, bytes,
 * bytearray, tuple, list, dict, set, frozenset, and a generic "object" node for any
 * other Python object (exceptions, multiprocessing.managers.Token, classes mproc
 * does not know). mproc/pickle.h turns them into pickles and back.
 *
 *     mp_obj *req;
 *     mp_obj_build(&req, "(ss(i){})", "7f3802039be0", "put", 4242);
 *     // ('7f3802039be0', 'put', (4242,), {})
 *     const char *ident, *method; mp_obj *args, *kwds;
 *     mp_obj_parse(req, NULL, "(ssOO)", &ident, &method, &args, &kwds);
 *     char *s = mp_obj_repr(req);      // "('7f3802039be0', 'put', (4242,), {})"; free(s)
 *     mp_obj_unref(req);
 *
 * Ownership (as jansson's):
 * - Every constructor returns a new reference; mp_obj_unref drops one and frees the
 *   value (and what it holds) when the last one goes. mp_obj_ref adds one.
 * - Functions that put an item into a container (mp_list_append, mp_tuple_set,
 *   mp_dict_set, mp_set_add, mp_object_new, ...) take over the caller's reference
 *   to the item, also when they fail: mp_list_append(l, mp_int(5)) leaks nothing,
 *   and a NULL item (a failed constructor) is refused with MP_ENOMEM. Use
 *   mp_obj_ref(x) to keep your own reference. Functions whose name ends in _ref
 *   (mp_dict_set_ref ...) do not take the reference instead.
 * - Lookups (mp_seq_item, mp_dict_get, mp_object_args, ...) return borrowed
 *   references: valid while the container holds the item; do not unref them.
 * - Strings returned by mp_obj_repr are malloc'd; the caller frees them.
 *
 * Values form trees or shared DAGs, never cycles: a container must not contain
 * itself, directly or indirectly (a direct self-insertion is refused with
 * MP_EINVAL; an indirect cycle is the caller's bug: it leaks, and repr, equal and
 * dumps stop at their depth limit with an error). mp_pickle_loads refuses a pickle
 * that builds one (Python's l = []; l.append(l)) with MP_EPROTO. Shared
 * references (the same list twice) are fine and survive a pickle round trip.
 *
 * Immutable kinds (everything but list, dict, set, bytearray and object nodes)
 * never change after construction. Threads: reference counts are atomic, so values
 * may be shared between threads and read concurrently; a mutable container must not
 * be changed while another thread uses it. Fork: values are ordinary heap memory,
 * copied into a forked child like any other.
 *
 * Equality and hashing follow Python: 1 == 1.0 == True, bytes == bytearray with the
 * same bytes, set == frozenset with the same items, and hash(x) == hash(y) whenever
 * x == y. Integer and float hashes are Python's exactly (hash(2**61) == 1); str and
 * bytes hashes are mproc's own (Python randomizes them per process).
 */
#ifndef MPROC_OBJECT_H
#define MPROC_OBJECT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_obj mp_obj;

typedef enum mp_obj_kind {
    MP_OBJ_NONE = 0,
    MP_OBJ_BOOL,
    MP_OBJ_INT, /* any size: int64 fast path, arbitrary precision beyond it */
    MP_OBJ_FLOAT,
    MP_OBJ_COMPLEX,
    MP_OBJ_STR, /* UTF-8 bytes (lone surrogates allowed, as Python's surrogatepass) */
    MP_OBJ_BYTES,
    MP_OBJ_BYTEARRAY,
    MP_OBJ_TUPLE,
    MP_OBJ_LIST,
    MP_OBJ_DICT, /* insertion order kept; hash table lookups */
    MP_OBJ_SET,
    MP_OBJ_FROZENSET,
    MP_OBJ_OBJECT, /* any other Python object: a global plus how it was reduced */
} mp_obj_kind;

/* An error message for the format builder/parser, mp_pickle_loads and the object
 * forms of recv/get: text is NUL-terminated English ("item 1: expected int, got
 * str", "truncated pickle: BINUNICODE at offset 12 needs 300 bytes, 5 left");
 * position is the byte offset in the pickle or in the format string where the
 * problem was found (0 when it does not apply). */
typedef struct mp_obj_error {
    char text[200];
    size_t position;
} mp_obj_error;

/* ---- references and kinds ---- */

/* Adds one reference to o and returns o. NULL is accepted (returns NULL). */
MP_EXTERN mp_obj *mp_obj_ref(const mp_obj *o);

/* Drops one reference; frees o and drops its items' references when it was the
 * last. NULL is accepted. */
MP_EXTERN void mp_obj_unref(mp_obj *o);

/* The kind of o. o must not be NULL. */
MP_EXTERN mp_obj_kind mp_obj_kind_of(const mp_obj *o);

/* Python's type name of the kind: "NoneType", "bool", "int", "float", "complex",
 * "str", "bytes", "bytearray", "tuple", "list", "dict", "set", "frozenset", and for
 * an object node its qualified name ("ValueError"). Static or owned by o. */
MP_EXTERN const char *mp_obj_type_name(const mp_obj *o);

/* Kind predicates; false for NULL. mp_obj_is_int is true for int and not for bool
 * (use mp_obj_is_bool); mp_obj_is_number for bool, int, float and complex. */
MP_EXTERN bool mp_obj_is_none(const mp_obj *o);
MP_EXTERN bool mp_obj_is_bool(const mp_obj *o);
MP_EXTERN bool mp_obj_is_int(const mp_obj *o);
MP_EXTERN bool mp_obj_is_float(const mp_obj *o);
MP_EXTERN bool mp_obj_is_complex(const mp_obj *o);
MP_EXTERN bool mp_obj_is_number(const mp_obj *o);
MP_EXTERN bool mp_obj_is_str(const mp_obj *o);
MP_EXTERN bool mp_obj_is_bytes(const mp_obj *o);
MP_EXTERN bool mp_obj_is_bytearray(const mp_obj *o);
MP_EXTERN bool mp_obj_is_tuple(const mp_obj *o);
MP_EXTERN bool mp_obj_is_list(const mp_obj *o);
MP_EXTERN bool mp_obj_is_dict(const mp_obj *o);
MP_EXTERN bool mp_obj_is_set(const mp_obj *o);       /* set only */
MP_EXTERN bool mp_obj_is_frozenset(const mp_obj *o); /* frozenset only */
MP_EXTERN bool mp_obj_is_object(const mp_obj *o);

/* ---- scalars ----
 * Constructors return a new reference, or NULL when memory ran out (mp_str also
 * for invalid UTF-8). None, True, False and small ints are shared and never
 * allocate; ints up to 2^62 in magnitude need no memory at all. */

MP_EXTERN mp_obj *mp_none(void);
MP_EXTERN mp_obj *mp_bool(bool b);
MP_EXTERN mp_obj *mp_int(int64_t v);
MP_EXTERN mp_obj *mp_uint(uint64_t v);

/* An int from len bytes of little-endian two's complement (pickle's LONG form):
 * {0xff} is -1, {0x00, 0x01} is 256, len 0 is 0. Any length; the value is stored
 * normalized, so it equals mp_int() of the same value. */
MP_EXTERN mp_obj *mp_int_from_bytes(const void *le, size_t len);

/* An int from a decimal string as Python's int(text): optional sign, digits,
 * underscores between digits, surrounding whitespace. NULL for anything else or
 * more than 4300 digits (Python's default limit). */
MP_EXTERN mp_obj *mp_int_from_str(const char *text);

MP_EXTERN mp_obj *mp_float(double v);
MP_EXTERN mp_obj *mp_complex(double re, double im);

/* A str of len bytes of UTF-8 (copied; may contain NUL). Encoded surrogates
 * (U+D800..U+DFFF, as Python's 'surrogatepass') are accepted; any other invalid
 * UTF-8 gives NULL. mp_str_c takes a NUL-terminated string. */
MP_EXTERN mp_obj *mp_str(const char *utf8, size_t len);
MP_EXTERN mp_obj *mp_str_c(const char *utf8);

/* bytes / bytearray of len bytes (copied; data may be NULL when len is 0). */
MP_EXTERN mp_obj *mp_bytes(const void *data, size_t len);
MP_EXTERN mp_obj *mp_bytearray(const void *data, size_t len);

/* Scalar accessors. Errors: MP_ETYPE (o is not of an accepted kind), MP_EINVAL (o
 * or the out pointer NULL).
 * mp_bool_value: bool only. mp_int_value: int or bool; MP_ERANGE when the value
 * does not fit (nothing stored). mp_int_to_bytes: int or bool, minimal little-endian
 * two's complement into buf; *len gets the bytes needed, MP_ETOOSHORT when cap is
 * less. mp_float_value: float, int (converted, MP_ERANGE when too large) or bool.
 * mp_complex_value: complex, float, int or bool. */
MP_EXTERN int mp_bool_value(const mp_obj *o, bool *out);
MP_EXTERN int mp_int_value(const mp_obj *o, int64_t *out);
MP_EXTERN int mp_uint_value(const mp_obj *o, uint64_t *out);
MP_EXTERN int mp_int_to_bytes(const mp_obj *o, void *buf, size_t cap, size_t *len);
MP_EXTERN int mp_float_value(const mp_obj *o, double *out);
MP_EXTERN int mp_complex_value(const mp_obj *o, double *re, double *im);

/* str: the UTF-8 bytes (NUL-terminated, borrowed, valid while o lives) and their
 * count (len may be NULL). Errors: MP_ETYPE, MP_EINVAL. */
MP_EXTERN int mp_str_value(const mp_obj *o, const char **utf8, size_t *len);

/* bytes or bytearray: the bytes (borrowed; writable only for a bytearray) and
 * their count. Errors: MP_ETYPE, MP_EINVAL. */
MP_EXTERN int mp_bytes_value(const mp_obj *o, const void **data, size_t *len);

/* Convenience: the str's bytes or NULL when o is not a str. */
MP_EXTERN const char *mp_str_cstr(const mp_obj *o);

/* ---- tuple, list ---- */

/* A tuple of n items, all None until set. Fill it with mp_tuple_set before sharing
 * it (a tuple is immutable once in use). NULL on out-of-memory. */
MP_EXTERN mp_obj *mp_tuple_new(size_t n);

/* Sets item i of a tuple made by mp_tuple_new, replacing (and unreferencing) what
 * was there. Takes the reference to item, also on failure.
 * Errors: MP_ETYPE (t not a tuple), MP_ERANGE (i >= size), MP_ENOMEM (item NULL),
 * MP_EINVAL (t NULL). */
MP_EXTERN int mp_tuple_set(mp_obj *t, size_t i, mp_obj *item);

/* Convenience tuples of 1..4 items; each takes its items' references (all of them,
 * also when one is NULL, which gives NULL). */
MP_EXTERN mp_obj *mp_tuple1(mp_obj *a);
MP_EXTERN mp_obj *mp_tuple2(mp_obj *a, mp_obj *b);
MP_EXTERN mp_obj *mp_tuple3(mp_obj *a, mp_obj *b, mp_obj *c);
MP_EXTERN mp_obj *mp_tuple4(mp_obj *a, mp_obj *b, mp_obj *c, mp_obj *d);

/* An empty list. NULL on out-of-memory. */
MP_EXTERN mp_obj *mp_list_new(void);

/* Appends item (taking the reference, also on failure). Errors: MP_ETYPE (not a
 * list), MP_EINVAL (l NULL, or item is l), MP_ENOMEM. */
MP_EXTERN int mp_list_append(mp_obj *l, mp_obj *item);

/* Replaces item i of a list (taking the reference). Errors: MP_ETYPE, MP_ERANGE,
 * MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_list_set(mp_obj *l, size_t i, mp_obj *item);

/* Removes item i of a list; when out is not NULL the item's reference moves to
 * *out, otherwise it is dropped. Errors: MP_ETYPE, MP_ERANGE, MP_EINVAL. */
MP_EXTERN int mp_list_pop(mp_obj *l, size_t i, mp_obj **out);

/* The number of items of a tuple, list, dict, set, frozenset, str (bytes of its
 * UTF-8), bytes or bytearray; MP_ETYPE (negative) for other kinds, MP_EINVAL for
 * NULL. */
MP_EXTERN int64_t mp_obj_len(const mp_obj *o);

/* Item i of a tuple or list (borrowed), or NULL when o is not one or i is out of
 * range. */
MP_EXTERN mp_obj *mp_seq_item(const mp_obj *o, size_t i);

/* ---- dict ---- */

/* An empty dict. NULL on out-of-memory. */
MP_EXTERN mp_obj *mp_dict_new(void);

/* d[key] = value. Takes both references, also on failure. A key equal to an
 * existing one (Python equality) replaces the value and keeps the old key and the
 * entry's position. Errors: MP_ETYPE (d not a dict, or key unhashable: list, dict,
 * set, bytearray, or a tuple containing one), MP_ENOMEM, MP_EINVAL. */
MP_EXTERN int mp_dict_set(mp_obj *d, mp_obj *key, mp_obj *value);

/* d[key] = value with a str key given as a C string; takes value's reference. */
MP_EXTERN int mp_dict_set_str(mp_obj *d, const char *key, mp_obj *value);

/* As mp_dict_set, but the caller keeps its references. */
MP_EXTERN int mp_dict_set_ref(mp_obj *d, const mp_obj *key, const mp_obj *value);

/* d[key] (borrowed), or NULL when absent, d is not a dict, or key is unhashable.
 * Average O(1). */
MP_EXTERN mp_obj *mp_dict_get(const mp_obj *d, const mp_obj *key);
MP_EXTERN mp_obj *mp_dict_get_str(const mp_obj *d, const char *key);

/* del d[key]. Errors: MP_ENOENT (absent), MP_ETYPE, MP_EINVAL. */
MP_EXTERN int mp_dict_del(mp_obj *d, const mp_obj *key);

/* Iteration in insertion order:
 *     size_t it = 0; mp_obj *k, *v;
 *     while (mp_dict_next(d, &it, &k, &v)) ...
 * k and v are borrowed (either may be NULL). Returns false at the end or when d is
 * not a dict. The dict must not change during the iteration. */
MP_EXTERN bool mp_dict_next(const mp_obj *d, size_t *iter, mp_obj **key, mp_obj **value);

/* ---- set, frozenset ---- */

/* An empty set / frozenset (fill a frozenset with mp_set_add before sharing it). */
MP_EXTERN mp_obj *mp_set_new(void);
MP_EXTERN mp_obj *mp_frozenset_new(void);

/* Adds item to a set or frozenset (taking the reference); an equal item already
 * there is kept. Errors: MP_ETYPE (not a set, or item unhashable), MP_ENOMEM,
 * MP_EINVAL. */
MP_EXTERN int mp_set_add(mp_obj *s, mp_obj *item);

/* Whether item is in the set or frozenset (false when s is not one). */
MP_EXTERN bool mp_set_contains(const mp_obj *s, const mp_obj *item);

/* Iteration over a set or frozenset in insertion order, as mp_dict_next. */
MP_EXTERN bool mp_set_next(const mp_obj *s, size_t *iter, mp_obj **item);

/* ---- object nodes ----
 * Any Python object that is not one of the kinds above: what pickle says about it
 * (the global that makes it, the arguments, the state), kept as data. Nothing is
 * ever imported or called. Re-encoding an object node gives the pickle it came
 * from (up to memo and framing). */

typedef enum mp_object_form {
    MP_OBJECT_REDUCE = 0, /* global(*args): REDUCE (exceptions, most objects) */
    MP_OBJECT_NEWOBJ,     /* cls.__new__(cls, *args): NEWOBJ (e.g. Token) */
    MP_OBJECT_NEWOBJ_EX,  /* cls.__new__(cls, *args, **kwargs): NEWOBJ_EX (protocol 4+) */
    MP_OBJECT_GLOBAL,     /* the global itself (a class or function), not called */
} mp_object_form;

/* A new object node for module.qualname made with args (a tuple; NULL means ())
 * and, when state is not NULL, given that state with BUILD. Takes the references to
 * args and state, also on failure. NULL on out-of-memory, when module or qualname is
 * NULL or not valid UTF-8, or when args is not a tuple. */
MP_EXTERN mp_obj *mp_object_new(const char *module, const char *qualname, mp_obj *args,
                                mp_obj *state);

/* As mp_object_new with an explicit form; kwargs (a dict, or NULL) only for
 * MP_OBJECT_NEWOBJ_EX. Takes args, kwargs and state. */
MP_EXTERN mp_obj *mp_object_new_form(const char *module, const char *qualname, mp_object_form form,
                                     mp_obj *args, mp_obj *kwargs, mp_obj *state);

/* Accessors of an object node (NULL / -1 when o is not one). module and qualname are
 * NUL-terminated UTF-8 owned by o. args is a tuple (never NULL for a node), kwargs
 * NULL unless NEWOBJ_EX, state NULL unless the pickle had BUILD. All borrowed. */
MP_EXTERN const char *mp_object_module(const mp_obj *o);
MP_EXTERN const char *mp_object_name(const mp_obj *o);
MP_EXTERN int mp_object_form_of(const mp_obj *o);
MP_EXTERN mp_obj *mp_object_args(const mp_obj *o);
MP_EXTERN mp_obj *mp_object_kwargs(const mp_obj *o);
MP_EXTERN mp_obj *mp_object_state(const mp_obj *o);

/* Items that pickle APPENDed / SETITEMed to the object after making it (a subclass
 * of list or dict): a list / dict, or NULL when there were none. Borrowed. */
MP_EXTERN mp_obj *mp_object_listitems(const mp_obj *o);
MP_EXTERN mp_obj *mp_object_dictitems(const mp_obj *o);

/* Sets (replaces) the state of an object node; takes state. Errors: MP_ETYPE,
 * MP_EINVAL. */
MP_EXTERN int mp_object_set_state(mp_obj *o, mp_obj *state);

/* Whether o is an object node for module.qualname (module NULL: any module). */
MP_EXTERN bool mp_object_is(const mp_obj *o, const char *module, const char *qualname);

/* An exception as Python pickles one: module.name(*args) by REDUCE, e.g.
 * mp_exception_new("_queue", "Empty", NULL) is queue.Empty() and
 * mp_exception_new("builtins", "KeyError", mp_tuple1(mp_str_c("k"))) is
 * KeyError('k'). Takes args (a tuple or NULL for ()). NULL on out-of-memory. */
MP_EXTERN mp_obj *mp_exception_new(const char *module, const char *name, mp_obj *args);

/* Shorthand: module.name(message) with one str argument (message NULL: no args). */
MP_EXTERN mp_obj *mp_exception_msg(const char *module, const char *name, const char *message);

/* Whether o is a reduced object node for module.name (module NULL: any module),
 * the shape every pickled exception has. */
MP_EXTERN bool mp_obj_is_exception(const mp_obj *o, const char *module, const char *name);

/* ---- comparison, hashing, repr ---- */

/* Python's ==, for every kind (object nodes: same global, form, args, kwargs, state
 * and items). NULL equals only NULL. Values nested deeper than 10000 compare unequal
 * (where Python raises RecursionError). */
MP_EXTERN bool mp_obj_equal(const mp_obj *a, const mp_obj *b);

/* Python's hash(o) for numbers (exactly), mproc's own for str and bytes, and a hash
 * consistent with mp_obj_equal for tuple, frozenset and object nodes (which hash by
 * their global). Errors: MP_ETYPE (unhashable: list, dict, set, bytearray, or a
 * tuple holding one; also a tuple nested deeper than 10000), MP_EINVAL (NULL). */
MP_EXTERN int mp_obj_hash(const mp_obj *o, int64_t *out);

/* Python's repr(o) as a new malloc'd NUL-terminated string (free it), or NULL on
 * out-of-memory or nesting deeper than 10000. Exactly Python's text for every kind
 * but object nodes; exceptions print as Python does (ValueError('boom'), Empty()),
 * other object nodes as module.qualname(args...) plus ", state=..." when they have
 * state — not Python's <... object at 0x...>. Nested repr text stays on one line. */
MP_EXTERN char *mp_obj_repr(const mp_obj *o);

/* ---- format strings ----
 * mp_obj_build makes a value from a format string, as Py_BuildValue / json_pack:
 *   n        None                        (no argument)
 *   b        bool                        (int)
 *   i        int                         (int)
 *   I        int                         (unsigned int)
 *   l / L    int                         (long / long long)
 *   K        int                         (unsigned long long)
 *   z        int                         (size_t)
 *   d        float                       (double; also f: double, promoted)
 *   D        complex                     (double re, double im)
 *   s        str                         (const char *, NUL-terminated; NULL gives None)
 *   s#       str                         (const char *, size_t length)
 *   y        bytes                       (const char *, NUL-terminated)
 *   y#       bytes                       (const void *, size_t length)
 *   Y#       bytearray                   (const void *, size_t length)
 *   O        any value                   (mp_obj *: a reference is added; NULL fails)
 *   N        any value                   (mp_obj *: its reference is taken; NULL fails)
 *   (...)    tuple of the items inside
 *   [...]    list of the items inside
 *   {k:v ...} dict of key/value pairs (any formats)
 *   <...>    set of the items inside
 * Spaces, commas and colons between items are ignored. A format of several items
 * outside any bracket builds a tuple of them; an empty format builds None.
 * Errors: MP_EINVAL (bad format: err says where), MP_ENOMEM, MP_ETYPE (an
 * unhashable dict key or set item). Every N argument's reference is taken also on
 * failure, and nothing else leaks. err may be NULL. */
MP_EXTERN int mp_obj_build(mp_obj **out, const char *fmt, ...);
MP_EXTERN int mp_obj_buildv(mp_obj **out, mp_obj_error *err, const char *fmt, va_list ap);
MP_EXTERN int mp_obj_build_err(mp_obj **out, mp_obj_error *err, const char *fmt, ...);

/* mp_obj_parse checks o against a format and stores its parts, as
 * PyArg_ParseTuple / json_unpack:
 *   n        None                        (no argument)
 *   b        bool                        (bool *)
 *   i        int fitting in int          (int *)
 *   L        int fitting in int64        (int64_t *)
 *   K        int fitting in uint64       (uint64_t *)
 *   z        int fitting in size_t       (size_t *)
 *   d        float, int or bool          (double *)
 *   D        complex or any number       (double *re, double *im)
 *   s        str                         (const char **: borrowed UTF-8, NUL-terminated)
 *   s#       str                         (const char **, size_t *)
 *   y#       bytes or bytearray          (const void **, size_t *)
 *   O        any value                   (mp_obj **: borrowed)
 *   O!       a value of a kind           (mp_obj_kind, mp_obj **: borrowed)
 *   (...)    tuple of exactly these items
 *   [...]    list of exactly these items
 *   {s:v ...} dict with these str keys (the key as a const char * argument, then v's);
 *            extra keys are allowed; ?s:v makes a key optional (v's targets are left
 *            untouched when it is absent)
 * A '|' inside (...) or [...] makes the items after it optional (targets untouched).
 * Borrowed outputs stay valid while o lives. On failure, targets before the
 * mismatch may already have been written.
 * Errors: MP_ETYPE (o does not match; err->text names the path, as "item 1: expected
 * int, got str" or "item 3: key 'timeout': expected float, got str"), MP_ERANGE (an
 * int does not fit its C type), MP_EINVAL (bad format). err may be NULL. */
MP_EXTERN int mp_obj_parse(const mp_obj *o, mp_obj_error *err, const char *fmt, ...);
MP_EXTERN int mp_obj_parsev(const mp_obj *o, mp_obj_error *err, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_OBJECT_H */
