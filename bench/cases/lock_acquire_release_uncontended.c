/* lock_acquire_release_uncontended: one acquire + release pair of a Lock that
 * no other process wants, in one process.
 * raw: the futex-word lock of bench/futex_lock_floor.h in MAP_SHARED memory. */
#include <sys/mman.h>

#include "bench.h"
#include "futex_lock_floor.h"
#include "mproc.h"

#define N 50000000

static double run_mproc(void)
{
    mp_lock *l;
    if (mp_lock_new(&l, NULL) != 0)
        return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_lock_acquire(l, -1);
        mp_lock_release(l);
    }
    double dt = bench_now_s() - t0;
    mp_lock_destroy(l);
    return dt / N * 1e9;
}

static double run_raw(void)
{
    _Atomic uint32_t *w =
        mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        return -1;
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        floor_lock(w);
        floor_unlock(w);
    }
    double dt = bench_now_s() - t0;
    munmap((void *)w, sizeof *w);
    return dt / N * 1e9;
}

BENCH_MAIN("ns", run_mproc, run_raw)
