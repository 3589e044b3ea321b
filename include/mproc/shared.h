/* mproc/shared.h — shared values and named shared memory, as CPython's
 * multiprocessing.Value, multiprocessing.Array and
 * multiprocessing.shared_memory.SharedMemory.
 *
 *     mp_value *counter;
 *     mp_value_new(&counter, 'i', NULL, NULL);         // int, 0, with an RLock
 *     ... in each child:
 *     mp_rlock_acquire(mp_value_get_lock(counter), -1);
 *     *(int *)mp_value_ptr(counter) += 1;
 *     mp_rlock_release(mp_value_get_lock(counter));
 *     ... or, with no lock at all:
 *     mp_value_add(counter, 1, NULL);
 *
 * Value and Array live in mproc's shared arena, as the objects of mproc/sync.h
 * do: the handle is a pointer into shared memory, valid in every process forked
 * after it was created; memory starts zero-filled; the creating process frees
 * it with mp_x_destroy (a no-op in any other process), after the last user is
 * done.
 *
 * Typecodes are CPython's array module codes:
 *   'c' char   'b' signed char   'B' unsigned char   'h' short   'H' unsigned short
 *   'i' int    'I' unsigned int  'l' long            'L' unsigned long
 *   'q' long long   'Q' unsigned long long   'f' float   'd' double
 * Any other C type (a struct, say) is given by size with the _sized variants;
 * its typecode is then 0.
 *
 * Locks: by default each Value and Array gets an RLock of its own, as in Python
 * (lock=True); mp_value_get and mp_value_set take it. Direct access through
 * mp_value_ptr takes nothing: hold mp_value_get_lock around a read-modify-
 * write. With .no_lock (lock=False) there is no lock at all.
 */
#ifndef MPROC_SHARED_H
#define MPROC_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/export.h"
#include "mproc/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of Value and Array. Zero: a new RLock of the object's own. */
typedef struct mp_value_options {
    bool no_lock;   /* Python's lock=False: no lock; get_lock returns NULL */
    mp_rlock *lock; /* use this RLock instead of a new one (it is not destroyed
                       with the object); ignored with no_lock */
} mp_value_options;

/* ---- Value ----------------------------------------------------------------- */
typedef struct mp_value mp_value;

/* Creates a shared value of the C type of typecode. initial points to one value
 * of that type to copy in (NULL: zero). Errors: MP_EINVAL (out NULL, unknown
 * typecode), MP_ENOMEM. */
MP_EXTERN int mp_value_new(mp_value **out, char typecode, const void *initial,
                           const mp_value_options *opt);

/* The same for a type of size bytes (1 to 1 MiB), aligned for any C type. */
MP_EXTERN int mp_value_new_sized(mp_value **out, size_t size, const void *initial,
                                 const mp_value_options *opt);

/* The shared storage, for direct access; valid until destroy. */
MP_EXTERN void *mp_value_ptr(mp_value *v);

/* The typecode (0 for a value made by size) and the size in bytes. */
MP_EXTERN char mp_value_typecode(const mp_value *v);
MP_EXTERN size_t mp_value_size(const mp_value *v);

/* The value's RLock; NULL when created with no_lock. The default one lives in
 * the value's own memory, next to the data (a small value shares its cache
 * line): it is valid until the value is destroyed, and mp_rlock_destroy on it
 * does nothing. */
MP_EXTERN mp_rlock *mp_value_get_lock(mp_value *v);

/* Copies the value out to / in from size bytes at out / in, holding the lock if
 * the value has one. 0, or MP_EOWNERDEAD (copied; the lock's previous holder had
 * died holding it). Errors: MP_EINVAL. */
MP_EXTERN int mp_value_get(mp_value *v, void *out);
MP_EXTERN int mp_value_set(mp_value *v, const void *in);

/* Atomic operations for integer typecodes (c b B h H i I l L q Q), lock-free and
 * independent of the lock, sequentially consistent. Values are passed as
 * int64_t and truncated to the value's width (unsigned ones wrap as in C).
 *   add:              adds delta; *old (if not NULL) gets the previous value
 *   load / store:     reads into *out / writes val
 *   compare_exchange: if the value equals *expected, writes desired and returns
 *                     0; else stores the current value in *expected and returns
 *                     MP_EAGAIN
 * Errors: MP_EINVAL (NULL, or not an integer typecode). Old values come back
 * sign- or zero-extended according to the typecode. */
MP_EXTERN int mp_value_add(mp_value *v, int64_t delta, int64_t *old);
MP_EXTERN int mp_value_load(mp_value *v, int64_t *out);
MP_EXTERN int mp_value_store(mp_value *v, int64_t val);
MP_EXTERN int mp_value_compare_exchange(mp_value *v, int64_t *expected, int64_t desired);

/* Frees the value (and its own lock) in the creating process; no-op elsewhere.
 * NULL is accepted. */
MP_EXTERN void mp_value_destroy(mp_value *v);

/* ---- Array ----------------------------------------------------------------- */
typedef struct mp_array mp_array;

/* Creates a shared array of length items of typecode's C type. init points to
 * length items to copy in (NULL: zero-filled). Errors: MP_EINVAL (out NULL,
 * unknown typecode, length 0), MP_ENOMEM (also when too large). */
MP_EXTERN int mp_array_new(mp_array **out, char typecode, size_t length, const void *init,
                           const mp_value_options *opt);

/* The same with items of item_size bytes (1 to 1 MiB). */
MP_EXTERN int mp_array_new_sized(mp_array **out, size_t item_size, size_t length, const void *init,
                                 const mp_value_options *opt);

/* The first item, for direct access to all of them; valid until destroy. */
MP_EXTERN void *mp_array_ptr(mp_array *a);

MP_EXTERN size_t mp_array_len(const mp_array *a);
MP_EXTERN size_t mp_array_item_size(const mp_array *a);
MP_EXTERN char mp_array_typecode(const mp_array *a);

/* The array's RLock; NULL when created with no_lock. As for a Value, the
 * default one lives in the array's memory and dies with it. */
MP_EXTERN mp_rlock *mp_array_get_lock(mp_array *a);

/* Copy count items starting at index start out to / in from a buffer of count
 * items, holding the lock if the array has one (a slice, a[start:start+count]).
 * 0 or MP_EOWNERDEAD (copied). Errors: MP_ERANGE (past the end; nothing
 * copied), MP_EINVAL. */
MP_EXTERN int mp_array_read(mp_array *a, size_t start, size_t count, void *out);
MP_EXTERN int mp_array_write(mp_array *a, size_t start, size_t count, const void *in);

/* Frees the array (and its own lock) in the creating process; no-op elsewhere.
 * NULL is accepted. */
MP_EXTERN void mp_array_destroy(mp_array *a);

/* ---- SharedMemory ---------------------------------------------------------
 * A named POSIX shared memory segment (/dev/shm) that unrelated processes
 * attach to by name. The handle is private to the process that made it (a
 * child forked later gets a copy of the handle and of the mapping).
 *
 * Lifetime: closing unmaps the segment in this process; unlinking removes the
 * name (the memory lives on while mapped). When the process that created a
 * segment exits normally (exit() or return from main) it unlinks the segments it
 * created and did not unlink, unless created with .keep. A creator that is
 * killed cannot do that: its segments stay until unlinked by name. */
typedef struct mp_shared_memory mp_shared_memory;

typedef struct mp_shared_memory_options {
    bool create; /* create a new segment (fails if the name exists); else attach */
    size_t size; /* creating: the size in bytes (> 0); attaching: ignored, the
                    segment's own size is used */
    bool keep;   /* creating: leave the segment behind at exit */
} mp_shared_memory_options;

/* Creates or attaches to the segment name (with or without the leading '/';
 * 1 to 250 bytes after it, no other '/', not "." or ".."). name NULL when
 * creating: a fresh random name "psm_<hex>". The mapping is read-write, shared,
 * zero-filled on creation.
 * Errors: MP_EEXIST (create, the name exists), MP_ENOENT (attach, no such
 * segment), MP_EINVAL (bad name, size 0 on create, NULL name on attach, an empty
 * segment), MP_EACCES, MP_EMFILE, MP_ENOMEM (also a size too large to map). */
MP_EXTERN int mp_shared_memory_new(mp_shared_memory **out, const char *name,
                                   const mp_shared_memory_options *opt);

/* The name, without the leading '/' (as Python's .name); owned by shm. */
MP_EXTERN const char *mp_shared_memory_name(const mp_shared_memory *shm);

/* The size of the mapping in bytes. */
MP_EXTERN size_t mp_shared_memory_size(const mp_shared_memory *shm);

/* The mapped memory; NULL after close. */
MP_EXTERN void *mp_shared_memory_buf(mp_shared_memory *shm);

/* Unmaps the segment from this process; buf is invalid afterwards. Closing
 * twice returns 0. Errors: MP_EINVAL. */
MP_EXTERN int mp_shared_memory_close(mp_shared_memory *shm);

/* Removes the name, so nobody can attach any more; processes that have it
 * mapped keep their mapping. Call it once, from one process.
 * Errors: MP_ENOENT (already unlinked), MP_EACCES, MP_EINVAL. */
MP_EXTERN int mp_shared_memory_unlink(mp_shared_memory *shm);

/* Closes (if needed) and frees the handle; does not unlink (see the lifetime
 * rules above). NULL is accepted. */
MP_EXTERN void mp_shared_memory_destroy(mp_shared_memory *shm);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SHARED_H */
