/* identity.c — the calling process's identity (pid + start time) and the
 * liveness test for another's; the /proc and pidfd reading is in src/linux/. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "core/fork.h"
#include "core/identity.h"
#include "linux/pidfd.h"
#include "linux/proc.h"

MP__TLS mp__proc_id mp__tls_id;
MP__TLS pid_t mp__tls_pid;
MP__TLS pid_t mp__tls_tid;
static _Atomic mp__proc_id process_id; /* the process's identity; 0: not read yet */

/* fork() copies the caller's thread, caches included: the hub forgets them in
 * the child. */
void mp__identity_forget(void)
{
    mp__tls_id = 0;
    mp__tls_pid = 0;
    mp__tls_tid = 0;
    atomic_store(&process_id, 0);
}

void mp__fill_pid(void)
{
    mp__fork_hub_install(); /* before the caches can be filled */
    mp__tls_pid = getpid();
}

void mp__fill_tid(void)
{
    mp__fork_hub_install();
    mp__tls_tid = mp__gettid();
}

void mp__fill_id(void)
{
    mp__fork_hub_install();
    mp__proc_id id = atomic_load(&process_id);
    if (id == 0) {
        pid_t pid = mp__self_pid();
        bool gone;
        mp__proc_id mine = (uint64_t)mp__proc_start_tag(pid, &gone) << 32 | (uint32_t)pid;
        /* Threads racing here may read different tags (one /proc read may fail):
         * the first stored wins, so that every thread has the same id. */
        if (atomic_compare_exchange_strong(&process_id, &id, mine))
            id = mine;
    }
    mp__tls_id = id;
    mp__tls_tid = mp__gettid(); /* a thread that asks who it is asks its tid too */
}

/* Without pidfds: kill(pid, 0) finds zombies alive, so look at /proc too. */
static bool alive_by_proc(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    bool gone;
    mp__proc_start_tag(pid, &gone);
    return !gone;
}

/* False once process pid has ended (a zombie counts as ended) or never existed. */
static bool pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    int fd = mp__pidfd_open(pid);
    if (fd == MP_ESRCH)
        return false;
    if (fd < 0)
        return alive_by_proc(pid);
    /* A pidfd polls readable once the process has ended, zombie or not. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    mp__close_fd(fd);
    return n == 0;
}

bool mp__id_alive(mp__proc_id id)
{
    pid_t pid = mp__id_pid(id);
    uint32_t tag = (uint32_t)(id >> 32);
    if (!pid_alive(pid))
        return false;
    if (tag == 0)
        return true;
    bool gone;
    uint32_t now = mp__proc_start_tag(pid, &gone);
    return !gone && (now == 0 || now == tag);
}
