/* client.c — mp_manager: the registry, start (a server child), serve_forever,
 * connect, shutdown, and the client's channels.
 *
 * Channels: each thread that calls methods has one persistent channel (an
 * authenticated connection that sent 'accept_connection'), found through a
 * pthread key and closed when the thread exits, as CPython's per-thread
 * connections. The channel opened by connect is also the manager's control
 * channel: against a mproc server (detected at connect: it answers a control
 * request on a channel, which CPython refuses with a KeyError traceback) every
 * create and decref goes over it, so the server knows the references are this
 * process's and gives them back if the process dies. Against a CPython server,
 * create and decref each use a fresh connection, as CPython's own clients do.
 * Every channel has a mutex, since the control channel is shared by threads. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "manager/client.h"
#include "mproc/listener.h"
#include "mproc/process.h"

/* ---- helpers ---- */

/* The address a client connects to: a listening "host:port" with an empty or
 * wildcard host means this machine. */
static char *client_address(const char *address)
{
    const char *colon = strrchr(address, ':');
    if (address[0] != '/' && address[0] != '.' && address[0] != '@' && colon != NULL &&
        (colon == address || strncmp(address, "0.0.0.0:", 8) == 0)) {
        size_t n = strlen(colon) + 10;
        char *a = malloc(n);
        if (a != NULL)
            snprintf(a, n, "127.0.0.1%s", colon);
        return a;
    }
    return strdup(address);
}

const char *mp_manager_address(const mp_manager *m)
{
    if (m == NULL)
        return NULL;
    const char *b = atomic_load(&((mp_manager *)m)->bound);
    return b ? b : m->address;
}

/* ---- new / register / destroy ---- */

int mp_manager_new(mp_manager **out, const char *address, const void *authkey, size_t authkey_len,
                   const mp_manager_options *opt)
{
    if (out == NULL || address == NULL || (authkey == NULL && authkey_len > 0))
        return MP_EINVAL;
    mp_manager_options o = opt ? *opt : (mp_manager_options){0};
    if (o.python_version == 0)
        o.python_version = 313;
    if (o.python_version < 300 || o.python_version > 399 || o.handshake_timeout_ms < -1 ||
        o.max_connections < 0 || o.call_timeout_ms < -1 || o.connect_timeout_ms < -1)
        return MP_EINVAL;
    if (o.call_timeout_ms == 0)
        o.call_timeout_ms = 30000;
    if (o.max_message == 0)
        o.max_message = (size_t)256 << 20;
    mp_manager *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MP_ENOMEM;
    m->opt = o;
    m->errbuf = o.errbuf;
    m->errbuf_len = o.errbuf_len;
    m->stop_pipe[0] = m->stop_pipe[1] = -1;
    m->parent_pipe = -1;
    m->address = strdup(address);
    m->authkey_len = authkey ? authkey_len : 32;
    m->authkey = malloc(m->authkey_len ? m->authkey_len : 1);
    int rc = MP_ENOMEM;
    if (m->address == NULL || m->authkey == NULL)
        goto out_fail;
    if (authkey != NULL) {
        memcpy(m->authkey, authkey, authkey_len);
    } else if (getrandom(m->authkey, 32, 0) != 32) {
        rc = -errno;
        goto out_fail;
    }
    if (pipe2(m->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = -errno;
        goto out_fail;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->connect_lock, NULL);
    int e = pthread_key_create(&m->chan_key, mp__mgr_chan_thread_exit);
    if (e != 0) {
        rc = -e;
        pthread_mutex_destroy(&m->lock);
        pthread_mutex_destroy(&m->connect_lock);
        goto out_fail;
    }
    *out = m;
    return 0;
out_fail:
    mp__close_fd(m->stop_pipe[0]);
    mp__close_fd(m->stop_pipe[1]);
    free(m->address);
    free(m->authkey);
    free(m);
    return rc;
}

static bool valid_name(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) < 256;
}

int mp_manager_register(mp_manager *m, const char *typeid, const mp_manager_register_options *opt)
{
    if (m == NULL || !valid_name(typeid))
        return MP_EINVAL;
    if (opt != NULL) {
        int set = (opt->type != NULL) + (opt->object != NULL) + (opt->callable != NULL);
        if (set != 1 || (opt->type != NULL && opt->type->methods == NULL))
            return MP_EINVAL;
        for (size_t i = 0; opt->exposed != NULL && opt->exposed[i] != NULL; i++)
            if (!valid_name(opt->exposed[i]))
                return MP_EINVAL;
    }
    if (m->serving || m->proc != NULL)
        return MP_EBUSY;
    for (size_t i = 0; i < m->ntypes; i++)
        if (strcmp(m->types[i].typeid, typeid) == 0)
            return MP_EEXIST;
    if (m->ntypes == m->captypes) {
        size_t ncap = m->captypes ? m->captypes * 2 : 8;
        mp__mgr_typeid *nt = realloc(m->types, ncap * sizeof *nt);
        if (nt == NULL)
            return MP_ENOMEM;
        m->types = nt;
        m->captypes = ncap;
    }
    mp__mgr_typeid t = {0};
    t.typeid = strdup(typeid);
    if (t.typeid == NULL)
        return MP_ENOMEM;
    if (opt != NULL) {
        t.type = opt->type ? opt->type : opt->object ? opt->object->type : NULL;
        t.object = mp_served_ref(opt->object);
        t.callable = opt->callable;
        t.callable_arg = opt->callable_arg;
        if (opt->exposed != NULL) {
            size_t n = 0;
            while (opt->exposed[n] != NULL)
                n++;
            t.exposed = calloc(n + 1, sizeof *t.exposed);
            for (size_t i = 0; t.exposed != NULL && i < n; i++)
                if ((t.exposed[i] = strdup(opt->exposed[i])) == NULL) {
                    for (size_t j = 0; j < i; j++)
                        free(t.exposed[j]);
                    free(t.exposed);
                    t.exposed = NULL;
                }
            if (t.exposed == NULL) {
                mp_served_unref(t.object);
                free(t.typeid);
                return MP_ENOMEM;
            }
        }
    }
    m->types[m->ntypes++] = t;
    return 0;
}

static void free_types(mp_manager *m)
{
    for (size_t i = 0; i < m->ntypes; i++) {
        free(m->types[i].typeid);
        mp_served_unref(m->types[i].object);
        for (size_t j = 0; m->types[i].exposed && m->types[i].exposed[j]; j++)
            free(m->types[i].exposed[j]);
        free(m->types[i].exposed);
    }
    free(m->types);
    m->types = NULL;
    m->ntypes = m->captypes = 0;
}

void mp_manager_destroy(mp_manager *m)
{
    if (m == NULL)
        return;
    if (m->proc != NULL)
        mp_manager_shutdown(m);
    pthread_key_delete(m->chan_key);
    mp__mgr_chans_close_all(m);
    mp__mgr_chans_free_orphans(m);
    free_types(m);
    mp__close_fd(m->stop_pipe[0]);
    mp__close_fd(m->stop_pipe[1]);
    mp__close_fd(m->parent_pipe);
    free((char *)atomic_load(&m->bound));
    free(m->connect_address);
    free(m->address);
    free(m->authkey);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->connect_lock);
    free(m);
}

/* ---- serving ---- */

static void fill_config(mp_manager *m, mp__mgr_server_config *cfg, int stop_fd,
                        mp_manager_stop_reason stop_fd_reason)
{
    *cfg = (mp__mgr_server_config){
        .address = m->address,
        .authkey = m->authkey,
        .authkey_len = m->authkey_len,
        .python_version = m->opt.python_version,
        .handshake_timeout_ms = m->opt.handshake_timeout_ms,
        .max_connections = m->opt.max_connections,
        .max_message = m->opt.max_message,
        .types = m->types,
        .ntypes = m->ntypes,
        .stop_fd = stop_fd,
        .stop_fd_reason = stop_fd_reason,
        .refuse_shutdown = m->opt.refuse_remote_shutdown,
        .on_event = m->opt.on_event,
        .on_event_arg = m->opt.on_event_arg,
        .errbuf = m->errbuf,
        .errbuf_len = m->errbuf_len,
    };
}

static void ready_here(void *arg, const char *address, int rc)
{
    mp_manager *m = arg;
    if (rc == 0 && address != NULL) {
        char *b = strdup(address);
        char *old = atomic_exchange(&m->bound, b);
        free(old);
    }
}

int mp_manager_serve_forever(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    if (m->serving || m->proc != NULL)
        return MP_EALREADY;
    m->serving = true;
    mp__mgr_server_config cfg;
    fill_config(m, &cfg, m->stop_pipe[0], MP_MANAGER_STOP_API);
    int rc = mp__mgr_serve(&cfg, ready_here, m);
    char b[64];
    while (read(m->stop_pipe[0], b, sizeof b) > 0) {
    }
    m->serving = false;
    return rc;
}

int mp_manager_stop(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    if (m->child_stop_reason != NULL)
        atomic_store(m->child_stop_reason, MP_MANAGER_STOP_API);
    char b = 1;
    ssize_t r;
    do
        r = write(m->stop_pipe[1], &b, 1);
    while (r < 0 && errno == EINTR);
    return 0;
}

/* The child of start: what it reports to the parent over the pipe is a 4-byte
 * code and, on success, the bound address. */
typedef struct child_args {
    mp_manager *m;
    int report_fd;
    int parent_fd; /* read end: EOF when the parent has gone */
    int parent_w;  /* the parent's write end, which the child must not keep */
} child_args;

static void ready_report(void *arg, const char *address, int rc)
{
    child_args *a = arg;
    char buf[512];
    int32_t code = rc;
    memcpy(buf, &code, 4);
    size_t n = 4;
    if (rc == 0 && address != NULL) {
        size_t l = strlen(address);
        if (l > sizeof buf - 5)
            l = sizeof buf - 5;
        memcpy(buf + 4, address, l);
        n += l;
    } else if (a->m->errbuf != NULL) {
        size_t l = strnlen(a->m->errbuf, a->m->errbuf_len);
        if (l > sizeof buf - 5)
            l = sizeof buf - 5;
        memcpy(buf + 4, a->m->errbuf, l);
        n += l;
    }
    ssize_t w;
    do
        w = write(a->report_fd, buf, n);
    while (w < 0 && errno == EINTR);
    mp__close_fd(a->report_fd);
    a->report_fd = -1;
}

static int server_child(void *arg)
{
    child_args *a = arg;
    mp_manager *m = a->m;
    mp__close_fd(a->parent_w);
    /* A terminal's ^C is for the master; the server stops on 'shutdown', on
     * SIGTERM from the master's finalizer, or when the master has gone. */
    signal(SIGINT, SIG_IGN);
    char err[256] = "";
    if (m->errbuf == NULL) {
        m->errbuf = err;
        m->errbuf_len = sizeof err;
    }
    /* The server stops when the starter goes (parent_fd's EOF) or on mp_manager_stop
     * here (from the on_event hook, whose arg is this process's copy): one epoll
     * set over both is the server's stop_fd. The stop pipe is made anew, so that
     * the starter's copy of the old one is not this server's. */
    mp__close_fd(m->stop_pipe[0]);
    mp__close_fd(m->stop_pipe[1]);
    m->stop_pipe[0] = m->stop_pipe[1] = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = ep < 0 || pipe2(m->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ? -errno : 0;
    struct epoll_event ev = {.events = EPOLLIN};
    if (rc == 0 && (epoll_ctl(ep, EPOLL_CTL_ADD, a->parent_fd, &ev) != 0 ||
                    epoll_ctl(ep, EPOLL_CTL_ADD, m->stop_pipe[0], &ev) != 0))
        rc = -errno;
    if (rc < 0) {
        snprintf(m->errbuf, m->errbuf_len, "cannot watch for the stop: %s", mp_strerror(rc));
        ready_report(a, NULL, rc);
        _exit(1);
    }
    mp__mgr_server_config cfg;
    fill_config(m, &cfg, ep, MP_MANAGER_STOP_PARENT);
    m->child_stop_reason = &cfg.stop_fd_reason;
    rc = mp__mgr_serve(&cfg, ready_report, a);
    fflush(NULL);
    _exit(rc < 0 ? 1 : 0);
}

int mp_manager_start(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    if (m->proc != NULL || m->serving || m->connected)
        return MP_EALREADY;
    int report[2] = {-1, -1}, alive[2] = {-1, -1};
    int rc = 0;
    if (pipe2(report, O_CLOEXEC) != 0 || pipe2(alive, O_CLOEXEC) != 0) {
        rc = -errno;
        goto out_close;
    }
    child_args a = {.m = m, .report_fd = report[1], .parent_fd = alive[0], .parent_w = alive[1]};
    mp_process *p;
    rc = mp_process_new(&p, server_child, &a, &(mp_process_options){.name = "SyncManager-1"});
    if (rc < 0)
        goto out_close;
    rc = mp_process_start(p);
    mp__close_fd(report[1]);
    report[1] = -1;
    mp__close_fd(alive[0]);
    alive[0] = -1;
    if (rc < 0) {
        mp_process_destroy(p);
        goto out_close;
    }
    /* Wait for the report (10 s, as a bound on a child that never gets going). */
    char buf[512];
    size_t got = 0;
    mp__deadline d;
    mp__deadline_init(&d, 10000);
    for (;;) {
        short rev;
        int r = mp__poll_one(report[0], POLLIN, &d, &rev);
        if (r < 0) {
            rc = r;
            break;
        }
        ssize_t n = read(report[0], buf + got, sizeof buf - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got >= 4) {
        int32_t code;
        memcpy(&code, buf, 4);
        buf[got] = '\0';
        if (code == 0) {
            char *b = strdup(buf + 4);
            free(atomic_exchange(&m->bound, b));
            rc = b ? 0 : MP_ENOMEM;
        } else {
            rc = code;
            if (m->errbuf != NULL && m->errbuf_len > 0)
                snprintf(m->errbuf, m->errbuf_len, "%s", buf + 4);
        }
    } else if (rc == 0) {
        rc = MP_ESRCH;
    }
    if (rc < 0) {
        mp_process_kill(p);
        mp_process_join(p, -1);
        mp_process_destroy(p);
        goto out_close;
    }
    m->proc = p;
    m->parent_pipe = alive[1];
    alive[1] = -1;
out_close:
    mp__close_fd(report[0]);
    mp__close_fd(report[1]);
    mp__close_fd(alive[0]);
    mp__close_fd(alive[1]);
    return rc;
}

mp_process *mp_manager_process(const mp_manager *m)
{
    return m ? m->proc : NULL;
}

/* ---- connect / shutdown / control requests ---- */

int mp__mgr_open(mp_manager *m, mp_conn **out)
{
    if (m->connect_address == NULL) {
        char *a = client_address(mp_manager_address(m));
        if (a == NULL)
            return MP_ENOMEM;
        pthread_mutex_lock(&m->lock);
        if (m->connect_address == NULL)
            m->connect_address = a;
        else
            free(a);
        pthread_mutex_unlock(&m->lock);
    }
    int rc = mp_client(out, m->connect_address,
                       &(mp_client_options){.authkey = m->authkey,
                                            .authkey_len = m->authkey_len,
                                            .connect_timeout_ms = m->opt.connect_timeout_ms,
                                            .errbuf = m->errbuf,
                                            .errbuf_len = m->errbuf_len});
    if (rc < 0)
        return rc;
    /* Set once per connection, so that a reply is awaited by one blocking recv
     * (mp__mgr_call) instead of a poll and a recv per call. */
    rc = mp__net_set_rcvtimeo(mp_conn_fileno(*out), mp__mgr_rcvtimeo_ms(m));
    if (rc < 0) {
        mp_conn_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int mp__mgr_rcvtimeo_ms(const mp_manager *m)
{
    int call = m->opt.call_timeout_ms;
    int ms = call < 0 ? 1000 : call / 4;
    return ms < 20 ? 20 : ms > 1000 ? 1000 : ms;
}

int mp__mgr_call(mp_manager *m, mp_conn *c, const char *ident, const char *method,
                 const mp_obj *args, const mp_obj *kwds, int timeout_ms, mp_obj **result)
{
    mp__net_trust_rcvtimeo(mp_conn_fileno(c), mp__mgr_rcvtimeo_ms(m));
    int rc = mp__mgr_roundtrip(m, c, ident, method, args, kwds, timeout_ms, result);
    mp__net_trust_rcvtimeo(-1, 0);
    return rc;
}

int mp_manager_connect(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    if (m->connected)
        return MP_EALREADY;
    return mp__mgr_connect_ctl(m);
}

/* One control request on a fresh connection, as CPython's dispatch(). */
int mp__mgr_dispatch(mp_manager *m, const char *method, const mp_obj *args, int timeout_ms,
                     mp_obj **result, int nreplies)
{
    mp_conn *c;
    int rc = mp__mgr_open(m, &c);
    if (rc < 0)
        return rc;
    rc = mp__mgr_call(m, c, NULL, method, args, NULL, timeout_ms, result);
    /* 'shutdown' sends a second reply; it is not waited for. */
    (void)nreplies;
    mp_conn_destroy(c);
    return rc;
}

int mp_manager_shutdown(mp_manager *m)
{
    if (m == NULL)
        return MP_EINVAL;
    if (m->proc == NULL && !m->connected)
        return MP_ENOTSTARTED;
    int rc = mp__mgr_dispatch(m, "shutdown", NULL, 5000, NULL, 2);
    if (rc == MP_EREMOTE && m->proc == NULL)
        return rc; /* refused (refuse_remote_shutdown): the server goes on serving */
    mp__mgr_chans_close_all(m);
    if (m->proc != NULL) {
        if (rc == MP_EREMOTE || mp_process_join(m->proc, 1000) == MP_ETIMEDOUT) {
            mp_process_terminate(m->proc);
            if (mp_process_join(m->proc, 1000) == MP_ETIMEDOUT) {
                mp_process_kill(m->proc);
                mp_process_join(m->proc, -1);
            }
        }
        mp_process_destroy(m->proc);
        m->proc = NULL;
        mp__close_fd(m->parent_pipe);
        m->parent_pipe = -1;
        rc = 0; /* the server is gone, whatever its last words were */
    }
    return rc;
}

int mp_manager_number_of_objects(mp_manager *m, long *out)
{
    if (m == NULL || out == NULL)
        return MP_EINVAL;
    if (m->proc == NULL && !m->connected)
        return MP_ENOTSTARTED;
    mp_obj *r = NULL;
    int rc = mp__mgr_dispatch(m, "number_of_objects", NULL, 0, &r, 1);
    int64_t v = 0;
    if (rc >= 0 && mp_int_value(r, &v) < 0)
        rc = MP_EPROTO;
    mp_obj_unref(r);
    if (rc >= 0)
        *out = (long)v;
    return rc < 0 ? rc : 0;
}

int mp_manager_debug_info(mp_manager *m, char **out)
{
    if (m == NULL || out == NULL)
        return MP_EINVAL;
    if (m->proc == NULL && !m->connected)
        return MP_ENOTSTARTED;
    mp_obj *r = NULL;
    int rc = mp__mgr_dispatch(m, "debug_info", NULL, 0, &r, 1);
    const char *s = rc >= 0 ? mp_str_cstr(r) : NULL;
    if (rc >= 0 && s == NULL)
        rc = MP_EPROTO;
    if (rc >= 0) {
        *out = strdup(s);
        if (*out == NULL)
            rc = MP_ENOMEM;
    }
    mp_obj_unref(r);
    return rc < 0 ? rc : 0;
}

/* The name a channel gives in accept_connection: CPython's current_process().name,
 * plus '|' and the thread's name outside the main thread. */
void mp__mgr_channel_name(char *buf, size_t len)
{
    const char *pname = mp_process_name(mp_current_process());
    if (pname == NULL)
        pname = "MainProcess";
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (tid == getpid())
        snprintf(buf, len, "%s", pname);
    else
        snprintf(buf, len, "%s|Thread-%d", pname, (int)tid);
}
