/* mproc/shlex.h — shell-like splitting and quoting, as CPython's shlex.split,
 * shlex.quote and shlex.join (whitespace splitting; POSIX mode unless asked).
 *
 *     char **argv;
 *     int n = mp_shlex_split("echo \"Hello World\"", 0, &argv, NULL);
 *     // n == 2, argv = {"echo", "Hello World", NULL}
 *     free(argv);
 *
 * Results equal Python's for every input, byte for byte: the special characters
 * are all ASCII, so UTF-8 text passes through unchanged. All functions are pure:
 * thread-safe and fork-safe.
 */
#ifndef MPROC_SHLEX_H
#define MPROC_SHLEX_H

#include <stddef.h>

#include "mproc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of mp_shlex_split. */
#define MP_SHLEX_COMMENTS 1 /* comments=True: '#' starts a comment to the end of the line */
#define MP_SHLEX_NON_POSIX                                                                         \
    2 /* posix=False: quotes are kept in the words, a closing                                      \
         quote ends a word, backslash is an ordinary character */

/* shlex.split(s, comments, posix): splits s into words as a POSIX shell
 * would (quotes, backslash escapes; no expansion). On success returns the number
 * of words and sets *out to a NULL-terminated array of them; the array and the
 * strings are one malloc'd block: free(*out) releases all.
 * Errors: MP_EINVAL for NULL arguments or unknown flags, and for the two syntax
 * errors Python raises ValueError for; then *why (if not NULL) is set to Python's
 * message, "No closing quotation" or "No escaped character" (static strings), and
 * *out to NULL. MP_E2BIG for an input longer than INT_MAX bytes. MP_ENOMEM. */
MP_EXTERN int mp_shlex_split(const char *s, int flags, char ***out, const char **why);

/* shlex.quote(s): s itself when it is non-empty and made only of
 * [A-Za-z0-9_@%+=:,./-]; otherwise s in single quotes, each ' written as '"'"'.
 * *out is malloc'd; the caller frees it. Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_shlex_quote(const char *s, char **out);

/* shlex.join(argv): the quoted words of the NULL-terminated argv joined by single
 * spaces ("" for an empty argv). *out is malloc'd; the caller frees it.
 * Errors: MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_shlex_join(const char *const *argv, char **out);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SHLEX_H */
