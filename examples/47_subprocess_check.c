/* 47_subprocess_check.c — run("exit 1", shell=True, check=True) reports the non-zero exit */
#include <stdio.h>

#include "mproc.h"

int main(void)
{
    const char *cmd[] = {"exit 1", NULL};
    mp_completed_process r;
    int rc = mp_run(&r, cmd, &(mp_run_options){.check = true, .popen.shell = true});
    if (rc == MP_ENONZERO)
        printf("CalledProcessError: Command '%s' returned non-zero exit status %d. (%s)\n",
               r.args[0], r.returncode, mp_err_name(rc));
    mp_completed_process_free(&r);

    const char *missing[] = {"nosuchcmd", NULL};
    rc = mp_run(&r, missing, NULL);
    printf("run([\"nosuchcmd\"]) -> %s: %s\n", mp_err_name(rc), r.message ? r.message : "");
    mp_completed_process_free(&r);
    return 0;
}
