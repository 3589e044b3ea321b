/* mproc/pickle.h — Python's pickle format for the values of mproc/object.h.
 *
 *     void *buf; size_t len;
 *     mp_pickle_dumps(value, 0, &buf, &len);          // protocol 4, as CPython sends
 *     mp_obj *back; mp_obj_error err;
 *     if (mp_pickle_loads(buf, len, NULL, &back, &err) < 0) puts(err.text);
 *     free(buf);
 *
 * dumps writes protocols 2 to 5; CPython 3.8 to 3.13 loads the result as the equal
 * Python value (object nodes as the objects they describe). loads reads protocols 0
 * to 5 as written by CPython (and Python 2 for the kinds above) and never imports or
 * executes anything: a global, REDUCE, NEWOBJ, NEWOBJ_EX or BUILD becomes an object
 * node (mproc/object.h), except for the few globals that are plain values —
 * builtins.set / frozenset / bytearray / complex and _codecs.encode(str, 'latin1')
 * (how protocols 0-2 write bytes) — which become those values.
 *
 * Input is treated as hostile: loads checks every length against the bytes that
 * remain before allocating, bounds nesting, memo and total size (mp_pickle_limits),
 * and reports anything it cannot accept as MP_EPROTO with a message naming the
 * opcode and its offset. Refused on purpose: persistent ids (PERSID, BINPERSID),
 * out-of-band buffers (NEXT_BUFFER, READONLY_BUFFER), the extension registry (EXT1/2/4),
 * INST/OBJ, and pickles that build a cycle (a container inside itself).
 *
 * Memory: the values one loads of a pickle of 1 KiB or more makes are carved out of
 * a few blocks of at most 512 KiB each (one malloc for many small values); a block is
 * freed when the last value in it is, so keeping one small value of a large message
 * keeps its block. A smaller pickle's values are malloc'd one by one, so keeping one
 * value of a small message (a queued item) keeps only that value.
 *
 * Both functions are thread-safe and fork-safe (no global state).
 */
#ifndef MPROC_PICKLE_H
#define MPROC_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "mproc/export.h"
#include "mproc/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol dumps uses when asked for 0: 4, what CPython 3.8-3.13 send. */
#define MP_PICKLE_DEFAULT_PROTOCOL 4
#define MP_PICKLE_HIGHEST_PROTOCOL 5

/* Limits for loads; a zero field means its default. */
typedef struct mp_pickle_limits {
    size_t max_depth; /* nesting of containers and objects; default 1000, at most 65534 */
    size_t max_size;  /* bytes of input accepted; default 1 GiB */
    size_t max_memo;  /* memo entries; default 1 << 20 */
    size_t max_items; /* values in the result (containers count their items); default 1 << 26 */
} mp_pickle_limits;

/* Encodes o as a pickle of the given protocol (0: MP_PICKLE_DEFAULT_PROTOCOL; 2-5)
 * into a new malloc'd buffer *out of *len bytes (the caller frees it with free()).
 * Values referenced more than once are memoized, so sharing survives (the same list
 * twice loads as one list in Python). Protocol 5 writes bytearray as BYTEARRAY8;
 * protocols 2-3 write object nodes with GLOBAL and refuse NEWOBJ_EX forms, and
 * protocol 2 refuses a global in a module CPython renames when loading protocols
 * 0-2 (__builtin__, copy_reg, exceptions, Queue).
 * Errors: MP_EINVAL (o or an out pointer NULL, protocol not 0 or 2-5, a NEWOBJ_EX
 * node below protocol 4, a '\n' in a global's name below protocol 4, a renamed
 * module above, nesting deeper than 10000), MP_ENOMEM. Nothing is
 * allocated for the caller on error. */
MP_EXTERN int mp_pickle_dumps(const mp_obj *o, int protocol, void **out, size_t *len);

/* Decodes the pickle in buf[0, len) into a new value *out (the caller unrefs it).
 * limits NULL means the defaults. Bytes after the STOP opcode are ignored, as
 * Python's pickle.loads does. err may be NULL; on error err->text says what went
 * wrong and err->position where.
 * Errors: MP_EPROTO (malformed, truncated, unsupported or refused input; a limit
 * was exceeded), MP_ENOMEM, MP_EINVAL (buf NULL with len > 0, out NULL). *out is
 * NULL on error. */
MP_EXTERN int mp_pickle_loads(const void *buf, size_t len, const mp_pickle_limits *limits,
                              mp_obj **out, mp_obj_error *err);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_PICKLE_H */
