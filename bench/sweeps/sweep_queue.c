/* sweep_queue: queue throughput by message size and by producers/consumers.
 *     sweep_queue mproc|raw <size> <producers> <consumers>
 * Prints the time per message of a stream of messages of <size> bytes from the
 * producer processes to the consumer processes, from the start of all until the
 * consumers have them all. mproc: one mp_queue (put / get). raw: messages of up to
 * 64 bytes go through the ring of the queue_64B_* cases (ring_floor.h: 64-byte
 * slots, no lock with one producer and one consumer, a lock per side with several);
 * longer ones, between one producer and one consumer, through a plain shared-memory
 * byte ring (byte_ring.h: records packed in a 1 or 4 MiB ring, cached indices, futex
 * sleeping, a copy out into a malloc'd buffer as mp_queue_get); longer ones between
 * several have no floor. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "byte_ring.h"
#include "mproc.h"
#include "ring_floor.h"

static size_t size;
static int producers, consumers, n;
static mp_queue *q;
static struct byte_ring *br;
static struct ring *mr;

static int produce_mproc(const char *msg, int count)
{
    for (int k = 0; k < count; k++)
        if (mp_queue_put(q, msg, size, -1) != 0)
            return 1;
    return 0;
}

static int consume_mproc(int count)
{
    for (int k = 0; k < count; k++) {
        void *m;
        size_t len;
        if (mp_queue_get(q, &m, &len, -1) != 0 || len != size)
            return 1;
        free(m);
    }
    return 0;
}

static int produce_raw(const char *msg, int count)
{
    for (int k = 0; k < count; k++) {
        if (br != NULL) {
            byte_ring_put(br, msg, size);
        } else {
            ring_put(mr, msg, (uint32_t)size);
        }
    }
    return 0;
}

static int consume_raw(int count)
{
    for (int k = 0; k < count; k++) {
        size_t len = 0;
        void *m;
        if (br != NULL) {
            if (byte_ring_get(br, &m, &len) != 0)
                return 1;
        } else {
            if ((m = malloc(RING_MSG)) == NULL)
                return 1;
            len = ring_get(mr, m);
        }
        free(m);
        if (len != size)
            return 1;
    }
    return 0;
}

static double stream(bool raw)
{
    char *msg = malloc(size);
    if (msg == NULL)
        return -1;
    memset(msg, 'x', size);
    pid_t pids[producers + consumers];
    double t0 = bench_now_s();
    for (int i = 0; i < producers + consumers; i++) {
        if ((pids[i] = fork()) < 0)
            return -1;
        if (pids[i] == 0) {
            bool is_producer = i < producers;
            int count = n / (is_producer ? producers : consumers);
            if (raw)
                _exit(is_producer ? produce_raw(msg, count) : consume_raw(count));
            _exit(is_producer ? produce_mproc(msg, count) : consume_mproc(count));
        }
    }
    int ok = 1;
    for (int i = 0; i < producers + consumers; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    double t = bench_now_s() - t0;
    free(msg);
    return ok ? t / n * 1e6 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s mproc|raw size producers consumers\n", argv[0]);
        return 2;
    }
    size = strtoul(argv[2], NULL, 0);
    producers = atoi(argv[3]);
    consumers = atoi(argv[4]);
    /* about 256 MiB in all, 20k to 1M messages, divisible among the processes */
    n = (int)((256u << 20) / size);
    n = n < 20000 ? 20000 : n > 1000000 ? 1000000 : n;
    n -= n % (producers * consumers * 8);
    bool raw = strcmp(argv[1], "raw") == 0;
    if (raw) {
        if (size > RING_MSG && producers == 1 && consumers == 1) {
            br = byte_ring_new(size);
        } else if (size <= RING_MSG) {
            if ((mr = ring_new(producers, consumers)) == NULL)
                return 1;
        }
        if (br == NULL && mr == NULL) {
            printf("none us\n"); /* no floor for this point */
            return 0;
        }
    } else if (mp_queue_new(&q, 0, NULL) != 0) {
        return 1;
    }
    double us = stream(raw);
    if (us < 0)
        return 1;
    printf("%.6g us\n", us);
    mp_queue_destroy(q);
    return 0;
}
