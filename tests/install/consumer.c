/* A program built against an installed mproc, as a user would build it. */
#include <mproc.h>
#include <stdio.h>

static int child(void *arg)
{
    (void)arg;
    return 7;
}

int main(void)
{
    mp_process *p;
    int code = -1;
    if (mp_process_new(&p, child, NULL, NULL) || mp_process_start(p) || mp_process_join(p, -1) ||
        mp_process_exitcode(p, &code))
        return 1;
    mp_process_destroy(p);
    printf("mproc %s: child exited with %d\n", mp_version(), code);
    return code == 7 ? 0 : 1;
}
