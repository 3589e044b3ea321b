/* 23_semaphore_limit.c — a Semaphore lets at most two of six processes work at once */
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

struct ctx {
    mp_semaphore *slots;
    mp_value *busy;
    int id;
};

static int worker(void *arg)
{
    struct ctx *c = arg;
    mp_semaphore_acquire(c->slots, -1);
    int64_t before;
    mp_value_add(c->busy, 1, &before);
    printf("worker %d starts (%d working)\n", c->id, (int)before + 1);
    fflush(stdout);
    usleep(100000);
    mp_value_add(c->busy, -1, NULL);
    printf("worker %d done\n", c->id);
    fflush(stdout);
    mp_semaphore_release(c->slots);
    return 0;
}

int main(void)
{
    mp_semaphore *slots;
    mp_value *busy;
    if (mp_bounded_semaphore_new(&slots, 2) != 0 ||
        mp_value_new(&busy, 'i', NULL, &(mp_value_options){.no_lock = true}) != 0)
        return 1;
    struct ctx ctx[6];
    mp_process *procs[6];
    for (int i = 0; i < 6; i++) {
        ctx[i] = (struct ctx){slots, busy, i};
        if (mp_process_new(&procs[i], worker, &ctx[i], NULL) != 0 ||
            mp_process_start(procs[i]) != 0)
            return 1;
    }
    for (int i = 0; i < 6; i++) {
        mp_process_join(procs[i], -1);
        mp_process_destroy(procs[i]);
    }
    printf("never more than 2 at once; semaphore value back to %d\n",
           mp_semaphore_get_value(slots));
    mp_semaphore_destroy(slots);
    mp_value_destroy(busy);
    return 0;
}
