/* core/fork.h — the one fork hub: the only pthread_atfork registration of the
 * library. Each module that must act around fork() registers its handlers in a
 * slot; the hub runs them in the order below, whatever order the modules were
 * first used in.
 *
 * Order, bottom layer first:
 *   child   the identity caches are forgotten (core/identity.h), then ARENA,
 *           SPAWN, SHARED_MEMORY, PROCESS, FORKSERVER, POPEN in that order;
 *   parent  ARENA ... POPEN, the same order;
 *   prepare POPEN ... ARENA, the reverse order.
 * Why: a module's handlers may use the layers below it (ask the child's pid or
 * identity, allocate from the arena), so in the child the lower layers are
 * repaired first. Prepare takes each module's lock: a module that holds its
 * lock while it calls into a lower one takes its lock first there too, so
 * taking the higher layers' locks first never waits in the opposite order of
 * the code's own nesting (today no module nests its fork lock in another's).
 * Child handlers stay cheap, as every fork runs them: none reads /proc (the
 * identity is read again only when first asked).
 *
 * Handlers run with the hub's guarantee that a slot's parent or child handler
 * runs only after its prepare handler ran for the same fork (a module that
 * registers while another thread forks joins at the next fork).
 * Async-signal context rules are fork's: in the child only the forking thread
 * exists. */
#ifndef MPROC_INTERNAL_FORK_H
#define MPROC_INTERNAL_FORK_H

#include <pthread.h>

#include "core/util.h"

enum mp__fork_slot {
    MP__FORK_ARENA,         /* core/arena.c: the list of mapped chunks */
    MP__FORK_SPAWN,         /* linux/spawn.c: error pipes of spawns in flight */
    MP__FORK_SHARED_MEMORY, /* sync/shared_memory.c: segments to unlink at exit */
    MP__FORK_PROCESS,       /* process/process.c: the registry of children */
    MP__FORK_FORKSERVER,    /* process/forkserver.c: the parent's end of its server */
    MP__FORK_POPEN,         /* subprocess/popen.c: children whose handle is gone */
    MP__FORK_SLOTS
};

/* What a module does around fork(); any member may be NULL. mutex is the
 * module's lock that fork must not split: the hub takes it before prepare and
 * releases it after parent and after child, so the module's list is whole on
 * both sides and never left locked in the child by a thread that is not there. */
struct mp__fork_handlers {
    pthread_mutex_t *mutex; /* held across fork */
    void (*prepare)(void);  /* in the parent, before fork (mutex held) */
    void (*parent)(void);   /* in the parent, after fork (mutex held) */
    void (*child)(void);    /* in the child, after fork (mutex held) */
};

/* Registers h (static storage, never freed) for slot; once per slot (a second
 * call replaces the first). Thread-safe; installs the hub if needed. */
MP__HIDDEN void mp__fork_register(enum mp__fork_slot slot, const struct mp__fork_handlers *h);

/* Installs the hub's pthread_atfork handlers once (identity does before its
 * caches are first filled). Thread-safe. */
MP__HIDDEN void mp__fork_hub_install(void);

#endif /* MPROC_INTERNAL_FORK_H */
