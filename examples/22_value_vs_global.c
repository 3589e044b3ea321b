/* 22_value_vs_global.c — a plain global is copied into each child; a shared Value is one for all */
#include <stdio.h>

#include "mproc.h"

static int plain_global = 0;
static mp_value *shared_counter;

static int increment(void *arg)
{
    (void)arg;
    plain_global += 1; /* this child's own copy */
    mp_rlock *lock = mp_value_get_lock(shared_counter);
    mp_rlock_acquire(lock, -1);
    int *n = mp_value_ptr(shared_counter);
    *n += 1;
    printf("child %d: plain global = %d, shared value = %d\n",
           (int)mp_process_pid(mp_current_process()), plain_global, *n);
    fflush(stdout);
    mp_rlock_release(lock);
    return 0;
}

int main(void)
{
    if (mp_value_new(&shared_counter, 'i', NULL, NULL) != 0)
        return 1;
    for (int i = 0; i < 3; i++) {
        mp_process *p;
        if (mp_process_new(&p, increment, NULL, NULL) != 0 || mp_process_start(p) != 0)
            return 1;
        mp_process_join(p, -1);
        mp_process_destroy(p);
    }
    int final;
    mp_value_get(shared_counter, &final);
    printf("parent: plain global = %d (never changed here), shared value = %d\n", plain_global,
           final);
    mp_value_destroy(shared_counter);
    return final == 3 ? 0 : 1;
}
