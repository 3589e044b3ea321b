/* 46_subprocess_call.c — call, check_call and check_output */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

int main(void)
{
    const char *t[] = {"true", NULL}, *f[] = {"false", NULL};
    int code;
    mp_call(t, NULL, -1, &code);
    printf("call([\"true\"]) -> %d\n", code);
    mp_call(f, NULL, -1, &code);
    printf("call([\"false\"]) -> %d\n", code);
    int rc = mp_check_call(f, NULL, -1, &code);
    printf("check_call([\"false\"]) -> %s (returncode %d)\n", mp_err_name(rc), code);

    const char *date[] = {"echo", "output of a command", NULL};
    char *out;
    size_t len;
    rc = mp_check_output(date, NULL, &out, &len, NULL);
    printf("check_output([\"echo\", ...]) -> %s, %zu bytes: %s", mp_err_name(rc), len, out);
    free(out);
    if (rc != 0)
        return 1;

    /* CalledProcessError: the returncode, and Python's message from mp_run. */
    const char *ls[] = {"ls", "/nonexistent-dir", NULL};
    rc = mp_check_output(ls, &(mp_run_options){.popen.stderr_mode = MP_DEVNULL}, &out, &len, &code);
    printf("check_output([\"ls\", \"/nonexistent-dir\"]) -> %s, returncode %d\n", mp_err_name(rc),
           code);
    free(out);
    mp_completed_process r;
    rc = mp_run(&r, ls, &(mp_run_options){.check = true, .capture_output = true});
    printf("run(..., check=True) -> %s: %s\n", mp_err_name(rc), r.message);
    mp_completed_process_free(&r);
    return rc == MP_ENONZERO ? 0 : 1;
}
