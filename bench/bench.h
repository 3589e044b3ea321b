/* bench/bench.h — one benchmark case per bench/cases/<case>.c.
 *
 *     static double run_mproc(void) { ... return seconds_per_op * 1e6; }
 *     static double run_raw(void)   { ... }
 *     BENCH_MAIN("us", run_mproc, run_raw)   // run_raw may be NULL
 *
 * The binary is run as `bench_<case> mproc` or `bench_<case> raw` and prints one
 * line, "<value> <unit>": the time per operation of one repetition (lower is
 * better), or "none <unit>" for a side given as NULL. bench/run.py repeats it, takes medians and
 * compares with the CPython side, bench/cases/<case>.py, which prints the same kind of line.
 */
#ifndef MPROC_BENCH_H
#define MPROC_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One pause of a spin-wait, as the library's own spinners do. */
static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#define BENCH_MAIN(unit, mproc_fn, raw_fn)                                                         \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        double (*fn)(void) = NULL;                                                                 \
        if (argc == 2 && strcmp(argv[1], "mproc") == 0)                                            \
            fn = mproc_fn;                                                                         \
        else if (argc == 2 && strcmp(argv[1], "raw") == 0)                                         \
            fn = raw_fn;                                                                           \
        else {                                                                                     \
            fprintf(stderr, "usage: %s mproc|raw\n", argv[0]);                                     \
            return 2;                                                                              \
        }                                                                                          \
        if (fn == NULL) { /* this side has no equivalent: bench/run.py records null */             \
            printf("none %s\n", unit);                                                             \
            return 0;                                                                              \
        }                                                                                          \
        double v = fn();                                                                           \
        if (v < 0)                                                                                 \
            return 1;                                                                              \
        printf("%.6g %s\n", v, unit);                                                              \
        return 0;                                                                                  \
    }

#endif /* MPROC_BENCH_H */
