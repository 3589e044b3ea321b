/* pypeer.h — starting a CPython peer script on one end of a socketpair, for the
 * pickle and object interoperability tests. Versions: "3.11" is python3 on PATH
 * when it is 3.11, "3.12" and "3.13" the pyenv installs (skipped when absent). */
#ifndef MPROC_TESTS_PYPEER_H
#define MPROC_TESTS_PYPEER_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "mproc.h"

/* The path of the python for version ("3.11", "3.12", "3.13") into out, or SKIP. */
static inline void pypeer_find(const char *version, char *out, size_t cap)
{
    char cmd[512];
    if (strcmp(version, "3.11") == 0) {
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import sys; print(sys.executable if sys.version_info[:2] == (3, 11) "
                 "else \"\")' 2>/dev/null");
    } else {
        snprintf(cmd, sizeof cmd,
                 "d=$(pyenv root 2>/dev/null || echo $HOME/.pyenv); for p in "
                 "\"$d\"/versions/%s.*/bin/python3; "
                 "do [ -x \"$p\" ] && echo \"$p\" && break; done",
                 version);
    }
    FILE *f = popen(cmd, "r");
    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, (int)cap, f) == NULL)
            out[0] = '\0';
        pclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
    if (out[0] == '\0' || access(out, X_OK) != 0)
        SKIP("python %s is not installed here", version);
}

struct pypeer_exec {
    const char *python, *script, *mode;
    int fd;
};

static inline int pypeer_exec_child(void *arg)
{
    struct pypeer_exec *e = arg;
    int flags = fcntl(e->fd, F_GETFD);
    fcntl(e->fd, F_SETFD, flags & ~FD_CLOEXEC); /* only this descriptor is inherited */
    char fdstr[16], script[4096];
    snprintf(fdstr, sizeof fdstr, "%d", e->fd);
    const char *src = getenv("MPROC_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/tests/%s", src != NULL ? src : "..", e->script);
    execl(e->python, e->python, script, e->mode, fdstr, (char *)NULL);
    _exit(127);
}

/* Starts python (a path) running tests/<script> <mode> <fd> on the other end of a
 * new duplex pipe; *mine is our end. Returns the child's pid (th_wait it). */
static inline int pypeer_start(const char *python, const char *script, const char *mode,
                               mp_conn **mine)
{
    mp_conn *theirs;
    CHECK_OK(mp_pipe(mine, &theirs, true));
    struct pypeer_exec e = {python, script, mode, mp_conn_fileno(theirs)};
    int pid = th_fork(pypeer_exec_child, &e);
    mp_conn_destroy(theirs);
    return pid;
}

#endif /* MPROC_TESTS_PYPEER_H */
