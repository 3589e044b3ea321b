/* fork.c — the fork hub (order and reasons in core/fork.h). */
#include <pthread.h>
#include <stdatomic.h>

#include "core/fork.h"
#include "core/identity.h"

static const struct mp__fork_handlers *_Atomic slots[MP__FORK_SLOTS];
static pthread_once_t hub_once = PTHREAD_ONCE_INIT;

/* The handlers prepare ran for, per forking thread: the parent and child steps
 * of the same fork use exactly these, even if a slot is registered meanwhile.
 * Thread-local, so it is right in the child too (the forking thread's copy). */
static MP__TLS const struct mp__fork_handlers *ran[MP__FORK_SLOTS];

static void hub_prepare(void)
{
    for (int i = MP__FORK_SLOTS - 1; i >= 0; i--) {
        const struct mp__fork_handlers *h = ran[i] = atomic_load(&slots[i]);
        if (h == NULL)
            continue;
        if (h->mutex != NULL)
            pthread_mutex_lock(h->mutex);
        if (h->prepare != NULL)
            h->prepare();
    }
}

/* After fork, on either side: the module's own step, then its mutex back. */
static void after(const struct mp__fork_handlers *h, void (*step)(void))
{
    if (step != NULL)
        step();
    if (h->mutex != NULL)
        pthread_mutex_unlock(h->mutex);
}

static void hub_parent(void)
{
    for (int i = 0; i < MP__FORK_SLOTS; i++)
        if (ran[i] != NULL)
            after(ran[i], ran[i]->parent);
}

static void hub_child(void)
{
    mp__identity_forget();
    for (int i = 0; i < MP__FORK_SLOTS; i++)
        if (ran[i] != NULL)
            after(ran[i], ran[i]->child);
}

static void install(void)
{
    pthread_atfork(hub_prepare, hub_parent, hub_child);
}

void mp__fork_hub_install(void)
{
    pthread_once(&hub_once, install);
}

void mp__fork_register(enum mp__fork_slot slot, const struct mp__fork_handlers *h)
{
    mp__fork_hub_install();
    atomic_store(&slots[slot], h);
}
