/* mproc/version.h — the version of the headers, and of the library at run time. */
#ifndef MPROC_VERSION_H
#define MPROC_VERSION_H

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION_STRING "0.1.0"
/* One number that grows with every release: 0x00MMmmpp. */
#define MP_VERSION_HEX ((MP_VERSION_MAJOR << 16) | (MP_VERSION_MINOR << 8) | MP_VERSION_PATCH)

/* The version of the library linked at run time, as "MAJOR.MINOR.PATCH"; static. */
MP_EXTERN const char *mp_version(void);

/* The same as MP_VERSION_HEX, for the library linked at run time. */
MP_EXTERN unsigned mp_version_hex(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_VERSION_H */
