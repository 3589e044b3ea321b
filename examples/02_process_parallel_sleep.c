/* 02_process_parallel_sleep.c — three children sleep one second each, started together: about one
 * second in all */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int nap(void *arg)
{
    printf("%s: sleeping 1 s\n", mp_process_name(mp_current_process()));
    (void)arg;
    sleep(1);
    return 0;
}

int main(void)
{
    mp_process *p[3];
    double t0 = now();
    for (int i = 0; i < 3; i++) {
        mp_process_new(&p[i], nap, NULL, NULL);
        mp_process_start(p[i]);
    }
    for (int i = 0; i < 3; i++) {
        mp_process_join(p[i], -1);
        mp_process_destroy(p[i]);
    }
    printf("three one-second naps took %.1f s in all\n", now() - t0);
    return 0;
}
