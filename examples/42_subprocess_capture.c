/* 42_subprocess_capture.c — capture "echo Hello" with stderr merged into stdout (stderr=STDOUT) */
#include <stdio.h>

#include "mproc.h"

int main(void)
{
    const char *cmd[] = {"echo Hello; echo 'to stderr' >&2", NULL};
    mp_completed_process r;
    int rc =
        mp_run(&r, cmd,
               &(mp_run_options){
                   .popen = {.shell = true, .stdout_mode = MP_PIPE, .stderr_mode = MP_STDOUT}});
    if (rc != 0)
        return 1;
    printf("captured %zu bytes, both streams in one:\n%s", r.stdout_len, r.stdout_data);
    printf("stderr_data is %s\n", r.stderr_data ? "set" : "NULL (merged into stdout)");
    mp_completed_process_free(&r);
    return 0;
}
