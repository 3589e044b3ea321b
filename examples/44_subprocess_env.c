/* 44_subprocess_env.c — the environment extended with one variable (os.environ.copy() + update),
 * shown by env */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

int main(void)
{
    const char *extra[] = {"MPROC_GREETING=hello from the parent", NULL};
    const char *env[] = {"env", NULL};
    mp_completed_process r;
    if (mp_run(&r, env, &(mp_run_options){.capture_output = true, .popen.env_extra = extra}) != 0)
        return 1;
    int lines = 0;
    for (char *line = strtok(r.stdout_data, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        if (strncmp(line, "MPROC_GREETING=", 15) == 0)
            printf("env shows: %s\n", line);
    }
    printf("(%d variables in all: the parent's plus one)\n", lines);
    mp_completed_process_free(&r);

    const char *only[] = {"MPROC_ONLY=1", NULL};
    if (mp_run(&r, env, &(mp_run_options){.capture_output = true, .popen.env = only}) != 0)
        return 1;
    printf("with env={MPROC_ONLY=1}: %s", r.stdout_data);
    mp_completed_process_free(&r);
    return 0;
}
