/* 03_process_join_timeout.c — join with a timeout on a long child, then terminate it and read its
 * exit code */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

static int long_job(void *arg)
{
    (void)arg;
    sleep(60);
    return 0;
}

int main(void)
{
    mp_process *p;
    mp_process_new(&p, long_job, NULL, NULL);
    mp_process_start(p);
    int rc = mp_process_join(p, 500);
    printf("join(500 ms): %s; alive: %s\n", mp_err_name(rc), mp_process_is_alive(p) ? "yes" : "no");
    int code;
    printf("exitcode while running: %s\n", mp_err_name(mp_process_exitcode(p, &code)));
    mp_process_terminate(p);
    mp_process_join(p, -1);
    mp_process_exitcode(p, &code);
    printf("after terminate: alive: %s, exitcode %d (-SIGTERM is %d)\n",
           mp_process_is_alive(p) ? "yes" : "no", code, -SIGTERM);
    mp_process_destroy(p);
    return 0;
}
