/* event_handoff: one process sets an Event, another wakes from waiting on it.
 * Two processes ping-pong over two events (set, the peer wakes and clears, sets
 * the other); the time of one handoff (round trip / 2).
 * raw: the same ping-pong on two bare futex words, waiting as mp_event waits:
 * spin briefly (the same 100 pauses), then FUTEX_WAIT; the setter enters the
 * kernel only when the waiter went to sleep.
 * Every side (and the CPython one) is measured by bench/pingpong.h's frame: the
 * two processes on two different CPUs (a spinning waiter only helps across
 * CPUs), the same warm-up, the lower quartile of 25 batches of 4000 round trips. The
 * child runs until the parent sets its stop word (outside the timed batches). */
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "pingpong.h"

#define BATCH 4000
#define SPINS 100 /* as src/sync/sync.h's MP__SPINS */

/* Raw word states: 0 clear, 1 set, 2 clear with a sleeping waiter. */

struct mproc_ctx {
    mp_event *ping, *pong;
};

static int mproc_round(void *arg)
{
    struct mproc_ctx *c = arg;
    mp_event_set(c->ping);
    mp_event_wait(c->pong, -1);
    mp_event_clear(c->pong);
    return 0;
}

static double run_mproc(void)
{
    struct mproc_ctx c;
    _Atomic int *stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stop == MAP_FAILED || mp_event_new(&c.ping, NULL) != 0 || mp_event_new(&c.pong, NULL) != 0)
        return -1;
    pp_place_parent(PP_SPLIT);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        for (;;) {
            mp_event_wait(c.ping, -1);
            mp_event_clear(c.ping);
            if (atomic_load(stop))
                _exit(0);
            mp_event_set(c.pong);
        }
    }
    double us = pp_measure(mproc_round, &c, BATCH, 2);
    atomic_store(stop, 1);
    mp_event_set(c.ping);
    waitpid(pid, NULL, 0);
    mp_event_destroy(c.ping);
    mp_event_destroy(c.pong);
    munmap((void *)stop, 4096);
    return us;
}

static void raw_wait(_Atomic uint32_t *w)
{
    for (int i = 0; i < SPINS && atomic_load(w) != 1; i++)
        bench_cpu_relax();
    for (;;) {
        uint32_t v = 0;
        if (atomic_compare_exchange_strong(w, &v, 2) || v == 2)
            syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, 2, NULL, NULL, 0);
        else
            break; /* v == 1: set */
    }
    atomic_store(w, 0);
}

static void raw_set(_Atomic uint32_t *w)
{
    if (atomic_exchange(w, 1) == 2)
        syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

struct raw_ctx {
    _Atomic uint32_t *ping, *pong;
};

static int raw_round(void *arg)
{
    struct raw_ctx *c = arg;
    raw_set(c->ping);
    raw_wait(c->pong);
    return 0;
}

static double run_raw(void)
{
    _Atomic uint32_t *w =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        return -1;
    /* The words sit 64 bytes apart, as mp_event_new's two events do (arena chunks). */
    struct raw_ctx c = {&w[0], &w[16]};
    _Atomic uint32_t *stop = &w[32];
    pp_place_parent(PP_SPLIT);
    pid_t pid = fork();
    if (pid == 0) {
        pp_place_child();
        for (;;) {
            raw_wait(c.ping);
            if (atomic_load(stop))
                _exit(0);
            raw_set(c.pong);
        }
    }
    double us = pp_measure(raw_round, &c, BATCH, 2);
    atomic_store(stop, 1);
    raw_set(c.ping);
    waitpid(pid, NULL, 0);
    munmap((void *)w, 4096);
    return us;
}

BENCH_MAIN("us", run_mproc, run_raw)
