/* 43_subprocess_timeout.c — feed "Hello World" to cat with a timeout; kill a child when the timeout
 * expires */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static int feed(const char *const *argv, int timeout_ms)
{
    const char *in = "Hello World\n";
    mp_popen *p;
    int rc =
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE});
    if (rc != 0)
        return rc;
    char *out = NULL;
    rc = mp_popen_communicate(p, in, strlen(in), timeout_ms, &out, NULL, NULL, NULL);
    if (rc == MP_ETIMEDOUT) {
        printf("  timed out after %d ms: killing it\n", timeout_ms);
        mp_popen_kill(p);
        rc = mp_popen_communicate(p, in, strlen(in), -1, &out, NULL, NULL, NULL);
    }
    int code = 0;
    mp_popen_returncode(p, &code);
    printf("  output: \"%.*s\", returncode %d\n", out ? (int)strcspn(out, "\n") : 0, out ? out : "",
           code);
    free(out);
    mp_popen_destroy(p);
    return rc;
}

int main(void)
{
    printf("cat, timeout 5 s:\n");
    const char *cat[] = {"cat", NULL};
    if (feed(cat, 5000) != 0)
        return 1;
    printf("sleep 10 (never reads its input), timeout 300 ms:\n");
    const char *slow[] = {"sleep", "10", NULL};
    return feed(slow, 300) == 0 ? 0 : 1;
}
