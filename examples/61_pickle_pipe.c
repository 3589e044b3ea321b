/* 61_pickle_pipe.c — C and python3 exchange tuples, lists and dicts over a Pipe (repr) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

int main(void)
{
    mp_conn *mine, *theirs;
    if (mp_pipe(&mine, &theirs, true) != 0)
        return 1;
    /* python3 gets the other end as an inherited descriptor. */
    int fd = mp_conn_fileno(theirs);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fcntl(fd, F_SETFD, 0);
        char arg[16];
        snprintf(arg, sizeof arg, "%d", fd);
        execlp("python3", "python3", "61_pickle_pipe.py", arg, (char *)NULL);
        _exit(127);
    }
    mp_conn_destroy(theirs);

    /* What Python's conn.send(x) sent, as objects. */
    for (;;) {
        mp_obj *o;
        int rc = mp_conn_recv(mine, &o);
        if (rc != 0) {
            fprintf(stderr, "recv: %s\n", mp_strerror(rc));
            return 1;
        }
        char *r = mp_obj_repr(o);
        printf("C received:      %s\n", r);
        free(r);
        bool done = mp_obj_is_none(o);
        mp_obj_unref(o);
        if (done)
            break;
    }
    fflush(stdout);

    /* And objects built in C for Python's conn.recv(). */
    mp_obj *msg;
    mp_obj_build(&msg, "(si)", "hello from C", 42);
    mp_conn_send(mine, msg);
    mp_obj_unref(msg);
    mp_obj_build(&msg, "[i d s n]", 1, 2.5, "three", 0);
    mp_conn_send(mine, msg);
    mp_obj_unref(msg);
    mp_obj_build(&msg, "{s:(ii) s:[s s] s:b}", "point", 3, 4, "words", "x", "y", "ok", 1);
    mp_conn_send(mine, msg);
    mp_obj_unref(msg);
    msg = mp_exception_msg("builtins", "ValueError", "raised in C");
    mp_conn_send(mine, msg);
    mp_obj_unref(msg);
    mp_conn_send(mine, mp_none());

    int status;
    waitpid(pid, &status, 0);
    mp_conn_destroy(mine);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
