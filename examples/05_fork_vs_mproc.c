/* 05_fork_vs_mproc.c — plain fork()/getpid()/getppid() next to the mproc equivalent */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

static int child(void *arg)
{
    (void)arg;
    printf("  mproc child: pid %d, parent %d, name %s\n", (int)mp_process_pid(mp_current_process()),
           (int)mp_process_pid(mp_parent_process()), mp_process_name(mp_current_process()));
    return 3;
}

int main(void)
{
    printf("plain fork():\n");
    fflush(stdout); /* without this, the child would print the buffer a second time */
    pid_t pid = fork();
    if (pid == 0) {
        printf("  child: pid %d, parent %d\n", (int)getpid(), (int)getppid());
        fflush(stdout); /* _exit() does not flush: forget this and the line is lost */
        _exit(3);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("  parent: child %d exited with %d\n", (int)pid, WEXITSTATUS(status));

    printf("mproc:\n"); /* mp_process_start flushes stdio itself */
    mp_process *p;
    mp_process_new(&p, child, NULL, NULL);
    mp_process_start(p);
    mp_process_join(p, -1);
    int code;
    mp_process_exitcode(p, &code);
    printf("  parent: %s (%d) exited with %d\n", mp_process_name(p), (int)mp_process_pid(p), code);
    mp_process_destroy(p);
    return 0;
}
