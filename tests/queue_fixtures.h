/* tests/queue_fixtures.h — helpers shared by the queue tests (test_queue*.c). */
#ifndef MPROC_TESTS_QUEUE_FIXTURES_H
#define MPROC_TESTS_QUEUE_FIXTURES_H

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mproc/queue.h"

/* Gets one message (within timeout_ms) and checks that it is the string expected,
 * without its terminating zero. */
static inline void get_str(mp_queue *q, const char *expected, int timeout_ms)
{
    void *m = NULL;
    size_t n = 0;
    CHECK_OK(mp_queue_get(q, &m, &n, timeout_ms));
    CHECK_EQ(strlen(expected), n);
    CHECK(memcmp(m, expected, n) == 0);
    free(m);
}

#endif /* MPROC_TESTS_QUEUE_FIXTURES_H */
