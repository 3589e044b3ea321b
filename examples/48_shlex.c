/* 48_shlex.c — shlex.split('echo "Hello World"'), quote and join, then the words run as a command
 */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

int main(void)
{
    const char *line = "echo \"Hello World\" 'it'\\''s' #not a comment";
    char **argv;
    int n = mp_shlex_split(line, 0, &argv, NULL);
    if (n < 0)
        return 1;
    printf("shlex.split(%s) ->", line);
    for (int i = 0; i < n; i++)
        printf(" [%s]", argv[i]);
    printf("\n");
    free(argv);

    n = mp_shlex_split(line, MP_SHLEX_COMMENTS, &argv, NULL);
    printf("with comments=True: %d words\n", n);
    char *joined;
    mp_shlex_join((const char *const *)argv, &joined);
    printf("shlex.join -> %s\n", joined);
    mp_completed_process r;
    mp_run(&r, (const char *const *)argv, &(mp_run_options){.capture_output = true});
    printf("running it prints: %s", r.stdout_data);
    mp_completed_process_free(&r);
    free(joined);
    free(argv);

    const char *why;
    int rc = mp_shlex_split("echo 'unclosed", 0, &argv, &why);
    printf("shlex.split(\"echo 'unclosed\") -> %s: %s\n", mp_err_name(rc), why);
    char *q;
    mp_shlex_quote("file name; rm -rf /", &q);
    printf("shlex.quote -> %s\n", q);
    free(q);
    return 0;
}
