/* 49_subprocess_pipeline.c — replacing a shell pipeline: p1's stdout feeds p2's stdin (Popen(...,
 * stdin=p1.stdout)) */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

int main(void)
{
    /* output=$(printf 'sda1\nhda1\nsdb2\nhda2\n' | grep hda) */
    const char *producer[] = {"printf", "sda1\\nhda1\\nsdb2\\nhda2\\n", NULL};
    const char *filter[] = {"grep", "hda", NULL};
    mp_popen *p1, *p2;
    if (mp_popen_new(&p1, producer, &(mp_popen_options){.stdout_mode = MP_PIPE}) != 0)
        return 1;
    if (mp_popen_new(&p2, filter,
                     &(mp_popen_options){.stdin_mode = MP_FD,
                                         .stdin_fd = mp_popen_stdout(p1),
                                         .stdout_mode = MP_PIPE}) != 0)
        return 1;
    /* Like p1.stdout.close(): p2 now holds the only read end, so p1 would get
     * SIGPIPE if p2 exited early. */
    mp_popen_close_stdout(p1);
    char *out;
    if (mp_popen_communicate(p2, NULL, 0, 10000, &out, NULL, NULL, NULL) != 0)
        return 1;
    int c1 = -1, c2 = -1;
    mp_popen_wait(p1, -1, &c1);
    mp_popen_returncode(p2, &c2);
    printf("printf ... | grep hda:\n%s(returncodes %d and %d)\n", out, c1, c2);
    free(out);
    mp_popen_destroy(p1);
    mp_popen_destroy(p2);
    return 0;
}
