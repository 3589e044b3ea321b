/* listener.c — Listener: a listening socket whose accept runs the authkey
 * handshake of every peer without letting one peer block the others.
 *
 * Peers mid-handshake ("pending") live in the listener, each with its own
 * deadline. One epoll descriptor watches the listening socket, every pending
 * socket, an eventfd that mp_listener_close uses to wake an accept in another
 * thread, and a timerfd armed at the earliest pending deadline; so the epoll
 * descriptor (mp_listener_fileno) is readable exactly when accept can make
 * progress. accept steps every handshake whose socket is readable (never blocking
 * on any), drops those past their deadline, and returns the first that completes.
 * While MAX_PENDING handshakes are under way the listening socket is taken out of
 * the epoll set, so further peers wait in the kernel's backlog instead of using
 * memory.
 *
 * Locking: mu serialises every call but close's first two steps (set closed, wake),
 * which is what lets close end an accept that holds mu.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "core/identity.h"
#include "linux/sys.h"
#include "mproc/listener.h"
#include "net/net.h"

#define MAX_PENDING 64
#define DEFAULT_BACKLOG 128
#define EV_LISTEN 0
#define EV_WAKE 1
#define EV_TIMER 2
#define EV_PEER 3 /* EV_PEER + slot */

struct pending {
    int fd;
    uint64_t deadline_ns;         /* UINT64_MAX: none */
    struct sockaddr_storage peer; /* formatted only for a rejection's message */
    socklen_t peer_len;
    mp__auth auth;
};

struct mp_listener {
    pthread_mutex_t mu;
    atomic_bool closed;   /* set first by close, read by accept between waits */
    int fd;               /* listening socket, non-blocking; -1 once closed */
    int ep;               /* epoll over fd, wake, timer, pending sockets */
    int wake;             /* eventfd written by close */
    int timer;            /* timerfd at the earliest pending deadline */
    bool listening_in_ep; /* fd is in ep (false while pending is full) */
    int family;           /* of the listening socket */
    uint64_t armed_ns; /* the timer fires then (at or before the earliest deadline); 0: not armed */
    bool has_key;      /* run the handshake */
    unsigned char *key; /* keylen bytes (at least 1 allocated) */
    size_t keylen;
    bool refuse_md5;
    int hs_ms;      /* handshake timeout, -1: none */
    pid_t owner;    /* the process that created a Unix socket file */
    bool owns_path; /* unlink address on close, if it is still our file */
    dev_t path_dev; /* the socket file bind created (to tell it from one bound later) */
    ino_t path_ino;
    char address[MP__ADDR_TEXT_MAX];
    struct pending *pend[MAX_PENDING]; /* NULL: free slot; guarded by mu */
    int npend;
    unsigned long rejected;
    char last_error[MP__ADDR_TEXT_MAX + 220];
    void (*on_reject)(void *arg, const char *peer, const char *reason);
    void (*on_turn_away)(void *arg, const char *peer, const char *reason);
    void *on_reject_arg;
};

int (*mp__listener_wrap_fd)(mp_conn **out, int fd, bool readable, bool writable) = mp_conn_from_fd;

static int ep_add(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static int map_bind_error(int rc, const char *address, char *err, size_t errlen)
{
    if (rc == MP_EADDRINUSE)
        mp__net_msg(err, errlen, "address already in use: '%s'", address);
    else if (rc == MP_EADDRNOTAVAIL)
        mp__net_msg(err, errlen, "address not available on this machine: '%s'", address);
    else
        mp__net_msg(err, errlen, "cannot listen on '%s': %s", address, mp_strerror(rc));
    return rc;
}

int mp_listener_new(mp_listener **out, const char *address, const mp_listener_options *opt)
{
    static const mp_listener_options none = {0};
    if (opt == NULL)
        opt = &none;
    char *err = opt->errbuf;
    size_t errlen = opt->errbuf_len;
    if (out == NULL || address == NULL) {
        mp__net_msg(err, errlen, "NULL argument");
        return MP_EINVAL;
    }
    int hs_ms;
    if (opt->backlog < 0 || mp__handshake_ms(opt->handshake_timeout_ms, &hs_ms) != 0 ||
        (opt->authkey == NULL && opt->authkey_len > 0)) {
        mp__net_msg(err, errlen,
                    "bad option: backlog < 0, handshake_timeout_ms < -1, or "
                    "authkey NULL with authkey_len > 0");
        return MP_EINVAL;
    }
    mp__addr a;
    int rc = mp__addr_parse(&a, address, true, err, errlen);
    if (rc != 0)
        return rc;
    mp_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MP_ENOMEM;
    l->fd = l->ep = l->wake = l->timer = -1;
    l->key = malloc(opt->authkey_len > 0 ? opt->authkey_len : 1);
    if (l->key == NULL) {
        rc = MP_ENOMEM;
        goto out_free;
    }
    if (opt->authkey_len > 0)
        memcpy(l->key, opt->authkey, opt->authkey_len);
    l->keylen = opt->authkey_len;
    l->has_key = opt->authkey != NULL;
    l->refuse_md5 = opt->refuse_md5;
    l->on_reject = opt->on_reject;
    l->on_turn_away = opt->on_turn_away ? opt->on_turn_away : opt->on_reject;
    l->on_reject_arg = opt->on_reject_arg;
    l->hs_ms = hs_ms;
    l->owner = mp__self_pid();
    l->family = a.family;

    l->fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        rc = map_bind_error(-errno, address, err, errlen);
        goto out_close;
    }
    if (a.family != AF_UNIX) {
        int one = 1;
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(l->fd, (struct sockaddr *)&a.ss, a.len) != 0) {
        rc = map_bind_error(-errno, address, err, errlen);
        goto out_close;
    }
    if (a.unix_path) {
        struct stat st;
        if (stat(address, &st) == 0) {
            l->owns_path = true;
            l->path_dev = st.st_dev;
            l->path_ino = st.st_ino;
        }
    }
    if (listen(l->fd, opt->backlog > 0 ? opt->backlog : DEFAULT_BACKLOG) != 0) {
        rc = map_bind_error(-errno, address, err, errlen);
        goto out_close;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) != 0) {
        rc = -errno;
        goto out_close;
    }
    mp__addr_format((struct sockaddr *)&bound, blen, l->address);
    if (a.unix_path) /* the path as given, which is what a client will use */
        snprintf(l->address, sizeof l->address, "%s", address);

    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake = mp__eventfd_new();
    l->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (l->ep < 0 || l->wake < 0 || l->timer < 0) {
        rc = -errno;
        mp__net_msg(err, errlen, "cannot create the listener's event descriptors: %s",
                    mp_strerror(rc));
        goto out_close;
    }
    if ((rc = ep_add(l->ep, l->fd, EV_LISTEN)) != 0 ||
        (rc = ep_add(l->ep, l->wake, EV_WAKE)) != 0 ||
        (rc = ep_add(l->ep, l->timer, EV_TIMER)) != 0)
        goto out_close;
    l->listening_in_ep = true;
    if ((rc = pthread_mutex_init(&l->mu, NULL)) != 0) {
        rc = -rc;
        goto out_close;
    }
    atomic_init(&l->closed, false);
    *out = l;
    return 0;

out_close:
    if (l->owns_path)
        unlink(address);
    mp__close_fd(l->fd);
    mp__close_fd(l->ep);
    mp__close_fd(l->wake);
    mp__close_fd(l->timer);
out_free:
    free(l->key);
    free(l);
    return rc;
}

/* Keeps the timer at or before the earliest pending deadline. It is never
 * disarmed or moved later: a timer that fires with nothing due costs one spurious
 * wakeup, while re-arming at every step of every handshake would cost a system
 * call each. armed_ns is cleared when the timer fires. */
static void rearm_timer(mp_listener *l)
{
    uint64_t first = UINT64_MAX;
    for (int i = 0; i < MAX_PENDING; i++)
        if (l->pend[i] != NULL && l->pend[i]->deadline_ns < first)
            first = l->pend[i]->deadline_ns;
    if (first == UINT64_MAX || (l->armed_ns != 0 && l->armed_ns <= first))
        return;
    l->armed_ns = first;
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(first / 1000000000u);
    its.it_value.tv_nsec = (long)(first % 1000000000u);
    if (first == 0)
        its.it_value.tv_nsec = 1; /* 0 would disarm */
    timerfd_settime(l->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

static void set_listening(mp_listener *l, bool on)
{
    if (on == l->listening_in_ep)
        return;
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = EV_LISTEN};
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, l->fd, &ev) == 0)
        l->listening_in_ep = on;
}

/* Forgets slot i; closes its socket unless keep_fd. */
static void drop(mp_listener *l, int i, bool keep_fd)
{
    struct pending *p = l->pend[i];
    epoll_ctl(l->ep, EPOLL_CTL_DEL, p->fd, NULL);
    if (!keep_fd)
        mp__close_fd(p->fd);
    free(p);
    l->pend[i] = NULL;
    l->npend--;
    set_listening(l, true);
}

static void reject(mp_listener *l, int i, const char *why)
{
    struct pending *p = l->pend[i];
    char peer[MP__ADDR_TEXT_MAX];
    mp__addr_format((struct sockaddr *)&p->peer, p->peer_len, peer);
    snprintf(l->last_error, sizeof l->last_error, "%s: %s", peer[0] ? peer : "a Unix socket peer",
             why);
    l->rejected++;
    if (l->on_reject != NULL) /* before drop: why may be the pending peer's own text */
        l->on_reject(l->on_reject_arg, peer, why);
    drop(l, i, false);
}

/* An authenticated peer on fd that gets no connection (rc: why): reported and
 * closed. */
static void turn_away(mp_listener *l, int fd, int rc)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char peer[MP__ADDR_TEXT_MAX] = "";
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        mp__addr_format((struct sockaddr *)&ss, len, peer);
    const char *why = rc == MP_ENOMEM ? "no memory" : mp_strerror(rc);
    snprintf(l->last_error, sizeof l->last_error, "%s: %s", peer[0] ? peer : "a Unix socket peer",
             why);
    if (l->on_turn_away != NULL)
        l->on_turn_away(l->on_reject_arg, peer, why);
    mp__close_fd(fd);
}

/* Takes one peer from the backlog. 1 with *ready set (no handshake), 1 with a new
 * pending slot, 0 when the backlog is empty, or a negative code. */
static int take_peer(mp_listener *l, int *ready)
{
    int slot = 0;
    while (l->has_key && slot < MAX_PENDING && l->pend[slot] != NULL)
        slot++;
    if (slot == MAX_PENDING)
        return 0; /* it waits in the backlog until a handshake ends */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM ||
            e == ENETDOWN || e == EHOSTUNREACH || e == ENETUNREACH || e == ENOPROTOOPT ||
            e == EHOSTDOWN || e == EOPNOTSUPP || e == ETIMEDOUT)
            return 0;
        return -e;
    }
    mp__set_nodelay(fd, l->family);
    if (!l->has_key) {
        *ready = fd;
        return 1;
    }
    struct pending *p = malloc(sizeof *p);
    if (p == NULL) {
        mp__close_fd(fd);
        return MP_ENOMEM;
    }
    p->fd = fd;
    p->deadline_ns = l->hs_ms < 0 ? UINT64_MAX : mp__now_ns() + (uint64_t)l->hs_ms * 1000000u;
    memcpy(&p->peer, &ss, len < sizeof ss ? len : sizeof ss);
    p->peer_len = len < sizeof ss ? len : sizeof ss;
    static const enum mp__auth_step server[2] = {MP__AUTH_DELIVER, MP__AUTH_ANSWER};
    mp__auth_init(&p->auth, fd, l->key, l->keylen, l->refuse_md5, server, 2);
    int rc = ep_add(l->ep, fd, EV_PEER + (uint64_t)slot);
    if (rc != 0) {
        mp__close_fd(fd);
        free(p);
        return rc;
    }
    l->pend[slot] = p;
    l->npend++;
    if (l->npend == MAX_PENDING)
        set_listening(l, false);
    /* Sends our challenge now; a quick peer may even finish at once. */
    rc = mp__auth_resume(&p->auth);
    if (rc < 0) {
        reject(l, slot, p->auth.err);
    } else if (rc == 0) {
        *ready = fd;
        drop(l, slot, true);
    }
    return 1;
}

/* Drops pending peers past their deadline. */
static void expire(mp_listener *l)
{
    uint64_t now = mp__now_ns();
    for (int i = 0; i < MAX_PENDING; i++) {
        if (l->pend[i] != NULL && now >= l->pend[i]->deadline_ns) {
            char why[80];
            snprintf(why, sizeof why, "handshake timed out after %d ms", l->hs_ms);
            reject(l, i, why);
        }
    }
}

int mp_listener_accept(mp_listener *l, mp_conn **out, int timeout_ms)
{
    if (l == NULL || out == NULL)
        return MP_EINVAL;
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    int ready = -1;
    for (;;) {
        if (atomic_load(&l->closed) || l->fd < 0) {
            rc = MP_ECLOSED;
            break;
        }
        expire(l);
        rearm_timer(l);
        struct epoll_event evs[16];
        int n = epoll_wait(l->ep, evs, 16, mp__deadline_poll_ms(&d));
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        rc = 0;
        for (int k = 0; k < n && ready < 0 && rc == 0; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == EV_LISTEN) {
                /* One peer per event: the socket stays readable while more wait. */
                int got = take_peer(l, &ready);
                if (got < 0)
                    rc = got;
            } else if (tag == EV_WAKE || tag == EV_TIMER) {
                uint64_t v;
                ssize_t r = read(tag == EV_WAKE ? l->wake : l->timer, &v, sizeof v);
                if (tag == EV_TIMER && r == sizeof v)
                    l->armed_ns = 0;
            } else {
                int i = (int)(tag - EV_PEER);
                if (i < 0 || i >= MAX_PENDING || l->pend[i] == NULL)
                    continue;
                int ar = mp__auth_resume(&l->pend[i]->auth);
                if (ar == 0) {
                    ready = l->pend[i]->fd;
                    drop(l, i, true);
                } else if (ar < 0) {
                    reject(l, i, l->pend[i]->auth.err);
                }
            }
        }
        if (rc != 0 || ready >= 0)
            break;
        if (mp__deadline_passed(&d)) {
            rc = MP_ETIMEDOUT;
            break;
        }
    }
    if (ready >= 0) {
        rc = mp__listener_wrap_fd(out, ready, true, true);
        if (rc != 0)
            turn_away(l, ready, rc);
    }
    if (l->fd >= 0)
        rearm_timer(l); /* for an event loop polling mp_listener_fileno */
    pthread_mutex_unlock(&l->mu);
    return rc;
}

const char *mp_listener_address(const mp_listener *l)
{
    return l == NULL ? NULL : l->address;
}

int mp_listener_fileno(const mp_listener *l)
{
    if (l == NULL)
        return MP_EINVAL;
    return l->ep < 0 || atomic_load(&l->closed) ? MP_ECLOSED : l->ep;
}

unsigned long mp_listener_rejected(const mp_listener *l)
{
    return l == NULL ? 0 : l->rejected;
}

const char *mp_listener_last_error(const mp_listener *l)
{
    return l == NULL ? "" : l->last_error;
}

/* The Unix socket file at our address is the one our bind created, in the process
 * that created it: someone may have removed it and bound another socket there. */
static bool still_our_file(const mp_listener *l)
{
    struct stat st;
    return l->owns_path && mp__self_pid() == l->owner && lstat(l->address, &st) == 0 &&
           st.st_dev == l->path_dev && st.st_ino == l->path_ino;
}

int mp_listener_close(mp_listener *l)
{
    if (l == NULL)
        return MP_EINVAL;
    atomic_store(&l->closed, true);
    if (l->wake >= 0) {
        uint64_t one = 1;
        ssize_t w = write(l->wake, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_lock(&l->mu);
    if (l->fd >= 0) {
        /* No EPOLL_CTL_DEL: after a fork the epoll set is shared with the other
         * process, where these peers may still be mid-handshake; closing our
         * descriptors (and ep itself, below) is all this process needs. */
        for (int i = 0; i < MAX_PENDING; i++) {
            if (l->pend[i] != NULL) {
                mp__close_fd(l->pend[i]->fd);
                free(l->pend[i]);
                l->pend[i] = NULL;
            }
        }
        l->npend = 0;
        mp__close_fd(l->fd);
        l->fd = -1;
        if (still_our_file(l))
            unlink(l->address);
        mp__close_fd(l->ep);
        mp__close_fd(l->timer);
        /* wake stays open until destroy: a concurrent close writes it without mu,
         * and must never write to a descriptor number reused by someone else. */
        l->ep = l->timer = -1;
    }
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void mp_listener_destroy(mp_listener *l)
{
    if (l == NULL)
        return;
    mp_listener_close(l);
    mp__close_fd(l->wake);
    pthread_mutex_destroy(&l->mu);
    explicit_bzero(l->key, l->keylen);
    free(l->key);
    free(l);
}
