/* mproc/error.h — the one error channel of mproc.
 *
 * Every function that can fail returns 0 (or a non-negative count) on success and
 * a negative MP_E* code on failure. Where an errno value fits, the code is its
 * negation (MP_ETIMEDOUT == -ETIMEDOUT), so a caller may compare with either.
 * Codes that only mproc produces live in the reserved range
 * [MP_ELIBRARY_LAST, MP_ELIBRARY_FIRST], far below any errno value.
 */
#ifndef MPROC_ERROR_H
#define MPROC_ERROR_H

#include <errno.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Codes that mirror errno. */
#define MP_EPERM (-EPERM)
#define MP_ENOENT (-ENOENT)
#define MP_ESRCH (-ESRCH)
#define MP_EINTR (-EINTR)
#define MP_EIO (-EIO)
#define MP_E2BIG (-E2BIG)
#define MP_ENOEXEC (-ENOEXEC)
#define MP_EBADF (-EBADF)
#define MP_ECHILD (-ECHILD) /* not a child of the calling process */
#define MP_EAGAIN (-EAGAIN)
#define MP_ENOMEM (-ENOMEM)
#define MP_EACCES (-EACCES)
#define MP_EBUSY (-EBUSY) /* object in use (e.g. close of a running process) */
#define MP_EEXIST (-EEXIST)
#define MP_ENOTDIR (-ENOTDIR)
#define MP_EISDIR (-EISDIR)
#define MP_EINVAL (-EINVAL) /* bad argument; nothing was changed */
#define MP_EMFILE (-EMFILE)
#define MP_ENOSPC (-ENOSPC)
#define MP_EPIPE (-EPIPE)
#define MP_ERANGE (-ERANGE)
#define MP_ENOSYS (-ENOSYS) /* not implemented (by mproc or the kernel) */
#define MP_EOVERFLOW (-EOVERFLOW)
#define MP_EMSGSIZE (-EMSGSIZE)
#define MP_EPROTO (-EPROTO)     /* the peer broke the wire protocol */
#define MP_EALREADY (-EALREADY) /* already done (e.g. a second start) */
#define MP_ECONNRESET (-ECONNRESET)
#define MP_ECONNREFUSED (-ECONNREFUSED)
#define MP_ETIMEDOUT (-ETIMEDOUT)   /* the timeout passed before the operation could finish */
#define MP_EOWNERDEAD (-EOWNERDEAD) /* acquired, but the previous holder died holding it */
#define MP_ENOTRECOVERABLE (-ENOTRECOVERABLE)
#define MP_EADDRINUSE (-EADDRINUSE)       /* address already in use (listeners) */
#define MP_EADDRNOTAVAIL (-EADDRNOTAVAIL) /* address not on this machine (listeners) */
#define MP_ENETUNREACH (-ENETUNREACH)
#define MP_EHOSTUNREACH (-EHOSTUNREACH)

/* Codes that only mproc produces. */
#define MP_ELIBRARY_FIRST (-10000)
#define MP_ENOTSTARTED (-10000) /* the object was never started (join before start) */
#define MP_ECLOSED (-10001)     /* the object was closed; only destroy is allowed */
#define MP_EDAEMON (-10002)     /* a daemon process may not create child processes */
#define MP_ENOTREADY (-10003)   /* no result yet (exit code of a running process, ...) */
#define MP_EFULL (-10004)       /* queue full (after the timeout) */
#define MP_EEMPTY (-10005)      /* queue empty (after the timeout) */
#define MP_EEOF (-10006)        /* the peer closed its end: no more messages */
#define MP_ETRUNCATED (-10007)  /* the peer went away in the middle of a message */
#define MP_ETOOSHORT (-10008)   /* buffer too short for the message; the message is kept */
#define MP_EBROKEN (-10009)     /* barrier broken (reset, aborted, or a party timed out) */
#define MP_ENONZERO (-10010)    /* a command exited with a non-zero status (check=true) */
#define MP_ETASKFAILED (-10011) /* a task reported an error; its message is kept */
#define MP_EWORKERDIED (-10012) /* the worker running the task died */
#define MP_ETERMINATED (-10013) /* the pool was terminated before the task ran */
#define MP_EAUTH (-10014)       /* authentication with the peer failed */
#define MP_ESPAWN (-10015)      /* the child failed before exec; see the object's message */
#define MP_ETYPE (-10016)       /* a value was not of the expected kind (object model, pickle) */
#define MP_EREMOTE (-10017)     /* the remote side raised an exception; see the call's message */
#define MP_ELIBRARY_LAST (-10017)

/* A short English description of code; never NULL. Unknown codes give
 * "unknown error". Thread-safe; the string is static. */
MP_EXTERN const char *mp_strerror(int code);

/* The symbolic name of code, e.g. "MP_ETIMEDOUT"; "MP_OK" for 0 and non-negative
 * values; "MP_E?" for a code mproc does not know. Thread-safe; the string is static. */
MP_EXTERN const char *mp_err_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_ERROR_H */
