/* tools/mproc-manager.c — a manager server that needs no code: named queues and
 * the SyncManager types, served to CPython's multiprocessing.managers clients and
 * to mproc's C clients (see --help and docs/mproc-manager.md).
 *
 * Threads: the server runs mp_manager_serve_forever in its own thread; the main
 * thread takes the signals (blocked everywhere else, taken with sigtimedwait).
 * The log lines of connections, authentication failures and the stop come from
 * the server's event hook (on_event), in the server's threads; each line is one
 * write, so lines never interleave. SIGTERM / SIGINT stop the server
 * (mp_manager_stop) and the program exits 0 once every connection is closed and
 * every object released; a remote shutdown request ends serve_forever the same
 * way, unless --no-remote-shutdown refuses it. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Peers' text (a Unix socket peer's self-chosen name, ...) ends up in the
     * message: control characters are escaped, so that no peer can start a line of
     * its own or send terminal escapes. */
    size_t len = n > 0 && (size_t)n < sizeof line ? (size_t)n : 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && len + 5 < sizeof line; p++) {
        if (*p < 0x20 || *p == 0x7f)
            len += (size_t)snprintf(line + len, sizeof line - len, "\\x%02x", *p);
        else
            line[len++] = (char)*p;
    }
    line[len] = '\0';
    /* One write per line, so lines from threads never interleave. */
    len = strnlen(line, sizeof line - 2);
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

static int write_address_file(const char *path, const char *address);

/* What the event hook counts and needs, shared by the server's threads. */
typedef struct watch {
    const char *address_file;
    char serving[160]; /* what the listening line says is served */
    _Atomic bool listened;
    _Atomic size_t open, opened, auth_failed;
    _Atomic int stop_signal; /* set by the main thread before mp_manager_stop */
} watch;

static void on_event(const mp_manager_event *ev, void *arg)
{
    watch *w = arg;
    const char *peer = ev->peer == NULL ? "?" : ev->peer[0] ? ev->peer : "a Unix socket peer";
    switch (ev->kind) {
    case MP_MANAGER_EVENT_LISTENING:
        atomic_store(&w->listened, true);
        logf_(1, "listening on %s (%s)", ev->address, w->serving);
        if (w->address_file && write_address_file(w->address_file, ev->address) < 0)
            logf_(0, "cannot write --address-file %s: %s", w->address_file, strerror(errno));
        break;
    case MP_MANAGER_EVENT_ACCEPTED:
        atomic_fetch_add(&w->open, 1);
        atomic_fetch_add(&w->opened, 1);
        logf_(2, "connection from %s (#%llu)", peer, (unsigned long long)ev->conn_id);
        break;
    case MP_MANAGER_EVENT_CLOSED:
        atomic_fetch_sub(&w->open, 1);
        logf_(1, "connection from %s (#%llu, %s) closed after %lld.%03lld s", peer,
              (unsigned long long)ev->conn_id, ev->channel ? "channel" : "one request",
              (long long)(ev->duration_ms / 1000), (long long)(ev->duration_ms % 1000));
        break;
    case MP_MANAGER_EVENT_AUTH_FAILED:
        atomic_fetch_add(&w->auth_failed, 1);
        logf_(1, "authentication failed: %s: %s", peer, ev->reason ? ev->reason : "?");
        break;
    case MP_MANAGER_EVENT_TURNED_AWAY:
        logf_(0, "connection from %s turned away: %s", peer, ev->reason ? ev->reason : "?");
        break;
    case MP_MANAGER_EVENT_SHUTDOWN_REFUSED:
        logf_(1, "remote shutdown request from %s (#%llu) refused (--no-remote-shutdown)", peer,
              (unsigned long long)ev->conn_id);
        break;
    case MP_MANAGER_EVENT_SHUTDOWN: {
        int sig = atomic_load(&w->stop_signal);
        if (ev->stop == MP_MANAGER_STOP_REMOTE)
            logf_(1, "remote shutdown request from %s (#%llu): stopping, %zu connections open",
                  peer, (unsigned long long)ev->conn_id, ev->connections);
        else if (ev->stop == MP_MANAGER_STOP_API && sig != 0)
            logf_(1, "%s: stopping, %zu connections open", strsignal(sig), ev->connections);
        else
            logf_(1, "stopping (%s), %zu connections open", ev->reason ? ev->reason : "?",
                  ev->connections);
        break;
    }
    }
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

    static watch w;
    w.address_file = o.address_file;
    snprintf(w.serving, sizeof w.serving,
             "queues: %d, shared objects: %d, SyncManager types: %s, remote shutdown: %s",
             o.nqueues, o.nshared, o.sync ? "yes" : "no", o.allow_shutdown ? "allowed" : "refused");
    mp_manager *m = NULL;
    int rc = mp_manager_new(&m, o.listen, o.key, o.key_len,
                            &(mp_manager_options){.handshake_timeout_ms = o.handshake_timeout_ms,
                                                  .refuse_remote_shutdown = !o.allow_shutdown,
                                                  .on_event = on_event,
                                                  .on_event_arg = &w,
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
    bool stopping = false;
    while (!__atomic_load_n(&run.done, __ATOMIC_ACQUIRE)) {
        siginfo_t si;
        int sig = sigwaitinfo(&sigs, &si);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (!stopping) {
                atomic_store(&w.stop_signal, sig);
                stopping = true;
            }
            mp_manager_stop(m);
        } else if (sig == SIGUSR1) {
            size_t open = atomic_load(&w.open), opened = atomic_load(&w.opened);
            size_t failed = atomic_load(&w.auth_failed);
            long objs = count_objects(mp_manager_address(m), &o);
            logf_(0,
                  "stats: %ld objects, %zu connections (%zu opened since start, %zu "
                  "authentication failures)",
                  objs, open, opened, failed);
        }
    }
    pthread_join(t, NULL);
    bool listened = atomic_load(&w.listened);
    if (listened)
        logf_(1, "shutdown complete (%s)", run.rc == 0 ? "clean" : mp_strerror(run.rc));
    if (run.rc < 0)
        fprintf(stderr, "mproc-manager: %s%s%s\n", mp_strerror(run.rc), err[0] ? ": " : "", err);
    mp_manager_destroy(m);
    if (o.address_file && listened)
        unlink(o.address_file);
    /* Not listening at all (address in use, ...) is a usage error, as documented. */
    return run.rc == 0 ? 0 : listened ? 1 : 2;
}
