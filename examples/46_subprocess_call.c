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
    rc = mp_check_output(date, NULL, &out, &len);
    printf("check_output([\"echo\", ...]) -> %s, %zu bytes: %s", mp_err_name(rc), len, out);
    free(out);
    return rc == 0 ? 0 : 1;
}
