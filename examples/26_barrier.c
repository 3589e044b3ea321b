/* 26_barrier.c — three processes meet at a Barrier each round; the last to arrive runs the action
 */
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

static mp_barrier *barrier, *round_end;

static int announce(void *arg)
{
    (void)arg;
    printf("  -- all three arrived; the last one runs this action --\n");
    fflush(stdout);
    return 0;
}

static int party(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int round = 0; round < 3; round++) {
        usleep((unsigned)(id * 30000));
        int index = mp_barrier_wait(barrier, 10000);
        if (index < 0)
            return 1;
        printf("party %d passed round %d (arrived %s)\n", id, round, index == 2 ? "last" : "early");
        fflush(stdout);
        mp_barrier_wait(round_end, 10000); /* a second barrier keeps rounds' output apart */
    }
    return 0;
}

int main(void)
{
    if (mp_barrier_new(&barrier, 3, &(mp_barrier_options){.action = announce}) != 0 ||
        mp_barrier_new(&round_end, 3, NULL) != 0)
        return 1;
    mp_process *procs[2];
    for (int i = 0; i < 2; i++)
        if (mp_process_new(&procs[i], party, (void *)(intptr_t)(i + 1), NULL) != 0 ||
            mp_process_start(procs[i]) != 0)
            return 1;
    int failed = party((void *)(intptr_t)0);
    for (int i = 0; i < 2; i++) {
        mp_process_join(procs[i], -1);
        mp_process_destroy(procs[i]);
    }
    mp_barrier_destroy(barrier);
    mp_barrier_destroy(round_end);
    return failed;
}
