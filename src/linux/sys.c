/* linux/sys.c — eventfd, MADV_REMOVE, and the glibc extensions mproc uses. */
#include <stdio_ext.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "linux/sys.h"

int mp__eventfd_new(void)
{
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void mp__release_pages(void *addr, size_t len)
{
    madvise(addr, len, MADV_REMOVE);
}

void mp__stdio_discard(FILE *f)
{
    __fpurge(f);
}

const char *mp__errno_text(int err)
{
    return strerrordesc_np(err);
}
