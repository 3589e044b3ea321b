/* event_handoff: one process sets an Event, another wakes from waiting on it.
 * Two processes ping-pong over two events (set, the peer wakes and clears, sets
 * the other); the time of one handoff (round trip / 2).
 * raw: the same ping-pong on two bare futex words, waiting as mp_event waits:
 * spin briefly (the same 100 pauses), then FUTEX_WAIT; the setter enters the
 * kernel only when the waiter went to sleep. */
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 100000
#define SPINS 100 /* as src/sync/sync.h's MP__SPINS */

/* Raw word states: 0 clear, 1 set, 2 clear with a sleeping waiter. */

static double run_mproc(void)
{
    mp_event *ping, *pong;
    if (mp_event_new(&ping, NULL) != 0 || mp_event_new(&pong, NULL) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < N; i++) {
            mp_event_wait(ping, -1);
            mp_event_clear(ping);
            mp_event_set(pong);
        }
        _exit(0);
    }
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_event_set(ping);
        mp_event_wait(pong, -1);
        mp_event_clear(pong);
    }
    double dt = bench_now_s() - t0;
    waitpid(pid, NULL, 0);
    mp_event_destroy(ping);
    mp_event_destroy(pong);
    return dt / (2.0 * N) * 1e6;
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

static double run_raw(void)
{
    _Atomic uint32_t *w =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        return -1;
    _Atomic uint32_t *ping = &w[0], *pong = &w[16];
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < N; i++) {
            raw_wait(ping);
            raw_set(pong);
        }
        _exit(0);
    }
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        raw_set(ping);
        raw_wait(pong);
    }
    double dt = bench_now_s() - t0;
    waitpid(pid, NULL, 0);
    munmap((void *)w, 4096);
    return dt / (2.0 * N) * 1e6;
}

BENCH_MAIN("us", run_mproc, run_raw)
