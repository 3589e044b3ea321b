/* test_manager_client.c — the manager client's fast paths: requests and replies
 * pickled without building their tuples (manager/request.c) must be the pickles
 * the general path makes, as values and as CPython reads them; the receive
 * timeout every manager connection carries. */
// TEST_TIMEOUT 60
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "harness.h"
#include "manager/client.h"
#include "mproc/pickle.h"

/* The request as the general path pickles it: the whole tuple. */
static void general_request(const char *ident, const char *method, const mp_obj *args,
                            const mp_obj *kwds, void **out, size_t *len)
{
    mp_obj *req = mp_tuple4(ident ? mp_str_c(ident) : mp_none(), mp_str_c(method),
                            args ? mp_obj_ref(args) : mp_tuple_new(0),
                            kwds ? mp_obj_ref(kwds) : mp_dict_new());
    CHECK(req != NULL);
    CHECK_OK(mp_pickle_dumps(req, 4, out, len));
    mp_obj_unref(req);
}

static mp_obj *loads(const void *buf, size_t len)
{
    mp_obj *o = NULL;
    mp_obj_error err;
    CHECK_OK(mp_pickle_loads(buf, len, NULL, &o, &err));
    return o;
}

/* Encodes with mp__mgr_request_encode and checks: the same value as the general
 * path's pickle, decoded by the server's decoder to the same fields, and (same)
 * the very same bytes. */
static void check_request(const char *ident, const char *method, const mp_obj *args,
                          const mp_obj *kwds, bool same)
{
    void *fast, *gen;
    size_t nf, ng;
    CHECK_OK(mp__mgr_request_encode(ident, method, args, kwds, &fast, &nf));
    general_request(ident, method, args, kwds, &gen, &ng);
    mp_obj *a = loads(fast, nf), *b = loads(gen, ng);
    char *ra = mp_obj_repr(a), *rb = mp_obj_repr(b);
    CHECK_STR(rb, ra);
    CHECK(mp_obj_equal(a, b));
    if (same) {
        CHECK_EQ(ng, nf);
        CHECK(memcmp(fast, gen, ng) == 0);
    }
    mp__mgr_request req;
    mp_obj_error err;
    CHECK_OK(mp__mgr_request_decode(fast, nf, &req, &err));
    CHECK_STR(method, req.method);
    if (ident == NULL)
        CHECK(req.ident == NULL);
    else
        CHECK_STR(ident, req.ident);
    mp__mgr_request_free(&req);
    free(ra);
    free(rb);
    mp_obj_unref(a);
    mp_obj_unref(b);
    free(fast);
    free(gen);
}

TEST(requests_pickled_directly_are_the_general_paths_pickles)
{
    mp_obj *one, *kw, *shared, *both, *big;
    CHECK_OK(mp_obj_build(&one, "(i)", 7));
    CHECK_OK(mp_obj_build(&kw, "{sd}", "timeout", 1.5));
    /* The same list twice in args, and in args and kwds: memo references that
     * must point at the right entries once spliced. */
    mp_obj *l;
    CHECK_OK(mp_obj_build(&l, "[is]", 1, "x"));
    shared = mp_tuple2(mp_obj_ref(l), mp_obj_ref(l));
    both = mp_dict_new();
    CHECK_OK(mp_dict_set_str(both, "again", mp_obj_ref(l)));
    char *blob = calloc(1, 100000);
    big = mp_tuple1(mp_bytes(blob, 100000));
    free(blob);
    check_request("7f3802039be0", "get", NULL, NULL, true);
    /* (the general path memoizes an empty tuple or dict the caller holds too) */
    mp_obj *none = mp_tuple_new(0), *nokw = mp_dict_new();
    check_request("7f3802039be0", "get", none, nokw, false);
    mp_obj_unref(none);
    mp_obj_unref(nokw);
    check_request(NULL, "dummy", NULL, NULL, true);
    check_request("7f3802039be0", "put", one, NULL, false);
    check_request("7f3802039be0", "put", one, kw, false);
    check_request("ab", "get", NULL, kw, false);
    check_request("ab", "m", shared, NULL, false);
    check_request("ab", "m", shared, both, false);
    check_request("ab", "put", big, NULL, false);
    /* The general path: a method that is not ASCII, an ident too long for
     * SHORT_BINUNICODE. */
    check_request("ab", "caf\xc3\xa9", one, NULL, true);
    char longid[400];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    check_request(longid, "get", NULL, NULL, true);
    /* Bad arguments are refused as before. */
    void *out;
    size_t n;
    CHECK_RC(MP_EINVAL, mp__mgr_request_encode("ab", NULL, NULL, NULL, &out, &n));
    CHECK_RC(MP_EINVAL, mp__mgr_request_encode("ab", "m", kw, NULL, &out, &n));
    CHECK_RC(MP_EINVAL, mp__mgr_request_encode("ab", "m", NULL, one, &out, &n));
    mp_obj_unref(one);
    mp_obj_unref(kw);
    mp_obj_unref(l);
    mp_obj_unref(shared);
    mp_obj_unref(both);
    mp_obj_unref(big);
}

static void check_reply(const char *kind, const mp_obj *result)
{
    void *fast, *gen;
    size_t nf, ng;
    CHECK_OK(mp__mgr_reply_encode(kind, result, &fast, &nf));
    mp_obj *r = mp_tuple2(mp_str_c(kind), result ? mp_obj_ref(result) : mp_none());
    CHECK_OK(mp_pickle_dumps(r, 4, &gen, &ng));
    mp_obj_unref(r);
    mp_obj *a = loads(fast, nf), *b = loads(gen, ng);
    CHECK(mp_obj_equal(a, b));
    int k;
    mp_obj *v = NULL;
    CHECK_OK(mp__mgr_reply_decode(fast, nf, &k, &v));
    if (result == NULL)
        CHECK(mp_obj_is_none(v));
    else
        CHECK(mp_obj_equal(v, result));
    mp_obj_unref(v);
    mp_obj_unref(a);
    mp_obj_unref(b);
    free(fast);
    free(gen);
}

TEST(replies_pickled_directly_are_the_general_paths_pickles)
{
    mp_obj *l, *nested, *seven = mp_int(7), *s = mp_str_c("text");
    CHECK_OK(mp_obj_build(&l, "[is]", 1, "x"));
    nested = mp_tuple3(mp_obj_ref(l), mp_obj_ref(l), mp_str_c("y"));
    check_reply("#RETURN", NULL);
    check_reply("#RETURN", seven);
    check_reply("#RETURN", nested);
    check_reply("#ERROR", s);
    check_reply("#TRACEBACK", s);
    check_reply("#PROXY", nested);
    void *fast;
    size_t n;
    CHECK_OK(mp__mgr_reply_encode("#RETURN", seven, &fast, &n));
    static const unsigned char want[] = "\x80\x04\x8c\x07#RETURNK\x07\x86.";
    CHECK_EQ(sizeof want - 1, n);
    CHECK(memcmp(fast, want, n) == 0);
    free(fast);
    mp_obj_unref(l);
    mp_obj_unref(nested);
    mp_obj_unref(seven);
    mp_obj_unref(s);
}

/* CPython reads the fast path's pickles as the tuples they stand for. */
TEST(cpython_reads_requests_and_replies_pickled_directly)
{
    mp_obj *args, *kw;
    CHECK_OK(mp_obj_build(&args, "([is][is])", 1, "x", 2, "y"));
    CHECK_OK(mp_obj_build(&kw, "{sd}", "timeout", 1.5));
    void *req, *rep;
    size_t nq, np;
    CHECK_OK(mp__mgr_request_encode("7f38", "put", args, kw, &req, &nq));
    CHECK_OK(mp__mgr_reply_encode("#RETURN", args, &rep, &np));
    char cmd[8192];
    int at = snprintf(cmd, sizeof cmd,
                      "python3 -c 'import pickle,sys; "
                      "print(pickle.loads(bytes.fromhex(sys.argv[1])), "
                      "pickle.loads(bytes.fromhex(sys.argv[2])))' ");
    for (size_t i = 0; i < nq; i++)
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, "%02x", ((unsigned char *)req)[i]);
    at += snprintf(cmd + at, sizeof cmd - (size_t)at, " ");
    for (size_t i = 0; i < np; i++)
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, "%02x", ((unsigned char *)rep)[i]);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        SKIP("no python3");
    char out[512] = "";
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    if (st != 0 && got == 0)
        SKIP("python3 did not run");
    CHECK_STR("('7f38', 'put', ([1, 'x'], [2, 'y']), {'timeout': 1.5}) "
              "('#RETURN', ([1, 'x'], [2, 'y']))\n",
              out);
    free(req);
    free(rep);
    mp_obj_unref(args);
    mp_obj_unref(kw);
}

TEST(manager_connections_carry_a_receive_timeout_of_a_quarter_call_timeout)
{
    int want[][2] = {{30000, 1000}, {300, 75}, {40, 20}, {-1, 1000}, {4000, 1000}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct mp_manager m = {.opt = {.call_timeout_ms = want[i][0]}};
        CHECK_EQ(want[i][1], mp__mgr_rcvtimeo_ms(&m));
    }
    int sv[2];
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(mp__net_set_rcvtimeo(sv[0], 75));
    struct timeval tv;
    socklen_t tl = sizeof tv;
    CHECK_EQ(0, getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, &tl));
    CHECK(tv.tv_sec == 0 && tv.tv_usec >= 75000 && tv.tv_usec < 90000);
    close(sv[0]);
    close(sv[1]);
}
