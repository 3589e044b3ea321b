/* linux/pidfd.h — process descriptors, with the kernel's support probed once.
 * A pidfd names one process for good: signalling or polling it can never reach
 * another process that later got the same pid. */
#ifndef MPROC_INTERNAL_PIDFD_H
#define MPROC_INTERNAL_PIDFD_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/util.h"

/* True when the kernel has pidfd_open and pidfd_send_signal (Linux >= 5.3). */
MP__HIDDEN bool mp__have_pidfd(void);

/* A close-on-exec pidfd for pid, readable once the process has ended.
 * pid must be one that cannot be reused meanwhile (an unreaped child), or the
 * caller must check afterwards that it is still the process it meant.
 * Errors: MP_ENOSYS (no pidfds: use another sentinel), MP_ESRCH, MP_EMFILE. */
MP__HIDDEN int mp__pidfd_open(pid_t pid);

/* Sends sig to the process behind pidfd. 0, MP_ESRCH once it has ended, or -errno. */
MP__HIDDEN int mp__pidfd_signal(int pidfd, int sig);

#endif /* MPROC_INTERNAL_PIDFD_H */
