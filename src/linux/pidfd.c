/* linux/pidfd.c — pidfd_open and pidfd_send_signal through syscall(), since the
 * C library may predate their wrappers. Support is probed once per process.
 * MPROC_NO_PIDFD=1 in the environment makes mproc act as on a kernel without
 * pidfds (before 5.3), so the fallbacks are tested on every kernel. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "linux/pidfd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static bool have_pidfd;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void)
{
    const char *off = getenv("MPROC_NO_PIDFD");
    if (off != NULL && off[0] == '1')
        return;
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    have_pidfd = fd >= 0 || errno != ENOSYS; /* EMFILE now says nothing of the kernel */
    mp__close_fd(fd);
}

bool mp__have_pidfd(void)
{
    pthread_once(&probe_once, probe);
    return have_pidfd;
}

int mp__pidfd_open(pid_t pid)
{
    if (!mp__have_pidfd())
        return MP_ENOSYS;
    /* pidfds are always close-on-exec. */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? fd : -errno;
}

int mp__pidfd_signal(int pidfd, int sig)
{
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 ? 0 : -errno;
}
