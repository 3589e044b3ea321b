/* 28_lock_owner_died.c — beyond Python: a process killed while holding a Lock does not take the
 * lock with it */
#include <signal.h>
#include <stdio.h>

#include "mproc.h"

static mp_lock *lock;
static mp_event *holding;

static int crash_while_holding(void *arg)
{
    (void)arg;
    mp_lock_acquire(lock, -1);
    printf("child: holding the lock, and now I crash\n");
    fflush(stdout);
    mp_event_set(holding);
    raise(SIGKILL);
    return 0;
}

int main(void)
{
    if (mp_lock_new(&lock, NULL) != 0 || mp_event_new(&holding, NULL) != 0)
        return 1;
    mp_process *p;
    if (mp_process_new(&p, crash_while_holding, NULL, NULL) != 0 || mp_process_start(p) != 0)
        return 1;
    mp_event_wait(holding, 10000);
    int rc = mp_lock_acquire(lock, 5000);
    printf("parent: acquire returned %s: %s\n", mp_err_name(rc), mp_strerror(rc));
    if (rc == MP_EOWNERDEAD)
        printf("parent: I hold the lock now; repair the shared state, then release\n");
    mp_lock_release(lock);
    mp_process_join(p, -1);
    mp_process_destroy(p);
    mp_lock_destroy(lock);
    mp_event_destroy(holding);
    return rc == MP_EOWNERDEAD ? 0 : 1;
}
