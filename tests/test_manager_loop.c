/* test_manager_loop.c — the manager server's channel loop: one worker serves every
 * ready channel, so a call that blocks, a request that arrives in pieces and a
 * reply its peer does not read must each leave the other channels served; and
 * many blocked calls at once are each served. */
// TEST_TIMEOUT 120
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "manager/mgr.h"
#include "mproc/listener.h"
#include "mproc/manager.h"
#include "mproc/object.h"
#include "mproc/pickle.h"
#include "sync_manager_fixture.h"

#define KEY "loop-key"

/* Queues 'a' and 'b' served by serve_forever on a thread of this process (so the
 * sanitizers see the server too). */
static mp_manager *serve_here(void)
{
    return fx_serve_queues(KEY, strlen(KEY), "a", "b", NULL);
}

/* A client manager of address with a proxy of typeid in *q. */
static mp_manager *client(const char *address, const char *typeid, mp_proxy **q)
{
    mp_manager *c;
    CHECK_OK(mp_manager_new(&c, address, KEY, strlen(KEY), NULL));
    CHECK_OK(mp_manager_connect(c));
    CHECK_OK(mp_manager_create(c, typeid, NULL, NULL, q));
    return c;
}

static int64_t int_of(const mp_obj *o)
{
    int64_t v = -1;
    return mp_int_value(o, &v) == 0 ? v : -1;
}

/* n put+get pairs on q; how long they took (ms). */
static uint64_t pairs(mp_proxy *q, int n)
{
    uint64_t t0 = th_now_ms();
    mp_obj *seven = mp_int(7);
    for (int i = 0; i < n; i++) {
        mp_obj *got = NULL;
        CHECK_OK(mp_proxy_put(q, seven, 10000));
        CHECK_OK(mp_proxy_get(q, &got, 10000));
        CHECK_EQ(7, int_of(got));
        mp_obj_unref(got);
    }
    mp_obj_unref(seven);
    return th_now_ms() - t0;
}

typedef struct getter {
    const char *address;
    int64_t got; /* the item, or -1 */
    int rc;
    pthread_barrier_t *ready;
} getter;

/* Opens its own channel to 'a' and blocks in a get (30 s at most). */
static void *getter_main(void *arg)
{
    getter *g = arg;
    mp_proxy *q;
    mp_manager *c = client(g->address, "a", &q);
    CHECK(mp_proxy_qsize(q) >= 0); /* the channel is open before the get */
    pthread_barrier_wait(g->ready);
    mp_obj *item = NULL;
    g->rc = mp_proxy_get(q, &item, 30000);
    g->got = item ? int_of(item) : -1;
    mp_obj_unref(item);
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    return NULL;
}

/* Many gets blocked at once (each holds a worker of the server), another channel
 * is served promptly meanwhile, and every blocked get gets its own item. */
TEST(blocked_gets_do_not_stall_other_channels_and_each_gets_an_item)
{
    enum { N = 40 };
    mp_manager *m = serve_here();
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, N + 1);
    getter g[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        g[i] = (getter){.address = mp_manager_address(m), .got = -1, .ready = &ready};
        CHECK_EQ(0, pthread_create(&t[i], NULL, getter_main, &g[i]));
    }
    pthread_barrier_wait(&ready);
    th_sleep_ms(200); /* the gets are sent and block */
    mp_proxy *b, *a;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    CHECK(pairs(b, 200) < 10000);
    CHECK_OK(mp_manager_create(c, "a", NULL, NULL, &a));
    CHECK_EQ(0, mp_proxy_qsize(a));
    for (int i = 0; i < N; i++) {
        mp_obj *v = mp_int(1000 + i);
        CHECK_OK(mp_proxy_put(a, v, 10000));
        mp_obj_unref(v);
    }
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_OK(g[i].rc);
        CHECK(g[i].got >= 1000 && g[i].got < 1000 + N);
        CHECK(!seen[g[i].got - 1000]); /* nothing delivered twice */
        seen[g[i].got - 1000] = true;
    }
    CHECK_EQ(0, mp_proxy_qsize(a));
    pthread_barrier_destroy(&ready);
    mp_proxy_destroy(a);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* A raw authenticated channel: the conn, after 'accept_connection'. */
static mp_conn *raw_channel(const char *address)
{
    mp_conn *conn;
    CHECK_OK(mp_client(&conn, address,
                       &(mp_client_options){.authkey = KEY, .authkey_len = strlen(KEY)}));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ns(){})", "accept_connection"));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    CHECK_OK(mp_conn_send_bytes(conn, buf, len));
    free(buf);
    CHECK_OK(mp_conn_recv_bytes(conn, &buf, &len, 0));
    mp_obj *rep;
    CHECK_OK(mp_pickle_loads(buf, len, NULL, &rep, NULL));
    free(buf);
    CHECK_STR("#RETURN", mp_str_cstr(mp_seq_item(rep, 0)));
    mp_obj_unref(rep);
    return conn;
}

/* A request whose frame comes in two pieces far apart: the channels around it are
 * served meanwhile, and the request is answered once its last byte comes. */
TEST(a_request_arriving_in_pieces_does_not_stall_other_channels)
{
    mp_manager *m = serve_here();
    mp_conn *raw = raw_channel(mp_manager_address(m));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ns(){})", "number_of_objects"));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    unsigned char frame[4 + 256];
    CHECK(len < 256);
    frame[0] = (unsigned char)(len >> 24);
    frame[1] = (unsigned char)(len >> 16);
    frame[2] = (unsigned char)(len >> 8);
    frame[3] = (unsigned char)len;
    memcpy(frame + 4, buf, len);
    free(buf);
    int fd = mp_conn_fileno(raw);
    CHECK_EQ(6, (int)write(fd, frame, 6)); /* the header and two bytes */
    mp_proxy *b;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    CHECK(pairs(b, 200) < 10000);
    th_sleep_ms(100);
    CHECK(pairs(b, 50) < 10000);
    CHECK_EQ((int)(len - 2), (int)write(fd, frame + 6, len - 2));
    CHECK_OK(mp_conn_recv_bytes(raw, &buf, &len, 0));
    mp_obj *rep;
    CHECK_OK(mp_pickle_loads(buf, len, NULL, &rep, NULL));
    free(buf);
    CHECK_STR("#RETURN", mp_str_cstr(mp_seq_item(rep, 0)));
    CHECK_EQ(1, int_of(mp_seq_item(rep, 1))); /* b's queue, held by c */
    mp_obj_unref(rep);
    mp_conn_destroy(raw);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* A peer that asks for a reply far larger than the socket takes and does not read
 * it: the other channels are served meanwhile, and the whole reply arrives once
 * the peer reads. */
TEST(a_reply_its_peer_does_not_read_does_not_stall_other_channels)
{
    enum { BIG = 8 << 20 }; /* more than the sockets hold before the reader reads */
    mp_manager *m = serve_here();
    mp_proxy *b;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    char *blob = malloc(BIG);
    CHECK(blob != NULL);
    for (size_t i = 0; i < BIG; i++)
        blob[i] = (char)(i * 7);
    mp_obj *item = mp_bytes(blob, BIG);
    CHECK_OK(mp_proxy_put(b, item, 10000));
    mp_obj_unref(item);

    mp_conn *raw = raw_channel(mp_manager_address(m));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ss(){})", mp_proxy_ident(b), "get"));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    CHECK_OK(mp_conn_send_bytes(raw, buf, len));
    free(buf);
    th_sleep_ms(200); /* the server is stuck sending, with the loop handed on */
    CHECK_EQ(0, mp_proxy_qsize(b));
    CHECK(pairs(b, 200) < 10000);
    CHECK_OK(mp_conn_recv_bytes(raw, &buf, &len, 0));
    mp_obj *rep;
    CHECK_OK(mp_pickle_loads(buf, len, NULL, &rep, NULL));
    free(buf);
    CHECK_STR("#RETURN", mp_str_cstr(mp_seq_item(rep, 0)));
    size_t got = 0;
    const void *data = NULL;
    CHECK_OK(mp_bytes_value(mp_seq_item(rep, 1), &data, &got));
    CHECK_EQ((size_t)BIG, got);
    CHECK(data != NULL && memcmp(data, blob, BIG) == 0);
    mp_obj_unref(rep);
    free(blob);
    /* The channel goes on as before. */
    CHECK_OK(mp_obj_build(&req, "(ss(){})", mp_proxy_ident(b), "qsize"));
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    CHECK_OK(mp_conn_send_bytes(raw, buf, len));
    free(buf);
    CHECK_OK(mp_conn_recv_bytes(raw, &buf, &len, 0));
    CHECK_OK(mp_pickle_loads(buf, len, NULL, &rep, NULL));
    free(buf);
    CHECK_EQ(0, int_of(mp_seq_item(rep, 1)));
    mp_obj_unref(rep);
    mp_conn_destroy(raw);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* Channels closed while idle in the loop, while blocked, and at the stop each end
 * once: the server's object count comes back and the stop joins everything. */
TEST(channels_closing_in_every_state_leave_nothing_behind)
{
    mp_manager *m = serve_here();
    for (int round = 0; round < 3; round++) {
        mp_proxy *q[8];
        mp_manager *c[8];
        for (int i = 0; i < 8; i++) {
            c[i] = client(mp_manager_address(m), i % 2 ? "a" : "b", &q[i]);
            CHECK(mp_proxy_qsize(q[i]) >= 0);
        }
        for (int i = 0; i < 8; i++) {
            mp_proxy_destroy(q[i]);
            mp_manager_destroy(c[i]);
        }
    }
    /* One left open and blocked at the stop: its get ends with an error. */
    getter g = {.address = mp_manager_address(m), .got = -1};
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 2);
    g.ready = &ready;
    pthread_t t;
    CHECK_EQ(0, pthread_create(&t, NULL, getter_main, &g));
    pthread_barrier_wait(&ready);
    th_sleep_ms(100);
    mp_proxy *b;
    mp_manager *idle = client(mp_manager_address(m), "b", &b);
    CHECK(mp_proxy_qsize(b) == 0);
    uint64_t t0 = th_now_ms();
    fx_stop_here(m);
    CHECK(th_now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    CHECK(g.rc < 0);
    CHECK_EQ(-1, g.got);
    pthread_barrier_destroy(&ready);
    CHECK(mp_proxy_qsize(b) < 0); /* the server is gone */
    mp_proxy_destroy(b);
    mp_manager_destroy(idle);
}

/* ---- lock order: a call that blocks while holding its object's mutex vs debug_info ----
 * mp_manager_call_wait hands the loop off with the object's mutex held; debug_info
 * calls every object's repr (which takes that mutex) with the server's lock held.
 * The handoff must not take the server's lock, or the two deadlock. */

static _Atomic int x_in_repr;

static char *x_repr(void *self)
{
    (void)self;
    atomic_store(&x_in_repr, 1);
    th_sleep_ms(300); /* debug_info holds the server's lock meanwhile */
    return strdup("<X>");
}

static const mp_manager_method x_methods[] = {{NULL, NULL, 0}};
static const mp_manager_type x_type = {
    .name = "X", .destroy = free, .methods = x_methods, .repr = x_repr};

typedef struct holder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} holder;

static char *holder_repr(void *self)
{
    holder *h = self;
    pthread_mutex_lock(&h->mu);
    pthread_mutex_unlock(&h->mu);
    return strdup("<H>");
}

/* Takes its mutex, waits (unhanded) until debug_info is in X's repr, then waits 200 ms
 * with mp_manager_call_wait (whose handoff then needs a new worker). */
static int holder_hold(void *self, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                       mp_obj **result)
{
    (void)args;
    (void)kwds;
    holder *h = self;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < 5000 && !atomic_load(&x_in_repr); i++)
        th_sleep_ms(1);
    int64_t end = mp_manager_deadline_ns(0.2);
    while (mp_manager_call_wait(call, &h->mu, &h->cv, end) == 0) {
    }
    pthread_mutex_unlock(&h->mu);
    *result = mp_none();
    return 0;
}

static void holder_destroy(void *self)
{
    holder *h = self;
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

static const mp_manager_method holder_methods[] = {{"hold", holder_hold, 0}, {NULL, NULL, 0}};
static const mp_manager_type holder_type = {
    .name = "H", .destroy = holder_destroy, .methods = holder_methods, .repr = holder_repr};

typedef struct hold_arg {
    mp_proxy *p;
    int rc;
} hold_arg;

static void *hold_main(void *arg)
{
    hold_arg *a = arg;
    mp_obj *r = NULL;
    a->rc = mp_proxy_call(a->p, "hold", NULL, NULL, 20000, &r);
    mp_obj_unref(r);
    return NULL;
}

typedef struct info_arg {
    mp_manager *m;
    _Atomic int done;
    int rc;
} info_arg;

static void *info_main(void *arg)
{
    info_arg *a = arg;
    char *text = NULL;
    a->rc = mp_manager_debug_info(a->m, &text);
    free(text);
    atomic_store(&a->done, 1);
    return NULL;
}

TEST(a_handoff_with_an_object_mutex_held_does_not_deadlock_with_debug_info)
{
    enum { N = 24 };
    holder *h = calloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    CHECK_OK(mp_manager_cond_init(&h->cv));
    mp_served *x, *ho, *a;
    CHECK_OK(mp_served_wrap(&x, &x_type, strdup("x")));
    CHECK_OK(mp_served_wrap(&ho, &holder_type, h));
    CHECK_OK(mp_served_queue_new(&a, 0));
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, "127.0.0.1:0", KEY, strlen(KEY), NULL));
    CHECK_OK(mp_manager_register(m, "a", &(mp_manager_register_options){.object = a}));
    CHECK_OK(mp_manager_register(m, "x", &(mp_manager_register_options){.object = x}));
    CHECK_OK(mp_manager_register(m, "h", &(mp_manager_register_options){.object = ho}));
    fx_serve_thread(m);
    const char *address = mp_manager_address(m);
    mp_proxy *px, *ph;
    mp_manager *cx = client(address, "x", &px); /* X's entry comes before H's */
    mp_manager *ch = client(address, "h", &ph);
    mp_obj *r = NULL;
    CHECK_OK(mp_proxy_call(ph, "__repr__", NULL, NULL, 10000, &r)); /* opens H's channel */
    mp_obj_unref(r);
    mp_manager *ci;
    CHECK_OK(mp_manager_new(&ci, address, KEY, strlen(KEY), NULL));
    CHECK_OK(mp_manager_connect(ci));
    /* Every idle worker goes to a blocked get, so the next handoff starts a thread. */
    getter g[N];
    pthread_t gt[N];
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, N + 1);
    for (int i = 0; i < N; i++) {
        g[i] = (getter){.address = address, .ready = &ready};
        CHECK_EQ(0, pthread_create(&gt[i], NULL, getter_main, &g[i]));
    }
    pthread_barrier_wait(&ready);
    th_sleep_ms(300);
    hold_arg ha = {.p = ph};
    pthread_t holdt;
    CHECK_EQ(0, pthread_create(&holdt, NULL, hold_main, &ha));
    th_sleep_ms(100); /* the hold runs in a leader, waiting for debug_info */
    info_arg ia = {.m = ci};
    pthread_t infot;
    CHECK_EQ(0, pthread_create(&infot, NULL, info_main, &ia));
    for (int i = 0; i < 1000 && !atomic_load(&ia.done); i++)
        th_sleep_ms(10);
    if (!atomic_load(&ia.done)) {
        fprintf(stderr, "debug_info deadlocked with a handoff holding an object's mutex\n");
        _exit(1);
    }
    CHECK_EQ(0, pthread_join(infot, NULL));
    CHECK_OK(ia.rc);
    CHECK_EQ(0, pthread_join(holdt, NULL));
    CHECK_OK(ha.rc);
    mp_proxy *qa;
    mp_manager *ca = client(address, "a", &qa);
    mp_obj *one = mp_int(1);
    for (int i = 0; i < N; i++)
        CHECK_OK(mp_proxy_put(qa, one, 10000));
    mp_obj_unref(one);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(0, pthread_join(gt[i], NULL));
        CHECK_OK(g[i].rc);
    }
    pthread_barrier_destroy(&ready);
    mp_proxy_destroy(qa);
    mp_manager_destroy(ca);
    mp_manager_destroy(ci);
    mp_proxy_destroy(px);
    mp_proxy_destroy(ph);
    mp_manager_destroy(cx);
    mp_manager_destroy(ch);
    mp_served_unref(a);
    mp_served_unref(x);
    mp_served_unref(ho);
    fx_stop_here(m);
}

/* ---- a hand-off that cannot start a thread ----
 * Every hand-off's new worker fails to start (as pthread_create does when the
 * process has no threads left), so the gets blocked at once take every leader and
 * idle worker; a channel idle in the loop must still be served: the server tries
 * again to start a worker until one starts. */

static _Atomic int no_leader_left;

static bool fail_handoff_starts(int kind, size_t leaders)
{
    if (kind != MP__MGR_START_HANDOFF)
        return false;
    if (leaders == 0)
        atomic_store(&no_leader_left, 1);
    return true;
}

TEST(a_handoff_that_cannot_start_a_worker_still_leaves_the_loop_a_leader)
{
    enum { N = 12 }; /* more than the leaders (4 at most) and idle workers (4) */
    mp_manager *m = serve_here();
    mp_proxy *b, *a;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    CHECK_EQ(0, mp_proxy_qsize(b)); /* its channel is open, idle in the loop */
    CHECK_OK(mp_manager_create(c, "a", NULL, NULL, &a));
    mp__mgr_worker_start_fault = fail_handoff_starts;
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, N + 1);
    getter g[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        g[i] = (getter){.address = mp_manager_address(m), .got = -1, .ready = &ready};
        CHECK_EQ(0, pthread_create(&t[i], NULL, getter_main, &g[i]));
    }
    pthread_barrier_wait(&ready);
    for (int i = 0; i < 1000 && !atomic_load(&no_leader_left); i++)
        th_sleep_ms(10);
    CHECK(atomic_load(&no_leader_left)); /* every leader handed off, none replaced */
    uint64_t t0 = th_now_ms();
    mp_obj *r = NULL;
    CHECK_OK(mp_proxy_call(b, "qsize", NULL, NULL, 3000, &r));
    CHECK_EQ(0, int_of(r));
    mp_obj_unref(r);
    CHECK(th_now_ms() - t0 < 3000);
    for (int i = 0; i < N; i++) {
        mp_obj *v = mp_int(1000 + i);
        CHECK_OK(mp_proxy_put(a, v, 10000));
        mp_obj_unref(v);
    }
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_OK(g[i].rc);
        CHECK(g[i].got >= 1000 && g[i].got < 1000 + N);
        CHECK(!seen[g[i].got - 1000]);
        seen[g[i].got - 1000] = true;
    }
    mp__mgr_worker_start_fault = NULL;
    pthread_barrier_destroy(&ready);
    mp_proxy_destroy(a);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* A peer that asks for a reply far larger than the socket takes and never reads
 * it: the reply's thread does not wait for it forever. Once the peer has taken
 * nothing for the stall limit (shortened here to 300 ms), the server drops the
 * channel as a dead peer, and the queue item of that reply goes back to the
 * queue. */
TEST(a_reply_its_peer_never_reads_is_dropped_after_the_stall_limit)
{
    enum { BIG = 8 << 20 }; /* more than the sockets hold before the reader reads */
    atomic_store(&mp__mgr_send_stall_ms, 300);
    mp_manager *m = serve_here();
    mp_proxy *b;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    char *blob = malloc(BIG);
    CHECK(blob != NULL);
    for (size_t i = 0; i < BIG; i++)
        blob[i] = (char)(i * 13);
    mp_obj *item = mp_bytes(blob, BIG);
    CHECK_OK(mp_proxy_put(b, item, 10000));
    mp_obj_unref(item);
    mp_conn *raw = raw_channel(mp_manager_address(m));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ss(){})", mp_proxy_ident(b), "get"));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    uint64_t t0 = th_now_ms();
    CHECK_OK(mp_conn_send_bytes(raw, buf, len));
    free(buf);
    long n = 1;
    while ((n = mp_proxy_qsize(b)) == 1 && th_now_ms() - t0 < 10000)
        th_sleep_ms(5); /* until the get has taken the item */
    CHECK_EQ(0L, n);
    uint64_t t1 = th_now_ms();
    while ((n = mp_proxy_qsize(b)) == 0 && th_now_ms() - t0 < 20000)
        th_sleep_ms(20);
    CHECK_EQ(1L, n); /* given back: the reply could not be delivered */
    CHECK(th_now_ms() - t1 >= 200);
    mp_obj *back = NULL;
    CHECK_OK(mp_proxy_get(b, &back, 10000));
    const void *data = NULL;
    size_t got = 0;
    CHECK_OK(mp_bytes_value(back, &data, &got));
    CHECK_EQ((size_t)BIG, got);
    CHECK(memcmp(data, blob, BIG) == 0);
    mp_obj_unref(back);
    free(blob);
    mp_conn_destroy(raw);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* Many channels whose requests all block for a moment, sent at once, so that the
 * leaders' batches are full and every request hands off with the rest of its
 * batch: each request is answered once (no handed-off event is lost; in debug
 * builds the loop also asserts that the hand-off array's bound holds). */
TEST(many_channels_handing_off_at_once_each_get_their_reply)
{
    enum { N = 150, ROUNDS = 3 };
    mp_manager *m = serve_here();
    mp_proxy *a;
    mp_manager *c = client(mp_manager_address(m), "a", &a);
    static mp_conn *raw[N];
    for (int i = 0; i < N; i++)
        raw[i] = raw_channel(mp_manager_address(m));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ss(){sd})", mp_proxy_ident(a), "get", "timeout", 0.05));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++)
            CHECK_OK(mp_conn_send_bytes(raw[i], buf, len));
        for (int i = 0; i < N; i++) {
            void *rb;
            size_t rl;
            CHECK_EQ(1, mp_conn_poll(raw[i], 20000));
            CHECK_OK(mp_conn_recv_bytes(raw[i], &rb, &rl, 0));
            mp_obj *rep;
            CHECK_OK(mp_pickle_loads(rb, rl, NULL, &rep, NULL));
            free(rb);
            CHECK_STR("#ERROR", mp_str_cstr(mp_seq_item(rep, 0))); /* queue.Empty */
            mp_obj_unref(rep);
        }
    }
    free(buf);
    CHECK_EQ(0, mp_proxy_qsize(a));
    for (int i = 0; i < N; i++)
        mp_conn_destroy(raw[i]);
    mp_proxy_destroy(a);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* A peer that reads a big reply slowly but steadily (16 KiB every 10 ms) is
 * alive: the server must not drop it for the stall limit (shortened here to
 * 500 ms), even though the socket may not turn writable (POLLOUT wants a third
 * of the send buffer free) for longer than that: what counts is that the peer
 * takes bytes. */
TEST(a_reply_its_peer_reads_slowly_is_not_dropped_by_the_stall_limit)
{
    enum { BIG = 4 << 20, CHUNK = 16 << 10 };
    atomic_store(&mp__mgr_send_stall_ms, 500);
    mp_manager *m = serve_here();
    mp_proxy *b;
    mp_manager *c = client(mp_manager_address(m), "b", &b);
    char *blob = malloc(BIG);
    CHECK(blob != NULL);
    for (size_t i = 0; i < BIG; i++)
        blob[i] = (char)(i * 11);
    mp_obj *item = mp_bytes(blob, BIG);
    CHECK_OK(mp_proxy_put(b, item, 10000));
    mp_obj_unref(item);
    mp_conn *raw = raw_channel(mp_manager_address(m));
    mp_obj *req;
    CHECK_OK(mp_obj_build(&req, "(ss(){})", mp_proxy_ident(b), "get"));
    void *buf;
    size_t len;
    CHECK_OK(mp_pickle_dumps(req, 4, &buf, &len));
    mp_obj_unref(req);
    CHECK_OK(mp_conn_send_bytes(raw, buf, len));
    free(buf);
    th_sleep_ms(300); /* the server's socket fills up */
    int fd = mp_conn_fileno(raw);
    size_t cap = BIG + 4096, got = 0, want = 0;
    unsigned char *in = malloc(cap);
    CHECK(in != NULL);
    uint64_t t0 = th_now_ms();
    while ((want == 0 || got < want) && th_now_ms() - t0 < 30000) {
        ssize_t r = recv(fd, in + got, want ? (want - got < CHUNK ? want - got : CHUNK) : 4, 0);
        CHECK(r > 0); /* 0: the server dropped the channel as dead */
        got += (size_t)r;
        if (want == 0 && got >= 4) {
            want = 4 + ((size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3]);
            CHECK(want <= cap);
        }
        if (want != 0)
            th_sleep_ms(10);
    }
    CHECK_EQ(want, got);
    mp_obj *rep;
    CHECK_OK(mp_pickle_loads(in + 4, got - 4, NULL, &rep, NULL));
    CHECK_STR("#RETURN", mp_str_cstr(mp_seq_item(rep, 0)));
    const void *data = NULL;
    size_t n = 0;
    CHECK_OK(mp_bytes_value(mp_seq_item(rep, 1), &data, &n));
    CHECK_EQ((size_t)BIG, n);
    CHECK(memcmp(data, blob, BIG) == 0);
    mp_obj_unref(rep);
    free(in);
    free(blob);
    mp_conn_destroy(raw);
    mp_proxy_destroy(b);
    mp_manager_destroy(c);
    fx_stop_here(m);
}

/* ---- a slow control request vs the other threads' calls ----
 * A create whose constructor takes a while holds the control channel; a decref
 * on another thread then waits for that channel. That wait must not hold the
 * client's list lock, which every method call (of every thread, on its own
 * channel) and a shutdown take: they would all wait for the slow create. */

static int slow_make(void *arg, mp_manager_call *call, const mp_obj *args, const mp_obj *kwds,
                     mp_served **out)
{
    (void)arg;
    (void)call;
    (void)args;
    (void)kwds;
    th_sleep_ms(1500);
    return mp_served_queue_new(out, 0);
}

typedef struct slow_arg {
    mp_manager *c;
    mp_proxy *p;
    int rc;
} slow_arg;

static void *slow_create_main(void *arg)
{
    slow_arg *a = arg;
    a->rc = mp_manager_create(a->c, "slow", NULL, NULL, &a->p);
    return NULL;
}

static void *destroy_main(void *arg)
{
    mp_proxy_destroy(arg);
    return NULL;
}

TEST(a_slow_create_does_not_hold_up_other_threads_method_calls)
{
    mp_served *a;
    CHECK_OK(mp_served_queue_new(&a, 0));
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, "127.0.0.1:0", KEY, strlen(KEY), NULL));
    CHECK_OK(mp_manager_register(m, "a", &(mp_manager_register_options){.object = a}));
    CHECK_OK(mp_manager_register(m, "slow", &(mp_manager_register_options){.callable = slow_make}));
    mp_served_unref(a);
    fx_serve_thread(m);
    mp_proxy *q, *q2;
    mp_manager *c = client(mp_manager_address(m), "a", &q);
    CHECK_OK(mp_manager_create(c, "a", NULL, NULL, &q2));
    CHECK_EQ(0L, mp_proxy_qsize(q)); /* this thread's channel is open */
    slow_arg sa = {.c = c};
    pthread_t ts, td;
    CHECK_EQ(0, pthread_create(&ts, NULL, slow_create_main, &sa));
    th_sleep_ms(200); /* the create holds the control channel */
    CHECK_EQ(0, pthread_create(&td, NULL, destroy_main, q2));
    th_sleep_ms(200); /* the decref waits for it */
    uint64_t t0 = th_now_ms();
    CHECK_EQ(0L, mp_proxy_qsize(q));
    uint64_t took = th_now_ms() - t0;
    pthread_join(td, NULL);
    pthread_join(ts, NULL);
    CHECK_OK(sa.rc);
    CHECK(took < 500); /* not behind the create's 1.5 s */
    mp_proxy_destroy(sa.p);
    mp_proxy_destroy(q);
    mp_manager_destroy(c);
    fx_stop_here(m);
}
