/* lock_acquire_release_uncontended: one acquire + release pair of a Lock that
 * no other process wants, in one process.
 * raw: a process-shared pthread mutex in MAP_SHARED memory, lock + unlock. */
#include <pthread.h>
#include <sys/mman.h>

#include "bench.h"
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
    pthread_mutex_t *m =
        mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(m, &attr);
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
    }
    double dt = bench_now_s() - t0;
    munmap(m, sizeof *m);
    return dt / N * 1e9;
}

BENCH_MAIN("ns", run_mproc, run_raw)
