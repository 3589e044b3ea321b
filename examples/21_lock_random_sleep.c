/* 21_lock_random_sleep.c — three processes each hold the Lock across a random sleep: the holds
 * never overlap */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"

struct job {
    mp_lock *lock;
    int i;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int work(void *arg)
{
    struct job *job = arg;
    /* A forked child inherits the parent's rand() state: without this reseed every
     * child would draw the same "random" sleep (Python reseeds its random module
     * after fork; C's rand(), random() and drand48() are left as they were). */
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    unsigned ms = 100 + (unsigned)(rand() % 300);
    mp_lock_acquire(job->lock, -1);
    printf("process %d has the lock, sleeping %u ms\n", job->i, ms);
    fflush(stdout);
    usleep(ms * 1000);
    printf("process %d releases the lock\n", job->i);
    fflush(stdout);
    mp_lock_release(job->lock);
    return 0;
}

int main(void)
{
    mp_lock *lock;
    if (mp_lock_new(&lock, NULL) != 0)
        return 1;
    double t0 = now_s();
    struct job jobs[3];
    mp_process *procs[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct job){lock, i};
        if (mp_process_new(&procs[i], work, &jobs[i], NULL) != 0 || mp_process_start(procs[i]) != 0)
            return 1;
    }
    for (int i = 0; i < 3; i++) {
        mp_process_join(procs[i], -1);
        mp_process_destroy(procs[i]);
    }
    printf("all done after %.2f s: the sleeps ran one after another\n", now_s() - t0);
    mp_lock_destroy(lock);
    return 0;
}
