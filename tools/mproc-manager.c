/* tools/mproc-manager.c — a manager server that needs no code: named queues and
 * the SyncManager types, served to CPython's multiprocessing.managers clients and
 * to mproc's C clients (see --help and docs/mproc-manager.md).
 *
 * Threads: the server runs mp_manager_serve_forever in its own thread; the main
 * thread takes the signals (blocked everywhere else, taken with sigtimedwait) and
 * every 200 ms looks at the process's TCP sockets to log connections as they come
 * and go. SIGTERM / SIGINT stop the server (mp_manager_stop) and the program exits
 * 0 once every connection is closed and every object released; a remote shutdown
 * request ends serve_forever the same way. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mproc/error.h"
#include "mproc/manager.h"
#include "mproc/sync_manager.h"
#include "mproc/version.h"
#include "sockwatch.h"

static int verbosity = 1;

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...)
{
    if (level > verbosity)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ mproc-manager[%d]: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from threads never interleave. */
    size_t len = strnlen(line, sizeof line - 2);
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

static void quiet_log(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

typedef struct server_run {
    mp_manager *m;
    int rc;
    volatile int done;
} server_run;

static void *serve(void *arg)
{
    server_run *r = arg;
    r->rc = mp_manager_serve_forever(r->m);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    /* Wake the main thread's sigtimedwait at once. */
    kill(getpid(), SIGUSR2);
    return NULL;
}

static int write_address_file(const char *path, const char *address)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%s\n", address);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Object count from the server itself (a number_of_objects control request). */
static long count_objects(const char *address, const cli_options *o)
{
    mp_manager *c;
    long n = -1;
    if (mp_manager_new(&c, address, o->key, o->key_len, NULL) < 0)
        return -1;
    if (mp_manager_connect(c) < 0 || mp_manager_number_of_objects(c, &n) < 0)
        n = -1;
    mp_manager_destroy(c);
    return n;
}

int main(int argc, char **argv)
{
    static cli_options o;
    char err[512];
    if (cli_parse(&o, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "mproc-manager: %s\n", err);
        return 2;
    }
    if (o.help) {
        fputs(cli_usage, stdout);
        return 0;
    }
    if (o.version) {
        printf("mproc-manager %s\n", mp_version());
        return 0;
    }
    verbosity = o.verbosity;
    if (cli_load_authkey(&o, err, sizeof err) < 0) {
        fprintf(stderr, "mproc-manager: %s\n", err);
        return 2;
    }
    if (!o.allow_shutdown) {
        fprintf(stderr, "mproc-manager: --no-remote-shutdown: this build's manager server "
                        "cannot refuse a shutdown request yet\n");
        return 2;
    }

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* One malloc arena: glibc's per-thread arenas (8 per core) keep the memory of
     * connection threads that come and go, and a long-running server's resident
     * size would creep up with every wave of clients. MALLOC_ARENA_MAX overrides. */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 1);
    /* A server's connections are descriptors: allow as many as the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    mp_manager *m = NULL;
    int rc = mp_manager_new(&m, o.listen, o.key, o.key_len,
                            &(mp_manager_options){.handshake_timeout_ms = o.handshake_timeout_ms,
                                                  .errbuf = err,
                                                  .errbuf_len = sizeof err});
    if (rc < 0) {
        fprintf(stderr, "mproc-manager: --listen %s: %s\n", o.listen, mp_strerror(rc));
        return 2;
    }
    for (int i = 0; i < o.nqueues; i++) {
        mp_served *q;
        rc = mp_served_queue_new(&q, o.queues[i].maxsize);
        if (rc == 0) {
            rc = mp_manager_register(m, o.queues[i].name,
                                     &(mp_manager_register_options){.object = q});
            mp_served_unref(q);
        }
        if (rc < 0) {
            fprintf(stderr, "mproc-manager: --queue %s: %s\n", o.queues[i].name,
                    rc == MP_EEXIST ? "registered twice" : mp_strerror(rc));
            mp_manager_destroy(m);
            return 2;
        }
    }
    for (int i = 0; i < o.nshared; i++) {
        const mp_manager_type *type = mp_sync_manager_type(o.shared[i].type);
        mp_served *obj = NULL;
        rc = type ? mp_served_new(&obj, type, NULL, NULL) : MP_EINVAL;
        if (rc == 0) {
            rc = mp_manager_register(m, o.shared[i].name,
                                     &(mp_manager_register_options){.object = obj});
            mp_served_unref(obj);
        }
        if (rc < 0) {
            fprintf(stderr, "mproc-manager: --shared %s=%s: %s\n", o.shared[i].name,
                    o.shared[i].type,
                    type == NULL      ? "not a SyncManager type (Lock, RLock, Semaphore, "
                                        "BoundedSemaphore, Condition, Event, dict, list, "
                                        "Namespace, Queue)"
                    : rc == MP_EEXIST ? "registered twice"
                                      : mp_strerror(rc));
            mp_manager_destroy(m);
            return 2;
        }
    }
    if (o.sync && (rc = mp_sync_manager_register(m)) < 0) {
        fprintf(stderr, "mproc-manager: --sync: %s\n",
                rc == MP_EEXIST ? "a --queue name is also a SyncManager typeid" : mp_strerror(rc));
        mp_manager_destroy(m);
        return 2;
    }

    server_run run = {.m = m, .rc = 0, .done = 0};
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &run) != 0) {
        fprintf(stderr, "mproc-manager: cannot start the server thread\n");
        mp_manager_destroy(m);
        return 1;
    }
    /* Listening once a listening socket of ours shows in /proc (serve_forever
     * binds before it reports the address). */
    sockwatch sw;
    sockwatch_init(&sw);
    for (int i = 0; i < 2000 && !__atomic_load_n(&run.done, __ATOMIC_ACQUIRE); i++) {
        sockwatch_poll(&sw, quiet_log);
        if (sw.listening)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    const char *address = NULL;
    bool stopping = false;
    if (!__atomic_load_n(&run.done, __ATOMIC_ACQUIRE)) {
        address = mp_manager_address(m);
        logf_(1, "listening on %s (queues: %d, SyncManager types: %s)", address, o.nqueues,
              o.sync ? "yes" : "no");
        if (o.address_file && write_address_file(o.address_file, address) < 0)
            logf_(0, "cannot write --address-file %s: %s", o.address_file, strerror(errno));
    }
    while (!__atomic_load_n(&run.done, __ATOMIC_ACQUIRE)) {
        struct timespec slice = {0, 200 * 1000 * 1000};
        siginfo_t si;
        int sig = sigtimedwait(&sigs, &si, &slice);
        sockwatch_poll(&sw, logf_);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (!stopping)
                logf_(1, "%s: stopping", strsignal(sig));
            stopping = true;
            mp_manager_stop(m);
        } else if (sig == SIGUSR1) {
            long objs = count_objects(mp_manager_address(m), &o);
            logf_(0, "stats: %ld objects, %zu connections (%zu opened since start)", objs,
                  sockwatch_count(&sw), sw.opened);
        }
    }
    pthread_join(t, NULL);
    if (!stopping)
        logf_(1, "remote shutdown request: stopped");
    logf_(1, "shutdown complete (%s)", run.rc == 0 ? "clean" : mp_strerror(run.rc));
    sockwatch_free(&sw);
    if (run.rc < 0)
        fprintf(stderr, "mproc-manager: %s%s%s\n", mp_strerror(run.rc), err[0] ? ": " : "", err);
    mp_manager_destroy(m);
    if (o.address_file)
        unlink(o.address_file);
    return run.rc == 0 ? 0 : 1;
}
