/* mproc/export.h — symbol visibility. The library builds with -fvisibility=hidden;
 * MP_EXTERN marks the public API, the only symbols the shared library exports. */
#ifndef MPROC_EXPORT_H
#define MPROC_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define MP_EXTERN __attribute__((visibility("default")))
#else
#define MP_EXTERN
#endif

#endif /* MPROC_EXPORT_H */
