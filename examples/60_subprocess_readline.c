/* 60_subprocess_readline.c — a child's output line by line as it comes (for line in p.stdout) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mproc.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    /* proc = Popen(["sh", "-c", ...], stdout=PIPE)
     * for line in proc.stdout: print(...)
     * proc.wait() */
    const char *argv[] = {"sh", "-c", "for i in 1 2 3; do echo \"tick $i\"; sleep 0.2; done", NULL};
    mp_popen *p;
    int rc = mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE});
    if (rc != 0) {
        fprintf(stderr, "spawn: %s (%s)\n", mp_strerror(rc), mp_popen_message(p));
        mp_popen_destroy(p);
        return 1;
    }
    /* Take the read end over: from now on it is ours to close (fclose does), and
     * the handle will not close it again. fdopen(mp_popen_stdout(p)) + fclose
     * would close a descriptor the handle still owns. */
    FILE *out = fdopen(mp_popen_take_stdout(p), "r");
    if (out == NULL) {
        mp_popen_kill(p);
        mp_popen_wait(p, -1, NULL);
        mp_popen_destroy(p);
        return 1;
    }
    double t0 = now_s();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, out)) > 0)
        printf("after %.1f s: %s", now_s() - t0, line); /* each line as soon as it is written */
    free(line);
    fclose(out);
    int code = -1;
    mp_popen_wait(p, -1, &code);
    mp_popen_destroy(p);
    printf("returncode %d\n", code);
    return code;
}
