/* linux/proc.c — /proc/<pid>/stat parsing, gettid and PR_SET_PDEATHSIG. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "linux/proc.h"

uint32_t mp__proc_start_tag(pid_t pid, bool *gone)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    *gone = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    mp__close_fd(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (p == NULL)
        return 0;
    bool zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    long threads = 0;
    for (int field = 2; field < 22 && p != NULL; field++) {
        p = strchr(p + 1, ' '); /* now before field + 1 */
        if (field + 1 == 20 && p != NULL)
            threads = strtol(p + 1, NULL, 10);
    }
    *gone = zombie && threads <= 1;
    return p != NULL ? (uint32_t)strtoull(p + 1, NULL, 10) : 0;
}

pid_t mp__gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

void mp__set_parent_death_signal(int sig)
{
    prctl(PR_SET_PDEATHSIG, sig);
}
