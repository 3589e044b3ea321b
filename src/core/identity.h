/* core/identity.h — the one answer to "is this mine?": a process's identity is
 * its pid and its start time, so a pid the system gives to a new process (after
 * the old one ended, or in another pid namespace) is not taken for the old one.
 *
 *   mp__proc_id   tag << 32 | pid. tag is the low 32 bits of the process's start
 *                 time (clock ticks since boot, from /proc/<pid>/stat), or 0 where
 *                 /proc cannot tell. pid fits in MP__ID_PID_MASK (the kernel caps
 *                 pid_max at 2^22); bits 30 and 31 are always clear, so lock words
 *                 and creator fields may use them as flags.
 *
 * Every module that records who created a handle or holds a word records
 * mp__self_id() and compares with mp__id_is_self(). The calling process's pid
 * and the calling thread's tid come from the same per-thread caches: no system
 * call after the first use in a thread. The fork hub (core/fork.h) forgets the
 * caches in a child before any other child handler runs, so every handler of a
 * child already sees the child's identity. */
#ifndef MPROC_INTERNAL_IDENTITY_H
#define MPROC_INTERNAL_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

typedef uint64_t mp__proc_id;

#define MP__ID_PID_MASK 0x3fffffffu

/* Per-thread caches behind mp__self_id, mp__self_pid and mp__self_tid; 0 until
 * the mp__fill_* function fills them, and again in the child after fork(). The
 * pid costs a getpid(); the identity a read of /proc (once per process) and
 * fills the tid too, so that a thread's first lock operation caches all it
 * needs; a child that only asks its pid never reads /proc. */
#define MP__TLS __thread __attribute__((tls_model("initial-exec")))
MP__HIDDEN extern MP__TLS mp__proc_id mp__tls_id;
MP__HIDDEN extern MP__TLS pid_t mp__tls_pid;
MP__HIDDEN extern MP__TLS pid_t mp__tls_tid;
MP__HIDDEN void mp__fill_id(void);
MP__HIDDEN void mp__fill_pid(void);
MP__HIDDEN void mp__fill_tid(void);

/* The calling process's identity. Threads racing at the first use all get the
 * same value (the first one stored). */
static inline mp__proc_id mp__self_id(void)
{
    if (__builtin_expect(mp__tls_id == 0, 0))
        mp__fill_id();
    return mp__tls_id;
}

/* The pid part of an identity. */
static inline pid_t mp__id_pid(mp__proc_id id)
{
    return (pid_t)(id & MP__ID_PID_MASK);
}

/* True when id is the calling process: same pid and same start time. */
static inline bool mp__id_is_self(mp__proc_id id)
{
    return id == mp__self_id();
}

/* The calling process's pid (getpid() without the system call). */
static inline pid_t mp__self_pid(void)
{
    if (__builtin_expect(mp__tls_pid == 0, 0))
        mp__fill_pid();
    return mp__tls_pid;
}

/* The calling thread's tid. */
static inline pid_t mp__self_tid(void)
{
    if (__builtin_expect(mp__tls_tid == 0, 0))
        mp__fill_tid();
    return mp__tls_tid;
}

/* False once the process of id has ended (a zombie counts as ended) or never
 * existed, and also when its pid now belongs to a process with another start
 * time (tag 0: the pid alone decides). */
MP__HIDDEN bool mp__id_alive(mp__proc_id id);

/* Forgets the caches: the fork hub's first step in a child (core/fork.c). */
MP__HIDDEN void mp__identity_forget(void);

#endif /* MPROC_INTERNAL_IDENTITY_H */
