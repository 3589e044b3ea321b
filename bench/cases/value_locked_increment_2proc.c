/* value_locked_increment_2proc: two processes each increment one shared int
 * Value N times under its lock; the time per increment (wall time / 2N).
 * raw: the recursive futex-word lock of bench/futex_lock_floor.h (Value's lock is
 * an RLock) around an int in MAP_SHARED memory. */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "futex_lock_floor.h"
#include "mproc.h"

#define N 10000000

static void value_worker(mp_value *v)
{
    mp_rlock *lock = mp_value_get_lock(v);
    int *p = mp_value_ptr(v);
    for (int i = 0; i < N; i++) {
        mp_rlock_acquire(lock, -1);
        (*p)++;
        mp_rlock_release(lock);
    }
}

static double run_mproc(void)
{
    mp_value *v;
    if (mp_value_new(&v, 'i', NULL, NULL) != 0)
        return -1;
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        value_worker(v);
        _exit(0);
    }
    value_worker(v);
    waitpid(pid, NULL, 0);
    double dt = bench_now_s() - t0;
    int ok = *(int *)mp_value_ptr(v) == 2 * N;
    mp_value_destroy(v);
    return ok ? dt / (2.0 * N) * 1e9 : -1;
}

struct raw {
    struct floor_rlock lock;
    int value;
};

static void raw_worker(struct raw *r)
{
    uint32_t me = (uint32_t)gettid();
    for (int i = 0; i < N; i++) {
        floor_rlock_acquire(&r->lock, me);
        r->value++;
        floor_rlock_release(&r->lock);
    }
}

static double run_raw(void)
{
    struct raw *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return -1;
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        raw_worker(r);
        _exit(0);
    }
    raw_worker(r);
    waitpid(pid, NULL, 0);
    double dt = bench_now_s() - t0;
    int ok = r->value == 2 * N;
    munmap(r, sizeof *r);
    return ok ? dt / (2.0 * N) * 1e9 : -1;
}

BENCH_MAIN("ns", run_mproc, run_raw)
