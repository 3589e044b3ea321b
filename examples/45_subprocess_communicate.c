/* 45_subprocess_communicate.c — several lines fed to an interactive program (bc, then sort) through
 * communicate */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static int talk(const char *const *argv, const char *input)
{
    mp_popen *p;
    int rc = mp_popen_new(
        &p, argv,
        &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE, .stderr_mode = MP_PIPE});
    if (rc != 0) {
        printf("%s: %s\n", argv[0], p ? mp_popen_message(p) : mp_strerror(rc));
        mp_popen_destroy(p);
        return rc;
    }
    char *out, *err;
    rc = mp_popen_communicate(p, input, strlen(input), 10000, &out, NULL, &err, NULL);
    if (rc == 0)
        printf("$ %s <<EOF\n%sEOF\n%s", argv[0], input, out);
    free(out);
    free(err);
    mp_popen_destroy(p);
    return rc;
}

int main(void)
{
    const char *bc[] = {"bc", NULL};
    const char *sort[] = {"sort", NULL};
    talk(bc, "2 + 3\n7 * 6\n2 ^ 64\n"); /* bc may be missing: reported, not fatal */
    return talk(sort, "pear\napple\nfig\nbanana\n") == 0 ? 0 : 1;
}
