/* 40_subprocess_run.c — run "echo Hello" and "pwd" with the parent's stdout, as
 * subprocess.run(["echo", "Hello"]) */
#include <stdio.h>

#include "mproc.h"

int main(void)
{
    const char *echo[] = {"echo", "Hello", NULL};
    const char *pwd[] = {"pwd", NULL};
    mp_completed_process r;
    fflush(stdout); /* the child writes to the same stdout */
    int rc = mp_run(&r, echo, NULL);
    printf("echo exited with %d (rc %s)\n", r.returncode, mp_err_name(rc));
    mp_completed_process_free(&r);
    fflush(stdout);
    rc = mp_run(&r, pwd, &(mp_run_options){.popen.cwd = "/tmp"});
    printf("pwd with cwd=/tmp exited with %d (rc %s)\n", r.returncode, mp_err_name(rc));
    mp_completed_process_free(&r);
    return rc == 0 ? 0 : 1;
}
