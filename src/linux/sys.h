/* linux/sys.h — small Linux-only calls used above this layer, each behind one
 * function so that no other folder names a Linux-only flag or a glibc extension. */
#ifndef MPROC_INTERNAL_SYS_H
#define MPROC_INTERNAL_SYS_H

#include <stddef.h>
#include <stdio.h>

#include "core/util.h"

/* A non-blocking, close-on-exec eventfd counting from 0: a descriptor, or -1 with
 * errno set (as eventfd(2)). */
MP__HIDDEN int mp__eventfd_new(void);

/* Gives the pages of [addr, addr + len) of a MAP_SHARED mapping back to the
 * system (MADV_REMOVE): they read as zeros afterwards, in every process that
 * maps them. addr is page-aligned. Best effort: a failure changes nothing. */
MP__HIDDEN void mp__release_pages(void *addr, size_t len);

/* Discards what f holds buffered, unwritten (glibc's __fpurge): a forked child
 * must not print its parent's pending output again. */
MP__HIDDEN void mp__stdio_discard(FILE *f);

/* The description of errno value err ("No such file or directory"), static, or
 * NULL when err is no errno value (glibc's strerrordesc_np). */
MP__HIDDEN const char *mp__errno_text(int err);

#endif /* MPROC_INTERNAL_SYS_H */
