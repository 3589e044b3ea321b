/* tools/sockwatch.h — the process's own sockets, read from /proc: which of them
 * listen, and which connections came and went since the last look, so that
 * mproc-manager can log connections without hooks in the server. A look is a
 * snapshot: a connection that opens and closes between two looks is not seen. */
#ifndef MPROC_TOOLS_SOCKWATCH_H
#define MPROC_TOOLS_SOCKWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct sockwatch_conn {
    unsigned long inode;
    char peer[64];
    time_t since;
    bool seen; /* in the latest look */
} sockwatch_conn;

typedef struct sockwatch {
    sockwatch_conn *conns;
    size_t n, cap;
    size_t opened;  /* connections seen since the start */
    bool listening; /* a listening socket was seen in the latest look */
} sockwatch;

void sockwatch_init(sockwatch *w);
void sockwatch_free(sockwatch *w);

/* Looks once and logs each new and each vanished connection through log (level 1). */
void sockwatch_poll(sockwatch *w, void (*log)(int level, const char *fmt, ...));

/* Connections open at the latest look. */
size_t sockwatch_count(const sockwatch *w);

#endif
