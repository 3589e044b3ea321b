/* lock.c — mp_lock, and the lock word that RLock, Condition and Barrier build on.
 *
 * The lock word is 64 bits in shared memory whose low half is a futex word:
 *   0                              unlocked
 *   tag << 32 | pid                held by (some thread of) process pid; nobody
 *                                  sleeps on it
 *   tag << 32 | pid | WAITERS      held, and a waiter may be asleep in the kernel
 * pid fits in MP__LOCK_PID_MASK (the kernel caps pid_max at 2^22). tag is the
 * low half of the holder's start time (mp__self_id), so that a holder whose pid
 * the system has given to a new process is still recognized as dead. Holder
 * and tag change together, in one atomic operation: a waiter never sees a pid
 * with another process's tag.
 *
 * Acquire: compare-and-swap 0 -> id. That is the whole uncontended path: no
 * system call (the id comes from a per-thread cache). On failure the acquirer
 * sets the WAITERS bit (CAS v -> v|WAITERS) and sleeps with FUTEX_WAIT on the low
 * half expecting low(v|WAITERS); woken, it retries, now taking the word with
 * CAS 0 -> id|WAITERS, since other sleepers may remain and the next release
 * must wake one of them (Drepper, "Futexes are tricky", mutex 2). The kernel
 * compares only the low half, which changes whenever the holder changes.
 * There is no spinning before the sleep: a spinner takes the lock the moment it
 * is released, so two busy processes pass the lock's cache line back and forth
 * at every acquire; sleeping lets the holder run on, and measured twice as fast
 * (bench value_locked_increment_2proc), as fast as a pthread mutex.
 *
 * Release: exchange the word with 0; if the old value had WAITERS, FUTEX_WAKE
 * one sleeper. Only then does release enter the kernel. An old value of 0 means
 * the lock was not held: MP_EPERM, and the word is unchanged (it was 0). Any
 * process may release (Python's Lock is not owned), so release does not look at
 * the holder.
 *
 * Holder death: the kernel's robust-futex list belongs to the C library, so it is
 * not used. Instead a sleeper never sleeps longer than MP__DEATH_SLICE_MS; after
 * each slice that ends without a wake-up (and before a try or a timed wait gives
 * up) it asks whether the holder in the word is still alive (mp__id_alive). If
 * that process has ended, it takes the word over with CAS v -> id|WAITERS (v the
 * value it saw, naming the dead holder): exactly one waiter wins, the others see
 * a new value and go on waiting. The winner returns MP_EOWNERDEAD. A holder
 * with the waiter's own pid is alive only if its start time is the waiter's too
 * (else it is an earlier process that had the pid and died). A holder that
 * died inside release after clearing the word but before waking is covered too:
 * sleepers wake at the end of their slice, see 0 and take the lock.
 *
 * Ordering: every CAS and the exchange are sequentially consistent, so what the
 * holder wrote before release is visible to the next acquirer.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "linux/pidfd.h"
#include "mproc/sync.h"
#include "sync/sync.h"

struct mp_lock {
    mp__lockword word; /* the lock word: see above */
    uint64_t creator;  /* mp__self_id of the process that may free it; set once */
};

/* ---- who am I, who is alive ------------------------------------------------ */

MP__TLS uint64_t mp__tls_id;
MP__TLS pid_t mp__tls_tid;
static _Atomic uint64_t process_id; /* mp__self_id of the process; 0: not read yet */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork() copies the caller's thread, caches included: forget them in the child. */
static void forget_ids(void)
{
    mp__tls_id = 0;
    mp__tls_tid = 0;
    atomic_store(&process_id, 0);
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_ids);
}

/* Field 22 of /proc/<pid>/stat, the start time in clock ticks since boot, cut to
 * 32 bits: 0 when unknown. *gone is set when the process has ended and not been
 * reaped: its main thread is a zombie (state Z or X, field 3) and no other
 * thread is left (num_threads, field 20). A zombie main thread whose process has
 * other threads running (it called pthread_exit) is a live process. A file that
 * cannot be read tells nothing (/proc may be missing): the callers have asked
 * the kernel whether pid exists, and ask again at the next slice. */
static uint32_t start_tag(pid_t pid, bool *gone)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    *gone = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    mp__close_fd(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (p == NULL)
        return 0;
    bool zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    long threads = 0;
    for (int field = 2; field < 22 && p != NULL; field++) {
        p = strchr(p + 1, ' '); /* now before field + 1 */
        if (field + 1 == 20 && p != NULL)
            threads = strtol(p + 1, NULL, 10);
    }
    *gone = zombie && threads <= 1;
    return p != NULL ? (uint32_t)strtoull(p + 1, NULL, 10) : 0;
}

void mp__fill_ids(void)
{
    pthread_once(&atfork_once, install_atfork); /* before the caches can be filled */
    uint64_t id = atomic_load(&process_id);
    if (id == 0) {
        pid_t pid = getpid();
        bool gone;
        uint64_t mine = (uint64_t)start_tag(pid, &gone) << 32 | (uint32_t)pid;
        /* Threads racing here may read different tags (one /proc read may fail):
         * the first stored wins, so that every thread has the same id. */
        if (atomic_compare_exchange_strong(&process_id, &id, mine))
            id = mine;
    }
    mp__tls_id = id;
    mp__tls_tid = (pid_t)syscall(SYS_gettid);
}

/* Without pidfds: kill(pid, 0) finds zombies alive, so look at /proc too. */
static bool alive_by_proc(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    bool gone;
    start_tag(pid, &gone);
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

bool mp__id_alive(uint64_t id)
{
    pid_t pid = (pid_t)(id & MP__LOCK_PID_MASK);
    uint32_t tag = (uint32_t)(id >> 32);
    if (!pid_alive(pid))
        return false;
    if (tag == 0)
        return true;
    bool gone;
    uint32_t now = start_tag(pid, &gone);
    return !gone && (now == 0 || now == tag);
}

/* ---- the lock word --------------------------------------------------------- */

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int mp__futex_wait_slice(_Atomic uint32_t *w, uint32_t expected, const mp__deadline *d,
                         unsigned slice_ms)
{
    mp__deadline s;
    mp__deadline_init(&s, (int)slice_ms);
    if (!d->forever && ts_before(&d->at, &s.at))
        s = *d;
    for (;;) {
        int rc = mp__futex_wait(w, expected, &s);
        if (rc == MP_EINTR)
            continue;
        return rc == MP_ETIMEDOUT ? MP_ETIMEDOUT : 0;
    }
}

/* If the holder recorded in v has ended, takes the word over (true). A holder
 * with our pid but another start time is an earlier process, dead. */
static bool take_from_dead(mp__lockword *w, uint64_t v, uint64_t me)
{
    uint64_t holder = v & ~(uint64_t)MP__LOCK_WAITERS;
    if ((v & MP__LOCK_PID_MASK) == 0 || holder == me || mp__id_alive(holder))
        return false;
    return atomic_compare_exchange_strong(w, &v, me | MP__LOCK_WAITERS);
}

int mp__lockword_acquire(mp__lockword *w, const mp__deadline *d)
{
    uint64_t me = mp__self_id();
    uint64_t v = 0;
    if (atomic_compare_exchange_strong(w, &v, me))
        return 0;
    if (d == NULL)
        return take_from_dead(w, v, me) ? MP_EOWNERDEAD : MP_ETIMEDOUT;
    for (;;) {
        v = atomic_load(w);
        if (v == 0) {
            if (atomic_compare_exchange_strong(w, &v, me | MP__LOCK_WAITERS))
                return 0;
            continue;
        }
        if ((v & MP__LOCK_WAITERS) == 0) {
            if (!atomic_compare_exchange_strong(w, &v, v | MP__LOCK_WAITERS))
                continue;
            v |= MP__LOCK_WAITERS;
        }
        if (mp__futex_wait_slice(mp__lockword_futex(w), (uint32_t)v, d, MP__DEATH_SLICE_MS) ==
            MP_ETIMEDOUT) {
            if (take_from_dead(w, v, me))
                return MP_EOWNERDEAD;
            if (mp__deadline_passed(d))
                return MP_ETIMEDOUT;
        }
    }
}

int mp__lockword_release(mp__lockword *w)
{
    uint64_t old = atomic_exchange(w, 0);
    if (old == 0)
        return MP_EPERM;
    if (old & MP__LOCK_WAITERS)
        mp__futex_wake(mp__lockword_futex(w), 1);
    return 0;
}

/* ---- mp_lock --------------------------------------------------------------- */

int mp_lock_new(mp_lock **out, const mp_lock_options *opt)
{
    if (out == NULL || (opt != NULL && opt->reserved != 0))
        return MP_EINVAL;
    mp_lock *lock = mp__shm_alloc(sizeof *lock);
    if (lock == NULL)
        return MP_ENOMEM;
    lock->creator = mp__self_id();
    *out = lock;
    return 0;
}

int mp_lock_acquire(mp_lock *lock, int timeout_ms)
{
    if (lock == NULL || timeout_ms < -1)
        return MP_EINVAL;
    uint64_t v = 0;
    if (__builtin_expect(atomic_compare_exchange_strong(&lock->word, &v, mp__self_id()), 1))
        return 0;
    if (timeout_ms == 0)
        return mp__lockword_acquire(&lock->word, NULL);
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    return mp__lockword_acquire(&lock->word, &d);
}

int mp_lock_release(mp_lock *lock)
{
    if (lock == NULL)
        return MP_EINVAL;
    return mp__lockword_release(&lock->word);
}

bool mp_lock_locked(mp_lock *lock)
{
    return lock != NULL && atomic_load(&lock->word) != 0;
}

void mp_lock_destroy(mp_lock *lock)
{
    if (lock != NULL && lock->creator == mp__self_id())
        mp__shm_free(lock);
}

mp__lockword *mp__lock_word(mp_lock *lock)
{
    return &lock->word;
}
