/* 20_lock_hello.c — five processes take one Lock in turn to print "hello i" */
#include <stdio.h>

#include "mproc.h"

struct job {
    mp_lock *lock;
    int i;
};

static int say_hello(void *arg)
{
    struct job *job = arg;
    mp_lock_acquire(job->lock, -1);
    printf("hello %d\n", job->i);
    fflush(stdout); /* print while holding the lock, so lines never mix */
    mp_lock_release(job->lock);
    return 0;
}

int main(void)
{
    mp_lock *lock;
    if (mp_lock_new(&lock, NULL) != 0)
        return 1;
    struct job jobs[5];
    mp_process *procs[5];
    for (int i = 0; i < 5; i++) {
        jobs[i] = (struct job){lock, i};
        if (mp_process_new(&procs[i], say_hello, &jobs[i], NULL) != 0 ||
            mp_process_start(procs[i]) != 0)
            return 1;
    }
    for (int i = 0; i < 5; i++) {
        mp_process_join(procs[i], -1);
        mp_process_destroy(procs[i]);
    }
    mp_lock_destroy(lock);
    return 0;
}
