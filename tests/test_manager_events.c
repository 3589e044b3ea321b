/* test_manager_events.c — the manager server's event hook (mp_manager_options.on_event:
 * listening, accepted / closed connections, authentication failures, the stop and
 * why) and refuse_remote_shutdown, with C clients and CPython 3.11 / 3.12 / 3.13
 * clients (tests/shutdown_peer.py). The servers run serve_forever on a thread of
 * this process, so the sanitizers see the hook's calls too. */
// TEST_TIMEOUT 120
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "mproc/listener.h"
#include "mproc/manager.h"
#include "sync_manager_fixture.h"

/* ---- thread creation that can be made to fail ---- */

/* While fail_creates is set, pthread_create called by the thread fail_creates_in
 * (a server's accept loop) fails with EAGAIN, as when the process is out of
 * threads. Every other call goes on to the next pthread_create (ASan's shared
 * runtime, or libc's). Not under TSan, whose pthread_create interceptor is linked
 * into this program and would be bypassed. */
static _Atomic(pthread_t) fail_creates_in;
static _Atomic bool fail_creates;

#if !MP__TSAN

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (real == NULL)
        real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(
            RTLD_NEXT, "pthread_create");
    if (atomic_load(&fail_creates) && pthread_equal(pthread_self(), atomic_load(&fail_creates_in)))
        return EAGAIN;
    return real(t, a, fn, arg);
}
#endif

/* Likewise strdup, out of memory in that thread while fail_strdup is set. */
static _Atomic bool fail_strdup;

char *strdup(const char *text)
{
    if (atomic_load(&fail_strdup) && pthread_equal(pthread_self(), atomic_load(&fail_creates_in)))
        return NULL;
    size_t n = strlen(text) + 1;
    char *copy = malloc(n);
    return copy ? memcpy(copy, text, n) : NULL;
}

/* ---- a hook that records every event ---- */

#define MAX_EVENTS 256

typedef struct rec_event {
    mp_manager_event_kind kind;
    uint64_t conn_id;
    char peer[160];
    bool has_peer;
    char text[256]; /* reason, or address for LISTENING */
    mp_manager_stop_reason stop;
    bool channel;
    int64_t duration_ms;
    size_t connections;
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    rec_event ev[MAX_EVENTS];
    int n;
    int overflow;
} recorder;

static void record(const mp_manager_event *ev, void *arg)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n == MAX_EVENTS) {
        r->overflow++;
    } else {
        rec_event *e = &r->ev[r->n++];
        e->kind = ev->kind;
        e->conn_id = ev->conn_id;
        e->has_peer = ev->peer != NULL;
        snprintf(e->peer, sizeof e->peer, "%s", ev->peer ? ev->peer : "");
        const char *t = ev->kind == MP_MANAGER_EVENT_LISTENING ? ev->address : ev->reason;
        snprintf(e->text, sizeof e->text, "%s", t ? t : "");
        e->stop = ev->stop;
        e->channel = ev->channel;
        e->duration_ms = ev->duration_ms;
        e->connections = ev->connections;
    }
    pthread_mutex_unlock(&r->mu);
}

static int count_kind(recorder *r, mp_manager_event_kind kind)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->ev[i].kind == kind;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits up to 5 s for at least n events of kind. */
static void wait_kind(recorder *r, mp_manager_event_kind kind, int n)
{
    for (int i = 0; i < 500 && count_kind(r, kind) < n; i++)
        th_sleep_ms(10);
    CHECK(count_kind(r, kind) >= n);
}

/* The index of the first event of kind (with conn_id when conn_id != 0), or -1. */
static int find_event(recorder *r, mp_manager_event_kind kind, uint64_t conn_id)
{
    pthread_mutex_lock(&r->mu);
    int at = -1;
    for (int i = 0; i < r->n && at < 0; i++)
        if (r->ev[i].kind == kind && (conn_id == 0 || r->ev[i].conn_id == conn_id))
            at = i;
    pthread_mutex_unlock(&r->mu);
    return at;
}

/* ---- a server on a thread of this process ---- */

typedef struct here {
    mp_manager *m;
    pthread_t thread;
    int rc;
    recorder rec;
} here;

static void *serve_main(void *arg)
{
    here *h = arg;
    h->rc = mp_manager_serve_forever(h->m);
    return NULL;
}

static void serve_at(here *h, const char *address, bool refuse)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->rec.mu, NULL);
    mp_served *q;
    CHECK_OK(mp_served_queue_new(&q, 0));
    CHECK_OK(mp_manager_new(&h->m, address, FX_KEY, FX_KEYLEN,
                            &(mp_manager_options){.refuse_remote_shutdown = refuse,
                                                  .handshake_timeout_ms = 2000,
                                                  .on_event = record,
                                                  .on_event_arg = &h->rec}));
    CHECK_OK(mp_manager_register(h->m, "get_q", &(mp_manager_register_options){.object = q}));
    mp_served_unref(q);
    CHECK_EQ(0, pthread_create(&h->thread, NULL, serve_main, h));
    wait_kind(&h->rec, MP_MANAGER_EVENT_LISTENING, 1);
    CHECK(strcmp(mp_manager_address(h->m), "127.0.0.1:0") != 0);
}

static void serve_here(here *h, bool refuse)
{
    serve_at(h, "127.0.0.1:0", refuse);
}

/* Joins the serving thread (after a stop or an accepted shutdown request). */
static void join_here(here *h)
{
    CHECK_EQ(0, pthread_join(h->thread, NULL));
    CHECK_EQ(0, h->rc);
    mp_manager_destroy(h->m);
    CHECK_EQ(0, h->rec.overflow);
}

static void split_address(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    CHECK(colon != NULL);
    snprintf(host, hlen, "%.*s", (int)(colon - addr), addr);
    snprintf(port, plen, "%s", colon + 1);
}

/* ---- the event hook ---- */

TEST(hook_sees_listening_accept_close_auth_failure_and_shutdown)
{
    here h;
    serve_here(&h, false);
    const char *address = mp_manager_address(h.m);
    int at = find_event(&h.rec, MP_MANAGER_EVENT_LISTENING, 0);
    CHECK_EQ(0, at); /* first */
    CHECK_STR(address, h.rec.ev[at].text);

    /* A good client: a control connection (connect), a channel (create, calls). */
    mp_manager *c = fx_connect(address);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(c, "get_q", NULL, NULL, &q));
    mp_obj *o = mp_int(1);
    CHECK_OK(mp_proxy_put(q, o, 0));
    mp_obj_unref(o);
    th_sleep_ms(30);
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    wait_kind(&h.rec, MP_MANAGER_EVENT_CLOSED, 1);
    int accepted = count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED);
    CHECK(accepted >= 1);
    wait_kind(&h.rec, MP_MANAGER_EVENT_CLOSED, accepted);
    /* Every accepted connection closed once, after it was accepted, with its peer. */
    bool saw_channel = false;
    for (int i = 0; i < h.rec.n; i++) {
        rec_event *a = &h.rec.ev[i];
        if (a->kind != MP_MANAGER_EVENT_ACCEPTED)
            continue;
        CHECK(a->conn_id != 0);
        CHECK(strncmp(a->peer, "127.0.0.1:", 10) == 0);
        CHECK(a->connections >= 1);
        int closed = find_event(&h.rec, MP_MANAGER_EVENT_CLOSED, a->conn_id);
        CHECK(closed > i);
        CHECK_STR(a->peer, h.rec.ev[closed].peer);
        CHECK(h.rec.ev[closed].duration_ms >= 0);
        saw_channel |= h.rec.ev[closed].channel;
    }
    CHECK(saw_channel);
    CHECK_EQ(accepted, count_kind(&h.rec, MP_MANAGER_EVENT_CLOSED));
    pthread_mutex_lock(&h.rec.mu);
    CHECK_EQ(0, (int)h.rec.ev[h.rec.n - 1].connections); /* all closed */
    pthread_mutex_unlock(&h.rec.mu);

    /* A wrong authkey: one AUTH_FAILED with the peer and why, no ACCEPTED. */
    mp_manager *bad;
    CHECK_OK(mp_manager_new(&bad, address, "wrong", 5, NULL));
    CHECK_RC(MP_EAUTH, mp_manager_connect(bad));
    mp_manager_destroy(bad);
    wait_kind(&h.rec, MP_MANAGER_EVENT_AUTH_FAILED, 1);
    at = find_event(&h.rec, MP_MANAGER_EVENT_AUTH_FAILED, 0);
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    CHECK(strstr(h.rec.ev[at].text, "digest") != NULL);
    CHECK_EQ(accepted, count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED));

    /* The stop: SHUTDOWN (mp_manager_stop), then nothing but CLOSED events. */
    CHECK_OK(mp_manager_stop(h.m));
    CHECK_EQ(0, pthread_join(h.thread, NULL));
    CHECK_EQ(0, h.rc);
    CHECK_EQ(1, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN));
    at = find_event(&h.rec, MP_MANAGER_EVENT_SHUTDOWN, 0);
    CHECK_EQ((int)MP_MANAGER_STOP_API, (int)h.rec.ev[at].stop);
    CHECK(!h.rec.ev[at].has_peer);
    CHECK(h.rec.ev[at].text[0] != '\0');
    mp_manager_destroy(h.m);
}

TEST(hook_sees_a_handshake_timeout_as_an_auth_failure)
{
    here h;
    serve_here(&h, false);
    /* A peer without the authkey runs no handshake: it connects and says nothing,
     * and the server drops it at its handshake deadline (2 s here). */
    mp_conn *c = NULL;
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_client(&c, mp_manager_address(h.m), NULL));
    for (int i = 0; i < 500 && find_event(&h.rec, MP_MANAGER_EVENT_AUTH_FAILED, 0) < 0; i++)
        th_sleep_ms(10);
    uint64_t took = th_now_ms() - t0;
    mp_conn_destroy(c);
    int at = find_event(&h.rec, MP_MANAGER_EVENT_AUTH_FAILED, 0);
    CHECK(at >= 0);
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    CHECK(strstr(h.rec.ev[at].text, "timed out after 2000 ms") != NULL);
    CHECK(took >= 1900 && took < 4500);
    CHECK_EQ(0, count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED));
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);
}

TEST(hook_sees_a_remote_shutdown_with_its_requester)
{
    here h;
    serve_here(&h, false);
    mp_manager *c = fx_connect(mp_manager_address(h.m));
    CHECK_OK(mp_manager_shutdown(c));
    mp_manager_destroy(c);
    CHECK_EQ(0, pthread_join(h.thread, NULL));
    CHECK_EQ(0, h.rc);
    mp_manager_destroy(h.m);
    CHECK_EQ(1, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN));
    int at = find_event(&h.rec, MP_MANAGER_EVENT_SHUTDOWN, 0);
    rec_event *s = &h.rec.ev[at];
    CHECK_EQ((int)MP_MANAGER_STOP_REMOTE, (int)s->stop);
    CHECK(s->conn_id != 0);
    CHECK(strncmp(s->peer, "127.0.0.1:", 10) == 0);
    int asked = find_event(&h.rec, MP_MANAGER_EVENT_ACCEPTED, s->conn_id);
    CHECK(asked >= 0 && asked < at);
    CHECK_STR(h.rec.ev[asked].peer, s->peer);
    /* Every connection, the requester's too, still got its CLOSED. */
    CHECK_EQ(count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED),
             count_kind(&h.rec, MP_MANAGER_EVENT_CLOSED));
    CHECK(find_event(&h.rec, MP_MANAGER_EVENT_CLOSED, s->conn_id) >= 0);
}

/* ---- refuse_remote_shutdown ---- */

TEST(refused_shutdown_from_a_c_client_keeps_the_server_serving)
{
    here h;
    serve_here(&h, true);
    mp_manager *c = fx_connect(mp_manager_address(h.m));
    mp_proxy *q;
    CHECK_OK(mp_manager_create(c, "get_q", NULL, NULL, &q));
    CHECK_RC(MP_EREMOTE, mp_manager_shutdown(c));
    const mp_obj *exc = NULL;
    const char *text = NULL;
    CHECK_OK(mp_manager_remote_error(&exc, &text));
    CHECK(exc == NULL); /* a '#TRACEBACK', as CPython refuses a request */
    CHECK(strstr(text, "AssertionError: 'shutdown' unrecognized") != NULL);
    CHECK(strstr(text, "Traceback (most recent call last):") != NULL);
    /* Still serving, on the same proxy and on new connections. */
    mp_obj *o = mp_int(42);
    CHECK_OK(mp_proxy_put(q, o, 0));
    mp_obj_unref(o);
    CHECK_EQ(1, mp_proxy_qsize(q));
    mp_manager *c2 = fx_connect(mp_manager_address(h.m));
    long n = -1;
    CHECK_OK(mp_manager_number_of_objects(c2, &n));
    CHECK_EQ(1, n);
    mp_manager_destroy(c2);
    CHECK_EQ(1, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN_REFUSED));
    CHECK_EQ(0, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN));
    int at = find_event(&h.rec, MP_MANAGER_EVENT_SHUTDOWN_REFUSED, 0);
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    /* Stopped by the API instead. */
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);
    CHECK_EQ((int)MP_MANAGER_STOP_API,
             (int)h.rec.ev[find_event(&h.rec, MP_MANAGER_EVENT_SHUTDOWN, 0)].stop);
}

TEST(refusing_started_server_is_still_stopped_by_its_starter)
{
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, "127.0.0.1:0", FX_KEY, FX_KEYLEN,
                            &(mp_manager_options){.refuse_remote_shutdown = true}));
    mp_served *q;
    CHECK_OK(mp_served_queue_new(&q, 0));
    CHECK_OK(mp_manager_register(m, "get_q", &(mp_manager_register_options){.object = q}));
    mp_served_unref(q);
    CHECK_OK(mp_manager_start(m));
    /* Another client is refused, and the server goes on. */
    mp_manager *c = fx_connect(mp_manager_address(m));
    CHECK_RC(MP_EREMOTE, mp_manager_shutdown(c));
    long n = -1;
    CHECK_OK(mp_manager_number_of_objects(c, &n));
    mp_manager_destroy(c);
    /* The starter stops it without waiting out the second of CPython's finalizer. */
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_manager_shutdown(m));
    CHECK(th_now_ms() - t0 < 900);
    CHECK(mp_manager_process(m) == NULL);
    mp_manager_destroy(m);
}

static void python_refused_then_allowed(const char *ver)
{
    const char *py = fx_need_python(ver);
    char host[64], port[16];
    here h;
    serve_here(&h, true);
    split_address(mp_manager_address(h.m), host, sizeof host, port, sizeof port);
    const char *refused[] = {
        py, fx_source("tests/shutdown_peer.py"), host, port, FX_KEY, "refused", NULL};
    char *out = NULL;
    CHECK_EQ(0, fx_run(refused, NULL, 60000, &out, NULL));
    CHECK(strstr(out, "still serving: number_of_objects = 0") != NULL);
    free(out);
    CHECK_EQ(1, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN_REFUSED));
    /* A C client is served after it too. */
    mp_manager *c = fx_connect(mp_manager_address(h.m));
    mp_proxy *q;
    CHECK_OK(mp_manager_create(c, "get_q", NULL, NULL, &q));
    CHECK_EQ(0, mp_proxy_qsize(q));
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);

    /* Without the option the same request stops the server. */
    serve_here(&h, false);
    split_address(mp_manager_address(h.m), host, sizeof host, port, sizeof port);
    const char *allowed[] = {
        py, fx_source("tests/shutdown_peer.py"), host, port, FX_KEY, "allowed", NULL};
    CHECK_EQ(0, fx_run(allowed, NULL, 60000, &out, NULL));
    CHECK(strstr(out, "server gone") != NULL);
    free(out);
    join_here(&h);
    CHECK_EQ(0, count_kind(&h.rec, MP_MANAGER_EVENT_SHUTDOWN_REFUSED));
    CHECK_EQ((int)MP_MANAGER_STOP_REMOTE,
             (int)h.rec.ev[find_event(&h.rec, MP_MANAGER_EVENT_SHUTDOWN, 0)].stop);
}

TEST(refused_shutdown_from_python_3_11_raises_remote_error)
{
    python_refused_then_allowed("3.11");
}
TEST(refused_shutdown_from_python_3_12_raises_remote_error)
{
    python_refused_then_allowed("3.12");
}
TEST(refused_shutdown_from_python_3_13_raises_remote_error)
{
    python_refused_then_allowed("3.13");
}

TEST(hook_gives_an_empty_peer_for_a_unix_socket_client)
{
    char address[64];
    snprintf(address, sizeof address, "@mproc-test-events-%d", (int)getpid());
    here h;
    serve_at(&h, address, false);
    mp_manager *c = fx_connect(address);
    mp_manager_destroy(c);
    wait_kind(&h.rec, MP_MANAGER_EVENT_CLOSED, 1);
    int at = find_event(&h.rec, MP_MANAGER_EVENT_ACCEPTED, 0);
    CHECK(at >= 0);
    CHECK(h.rec.ev[at].has_peer);
    CHECK_STR("", h.rec.ev[at].peer);
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);
}

TEST(a_connection_without_a_thread_is_turned_away_without_accepted_or_closed)
{
    SKIP_UNDER_TSAN("the failing pthread_create would bypass TSan's interceptor");
    here h;
    serve_here(&h, false);
    atomic_store(&fail_creates_in, h.thread);
    atomic_store(&fail_creates, true);
    mp_manager *c;
    CHECK_OK(mp_manager_new(&c, mp_manager_address(h.m), FX_KEY, FX_KEYLEN, NULL));
    CHECK(mp_manager_connect(c) < 0); /* authenticated, then closed unserved */
    mp_manager_destroy(c);
    wait_kind(&h.rec, MP_MANAGER_EVENT_TURNED_AWAY, 1);
    atomic_store(&fail_creates, false);
    int at = find_event(&h.rec, MP_MANAGER_EVENT_TURNED_AWAY, 0);
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    CHECK(strstr(h.rec.ev[at].text, "thread") != NULL);
    CHECK_EQ(0, (int)h.rec.ev[at].connections);
    /* TURNED_AWAY only: no ACCEPTED that no CLOSED would ever follow. */
    CHECK_EQ(0, count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED));
    CHECK_EQ(0, count_kind(&h.rec, MP_MANAGER_EVENT_CLOSED));
    /* Threads again: the next client is served, accepted and closed once. */
    c = fx_connect(mp_manager_address(h.m));
    mp_manager_destroy(c);
    wait_kind(&h.rec, MP_MANAGER_EVENT_CLOSED, 1);
    CHECK_EQ(1, count_kind(&h.rec, MP_MANAGER_EVENT_ACCEPTED));
    CHECK(find_event(&h.rec, MP_MANAGER_EVENT_ACCEPTED, 0) <
          find_event(&h.rec, MP_MANAGER_EVENT_CLOSED, 0));
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);
}

TEST(an_accepted_connection_has_its_peer_even_when_memory_is_short)
{
    here h;
    serve_here(&h, false);
    atomic_store(&fail_creates_in, h.thread);
    atomic_store(&fail_strdup, true);
    mp_manager *c = fx_connect(mp_manager_address(h.m));
    mp_manager_destroy(c);
    wait_kind(&h.rec, MP_MANAGER_EVENT_CLOSED, 1);
    atomic_store(&fail_strdup, false);
    int at = find_event(&h.rec, MP_MANAGER_EVENT_ACCEPTED, 0);
    CHECK(at >= 0);
    CHECK(h.rec.ev[at].has_peer); /* NULL is for events without a peer */
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    at = find_event(&h.rec, MP_MANAGER_EVENT_CLOSED, 0);
    CHECK(h.rec.ev[at].has_peer);
    CHECK(strncmp(h.rec.ev[at].peer, "127.0.0.1:", 10) == 0);
    CHECK_OK(mp_manager_stop(h.m));
    join_here(&h);
}

/* ---- mp_manager_stop from the hook of a mp_manager_start child ---- */

typedef struct child_hook {
    mp_manager *m; /* in the child: the child's copy */
    int report;    /* write end: the SHUTDOWN event's stop reason */
} child_hook;

static void stop_on_accept(const mp_manager_event *ev, void *arg)
{
    child_hook *h = arg;
    if (ev->kind == MP_MANAGER_EVENT_ACCEPTED)
        mp_manager_stop(h->m);
    if (ev->kind == MP_MANAGER_EVENT_SHUTDOWN) {
        int32_t why = (int32_t)ev->stop;
        ssize_t w = write(h->report, &why, sizeof why);
        (void)w;
    }
}

TEST(stop_from_the_hook_of_a_started_server_stops_it)
{
    int rep[2];
    CHECK_EQ(0, pipe2(rep, O_CLOEXEC));
    child_hook h = {.report = rep[1]};
    CHECK_OK(mp_manager_new(&h.m, "127.0.0.1:0", FX_KEY, FX_KEYLEN,
                            &(mp_manager_options){.on_event = stop_on_accept, .on_event_arg = &h}));
    CHECK_OK(mp_manager_start(h.m));
    close(rep[1]);
    mp_manager *c;
    CHECK_OK(mp_manager_new(&c, mp_manager_address(h.m), FX_KEY, FX_KEYLEN, NULL));
    mp_manager_connect(c); /* accepted: the hook stops the server (the reply may not come) */
    mp_manager_destroy(c);
    /* The child's server stops and the child exits, with no shutdown request. */
    mp_process *p = mp_manager_process(h.m);
    CHECK_OK(mp_process_join(p, 5000));
    int code = -1;
    CHECK_OK(mp_process_exitcode(p, &code));
    CHECK_EQ(0, code);
    int32_t why = 0;
    CHECK_EQ((ssize_t)sizeof why, read(rep[0], &why, sizeof why));
    CHECK_EQ((int)MP_MANAGER_STOP_API, (int)why);
    close(rep[0]);
    mp_manager_destroy(h.m);
}
