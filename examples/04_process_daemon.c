/* 04_process_daemon.c — a daemon child dies with its parent, even when the parent is killed
 * abruptly */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

static int forever(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

/* The middle generation: starts a daemon, reports its pid, then dies by SIGKILL. */
static int doomed_parent(void *arg)
{
    int fd = *(int *)arg;
    mp_process *d;
    mp_process_new(&d, forever, NULL, &(mp_process_options){.name = "daemon", .daemon = true});
    mp_process_start(d);
    pid_t pid = mp_process_pid(d);
    if (write(fd, &pid, sizeof pid) != sizeof pid)
        return 1;
    raise(SIGKILL); /* no atexit, no cleanup: only the kernel's parent-death signal is left */
    return 0;
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans are reparented to us, so we can see how they end */
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    mp_process *p;
    mp_process_new(&p, doomed_parent, &fds[1], NULL);
    mp_process_start(p);
    pid_t daemon_pid = 0;
    if (read(fds[0], &daemon_pid, sizeof daemon_pid) != sizeof daemon_pid)
        return 1;
    mp_process_join(p, -1);
    int code;
    mp_process_exitcode(p, &code);
    printf("the parent was killed: exitcode %d\n", code);
    int status;
    waitpid(daemon_pid, &status, 0);
    printf("its daemon child %d ended too: %s\n", (int)daemon_pid,
           WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited");
    mp_process_destroy(p);
    return 0;
}
