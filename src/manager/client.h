/* manager/client.h — the client side's internals: the manager object and its
 * channels (client.c, channel.c, proxy.c). */
#ifndef MPROC_INTERNAL_MGR_CLIENT_H
#define MPROC_INTERNAL_MGR_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "manager/mgr.h"
#include "mproc/process.h"

/* A persistent channel: an authenticated connection that sent accept_connection. */
typedef struct mp__mgr_chan {
    struct mp__mgr_chan *next; /* the manager's list, under m->lock */
    struct mp_manager *m;
    mp_conn *conn; /* NULL once broken; changed only with mu held */
    /* A duplicate of conn's descriptor, fixed from open to free: close_all shuts
     * the socket down through it to end a call in flight on another thread (whose
     * conn it must not touch until that call has let go of mu). */
    int wake_fd;
    pthread_mutex_t mu; /* one call at a time */
    unsigned pins;      /* threads waiting for mu of this control channel without
                         * m->lock (under m->lock): it is not freed while > 0 */
    pid_t pid;          /* the process that opened it */
    pthread_t owner;    /* the thread that opened it */
    bool is_ctl;        /* the manager's control channel: never closed by a thread's exit */
} mp__mgr_chan;

struct mp_manager {
    char *address;         /* as given */
    char *_Atomic bound;   /* the server's bound address, once known */
    char *connect_address; /* where clients connect (under lock once set) */
    void *authkey;
    size_t authkey_len;
    mp_manager_options opt;
    char *errbuf;
    size_t errbuf_len;
    /* registry (server side) */
    mp__mgr_typeid *types;
    size_t ntypes, captypes;
    /* server state */
    bool serving;     /* in serve_forever */
    mp_process *proc; /* the child of start */
    int parent_pipe;  /* write end held while the child should live; -1 */
    int stop_pipe[2]; /* mp_manager_stop -> serve_forever, or the server of start's child */
    /* In start's child only: the server's stop reason, which mp_manager_stop sets
     * before writing stop_pipe (the child also stops when its starter goes). */
    _Atomic mp_manager_stop_reason *child_stop_reason;
    /* client state */
    pthread_mutex_t lock;         /* chans list, connect_address, ctl */
    pthread_mutex_t connect_lock; /* one implicit connect at a time */
    pthread_key_t chan_key;
    mp__mgr_chan *chans;
    mp__mgr_chan *orphans; /* closed by close_all while their thread lives: freed at
                            * that thread's exit, or by mp__mgr_chans_free_orphans */
    mp__mgr_chan *ctl;     /* the control channel (mproc servers only), or NULL */
    unsigned ctl_gen;      /* bumped each time a control channel is installed: a
                            * reference taken on an older one went with it */
    bool connected;        /* connect (or an implicit one) succeeded */
    bool mproc_server;     /* the server accepts control requests on channels */
};

/* Opens a fresh authenticated connection to the server, with a receive timeout
 * (SO_RCVTIMEO) of mp__mgr_rcvtimeo_ms(m), so that mp__mgr_call can wait for a
 * reply with one blocking recv. */
MP__HIDDEN int mp__mgr_open(struct mp_manager *m, mp_conn **out);

/* The receive timeout of m's connections: a quarter of the call timeout, within
 * 20 ms .. 1 s (1 s without a call timeout). */
MP__HIDDEN int mp__mgr_rcvtimeo_ms(const struct mp_manager *m);

/* mp__mgr_roundtrip on c, a connection made by mp__mgr_open (whose receive
 * timeout it vouches for: mp__net_trust_rcvtimeo), which the caller keeps open
 * meanwhile. */
MP__HIDDEN int mp__mgr_call(struct mp_manager *m, mp_conn *c, const char *ident, const char *method,
                            const mp_obj *args, const mp_obj *kwds, int timeout_ms,
                            mp_obj **result);

/* Sends one request on c and reads its reply. Returns 0 (*result the value),
 * 1 ('#PROXY': *result the (exposed, Token) tuple), MP_EEMPTY / MP_EFULL /
 * MP_EREMOTE (the thread's remote error is set), or a transport error (then c
 * must not be used again). timeout_ms bounds the wait for the reply: -1 forever,
 * 0 the manager's call timeout. The send is bounded by that and by the call
 * timeout; a reply that has begun must end within the call timeout of its first
 * byte, or by the reply deadline when that is later and finite (MP_ETIMEDOUT
 * otherwise). A reply that
 * came with bytes after it closes c (mp_conn_closed) once it is returned. */
MP__HIDDEN int mp__mgr_roundtrip(struct mp_manager *m, mp_conn *c, const char *ident,
                                 const char *method, const mp_obj *args, const mp_obj *kwds,
                                 int timeout_ms, mp_obj **result);

/* A control request on a fresh connection (CPython's dispatch). */
MP__HIDDEN int mp__mgr_dispatch(struct mp_manager *m, const char *method, const mp_obj *args,
                                int timeout_ms, mp_obj **result, int nreplies);

/* Opens the control channel (connect). */
MP__HIDDEN int mp__mgr_connect_ctl(struct mp_manager *m);

/* The calling thread's channel, opened if needed, with its mutex locked; release
 * with mp__mgr_chan_release (broken: the call failed in transport and the channel
 * must be closed). */
MP__HIDDEN int mp__mgr_chan_acquire(struct mp_manager *m, mp__mgr_chan **out);
MP__HIDDEN void mp__mgr_chan_release(mp__mgr_chan *ch, bool broken);

/* The control channel, locked (release with pthread_mutex_unlock(&ch->mu), or
 * mp__mgr_chan_release), in *out with its generation in *gen; *out NULL when
 * there is none (a CPython server, or not connected). A control channel found
 * broken (closed by a failed call, or, when reopen, readable while idle: the
 * server closed it) is replaced when reopen (a new one opened and probed, its
 * generation one more; the server released the old one's references when it
 * closed), else MP_EEOF. Errors: MP_EEOF, those of opening a channel. Takes
 * m->connect_lock to reopen: call with no lock held. */
MP__HIDDEN int mp__mgr_ctl_acquire(struct mp_manager *m, bool reopen, mp__mgr_chan **out,
                                   unsigned *gen);

/* pthread key destructor: closes a thread's channel when the thread exits. */
MP__HIDDEN void mp__mgr_chan_thread_exit(void *chan);

/* Closes every channel of m (shutdown, destroy) and frees those no other live
 * thread's key points at; another thread's channel is closed and kept on
 * m->orphans until that thread exits (its key destructor frees it). A call in
 * flight on another thread (its channel's, or the control channel) is ended
 * first: its socket is shut down, so it returns MP_EEOF / MP_ECONNRESET /
 * MP_EPIPE at once, and each channel is closed or freed only once its mutex is
 * free. Must not be called with a channel's mutex held. */
MP__HIDDEN void mp__mgr_chans_close_all(struct mp_manager *m);

/* Frees m->orphans (destroy, after the key was deleted). */
MP__HIDDEN void mp__mgr_chans_free_orphans(struct mp_manager *m);

/* accept_connection's name for the calling thread. */
MP__HIDDEN void mp__mgr_channel_name(char *buf, size_t len);

/* The thread's remote error: set (exc taken, text copied), or cleared. */
MP__HIDDEN void mp__mgr_set_remote_error(mp_obj *exc, const char *text);

#endif /* MPROC_INTERNAL_MGR_CLIENT_H */
