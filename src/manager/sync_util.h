/* manager/sync_util.h — what the SyncManager types share: Python's argument
 * checks for built-in (C) methods, its ordering, indices and slices, iteration of
 * the value kinds, and the raising of its exceptions with its messages.
 *
 * Every function that raises returns MP_EREMOTE (the value of
 * mp_manager_call_raise), so a method can `return` it directly. */
#ifndef MPROC_MANAGER_SYNC_UTIL_H
#define MPROC_MANAGER_SYNC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/manager.h"
#include "mproc/object.h"

/* Raises builtins.<name>(printf text): TypeError, ValueError, ... Returns
 * MP_EREMOTE; MP_EINVAL when call is NULL (a create outside a request), MP_ENOMEM
 * when the exception cannot be made. */
MP__HIDDEN int sm_raise(mp_manager_call *call, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Raises exc (taking the reference), or drops it and returns MP_EINVAL when call is
 * NULL. */
MP__HIDDEN int sm_raise_obj(mp_manager_call *call, mp_obj *exc);

/* The number of positional arguments (args is always a tuple). */
MP__HIDDEN size_t sm_nargs(const mp_obj *args);
MP__HIDDEN bool sm_has_kwds(const mp_obj *kwds);

/* Argument checks of CPython's built-in methods, with its messages:
 *  sm_noargs    "dict.clear() takes no arguments (1 given)"
 *  sm_onearg    "list.append() takes exactly one argument (0 given)"
 *  sm_wrapper   slot wrappers: "expected 1 argument, got 0" (and no keywords)
 *  sm_range     Argument Clinic positional-only: "get expected at least 1 argument,
 *               got 0" / "at most 2 arguments" / "insert expected 2 arguments"; qual
 *               ("dict.get") names the method in the keyword message.
 * Each returns 0 when the call fits, else raises TypeError. */
MP__HIDDEN int sm_noargs(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         const char *qual);
MP__HIDDEN int sm_onearg(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         const char *qual);
MP__HIDDEN int sm_wrapper(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                          const char *slot, size_t n);
MP__HIDDEN int sm_range(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                        const char *name, const char *qual, size_t min, size_t max);

/* Python's argument binding for a method written in Python, def qual(self,
 * names[0], ...), with its messages ("Value.set() missing 1 required positional
 * argument: 'value'", "Semaphore.acquire() takes from 1 to 3 positional arguments
 * but 4 were given", "Event.wait() got an unexpected keyword argument 'x'"). Fills
 * out[i] (borrowed; NULL when not given). names is NULL-terminated; out may be
 * NULL when names is empty. Returns 0 or raises TypeError. */
MP__HIDDEN int sm_pyargs(mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                         const char *qual, const char *const *names, size_t nrequired,
                         const mp_obj **out);

/* Python's `a < b` for the kinds that order (numbers, str, bytes/bytearray, tuples,
 * lists, sets): 1 true, 0 false, or MP_EREMOTE with TypeError("'<' not supported
 * between instances of 'A' and 'B'") raised. */
MP__HIDDEN int sm_lt(mp_manager_call *call, const mp_obj *a, const mp_obj *b);

/* An int (or bool) argument as Py_ssize_t-like int64: "'float' object cannot be
 * interpreted as an integer" (TypeError) for another kind, and for an int beyond
 * int64 either IndexError("cannot fit 'int' into an index-sized integer") (index)
 * or OverflowError("Python int too large to convert to C ssize_t"). */
MP__HIDDEN int sm_index(mp_manager_call *call, const mp_obj *o, bool index, int64_t *out);

/* A number (int, bool, float) as a double; false for another kind. */
MP__HIDDEN bool sm_number(const mp_obj *o, double *out);

/* If o is a slice object (builtins.slice(start, stop, step)), resolves it against a
 * sequence of length len as PySlice_GetIndicesEx: 1 with start/step/count stored,
 * 0 when o is not a slice, MP_EREMOTE on a bad slice (TypeError, ValueError). */
MP__HIDDEN int sm_slice(mp_manager_call *call, const mp_obj *o, int64_t len, int64_t *start,
                        int64_t *step, int64_t *count);

/* The items of an iterable value (tuple, list, str (one-character strs), bytes and
 * bytearray (ints), set, frozenset, dict (its keys)), as a malloc'd array of new
 * references in *items (free with sm_items_free). Raises TypeError("'int' object is
 * not iterable") for another kind. */
MP__HIDDEN int sm_items(mp_manager_call *call, const mp_obj *o, mp_obj ***items, size_t *n);
MP__HIDDEN void sm_items_free(mp_obj **items, size_t n);

/* Raises TypeError("unhashable type: 'list'") naming the unhashable part of key,
 * or returns 0 when key is hashable. */
MP__HIDDEN int sm_check_hashable(mp_manager_call *call, const mp_obj *key);

/* A malloc'd printf string, or NULL. */
MP__HIDDEN char *sm_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* repr(o) into a malloc'd string, or a copy of "?" when it cannot be made. */
MP__HIDDEN char *sm_repr(const mp_obj *o);

/* Stores value (a new reference) as a method's result: 0, or MP_ENOMEM when value
 * is NULL (a failed constructor). */
MP__HIDDEN int sm_ret(mp_obj **result, mp_obj *value);

/* A new list of n items (references added), or NULL. */
MP__HIDDEN mp_obj *sm_list_of(mp_obj *const *v, size_t n);

/* A shallow copy of a dict (references added), or NULL. */
MP__HIDDEN mp_obj *sm_dict_copy(const mp_obj *src);

/* An index for an item of a sequence of length n: negative counts from the end.
 * false when out of range. */
MP__HIDDEN bool sm_norm_index(int64_t i, size_t n, size_t *out);

/* No parameters, for sm_pyargs. */
MP__HIDDEN extern const char *const sm_no_names[];

/* Beyond this many items a container or result is refused with MemoryError (Python
 * would try, and perhaps take the machine down with it). */
#define SM_MAX_ITEMS ((size_t)1 << 28)

#endif
