/* The fork hub (core/fork.h): the order in which the modules' fork handlers
 * run, the identity forgotten first in the child, a module's mutex held across. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fork.h"
#include "core/identity.h"
#include "harness.h"

/* What the handlers saw, in the order they ran, shared with the child; each
 * side writes its own sequence (the two run at once). */
struct trace {
    char parent_side[32], child_side[32];
    int np, nc;
    bool pid_forgotten_first; /* the first child handler found the caches empty */
    bool held_in_prepare;     /* slot 0's mutex was held when its prepare ran */
};
static struct trace *trace;
static pthread_mutex_t slot0_lock = PTHREAD_MUTEX_INITIALIZER;

static void step(char side, char slot)
{
    char *seq = side == 'C' ? trace->child_side : trace->parent_side;
    int *n = side == 'C' ? &trace->nc : &trace->np;
    seq[(*n)++] = side;
    seq[(*n)++] = slot;
}

#define HANDLERS(i)                                                                                \
    static void prepare##i(void)                                                                   \
    {                                                                                              \
        step('P', '0' + i);                                                                        \
    }                                                                                              \
    static void parent##i(void)                                                                    \
    {                                                                                              \
        step('A', '0' + i);                                                                        \
    }                                                                                              \
    static void child##i(void)                                                                     \
    {                                                                                              \
        if (i == 0)                                                                                \
            trace->pid_forgotten_first = mp__tls_pid == 0 && mp__tls_id == 0;                      \
        step('C', '0' + i);                                                                        \
    }
HANDLERS(0)
HANDLERS(1)
HANDLERS(2)
HANDLERS(3)
HANDLERS(4)

static void prepare0_checks_lock(void)
{
    trace->held_in_prepare = pthread_mutex_trylock(&slot0_lock) != 0;
    prepare0();
}

TEST(fork_hub_runs_handlers_in_the_stated_order)
{
    trace = mmap(NULL, sizeof *trace, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(trace != MAP_FAILED);
    (void)mp__self_id(); /* fill the caches, so the child has something to forget */
    static const struct mp__fork_handlers h[] = {
        {.mutex = &slot0_lock, .prepare = prepare0_checks_lock, .parent = parent0, .child = child0},
        {.prepare = prepare1, .parent = parent1, .child = child1},
        {.prepare = prepare2, .parent = parent2, .child = child2},
        {.prepare = prepare3, .parent = parent3, .child = child3},
        {.prepare = prepare4, .parent = parent4, .child = child4},
    };
    /* Registered out of order: the slots decide, not the order of first use. */
    int order[] = {3, 0, 4, 2, 1};
    for (int k = 0; k < 5; k++)
        mp__fork_register((enum mp__fork_slot)order[k], &h[order[k]]);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(0);
    CHECK_EQ(0, th_wait(pid));
    /* Prepare top down, then parent bottom up here; child bottom up there. */
    CHECK_STR("P4P3P2P1P0A0A1A2A3A4", trace->parent_side);
    CHECK_STR("C0C1C2C3C4", trace->child_side);
    CHECK(trace->pid_forgotten_first);
    CHECK(trace->held_in_prepare);
    CHECK_EQ(0, pthread_mutex_trylock(&slot0_lock)); /* released after fork */
    pthread_mutex_unlock(&slot0_lock);
    munmap(trace, sizeof *trace);
}
