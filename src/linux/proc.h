/* linux/proc.h — what the kernel says about a process: its start time and state
 * from /proc/<pid>/stat, the calling thread's id, and the parent-death signal.
 * Used by core/identity.c (pid + start time), process.c and the pool's workers. */
#ifndef MPROC_INTERNAL_PROC_H
#define MPROC_INTERNAL_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks since boot, cut to
 * 32 bits: 0 when unknown. *gone is set when the process has ended and not been
 * reaped: its main thread is a zombie (state Z or X, field 3) and no other
 * thread is left (num_threads, field 20). A zombie main thread whose process has
 * other threads running (it called pthread_exit) is a live process. A file that
 * cannot be read tells nothing (/proc may be missing): 0, *gone false. */
MP__HIDDEN uint32_t mp__proc_start_tag(pid_t pid, bool *gone);

/* The calling thread's id (gettid(2); the C library may predate its wrapper). */
MP__HIDDEN pid_t mp__gettid(void);

/* Asks the kernel to send sig to the calling process when the thread that
 * created it ends (PR_SET_PDEATHSIG). The caller checks getppid() afterwards:
 * a parent that died before the call sends nothing. */
MP__HIDDEN void mp__set_parent_death_signal(int sig);

#endif /* MPROC_INTERNAL_PROC_H */
