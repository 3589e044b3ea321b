/* queue_64B_1p1c: a stream of 64-byte messages from one producer process to one
 * consumer process through mp_queue (put / get); time per message, from the start
 * of both until the consumer has them all. No raw floor. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 2000000
#define PRODUCERS 1
#define CONSUMERS 1

static double run_mproc(void)
{
    mp_queue *q;
    if (mp_queue_new(&q, 0, NULL) != 0)
        return -1;
    pid_t pids[PRODUCERS + CONSUMERS];
    double t0 = bench_now_s();
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return -1;
        if (pids[i] == 0) {
            char msg[64] = "a 64-byte message";
            for (int k = 0; k < N / (i < PRODUCERS ? PRODUCERS : CONSUMERS); k++) {
                if (i < PRODUCERS) {
                    if (mp_queue_put(q, msg, sizeof msg, -1) != 0)
                        _exit(1);
                } else {
                    void *m;
                    size_t len;
                    if (mp_queue_get(q, &m, &len, -1) != 0 || len != 64)
                        _exit(1);
                    free(m);
                }
            }
            _exit(0);
        }
    }
    int ok = 1;
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    double t = bench_now_s() - t0;
    mp_queue_destroy(q);
    return ok ? t / N * 1e6 : -1;
}

BENCH_MAIN("us", run_mproc, NULL)
