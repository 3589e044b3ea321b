/* bench/queue_stream.h — the mproc side of the queue_64B_* cases: N 64-byte
 * messages through one mp_queue from `producers` processes to `consumers`
 * processes; microseconds per message, from the start of all until the consumers
 * have them all. N must divide evenly among them. */
#ifndef MPROC_BENCH_QUEUE_STREAM_H
#define MPROC_BENCH_QUEUE_STREAM_H

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define N 2000000

static double queue_stream(int producers, int consumers)
{
    mp_queue *q;
    if (mp_queue_new(&q, 0, NULL) != 0)
        return -1;
    pid_t pids[producers + consumers];
    double t0 = bench_now_s();
    for (int i = 0; i < producers + consumers; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return -1;
        if (pids[i] == 0) {
            char msg[64] = "a 64-byte message";
            for (int k = 0; k < N / (i < producers ? producers : consumers); k++) {
                if (i < producers) {
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
    for (int i = 0; i < producers + consumers; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    double t = bench_now_s() - t0;
    mp_queue_destroy(q);
    return ok ? t / N * 1e6 : -1;
}

#endif /* MPROC_BENCH_QUEUE_STREAM_H */
