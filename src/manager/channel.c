/* channel.c — the client's connections to a manager server: one request/reply
 * round trip with a deadline, the per-thread persistent channels, the control
 * channel, and the per-thread remote error.
 *
 * A round trip that fails in transport (timeout, EOF, reset, a reply that is not
 * one) leaves the connection out of step with the server, so the channel is
 * closed and the next call opens a new one. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manager/client.h"
#include "mproc/listener.h"

/* ---- the thread's remote error ---- */

typedef struct remote_error {
    mp_obj *exc;
    char *text;
} remote_error;

static pthread_key_t err_key;
static pthread_once_t err_once = PTHREAD_ONCE_INIT;

static void free_remote_error(void *p)
{
    remote_error *e = p;
    if (e == NULL)
        return;
    mp_obj_unref(e->exc);
    free(e->text);
    free(e);
}

static void make_err_key(void)
{
    pthread_key_create(&err_key, free_remote_error);
}

void mp__mgr_set_remote_error(mp_obj *exc, const char *text)
{
    pthread_once(&err_once, make_err_key);
    remote_error *e = pthread_getspecific(err_key);
    if (e == NULL) {
        if (exc == NULL && text == NULL)
            return;
        e = calloc(1, sizeof *e);
        if (e == NULL) {
            mp_obj_unref(exc);
            return;
        }
        pthread_setspecific(err_key, e);
    }
    mp_obj_unref(e->exc);
    free(e->text);
    e->exc = exc;
    e->text = text ? strdup(text) : NULL;
}

int mp_manager_remote_error(const mp_obj **exc, const char **text)
{
    pthread_once(&err_once, make_err_key);
    remote_error *e = pthread_getspecific(err_key);
    if (exc != NULL)
        *exc = e ? e->exc : NULL;
    if (text != NULL)
        *text = e ? e->text : NULL;
    return e != NULL && (e->exc != NULL || e->text != NULL) ? 0 : MP_ENOENT;
}

/* ---- this process's pid, without a system call per call ---- */

static pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_after_fork(void)
{
    cached_pid = getpid();
}

static void pid_init(void)
{
    cached_pid = getpid();
    pthread_atfork(NULL, NULL, pid_after_fork);
}

/* getpid(), kept up to date across fork() by an atfork handler: a channel is
 * checked against it on every call. */
static pid_t my_pid(void)
{
    pthread_once(&pid_once, pid_init);
    return cached_pid;
}

/* ---- one round trip ---- */

static int classify_error(mp_obj *exc)
{
    int rc = MP_EREMOTE;
    if (mp_obj_is_exception(exc, "_queue", "Empty") || mp_obj_is_exception(exc, "queue", "Empty"))
        rc = MP_EEMPTY;
    else if (mp_obj_is_exception(exc, "queue", "Full"))
        rc = MP_EFULL;
    char *r = mp_obj_repr(exc);
    mp__mgr_set_remote_error(exc, r);
    free(r);
    return rc;
}

/* The earlier of a and now + ms (-1: a). */
static void earlier_deadline(mp__deadline *out, const mp__deadline *a, int ms)
{
    *out = *a;
    if (ms < 0)
        return;
    mp__deadline b;
    mp__deadline_init(&b, ms);
    if (a->forever || mp__timespec_before(&b.at, &a->at))
        *out = b;
}

int mp__mgr_roundtrip(struct mp_manager *m, mp_conn *c, const char *ident, const char *method,
                      const mp_obj *args, const mp_obj *kwds, int timeout_ms, mp_obj **result)
{
    mp__mgr_set_remote_error(NULL, NULL);
    if (result != NULL)
        *result = NULL;
    int fd = mp_conn_fileno(c);
    if (fd < 0)
        return fd;
    if (timeout_ms == 0)
        timeout_ms = m->opt.call_timeout_ms;
    /* The reply's first byte is waited for until the operation's deadline; the
     * request must be sent by then and within call_timeout_ms (a server that does
     * not read is not the operation waiting); a reply that has begun must be
     * complete within call_timeout_ms of its first byte (or by that deadline, if
     * later and finite). The connection's own send and receive would wait
     * forever. */
    mp__deadline reply, send_by;
    mp__deadline_init(&reply, timeout_ms < -1 ? -1 : timeout_ms);
    earlier_deadline(&send_by, &reply, m->opt.call_timeout_ms);
    void *buf = NULL;
    size_t len = 0;
    int rc = mp__mgr_request_encode(ident, method, args, kwds, &buf, &len);
    if (rc < 0)
        return rc;
    rc = mp__net_send_frame(fd, buf, len, &send_by);
    free(buf);
    if (rc < 0)
        return rc;
    buf = NULL;
    bool extra = false;
    rc = mp__net_recv_frame(fd, &reply, m->opt.call_timeout_ms, 0, &buf, &len, &extra);
    if (rc < 0)
        return rc;
    if (extra) { /* the server sent what was not asked for: the stream is out of step */
        shutdown(fd, SHUT_RDWR); /* a channel's wake_fd keeps the socket open otherwise */
        mp_conn_close(c);
    }
    int kind;
    mp_obj *value = NULL;
    rc = mp__mgr_reply_decode(buf, len, &kind, &value);
    free(buf);
    if (rc < 0)
        return rc;
    switch (kind) {
    case MP__REPLY_RETURN:
    case MP__REPLY_PROXY:
        if (result != NULL)
            *result = value;
        else
            mp_obj_unref(value);
        return kind == MP__REPLY_PROXY ? 1 : 0;
    case MP__REPLY_ERROR:
        return classify_error(value);
    default: {
        const char *t = mp_str_cstr(value);
        char *owned = NULL;
        if (t == NULL)
            t = owned = mp_obj_repr(value);
        if (kind == MP__REPLY_UNSERIALIZABLE) {
            size_t n = strlen(t ? t : "") + 32;
            char *u = malloc(n);
            if (u != NULL)
                snprintf(u, n, "Unserializable message: %s", t ? t : "");
            mp__mgr_set_remote_error(NULL, u);
            free(u);
        } else {
            mp__mgr_set_remote_error(NULL, t);
        }
        free(owned);
        mp_obj_unref(value);
        return MP_EREMOTE;
    }
    }
}

/* ---- channels ---- */

static int open_channel(struct mp_manager *m, mp__mgr_chan **out)
{
    mp__mgr_chan *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return MP_ENOMEM;
    int rc = mp__mgr_open(m, &ch->conn);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    ch->wake_fd = fcntl(mp_conn_fileno(ch->conn), F_DUPFD_CLOEXEC, 0);
    if (ch->wake_fd < 0) {
        rc = -errno;
        mp_conn_destroy(ch->conn);
        free(ch);
        return rc;
    }
    char name[128];
    mp__mgr_channel_name(name, sizeof name);
    mp_obj *args = mp_tuple1(mp_str_c(name));
    rc = args ? mp__mgr_roundtrip(m, ch->conn, NULL, "accept_connection", args, NULL, 0, NULL)
              : MP_ENOMEM;
    mp_obj_unref(args);
    if (rc == 0 && mp_conn_closed(ch->conn))
        rc = MP_EPROTO; /* the reply came with bytes after it: out of step */
    if (rc != 0) {
        mp_conn_destroy(ch->conn);
        mp__close_fd(ch->wake_fd);
        free(ch);
        return rc > 0 ? MP_EPROTO : rc;
    }
    ch->m = m;
    ch->pid = my_pid();
    ch->owner = pthread_self();
    pthread_mutex_init(&ch->mu, NULL);
    pthread_mutex_lock(&m->lock);
    ch->next = m->chans;
    m->chans = ch;
    pthread_mutex_unlock(&m->lock);
    *out = ch;
    return 0;
}

/* Removes ch from the list at *head; false when it was not there. */
static bool unlink_from(mp__mgr_chan **head, mp__mgr_chan *ch)
{
    for (mp__mgr_chan **p = head; *p != NULL; p = &(*p)->next) {
        if (*p == ch) {
            *p = ch->next;
            return true;
        }
    }
    return false;
}

/* Removes ch from m's list; false when it was not there (close_all took it). */
static bool unlink_chan(struct mp_manager *m, mp__mgr_chan *ch)
{
    return unlink_from(&m->chans, ch);
}

static void free_chan(mp__mgr_chan *ch)
{
    mp_conn_destroy(ch->conn);
    mp__close_fd(ch->wake_fd);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

void mp__mgr_chan_thread_exit(void *p)
{
    mp__mgr_chan *ch = p;
    struct mp_manager *m = ch->m;
    pthread_mutex_lock(&m->lock);
    /* Listed, or an orphan close_all left for this exit (never freed meanwhile). */
    bool mine = !ch->is_ctl && (unlink_chan(m, ch) || unlink_from(&m->orphans, ch));
    pthread_mutex_unlock(&m->lock);
    if (mine)
        free_chan(ch);
}

static void release_ctl(struct mp_manager *m, mp__mgr_chan *ch);

void mp__mgr_chans_close_all(struct mp_manager *m)
{
    pthread_mutex_lock(&m->lock);
    mp__mgr_chan *list = m->chans;
    m->chans = NULL;
    m->ctl = NULL;
    m->mproc_server = false;
    m->connected = false;
    pthread_mutex_unlock(&m->lock);
    /* Off the lists, so no acquire finds them any more (the control channel's
     * does so under m->lock) and no thread's exit frees them: each is ours until
     * it is freed or put on m->orphans below. A call in flight on one of them
     * (another thread's, or the control channel's) holds its mu and reads its
     * conn: end it by shutting the socket down (through wake_fd, never through
     * conn, which that call may be destroying), then wait for mu. */
    for (mp__mgr_chan *ch = list; ch != NULL; ch = ch->next)
        if (ch->pid == my_pid())
            shutdown(ch->wake_fd, SHUT_RDWR);
    /* Only the calling thread's key can be cleared; other threads' keys still
     * point at freed channels, which acquire detects (not on the list). */
    pthread_setspecific(m->chan_key, NULL);
    while (list != NULL) {
        mp__mgr_chan *next = list->next;
        if (list->pid != my_pid()) {
            /* A forked child's copy: not ours to close on the wire (its mutex may
             * be held by a thread that did not come through the fork). */
            mp__close_fd(list->wake_fd);
            free(list);
        } else if (list->is_ctl) {
            release_ctl(m, list); /* a call in flight ends first */
            free_chan(list);
        } else if (pthread_equal(list->owner, pthread_self())) {
            pthread_mutex_lock(&list->mu); /* a call in flight ends first */
            pthread_mutex_unlock(&list->mu);
            free_chan(list);
        } else {
            /* Another live thread's key still points at it: its exit frees it. */
            pthread_mutex_lock(&list->mu);
            mp_conn *dead = list->conn;
            list->conn = NULL;
            pthread_mutex_unlock(&list->mu);
            mp_conn_destroy(dead);
            pthread_mutex_lock(&m->lock);
            list->next = m->orphans;
            m->orphans = list;
            pthread_mutex_unlock(&m->lock);
        }
        list = next;
    }
}

void mp__mgr_chans_free_orphans(struct mp_manager *m)
{
    pthread_mutex_lock(&m->lock);
    mp__mgr_chan *list = m->orphans;
    m->orphans = NULL;
    pthread_mutex_unlock(&m->lock);
    while (list != NULL) {
        mp__mgr_chan *next = list->next;
        free_chan(list);
        list = next;
    }
}

int mp__mgr_connect_ctl(struct mp_manager *m)
{
    mp__mgr_chan *ch;
    int rc = open_channel(m, &ch);
    if (rc < 0)
        return rc;
    /* A mproc server answers a control request on a channel; CPython's answers
     * KeyError(None) as a traceback and keeps the channel. */
    pthread_mutex_lock(&ch->mu);
    rc = mp__mgr_roundtrip(m, ch->conn, NULL, "dummy", NULL, NULL, 0, NULL);
    /* A reply with bytes after it closed the channel: a control channel that is
     * dead from the start would make every create and decref MP_EEOF. */
    if ((rc >= 0 || rc == MP_EREMOTE) && mp_conn_closed(ch->conn))
        rc = MP_EPROTO;
    pthread_mutex_unlock(&ch->mu);
    if (rc < 0 && rc != MP_EREMOTE) {
        pthread_mutex_lock(&m->lock);
        unlink_chan(m, ch);
        pthread_mutex_unlock(&m->lock);
        free_chan(ch);
        return rc;
    }
    mp__mgr_set_remote_error(NULL, NULL);
    pthread_mutex_lock(&m->lock);
    m->connected = true;
    m->mproc_server = rc == 0;
    if (m->mproc_server) {
        /* Kept for create and decref only, so that a method call timing out (which
         * closes its channel) never drops the process's references. */
        ch->is_ctl = true;
        m->ctl = ch;
        m->ctl_gen++;
    }
    pthread_mutex_unlock(&m->lock);
    if (!ch->is_ctl)
        pthread_setspecific(m->chan_key, ch);
    return 0;
}

/* The control channel locked, with its generation, if there is one (else NULL). */
static mp__mgr_chan *locked_ctl(struct mp_manager *m, unsigned *gen)
{
    pthread_mutex_lock(&m->lock);
    for (;;) {
        mp__mgr_chan *ch = m->mproc_server ? m->ctl : NULL;
        if (ch != NULL && ch->pid != my_pid())
            ch = NULL;
        *gen = m->ctl_gen;
        if (ch == NULL || pthread_mutex_trylock(&ch->mu) == 0) {
            pthread_mutex_unlock(&m->lock);
            return ch;
        }
        /* A call is in flight on it (it may take as long as a slow create): wait
         * for it without m->lock, which every method call and close_all take.
         * The pin keeps it from being freed meanwhile (release_ctl). */
        ch->pins++;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_lock(&ch->mu);
        pthread_mutex_lock(&m->lock);
        ch->pins--;
        if (m->mproc_server && m->ctl == ch) {
            *gen = m->ctl_gen;
            pthread_mutex_unlock(&m->lock);
            return ch;
        }
        pthread_mutex_unlock(&ch->mu); /* replaced or closed meanwhile: look again */
    }
}

/* Waits until no thread uses ch, a control channel no longer m->ctl (so no new
 * pin can be taken): none pinned waiting for its mu, none holding it. */
static void release_ctl(struct mp_manager *m, mp__mgr_chan *ch)
{
    for (;;) {
        pthread_mutex_lock(&m->lock);
        bool pinned = ch->pins > 0;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_lock(&ch->mu);
        pthread_mutex_unlock(&ch->mu);
        if (!pinned)
            return;
        sched_yield();
    }
}

/* Whether the control channel (its mu held) can carry a request: not closed by
 * an earlier call and, when probe, with nothing to read (an idle control channel
 * has nothing coming; readable means the server closed or reset it). */
static bool ctl_usable(mp__mgr_chan *ch, bool probe)
{
    if (ch->conn == NULL || mp_conn_closed(ch->conn))
        return false;
    if (!probe)
        return true;
    struct pollfd p = {.fd = mp_conn_fileno(ch->conn), .events = POLLIN | POLLRDHUP};
    int n;
    do
        n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return true;
    /* Gone, or out of step: close it as a failed call would. */
    shutdown(ch->wake_fd, SHUT_RDWR);
    mp_conn_destroy(ch->conn);
    ch->conn = NULL;
    return false;
}

/* Replaces the control channel of generation gen, found broken, by a new one
 * (opened and probed as connect's); with m->connect_lock held and no other lock.
 * A channel replaced meanwhile (another thread did it, or close_all) is left. */
static int reopen_ctl(struct mp_manager *m, unsigned gen)
{
    mp__mgr_chan *ch;
    int rc = open_channel(m, &ch);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ch->mu);
    rc = mp__mgr_roundtrip(m, ch->conn, NULL, "dummy", NULL, NULL, 0, NULL);
    if (rc >= 0 && mp_conn_closed(ch->conn))
        rc = MP_EPROTO;
    pthread_mutex_unlock(&ch->mu);
    mp__mgr_set_remote_error(NULL, NULL);
    if (rc != 0)
        rc = rc < 0 && rc != MP_EREMOTE ? rc : MP_EPROTO; /* no longer a mproc server */
    mp__mgr_chan *old = NULL;
    bool drop_new = rc != 0;
    pthread_mutex_lock(&m->lock);
    if (rc == 0 && m->mproc_server && m->ctl != NULL && m->ctl_gen == gen) {
        old = m->ctl;
        if (!unlink_chan(m, old))
            old = NULL;
        ch->is_ctl = true;
        m->ctl = ch;
        m->ctl_gen++;
    } else {
        drop_new = true;
    }
    /* Not on the list: a close_all took it (and freed or orphaned it). */
    bool mine = drop_new && unlink_chan(m, ch);
    pthread_mutex_unlock(&m->lock);
    if (mine)
        free_chan(ch);
    if (old != NULL) {
        /* No acquire can find it now; one that holds its mu lets go first. Closing
         * it is a no-op on the wire: it was broken already. */
        release_ctl(m, old);
        free_chan(old);
    }
    return rc;
}

int mp__mgr_ctl_acquire(struct mp_manager *m, bool reopen, mp__mgr_chan **out, unsigned *gen)
{
    *out = NULL;
    mp__mgr_chan *ch = locked_ctl(m, gen);
    if (ch == NULL)
        return 0;
    if (ctl_usable(ch, reopen)) {
        *out = ch;
        return 0;
    }
    pthread_mutex_unlock(&ch->mu);
    if (!reopen)
        return MP_EEOF;
    /* One reopen at a time (connect_lock, before m->lock and any mu): a thread
     * that waited here finds the new channel. */
    pthread_mutex_lock(&m->connect_lock);
    int rc = 0;
    ch = locked_ctl(m, gen);
    if (ch != NULL && !ctl_usable(ch, false)) {
        pthread_mutex_unlock(&ch->mu);
        rc = reopen_ctl(m, *gen);
        ch = rc < 0 ? NULL : locked_ctl(m, gen);
    }
    pthread_mutex_unlock(&m->connect_lock);
    if (rc < 0)
        return rc;
    if (ch == NULL)
        return MP_EEOF; /* shut down meanwhile */
    if (!ctl_usable(ch, false)) {
        pthread_mutex_unlock(&ch->mu);
        return MP_EEOF;
    }
    *out = ch;
    return 0;
}

int mp__mgr_chan_acquire(struct mp_manager *m, mp__mgr_chan **out)
{
    mp__mgr_chan *ch = pthread_getspecific(m->chan_key);
    if (ch != NULL) {
        /* Still on the manager's list (not closed by shutdown) and ours (not a
         * fork's copy)? */
        pthread_mutex_lock(&m->lock);
        bool listed = false;
        for (mp__mgr_chan *p = m->chans; p != NULL; p = p->next)
            listed |= p == ch;
        /* The address of a freed channel may have been reused by another
         * thread's: check the owner too. */
        mp__mgr_chan *orphan = !listed && unlink_from(&m->orphans, ch) ? ch : NULL;
        if (!listed || ch->pid != my_pid() || !pthread_equal(ch->owner, pthread_self()))
            ch = NULL;
        pthread_mutex_unlock(&m->lock);
        if (orphan != NULL)
            free_chan(orphan); /* closed by a shutdown: replaced below */
    }
    if (ch == NULL) {
        int rc = open_channel(m, &ch);
        if (rc < 0)
            return rc;
        pthread_setspecific(m->chan_key, ch);
    }
    pthread_mutex_lock(&ch->mu);
    if (ch->conn == NULL || mp_conn_closed(ch->conn)) { /* broken by an earlier call */
        pthread_mutex_unlock(&ch->mu);
        mp__mgr_chan *fresh;
        int rc = open_channel(m, &fresh);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&m->lock);
        bool mine = unlink_chan(m, ch);
        pthread_mutex_unlock(&m->lock);
        if (mine)
            free_chan(ch);
        ch = fresh;
        pthread_setspecific(m->chan_key, ch);
        pthread_mutex_lock(&ch->mu);
    }
    *out = ch;
    return 0;
}

void mp__mgr_chan_release(mp__mgr_chan *ch, bool broken)
{
    if (broken && ch->conn != NULL) {
        /* wake_fd keeps the socket open: the server must see the close now. */
        shutdown(ch->wake_fd, SHUT_RDWR);
        mp_conn_destroy(ch->conn);
        ch->conn = NULL;
    }
    pthread_mutex_unlock(&ch->mu);
}
