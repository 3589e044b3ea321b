/* 41_subprocess_shell.c — "ls -l" through the shell (shell=True), output captured */
#include <stdio.h>

#include "mproc.h"

int main(void)
{
    const char *cmd[] = {"ls -l /etc/hostname /etc/passwd | wc -l", NULL};
    mp_completed_process r;
    int rc = mp_run(&r, cmd, &(mp_run_options){.capture_output = true, .popen.shell = true});
    if (rc != 0) {
        fprintf(stderr, "run failed: %s\n", mp_strerror(rc));
        return 1;
    }
    printf("$ %s\n%s", cmd[0], r.stdout_data);
    printf("returncode %d\n", r.returncode);
    mp_completed_process_free(&r);
    return 0;
}
