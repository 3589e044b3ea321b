/* mp_listener, mp_client and the authkey handshake: CPython's Listener, Client,
 * deliver_challenge and answer_challenge, against python 3.11, 3.12 and 3.13. */
// TEST_TIMEOUT 60
#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "net/net.h"
#include "sync_manager_fixture.h"

#define KEY "abc"
#define KEYLEN 3

/* ---- python peers ---- */

typedef struct py_proc {
    int pid;
    int out; /* its stdout */
} py_proc;

static py_proc py_start(const char *py, const char *mode, const char *addr, const char *key)
{
    char script[1024];
    const char *src = getenv("MPROC_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/tests/listener_peer.py", src ? src : ".");
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    fflush(NULL);
    int pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        execl(py, py, script, mode, addr, key, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    return (py_proc){pid, p[0]};
}

/* Reads until a newline (dropped) or EOF, waiting up to 20 s. */
static void py_line(py_proc *p, char *buf, size_t n)
{
    size_t o = 0;
    uint64_t end = th_now_ms() + 20000;
    while (o + 1 < n) {
        struct pollfd pfd = {p->out, POLLIN, 0};
        int left = (int)(end - th_now_ms());
        CHECK(left > 0 && poll(&pfd, 1, left) == 1);
        ssize_t r = read(p->out, buf + o, 1);
        if (r <= 0 || buf[o] == '\n')
            break;
        o++;
    }
    buf[o] = '\0';
}

/* Reads the rest of its output into buf, closes, and returns its exit status. */
static int py_finish(py_proc *p, char *buf, size_t n)
{
    size_t o = 0;
    for (;;) {
        struct pollfd pfd = {p->out, POLLIN, 0};
        CHECK(poll(&pfd, 1, 20000) == 1);
        ssize_t r = read(p->out, buf + o, n - 1 - o);
        if (r <= 0)
            break;
        o += (size_t)r;
        if (o + 1 >= n)
            break;
    }
    buf[o] = '\0';
    close(p->out);
    return th_wait(p->pid);
}

/* ---- small helpers ---- */

static void recv_expect(mp_conn *c, const char *expected)
{
    void *msg = NULL;
    size_t len = 0;
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_EQ(strlen(expected), len);
    CHECK(memcmp(msg, expected, len) == 0);
    free(msg);
}

/* What a python client of listener_peer.py expects: "echo:" + its first message,
 * then its second message back as is. */
static void serve_echo(mp_conn *c)
{
    void *msg;
    size_t len;
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    char *reply = malloc(len + 5);
    memcpy(reply, "echo:", 5);
    memcpy(reply + 5, msg, len);
    CHECK_OK(mp_conn_send_bytes(c, reply, len + 5));
    free(reply);
    free(msg);
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_OK(mp_conn_send_bytes(c, msg, len));
    free(msg);
}

static int port_of(const char *address)
{
    return atoi(strrchr(address, ':') + 1);
}

static bool has_nodelay(mp_conn *c)
{
    int v = 0;
    socklen_t len = sizeof v;
    CHECK(getsockopt(mp_conn_fileno(c), IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    return v != 0;
}

/* A plain TCP socket connected to 127.0.0.1:port. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return fd;
}

/* A plain listening TCP socket on 127.0.0.1 with a free port. */
static int raw_listen(int *port, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(fd, backlog) == 0);
    socklen_t len = sizeof sa;
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static size_t raw_recv_frame(int fd, unsigned char *buf, size_t cap)
{
    unsigned char h[4];
    size_t got = 0;
    while (got < 4) {
        ssize_t r = read(fd, h + got, 4 - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
    size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    CHECK(n <= cap);
    got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
    return n;
}

static void hex(const char *s, unsigned char *out)
{
    for (size_t i = 0; s[2 * i]; i++)
        sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static mp_listener *new_listener(const char *addr, int hs_ms, bool refuse_md5)
{
    mp_listener *l = NULL;
    char err[200] = "";
    int rc = mp_listener_new(&l, addr,
                             &(mp_listener_options){.authkey = KEY,
                                                    .authkey_len = KEYLEN,
                                                    .handshake_timeout_ms = hs_ms,
                                                    .refuse_md5 = refuse_md5,
                                                    .errbuf = err,
                                                    .errbuf_len = sizeof err});
    if (rc != 0)
        th_fail(__FILE__, __LINE__, "mp_listener_new(%s): %s: %s", addr, mp_err_name(rc), err);
    return l;
}

/* ---- addresses ---- */

static void expect_bad_address(const char *addr, bool listener, const char *msg)
{
    char err[200] = "";
    int rc;
    if (listener) {
        mp_listener *l = NULL;
        rc = mp_listener_new(&l, addr, &(mp_listener_options){.errbuf = err, .errbuf_len = 200});
        CHECK(l == NULL);
    } else {
        mp_conn *c = NULL;
        rc = mp_client(&c, addr, &(mp_client_options){.errbuf = err, .errbuf_len = 200});
        CHECK(c == NULL);
    }
    CHECK_RC(MP_EINVAL, rc);
    if (strstr(err, msg) == NULL)
        th_fail(__FILE__, __LINE__, "%s: expected a message with \"%s\", got \"%s\"", addr, msg,
                err);
}

TEST(bad_addresses_are_einval_with_a_message)
{
    expect_bad_address("127.0.0.1", true, "no port in '127.0.0.1'");
    expect_bad_address("127.0.0.1:", true, "no port in '127.0.0.1:'");
    expect_bad_address("127.0.0.1:65536", true, "bad port '65536'");
    expect_bad_address("127.0.0.1:12x", true, "bad port '12x'");
    expect_bad_address("::1:5000", true, "needs brackets");
    expect_bad_address("[::1]", true, "no port in '[::1]'");
    expect_bad_address("[::1:5000", true, "no ']'");
    expect_bad_address("[127.0.0.1]:5000", true, "not an IPv6 address");
    expect_bad_address("@", true, "empty abstract socket name");
    expect_bad_address("", true, "empty address");
    expect_bad_address("127.0.0.1:0", false, "port 0");
    expect_bad_address(":5000", false, "no host");
    expect_bad_address("no-such-host.invalid:5000", false, "cannot resolve host");
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    expect_bad_address(longpath, true, "too long");
}

TEST(listener_port_0_reports_the_real_port_and_localhost_resolves)
{
    mp_listener *l;
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0", NULL));
    const char *a = mp_listener_address(l);
    CHECK(strncmp(a, "127.0.0.1:", 10) == 0 && port_of(a) > 0);
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", port_of(a));
    mp_conn *c, *s;
    CHECK_OK(mp_client(&c, addr, NULL));
    CHECK_OK(mp_listener_accept(l, &s, 5000));
    CHECK(has_nodelay(c) && has_nodelay(s));
    CHECK_OK(mp_conn_send_bytes(c, "no key", 6));
    recv_expect(s, "no key");
    mp_conn_destroy(c);
    mp_conn_destroy(s);
    mp_listener_destroy(l);
}

TEST(listener_on_a_used_address_is_eaddrinuse)
{
    mp_listener *l, *l2 = NULL;
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0", NULL));
    char err[200] = "";
    CHECK_RC(MP_EADDRINUSE,
             mp_listener_new(&l2, mp_listener_address(l),
                             &(mp_listener_options){.errbuf = err, .errbuf_len = sizeof err}));
    CHECK(strstr(err, "already in use") != NULL);
    mp_listener_destroy(l);
}

/* ---- the handshake, byte for byte ---- */

TEST(answers_match_the_captured_cpython_handshakes)
{
    unsigned char msg[64], want[64], out[MP_HANDSHAKE_FRAME_MAX];
    size_t n;
    /* 3.11 <-> 3.11, key b'abc': 20-byte challenge, raw HMAC-MD5 answer. */
    hex("d0c5e695ca7de554d72d6263cd687eb8323241df", msg);
    hex("36319c32e7f5e8506fde2a9acc5c1eb0", want);
    CHECK_OK(mp__auth_respond(KEY, KEYLEN, msg, 20, false, out, &n, NULL, 0));
    CHECK_EQ(16, n);
    CHECK(memcmp(out, want, 16) == 0);
    CHECK_OK(mp__auth_verify(KEY, KEYLEN, msg, 20, want, 16, false, NULL, 0));
    char err[200] = "";
    CHECK_RC(MP_EAUTH, mp__auth_respond(KEY, KEYLEN, msg, 20, true, out, &n, err, sizeof err));
    CHECK(strstr(err, "refuse_md5") != NULL);
    /* 3.13 <-> 3.13: "{sha256}" + 40 bytes, "{sha256}" + HMAC-SHA256 over all 48. */
    memcpy(msg, "{sha256}", 8);
    hex("9fd2317823097d9b872b35c35735fc6ca90eddc6179d927e5bfcd9a0376ef3b2a53775ff063d5f5e",
        msg + 8);
    memcpy(want, "{sha256}", 8);
    hex("e11be9cbf7337dc7f8ef87ab948e0199f689b7f40f38cd67392a78d98aecbc47", want + 8);
    CHECK_OK(mp__auth_respond(KEY, KEYLEN, msg, 48, true, out, &n, NULL, 0));
    CHECK_EQ(40, n);
    CHECK(memcmp(out, want, 40) == 0);
    CHECK_OK(mp__auth_verify(KEY, KEYLEN, msg, 48, want, 40, true, NULL, 0));
    want[39] ^= 1;
    CHECK_RC(MP_EAUTH, mp__auth_verify(KEY, KEYLEN, msg, 48, want, 40, false, err, sizeof err));
    CHECK_STR("digest received was wrong: the peer's {sha256} answer did not match", err);
}

TEST(verifier_and_answerer_follow_cpython_digest_rules)
{
    unsigned char msg[48], out[MP_HANDSHAKE_FRAME_MAX], ans[MP_HANDSHAKE_FRAME_MAX];
    size_t n, an;
    char err[200];
    memcpy(msg, "{sha256}", 8);
    memset(msg + 8, 7, 40);
    /* A 3.11 peer answers a {sha256} challenge with raw MD5 over all of it. */
    unsigned char legacy[20];
    memcpy(legacy, msg, 20);
    CHECK_OK(mp__auth_respond(KEY, KEYLEN, legacy, 20, false, ans, &an, NULL, 0));
    CHECK_EQ(16, an);
    /* The other allowed names are answered, and accepted by the verifier. */
    const char *names[] = {"{md5}", "{sha384}", "{sha3_256}", "{sha3_384}"};
    for (int i = 0; i < 4; i++) {
        unsigned char m[48];
        size_t pl = strlen(names[i]);
        memcpy(m, names[i], pl);
        memset(m + pl, 9, 48 - pl);
        CHECK_OK(mp__auth_respond(KEY, KEYLEN, m, 48, false, out, &n, NULL, 0));
        CHECK(memcmp(out, names[i], pl) == 0);
        CHECK_OK(mp__auth_verify(KEY, KEYLEN, m, 48, out, n, false, NULL, 0));
    }
    /* Rejected challenges: too short, no prefix, unsupported digests. */
    CHECK_RC(MP_EAUTH, mp__auth_respond(KEY, KEYLEN, msg, 19, false, out, &n, err, sizeof err));
    CHECK(strstr(err, "too short") != NULL);
    memset(msg, 'x', 32);
    CHECK_RC(MP_EAUTH, mp__auth_respond(KEY, KEYLEN, msg, 32, false, out, &n, err, sizeof err));
    CHECK(strstr(err, "no {digest} prefix") != NULL);
    memcpy(msg, "{sha512}", 8);
    CHECK_RC(MP_EAUTH, mp__auth_respond(KEY, KEYLEN, msg, 48, false, out, &n, err, sizeof err));
    CHECK(strstr(err, "unsupported digest {sha512}") != NULL);
    /* Rejected answers: unsupported digests, wrong lengths, MD5 under refuse_md5. */
    memcpy(msg, "{sha256}", 8);
    memcpy(ans, "{sha1}", 6);
    memset(ans + 6, 0, 20);
    CHECK_RC(MP_EAUTH, mp__auth_verify(KEY, KEYLEN, msg, 48, ans, 26, false, err, sizeof err));
    CHECK(strstr(err, "unsupported digest {sha1}") != NULL);
    memcpy(ans, "{sha256}", 8);
    CHECK_RC(MP_EAUTH, mp__auth_verify(KEY, KEYLEN, msg, 48, ans, 30, false, err, sizeof err));
    CHECK(strstr(err, "22 MAC bytes, expected 32") != NULL);
    CHECK_RC(MP_EAUTH, mp__auth_verify(KEY, KEYLEN, msg, 48, ans, 16, true, err, sizeof err));
    CHECK(strstr(err, "refuse_md5") != NULL);
    memcpy(ans, "{md5}", 5);
    CHECK_RC(MP_EAUTH, mp__auth_verify(KEY, KEYLEN, msg, 48, ans, 21, true, err, sizeof err));
    CHECK(strstr(err, "refuse_md5") != NULL);
}

struct step_arg {
    mp_conn *c;
    const char *key;
    int rc;
    char err[200];
};

static void *answer_thread(void *p)
{
    struct step_arg *a = p;
    a->rc = mp_answer_challenge(a->c, a->key, strlen(a->key),
                                &(mp_auth_options){.errbuf = a->err, .errbuf_len = 200});
    return NULL;
}

TEST(deliver_and_answer_challenge_work_on_any_socket_connection)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    struct step_arg arg = {.c = b, .key = KEY};
    pthread_t t;
    pthread_create(&t, NULL, answer_thread, &arg);
    CHECK_OK(mp_deliver_challenge(a, KEY, KEYLEN, NULL));
    pthread_join(t, NULL);
    CHECK_OK(arg.rc);
    /* The handshake consumed nothing more: the next message is intact. */
    CHECK_OK(mp_conn_send_bytes(b, "after", 5));
    recv_expect(a, "after");
    /* A wrong key: both sides say what happened. */
    arg = (struct step_arg){.c = b, .key = "wrong"};
    pthread_create(&t, NULL, answer_thread, &arg);
    char err[200] = "";
    CHECK_RC(MP_EAUTH, mp_deliver_challenge(a, KEY, KEYLEN,
                                            &(mp_auth_options){.errbuf = err, .errbuf_len = 200}));
    pthread_join(t, NULL);
    CHECK_RC(MP_EAUTH, arg.rc);
    CHECK_STR("digest received was wrong: the peer's {sha256} answer did not match", err);
    if (strstr(arg.err, "digest sent was rejected: the peer answered #FAILURE# to our {sha256}") ==
        NULL)
        th_fail(__FILE__, __LINE__, "answerer said \"%s\"", arg.err);
    /* Nobody answers: the deadline. */
    CHECK_RC(MP_ETIMEDOUT,
             mp_deliver_challenge(a, KEY, KEYLEN, &(mp_auth_options){.timeout_ms = 100}));
    void *msg;
    size_t len;
    CHECK_OK(mp_conn_recv_bytes(b, &msg, &len, 0)); /* the unanswered challenge */
    CHECK_EQ(59, len);
    free(msg);
    /* A connection that already read ahead is refused. */
    CHECK_OK(mp_conn_send_bytes(a, "x", 1));
    CHECK_OK(mp_conn_send_bytes(a, "y", 1));
    recv_expect(b, "x");
    CHECK_RC(MP_EBUSY, mp_answer_challenge(b, KEY, KEYLEN, NULL));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

/* ---- C listener <-> python Client ---- */

static void c_listener_python_client(const char *ver)
{
    const char *py = fx_need_python(ver);
    mp_listener *l = new_listener("127.0.0.1:0", 0, false);
    py_proc p = py_start(py, "client", mp_listener_address(l), KEY);
    mp_conn *c;
    CHECK_OK(mp_listener_accept(l, &c, 20000));
    CHECK(has_nodelay(c));
    serve_echo(c);
    char out[512];
    int st = py_finish(&p, out, sizeof out);
    if (st != 0 || strstr(out, "client ok") == NULL)
        th_fail(__FILE__, __LINE__, "python %s client: status %d, output %s", ver, st, out);
    CHECK_EQ(0, mp_listener_rejected(l));
    mp_conn_destroy(c);
    mp_listener_destroy(l);
}

TEST(c_listener_serves_python311_client)
{
    c_listener_python_client("3.11");
}
TEST(c_listener_serves_python312_client)
{
    c_listener_python_client("3.12");
}
TEST(c_listener_serves_python313_client)
{
    c_listener_python_client("3.13");
}

static void python_listener_c_client(const char *ver)
{
    const char *py = fx_need_python(ver);
    py_proc p = py_start(py, "listener", "127.0.0.1:0", KEY);
    char addr[128], err[200] = "";
    py_line(&p, addr, sizeof addr);
    mp_conn *c = NULL;
    int rc = mp_client(
        &c, addr,
        &(mp_client_options){
            .authkey = KEY, .authkey_len = KEYLEN, .errbuf = err, .errbuf_len = sizeof err});
    if (rc != 0)
        th_fail(__FILE__, __LINE__, "mp_client(%s) to python %s: %s: %s", addr, ver,
                mp_err_name(rc), err);
    CHECK(has_nodelay(c));
    CHECK_OK(mp_conn_send_bytes(c, "hello from c", 12));
    recv_expect(c, "echo:hello from c");
    CHECK_OK(mp_conn_send_bytes(c, "again", 5));
    recv_expect(c, "again");
    char out[512];
    int st = py_finish(&p, out, sizeof out);
    if (st != 0 || strstr(out, "listener ok") == NULL)
        th_fail(__FILE__, __LINE__, "python %s listener: status %d, output %s", ver, st, out);
    mp_conn_destroy(c);
}

TEST(c_client_talks_to_python311_listener)
{
    python_listener_c_client("3.11");
}
TEST(c_client_talks_to_python312_listener)
{
    python_listener_c_client("3.12");
}
TEST(c_client_talks_to_python313_listener)
{
    python_listener_c_client("3.13");
}

/* ---- wrong keys, both directions ---- */

static void c_listener_rejects_python_client(const char *ver, const char *key, bool refuse_md5,
                                             const char *why)
{
    const char *py = fx_need_python(ver);
    mp_listener *l = new_listener("127.0.0.1:0", 0, refuse_md5);
    py_proc p = py_start(py, "client", mp_listener_address(l), key);
    mp_conn *c = NULL;
    for (int i = 0; i < 400 && mp_listener_rejected(l) == 0; i++)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 50));
    CHECK(c == NULL);
    char out[512];
    int st = py_finish(&p, out, sizeof out);
    if (st != 3 || strstr(out, "AuthenticationError: digest sent was rejected") == NULL)
        th_fail(__FILE__, __LINE__, "python %s client: status %d, output %s", ver, st, out);
    CHECK_EQ(1, mp_listener_rejected(l));
    if (strstr(mp_listener_last_error(l), why) == NULL)
        th_fail(__FILE__, __LINE__, "expected \"%s\" in \"%s\"", why, mp_listener_last_error(l));
    mp_listener_destroy(l);
}

TEST(c_listener_rejects_python311_client_with_wrong_key)
{
    c_listener_rejects_python_client("3.11", "wrong", false,
                                     "digest received was wrong: the peer's raw MD5 answer did "
                                     "not match");
}
TEST(c_listener_rejects_python313_client_with_wrong_key)
{
    c_listener_rejects_python_client("3.13", "wrong", false,
                                     "digest received was wrong: the peer's {sha256} answer did "
                                     "not match");
}
TEST(c_listener_rejects_python312_client_with_wrong_key)
{
    c_listener_rejects_python_client("3.12", "wrong", false,
                                     "digest received was wrong: the peer's {sha256} answer did "
                                     "not match");
}
TEST(c_listener_with_refuse_md5_rejects_python311_client)
{
    c_listener_rejects_python_client("3.11", KEY, true, "refuse_md5 forbids");
}
TEST(c_listener_with_refuse_md5_serves_python312_client)
{
    const char *py = fx_need_python("3.12");
    mp_listener *l = new_listener("127.0.0.1:0", 0, true);
    py_proc p = py_start(py, "client", mp_listener_address(l), KEY);
    mp_conn *c;
    CHECK_OK(mp_listener_accept(l, &c, 20000));
    serve_echo(c);
    char out[512];
    CHECK_EQ(0, py_finish(&p, out, sizeof out));
    mp_conn_destroy(c);
    mp_listener_destroy(l);
}

static void c_client_rejected_by_python(const char *ver, const char *key, bool refuse_md5,
                                        const char *why, const char *py_says)
{
    const char *py = fx_need_python(ver);
    py_proc p = py_start(py, "listener", "127.0.0.1:0", KEY);
    char addr[128], err[300] = "";
    py_line(&p, addr, sizeof addr);
    mp_conn *c = NULL;
    CHECK_RC(MP_EAUTH, mp_client(&c, addr,
                                 &(mp_client_options){.authkey = key,
                                                      .authkey_len = strlen(key),
                                                      .refuse_md5 = refuse_md5,
                                                      .errbuf = err,
                                                      .errbuf_len = sizeof err}));
    CHECK(c == NULL);
    if (strstr(err, why) == NULL)
        th_fail(__FILE__, __LINE__, "expected \"%s\" in \"%s\"", why, err);
    char out[512];
    int st = py_finish(&p, out, sizeof out);
    if (st != (strncmp(py_says, "EOF", 3) == 0 ? 4 : 3) || strstr(out, py_says) == NULL)
        th_fail(__FILE__, __LINE__, "python %s listener: status %d, output %s", ver, st, out);
}

TEST(c_client_with_wrong_key_is_rejected_by_python311_listener)
{
    c_client_rejected_by_python("3.11", "wrong", false,
                                "digest sent was rejected: the peer answered #FAILURE# to our raw "
                                "MD5 answer",
                                "AuthenticationError: digest received was wrong");
}
TEST(c_client_with_wrong_key_is_rejected_by_python313_listener)
{
    c_client_rejected_by_python("3.13", "wrong", false,
                                "digest sent was rejected: the peer answered #FAILURE# to our "
                                "{sha256} answer",
                                "AuthenticationError: digest received was wrong");
}
TEST(c_client_with_wrong_key_is_rejected_by_python312_listener)
{
    c_client_rejected_by_python("3.12", "wrong", false,
                                "digest sent was rejected: the peer answered #FAILURE# to our "
                                "{sha256} answer",
                                "AuthenticationError: digest received was wrong");
}
TEST(c_client_with_refuse_md5_refuses_python311_legacy_challenge)
{
    /* The client gives up before answering: python sees the connection close. */
    c_client_rejected_by_python("3.11", KEY, true, "legacy 20-byte challenge", "EOF");
}

/* ---- hostile and silent peers ---- */

struct client_arg {
    const char *address;
    int rc;
    char err[300];
    mp_conn *c;
};

static void *client_thread(void *p)
{
    struct client_arg *a = p;
    a->rc = mp_client(
        &a->c, a->address,
        &(mp_client_options){
            .authkey = KEY, .authkey_len = KEYLEN, .errbuf = a->err, .errbuf_len = sizeof a->err});
    if (a->rc == 0) {
        a->rc = mp_conn_send_bytes(a->c, "ping", 4);
        void *msg;
        size_t len;
        if (a->rc == 0)
            a->rc = mp_conn_recv_bytes(a->c, &msg, &len, 0);
        if (a->rc == 0) {
            a->rc = len == 4 && memcmp(msg, "pong", 4) == 0 ? 0 : MP_EPROTO;
            free(msg);
        }
        mp_conn_destroy(a->c);
    }
    return NULL;
}

static void *wrong_key_client_thread(void *p)
{
    struct client_arg *a = p;
    a->rc = mp_client(
        &a->c, a->address,
        &(mp_client_options){
            .authkey = "other", .authkey_len = 5, .errbuf = a->err, .errbuf_len = sizeof a->err});
    return NULL;
}

/* A manager server sends a traceback frame right after #FAILURE#: the client must
 * still report the rejection, not the extra frame. */
static void c_client_against_python_manager(const char *ver)
{
    const char *py = fx_need_python(ver);
    py_proc p = py_start(py, "manager", "127.0.0.1:0", KEY);
    char addr[128], err[300] = "";
    py_line(&p, addr, sizeof addr);
    mp_conn *c = NULL;
    for (int i = 0; i < 3; i++) {
        CHECK_RC(MP_EAUTH, mp_client(&c, addr,
                                     &(mp_client_options){.authkey = "wrong",
                                                          .authkey_len = 5,
                                                          .errbuf = err,
                                                          .errbuf_len = sizeof err}));
        CHECK(strstr(err, "digest sent was rejected: the peer answered #FAILURE#") != NULL);
    }
    CHECK_OK(mp_client(&c, addr, &(mp_client_options){.authkey = KEY, .authkey_len = KEYLEN}));
    mp_conn_destroy(c);
    kill(p.pid, SIGTERM);
    char out[512];
    py_finish(&p, out, sizeof out);
}

TEST(c_client_rejected_by_python311_manager_server_reports_eauth)
{
    c_client_against_python_manager("3.11");
}
TEST(c_client_rejected_by_python313_manager_server_reports_eauth)
{
    c_client_against_python_manager("3.13");
}

TEST(c_client_and_c_listener_with_different_keys_both_say_why)
{
    mp_listener *l = new_listener("127.0.0.1:0", 0, false);
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, wrong_key_client_thread, &a);
    mp_conn *c = NULL;
    for (int i = 0; i < 100 && mp_listener_rejected(l) == 0; i++)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 50));
    pthread_join(t, NULL);
    CHECK_RC(MP_EAUTH, a.rc);
    CHECK(strstr(a.err, "digest sent was rejected: the peer answered #FAILURE# to our {sha256}") !=
          NULL);
    CHECK_EQ(1, mp_listener_rejected(l));
    CHECK(strstr(mp_listener_last_error(l), "127.0.0.1:") == mp_listener_last_error(l));
    CHECK(strstr(mp_listener_last_error(l),
                 ": digest received was wrong: the peer's {sha256} answer did not match") != NULL);
    mp_listener_destroy(l);
}

struct rejects {
    int n;
    char peer[200], reason[300];
};

static void note_reject(void *arg, const char *peer, const char *reason)
{
    struct rejects *r = arg;
    r->n++;
    snprintf(r->peer, sizeof r->peer, "%s", peer);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

TEST(on_reject_hook_gets_each_rejected_peer_and_why)
{
    struct rejects r = {0};
    mp_listener *l = NULL;
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0",
                             &(mp_listener_options){.authkey = KEY,
                                                    .authkey_len = KEYLEN,
                                                    .handshake_timeout_ms = 600,
                                                    .on_reject = note_reject,
                                                    .on_reject_arg = &r}));
    /* A wrong key. */
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, wrong_key_client_thread, &a);
    mp_conn *c = NULL;
    for (int i = 0; i < 100 && mp_listener_rejected(l) == 0; i++)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 50));
    pthread_join(t, NULL);
    CHECK_EQ(1, r.n);
    CHECK(strncmp(r.peer, "127.0.0.1:", 10) == 0);
    CHECK(strstr(r.reason, "digest received was wrong") == r.reason);
    /* The message is the listener's last_error, split into peer and reason. */
    char joined[600];
    snprintf(joined, sizeof joined, "%s: %s", r.peer, r.reason);
    CHECK_STR(joined, mp_listener_last_error(l));
    /* A silent peer, at its deadline. */
    int silent = raw_connect(port_of(mp_listener_address(l)));
    CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 1500));
    CHECK_EQ(2, r.n);
    CHECK_EQ(2, mp_listener_rejected(l));
    CHECK_STR("handshake timed out after 600 ms", r.reason);
    close(silent);
    mp_listener_destroy(l);
}

static void accept_and_pong(mp_listener *l, int timeout_ms)
{
    mp_conn *s;
    int rc = mp_listener_accept(l, &s, timeout_ms);
    if (rc != 0)
        th_fail(__FILE__, __LINE__, "accept: %s; %lu rejected, the last: %s", mp_err_name(rc),
                mp_listener_rejected(l), mp_listener_last_error(l));
    recv_expect(s, "ping");
    CHECK_OK(mp_conn_send_bytes(s, "pong", 4));
    mp_conn_destroy(s);
}

/* mp_conn_from_fd out of memory, for the listener's wrap hook. */
static int wrap_without_memory(mp_conn **out, int fd, bool readable, bool writable)
{
    (void)out, (void)fd, (void)readable, (void)writable;
    return MP_ENOMEM;
}

static void *authenticate_then_read(void *p)
{
    struct client_arg *a = p;
    a->rc =
        mp_client(&a->c, a->address, &(mp_client_options){.authkey = KEY, .authkey_len = KEYLEN});
    if (a->rc == 0) {
        CHECK_EQ(1, mp_conn_poll(a->c, 5000));
        void *msg;
        size_t len;
        a->rc = mp_conn_recv_bytes(a->c, &msg, &len, 0); /* the listener closed it: EOF */
        mp_conn_destroy(a->c);
    }
    return NULL;
}

/* The two hooks, each counting into its own record (on_reject_arg is shared). */
struct reject_pair {
    struct rejects rejected, turned_away;
};

static void note_pair_reject(void *arg, const char *peer, const char *reason)
{
    note_reject(&((struct reject_pair *)arg)->rejected, peer, reason);
}

static void note_pair_turn_away(void *arg, const char *peer, const char *reason)
{
    note_reject(&((struct reject_pair *)arg)->turned_away, peer, reason);
}

TEST(authenticated_peer_without_memory_for_its_connection_is_reported_and_closed)
{
    for (int with_turn_away = 0; with_turn_away < 2; with_turn_away++) {
        struct reject_pair r = {0};
        mp_listener *l = NULL;
        CHECK_OK(mp_listener_new(
            &l, "127.0.0.1:0",
            &(mp_listener_options){.authkey = KEY,
                                   .authkey_len = KEYLEN,
                                   .on_reject = note_pair_reject,
                                   .on_turn_away = with_turn_away ? note_pair_turn_away : NULL,
                                   .on_reject_arg = &r}));
        struct client_arg a = {.address = mp_listener_address(l)};
        pthread_t t;
        CHECK_EQ(0, pthread_create(&t, NULL, authenticate_then_read, &a));
        mp__listener_wrap_fd = wrap_without_memory;
        mp_conn *c = NULL;
        int rc;
        while ((rc = mp_listener_accept(l, &c, 5000)) == MP_ETIMEDOUT) {
        }
        mp__listener_wrap_fd = mp_conn_from_fd;
        CHECK_RC(MP_ENOMEM, rc);
        CHECK_EQ(0, pthread_join(t, NULL));
        CHECK_RC(MP_EEOF, a.rc); /* authenticated, then closed unserved */
        struct rejects *got = with_turn_away ? &r.turned_away : &r.rejected;
        CHECK_EQ(1, got->n);
        CHECK_EQ(with_turn_away ? 0 : 1, r.rejected.n);
        CHECK(strncmp(got->peer, "127.0.0.1:", 10) == 0);
        CHECK_STR("no memory", got->reason);
        char joined[600];
        snprintf(joined, sizeof joined, "%s: no memory", got->peer);
        CHECK_STR(joined, mp_listener_last_error(l));
        CHECK_EQ(0, mp_listener_rejected(l));
        /* Memory again: the next client is served. */
        a = (struct client_arg){.address = mp_listener_address(l)};
        CHECK_EQ(0, pthread_create(&t, NULL, client_thread, &a));
        accept_and_pong(l, 5000);
        CHECK_EQ(0, pthread_join(t, NULL));
        CHECK_OK(a.rc);
        mp_listener_destroy(l);
    }
}

TEST(silent_peer_does_not_block_another_client_and_times_out)
{
    /* The silent peer's handshake deadline (3 s, counted from when the listener
     * first sees it, after t0) is the ceiling: a client served before it was not
     * held up (600 ms with a 500 ms bound failed under a loaded sanitizer run). */
    mp_listener *l = new_listener("127.0.0.1:0", 3000, false);
    int silent = raw_connect(port_of(mp_listener_address(l)));
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    uint64_t t0 = th_now_ms();
    pthread_create(&t, NULL, client_thread, &a);
    accept_and_pong(l, 5000);
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    CHECK(th_now_ms() - t0 < 3000);       /* the silent peer did not hold it up */
    CHECK_EQ(0, mp_listener_rejected(l)); /* and is still pending */
    mp_conn *c = NULL;
    while (mp_listener_rejected(l) == 0 && th_now_ms() - t0 < 30000)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 500));
    CHECK_EQ(1, mp_listener_rejected(l));
    CHECK(th_now_ms() - t0 >= 3000); /* not before its deadline */
    CHECK(strstr(mp_listener_last_error(l), "handshake timed out after 3000 ms") != NULL);
    /* The listener closed the silent peer's socket: it sees our challenge, then EOF. */
    unsigned char buf[300];
    CHECK_EQ(59, raw_recv_frame(silent, buf, sizeof buf));
    CHECK_EQ(0, read(silent, buf, 1));
    close(silent);
    mp_listener_destroy(l);
}

struct bad_peer {
    int fd;
    const void *bytes;
    size_t n;
    int challenge_len;
};

/* Reads the listener's challenge, sends the bad bytes, then waits for the
 * listener to close the connection. */
static void *bad_peer_thread(void *p)
{
    struct bad_peer *b = p;
    unsigned char buf[300];
    b->challenge_len = (int)raw_recv_frame(b->fd, buf, sizeof buf);
    if (write(b->fd, b->bytes, b->n) != (ssize_t)b->n)
        b->challenge_len = -1;
    if (b->n < 8)
        shutdown(b->fd, SHUT_WR);
    struct pollfd pfd = {b->fd, POLLIN, 0};
    while (poll(&pfd, 1, 10000) == 1 && read(b->fd, buf, sizeof buf) > 0)
        ;
    return NULL;
}

static void expect_rejected(mp_listener *l, const void *bytes, size_t n, const char *why)
{
    unsigned long before = mp_listener_rejected(l);
    struct bad_peer b = {raw_connect(port_of(mp_listener_address(l))), bytes, n, 0};
    pthread_t bt;
    pthread_create(&bt, NULL, bad_peer_thread, &b);
    /* A good client after it is served; the bad one is never returned. */
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &a);
    accept_and_pong(l, 5000);
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    for (int i = 0; i < 200 && mp_listener_rejected(l) == before; i++) {
        mp_conn *c = NULL;
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 20));
    }
    pthread_join(bt, NULL);
    CHECK_EQ(59, b.challenge_len);
    CHECK_EQ(before + 1, mp_listener_rejected(l));
    if (strstr(mp_listener_last_error(l), why) == NULL)
        th_fail(__FILE__, __LINE__, "expected \"%s\" in \"%s\"", why, mp_listener_last_error(l));
    close(b.fd);
}

TEST(listener_rejects_oversized_truncated_and_malformed_answers)
{
    mp_listener *l = new_listener("127.0.0.1:0", 3000, false);
    expect_rejected(l, "\x00\x00\x01\x01", 4, "handshake frame of 257 bytes is over the 256-byte");
    expect_rejected(l, "\x7f\xff\xff\xff", 4, "handshake frame of 2147483647 bytes");
    expect_rejected(l, "\xff\xff\xff\xff\x00\x00\x00\x01\x00\x00\x00\x00", 12,
                    "handshake frame of 4294967296 bytes");
    expect_rejected(l, "\xff\xff\xff\xfe", 4, "invalid length -2");
    expect_rejected(l, "\x00\x00\x00\x28{sha", 7, "in the middle of a frame");
    expect_rejected(l, "\x00\x00", 2, "in the middle of a frame");
    expect_rejected(l, "\x00\x00\x00\x05hello", 9, "has no {digest} prefix");
    mp_listener_destroy(l);
}

/* A raw server that sends one challenge frame (given as bytes) and waits. */
struct raw_server {
    int lfd;
    const void *bytes;
    size_t n;
};

static void *raw_server_thread(void *p)
{
    struct raw_server *s = p;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        if (s->n > 0 && write(fd, s->bytes, s->n) == (ssize_t)s->n)
            shutdown(fd, SHUT_WR);
        char b[512];
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 3000) == 1) /* until the client gives up */
            while (read(fd, b, sizeof b) > 0)
                ;
        close(fd);
    }
    return NULL;
}

static void client_against_raw(const void *bytes, size_t n, int expect, const char *why)
{
    int port;
    int lfd = raw_listen(&port, 4);
    struct raw_server s = {lfd, bytes, n};
    pthread_t t;
    pthread_create(&t, NULL, raw_server_thread, &s);
    char addr[64], err[300] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    mp_conn *c = NULL;
    CHECK_RC(expect, mp_client(&c, addr,
                               &(mp_client_options){.authkey = KEY,
                                                    .authkey_len = KEYLEN,
                                                    .handshake_timeout_ms = 300,
                                                    .errbuf = err,
                                                    .errbuf_len = sizeof err}));
    CHECK(c == NULL);
    if (strstr(err, why) == NULL)
        th_fail(__FILE__, __LINE__, "expected \"%s\" in \"%s\"", why, err);
    pthread_join(t, NULL);
    close(lfd);
}

/* Sends a {sha256} challenge, reads the answer, then writes reply in one write(). */
static void *replying_server_thread(void *p)
{
    struct raw_server *s = p;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        unsigned char buf[300] = "\x00\x00\x00\x3b#CHALLENGE#{sha256}";
        memset(buf + 23, 'r', 40);
        if (write(fd, buf, 63) == 63 && raw_recv_frame(fd, buf, sizeof buf) > 0 &&
            write(fd, s->bytes, s->n) == (ssize_t)s->n)
            shutdown(fd, SHUT_WR);
        struct pollfd pfd = {fd, POLLIN, 0};
        while (poll(&pfd, 1, 3000) == 1 && read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
    }
    return NULL;
}

TEST(client_reports_a_rejection_followed_at_once_by_more_frames)
{
    /* What a manager server does: #FAILURE#, then a traceback frame, in one go. */
    static const char failure_and_more[] = "\x00\x00\x00\x09#FAILURE#\x00\x00\x00\x05trace";
    static const char welcome_and_more[] = "\x00\x00\x00\x09#WELCOME#\x00\x00\x00\x05"
                                           "early";
    const struct {
        const char *bytes;
        int expect;
        const char *why;
    } cases[] = {
        {failure_and_more, MP_EAUTH, "digest sent was rejected: the peer answered #FAILURE#"},
        {welcome_and_more, MP_EPROTO, "9 bytes after a handshake frame before its turn"},
    };
    for (int i = 0; i < 2; i++) {
        int port;
        int lfd = raw_listen(&port, 4);
        struct raw_server srv = {lfd, cases[i].bytes, 22};
        pthread_t t;
        pthread_create(&t, NULL, replying_server_thread, &srv);
        char addr[64], err[300] = "";
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        mp_conn *c = NULL;
        CHECK_RC(cases[i].expect, mp_client(&c, addr,
                                            &(mp_client_options){.authkey = KEY,
                                                                 .authkey_len = KEYLEN,
                                                                 .errbuf = err,
                                                                 .errbuf_len = sizeof err}));
        if (strstr(err, cases[i].why) == NULL)
            th_fail(__FILE__, __LINE__, "expected \"%s\" in \"%s\"", cases[i].why, err);
        pthread_join(t, NULL);
        close(lfd);
    }
}

TEST(client_rejects_bad_challenges_and_silent_servers)
{
    client_against_raw("\x00\x00\x01\x2c", 4, MP_EPROTO, "300 bytes is over the 256-byte limit");
    client_against_raw("\x00\x00\x00\x3b#CHALLENGE#{sha", 19, MP_ETRUNCATED, "middle of a frame");
    client_against_raw("\x00\x00\x00\x05hello", 9, MP_EPROTO, "not a #CHALLENGE#");
    client_against_raw("\x00\x00\x00\x13#CHALLENGE#{sha256}", 23, MP_EAUTH, "too short");
    client_against_raw("\x00\x00\x00\x2b#CHALLENGE#{sha512}"
                       "012345678901234567890123",
                       47, MP_EAUTH, "unsupported digest {sha512}");
    client_against_raw("", 0, MP_ETIMEDOUT, "timed out after 300 ms");
}

/* ---- address families ---- */

static void round_trip_at(const char *address)
{
    mp_listener *l = new_listener(address, 0, false);
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &a);
    accept_and_pong(l, 5000);
    pthread_join(t, NULL);
    if (a.rc != 0)
        th_fail(__FILE__, __LINE__, "client at %s: %s: %s", address, mp_err_name(a.rc), a.err);
    mp_listener_destroy(l);
}

TEST(ipv6_loopback_works_with_c_and_python_peers)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok)
        SKIP("::1 is not available here");
    round_trip_at("[::1]:0");
    const char *py = fx_python("3.13");
    if (py == NULL)
        SKIP("python 3.13 is not installed under pyenv here (C-only IPv6 part passed)");
    mp_listener *l = new_listener("[::1]:0", 0, false);
    CHECK(strncmp(mp_listener_address(l), "[::1]:", 6) == 0);
    mp_listener_destroy(l);
    /* A python listener on ::1 for the C client. (CPython's Client cannot reach
     * IPv6: it picks AF_INET for every (host, port) tuple.) */
    mp_conn *c;
    char out[512];
    py_proc p = py_start(py, "listener", "[::1]:0", KEY);
    char addr[128];
    py_line(&p, addr, sizeof addr);
    CHECK(strncmp(addr, "[::1]:", 6) == 0);
    CHECK_OK(mp_client(&c, addr, &(mp_client_options){.authkey = KEY, .authkey_len = KEYLEN}));
    CHECK_OK(mp_conn_send_bytes(c, "v6", 2));
    recv_expect(c, "echo:v6");
    CHECK_OK(mp_conn_send_bytes(c, "end", 3));
    recv_expect(c, "end");
    CHECK_EQ(0, py_finish(&p, out, sizeof out));
    mp_conn_destroy(c);
}

TEST(unix_path_listener_removes_its_file_on_close)
{
    char dir[] = "/tmp/mproc-listener-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    mp_listener *l = new_listener(path, 0, false);
    CHECK_STR(path, mp_listener_address(l));
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    mp_listener *l2 = NULL;
    CHECK_RC(MP_EADDRINUSE, mp_listener_new(&l2, path, NULL));
    struct client_arg a = {.address = path};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &a);
    accept_and_pong(l, 5000);
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    CHECK_OK(mp_listener_close(l));
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
    CHECK_OK(mp_listener_close(l));
    mp_listener_destroy(l);
    mp_conn *c = NULL;
    char err[200] = "";
    CHECK_RC(MP_ENOENT,
             mp_client(&c, path, &(mp_client_options){.errbuf = err, .errbuf_len = 200}));
    CHECK(strstr(err, "no Unix socket at") != NULL);
    rmdir(dir);
}

/* Someone removes our socket file and binds their own socket at the same path:
 * our close must not remove theirs (only the file we created is ours). */
TEST(unix_listener_close_leaves_a_socket_another_process_bound_at_its_path)
{
    char dir[] = "/tmp/mproc-listener-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[96];
    snprintf(path, sizeof path, "%s/sock", dir);
    mp_listener *l = new_listener(path, 0, false);
    CHECK(unlink(path) == 0);
    int other = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    CHECK(bind(other, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(other, 1) == 0);
    CHECK_OK(mp_listener_close(l));
    struct stat st;
    bool kept = stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
    mp_listener_destroy(l);
    close(other);
    unlink(path);
    rmdir(dir);
    CHECK(kept);
}

TEST(abstract_socket_works_with_c_and_python_clients)
{
    char name[64];
    snprintf(name, sizeof name, "@mproc-test-%d", (int)getpid());
    round_trip_at(name);
    const char *py = fx_python("3.13");
    if (py == NULL)
        py = fx_python("3.11");
    if (py == NULL)
        SKIP("no python under pyenv for the abstract-socket python client");
    mp_listener *l = new_listener(name, 0, false);
    CHECK_STR(name, mp_listener_address(l));
    py_proc p = py_start(py, "client", name, KEY);
    mp_conn *c;
    CHECK_OK(mp_listener_accept(l, &c, 20000));
    serve_echo(c);
    char out[512];
    CHECK_EQ(0, py_finish(&p, out, sizeof out));
    mp_conn_destroy(c);
    mp_listener_destroy(l);
}

/* ---- many clients, close, fileno ---- */

TEST(many_concurrent_clients_are_all_served)
{
    enum { N = 40 };
    mp_listener *l = new_listener("127.0.0.1:0", 0, false);
    struct client_arg a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct client_arg){.address = mp_listener_address(l)};
        pthread_create(&t[i], NULL, client_thread, &a[i]);
    }
    for (int i = 0; i < N; i++)
        accept_and_pong(l, 10000);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (a[i].rc != 0)
            th_fail(__FILE__, __LINE__, "client %d: %s: %s", i, mp_err_name(a[i].rc), a[i].err);
    }
    CHECK_EQ(0, mp_listener_rejected(l));
    mp_listener_destroy(l);
}

TEST(more_silent_peers_than_handshake_slots_only_delay_a_good_client)
{
    enum { SILENT = 70 }; /* more than the 64 handshakes a listener runs at once */
    mp_listener *l = new_listener("127.0.0.1:0", 400, false);
    int silent[SILENT];
    for (int i = 0; i < SILENT; i++)
        silent[i] = raw_connect(port_of(mp_listener_address(l)));
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &a);
    accept_and_pong(l, 10000); /* after the silent ones ahead of it time out */
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    mp_conn *c = NULL;
    while (mp_listener_rejected(l) < SILENT)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 1000));
    CHECK_EQ(SILENT, mp_listener_rejected(l));
    for (int i = 0; i < SILENT; i++)
        close(silent[i]);
    mp_listener_destroy(l);
}

static void *close_later(void *p)
{
    th_sleep_ms(150);
    mp_listener_close(p);
    return NULL;
}

TEST(close_from_another_thread_ends_a_blocked_accept)
{
    mp_listener *l = new_listener("127.0.0.1:0", 0, false);
    pthread_t t;
    pthread_create(&t, NULL, close_later, l);
    mp_conn *c = NULL;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ECLOSED, mp_listener_accept(l, &c, -1));
    CHECK(th_now_ms() - t0 < 3000);
    pthread_join(t, NULL);
    CHECK_RC(MP_ECLOSED, mp_listener_fileno(l));
    CHECK_RC(MP_ECLOSED, mp_listener_accept(l, &c, 0));
    mp_listener_destroy(l);
}

TEST(fileno_polls_readable_when_accept_can_progress)
{
    mp_listener *l = new_listener("127.0.0.1:0", 0, false);
    struct pollfd pfd = {mp_listener_fileno(l), POLLIN, 0};
    CHECK_EQ(0, poll(&pfd, 1, 50));
    struct client_arg a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &a);
    mp_conn *s = NULL;
    for (int i = 0; i < 100 && s == NULL; i++) {
        CHECK_EQ(1, poll(&pfd, 1, 5000));
        int rc = mp_listener_accept(l, &s, 0);
        CHECK(rc == 0 || rc == MP_ETIMEDOUT);
    }
    CHECK(s != NULL);
    recv_expect(s, "ping");
    CHECK_OK(mp_conn_send_bytes(s, "pong", 4));
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    mp_conn_destroy(s);
    mp_listener_destroy(l);
}

/* ---- connect failures ---- */

TEST(client_connect_refused_and_timed_out)
{
    int port;
    int fd = raw_listen(&port, 1);
    close(fd); /* nothing listens there now */
    char addr[64], err[200] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    mp_conn *c = NULL;
    CHECK_RC(MP_ECONNREFUSED,
             mp_client(&c, addr, &(mp_client_options){.errbuf = err, .errbuf_len = sizeof err}));
    CHECK(strstr(err, "connection refused by '127.0.0.1:") != NULL);
    /* A Unix listener that never accepts, its backlog full: the connect deadline. */
    char name[64];
    snprintf(name, sizeof name, "@mproc-full-%d", (int)getpid());
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path + 1, name + 1, strlen(name) - 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    CHECK(bind(lfd, (struct sockaddr *)&un, len) == 0 && listen(lfd, 0) == 0);
    mp_conn *fill[4] = {NULL};
    int filled = 0;
    while (filled < 4 &&
           mp_client(&fill[filled], name, &(mp_client_options){.connect_timeout_ms = 100}) == 0)
        filled++;
    CHECK(filled < 4);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT,
             mp_client(&c, name,
                       &(mp_client_options){
                           .connect_timeout_ms = 200, .errbuf = err, .errbuf_len = sizeof err}));
    CHECK(th_now_ms() - t0 >= 190);
    CHECK(strstr(err, "timed out after 200 ms") != NULL);
    for (int i = 0; i < filled; i++)
        mp_conn_destroy(fill[i]);
    close(lfd);
}

TEST(client_with_key_against_listener_without_key_times_out)
{
    mp_listener *l;
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0", NULL));
    mp_conn *c = NULL;
    char err[300] = "";
    CHECK_RC(MP_ETIMEDOUT, mp_client(&c, mp_listener_address(l),
                                     &(mp_client_options){.authkey = KEY,
                                                          .authkey_len = KEYLEN,
                                                          .handshake_timeout_ms = 200,
                                                          .errbuf = err,
                                                          .errbuf_len = sizeof err}));
    CHECK(strstr(err, "does the listener use an authkey?") != NULL);
    mp_conn *s;
    CHECK_OK(mp_listener_accept(l, &s, 1000)); /* it was accepted, without a handshake */
    mp_conn_destroy(s);
    mp_listener_destroy(l);
}

/* The documented codes of the handshake steps for a connection they cannot use. */
TEST(handshake_steps_on_a_one_way_connection_are_ebadf)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    mp_conn *c = NULL;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, false));
    CHECK_RC(MP_EBADF, mp_deliver_challenge(c, KEY, KEYLEN, NULL));
    CHECK_RC(MP_EBADF, mp_answer_challenge(c, KEY, KEYLEN, NULL));
    CHECK_RC(MP_EINVAL, mp_answer_challenge(c, KEY, KEYLEN, &(mp_auth_options){.timeout_ms = -3}));
    mp_conn_destroy(c);
    close(sv[1]);
}

/* A forked child that closes its inherited copy of the listener (the usual thing
 * after fork) must not take the parent's peers mid-handshake out of the epoll set
 * the two processes share: the parent still answers them at once. */
TEST(child_closing_an_inherited_listener_leaves_the_parents_handshakes_alone)
{
    mp_listener *l = new_listener("127.0.0.1:0", 10000, false);
    int peer = raw_connect(port_of(mp_listener_address(l)));
    mp_conn *c = NULL;
    CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 100)); /* peer is now pending */
    unsigned char buf[300];
    CHECK_EQ(59, raw_recv_frame(peer, buf, sizeof buf));
    fflush(NULL);
    int pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        mp_listener_destroy(l);
        _exit(0);
    }
    CHECK_EQ(0, th_wait(pid));
    CHECK(write(peer, "\x00\x00\x00\x05hello", 9) == 9);
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 200));
    while (mp_listener_rejected(l) == 0 && th_now_ms() - t0 < 8000)
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 100));
    CHECK_EQ(1, mp_listener_rejected(l));
    CHECK(th_now_ms() - t0 < 8000); /* seen when it came, not only at its 10 s deadline */
    CHECK(strstr(mp_listener_last_error(l), "has no {digest} prefix") != NULL);
    close(peer);
    mp_listener_destroy(l);
}

/* A slow-loris peer that sends its answer one byte at a time, each well within
 * any per-read limit: the listener's deadline is for the whole handshake, from
 * the peer's arrival, so it is dropped at that deadline all the same. */
TEST(listener_drops_a_slow_loris_peer_at_the_handshake_deadline)
{
    mp_listener *l = new_listener("127.0.0.1:0", 500, false);
    int peer = raw_connect(port_of(mp_listener_address(l)));
    mp_conn *c = NULL;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 50));
    unsigned char buf[300];
    CHECK_EQ(59, raw_recv_frame(peer, buf, sizeof buf));
    static const char answer[] = "\x00\x00\x00\x28{sha256}0123456789012345678901234567890";
    size_t sent = 0;
    while (mp_listener_rejected(l) == 0 && th_now_ms() - t0 < 3000 && sent < sizeof answer - 1) {
        if (send(peer, answer + sent, 1, MSG_NOSIGNAL) == 1)
            sent++;
        CHECK_RC(MP_ETIMEDOUT, mp_listener_accept(l, &c, 100));
    }
    CHECK_EQ(1, mp_listener_rejected(l));
    uint64_t took = th_now_ms() - t0;
    CHECK(took >= 450 && took < 2500);
    CHECK(strstr(mp_listener_last_error(l), "handshake timed out after 500 ms") != NULL);
    close(peer);
    mp_listener_destroy(l);
}

/* A server that sends its challenge one byte every 50 ms. */
static void *slow_server_thread(void *p)
{
    struct raw_server *s = p;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        const unsigned char *b = s->bytes;
        for (size_t i = 0; i < s->n; i++) {
            if (send(fd, b + i, 1, MSG_NOSIGNAL) != 1)
                break;
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, 50) == 1) { /* the client gave up */
                char x[64];
                if (read(fd, x, sizeof x) <= 0)
                    break;
            }
        }
        close(fd);
    }
    return NULL;
}

TEST(client_handshake_deadline_is_for_the_whole_handshake_not_per_read)
{
    int port;
    int lfd = raw_listen(&port, 4);
    unsigned char chal[63] = "\x00\x00\x00\x3b#CHALLENGE#{sha256}";
    memset(chal + 23, 'r', 40);
    struct raw_server s = {lfd, chal, sizeof chal};
    pthread_t t;
    pthread_create(&t, NULL, slow_server_thread, &s);
    char addr[64], err[300] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    mp_conn *c = NULL;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_client(&c, addr,
                                     &(mp_client_options){.authkey = KEY,
                                                          .authkey_len = KEYLEN,
                                                          .handshake_timeout_ms = 400,
                                                          .errbuf = err,
                                                          .errbuf_len = sizeof err}));
    uint64_t took = th_now_ms() - t0;
    CHECK(took >= 350 && took < 2500);
    CHECK(strstr(err, "timed out after 400 ms") != NULL);
    pthread_join(t, NULL);
    close(lfd);
}

/* A name in "host:port" resolves to IPv4, as CPython's (host, port): where
 * "localhost" lists ::1 first (the usual /etc/hosts of Debian and Ubuntu), a
 * listener on "localhost:0" must still be on 127.0.0.1, where CPython's
 * Client(('localhost', port)) looks for it. (Here localhost may be IPv4 only, so
 * this can only fail on such a machine.) */
TEST(host_names_resolve_to_ipv4_as_cpython)
{
    mp_listener *l;
    CHECK_OK(mp_listener_new(&l, "localhost:0", NULL));
    CHECK(strncmp(mp_listener_address(l), "127.", 4) == 0);
    mp_listener_destroy(l);
}

struct empty_key_client {
    const char *address;
    int rc;
};

static void *empty_key_client_thread(void *p)
{
    struct empty_key_client *a = p;
    mp_conn *c = NULL;
    a->rc = mp_client(&c, a->address, &(mp_client_options){.authkey = "", .authkey_len = 0});
    if (a->rc == 0) {
        a->rc = mp_conn_send_bytes(c, "ping", 4);
        mp_conn_destroy(c);
    }
    return NULL;
}

/* The empty key (non-NULL, length 0) runs the handshake, with a MAC over an
 * empty key, and a different key is still told apart from it. */
TEST(empty_authkey_runs_the_handshake)
{
    mp_listener *l;
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0",
                             &(mp_listener_options){.authkey = "", .authkey_len = 0}));
    struct empty_key_client a = {.address = mp_listener_address(l)};
    pthread_t t;
    pthread_create(&t, NULL, empty_key_client_thread, &a);
    mp_conn *s;
    CHECK_OK(mp_listener_accept(l, &s, 5000));
    pthread_join(t, NULL);
    CHECK_OK(a.rc);
    recv_expect(s, "ping");
    mp_conn_destroy(s);
    unsigned char chal[48] = "{sha256}";
    memset(chal + 8, 'x', 40);
    unsigned char ans[MP_HANDSHAKE_FRAME_MAX];
    size_t n;
    CHECK_OK(mp__auth_respond("", 0, chal, sizeof chal, false, ans, &n, NULL, 0));
    CHECK_OK(mp__auth_verify("", 0, chal, sizeof chal, ans, n, false, NULL, 0));
    CHECK_RC(MP_EAUTH, mp__auth_verify("k", 1, chal, sizeof chal, ans, n, false, NULL, 0));
    mp_listener_destroy(l);
}

/* mproc/timeout.h: in an options field MP_TIMEOUT_NOW is an immediate timeout (0
 * is the default deadline, -1 none); below -1 otherwise is MP_EINVAL. */
TEST(options_timeout_now_is_an_immediate_timeout)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_deliver_challenge(a, KEY, KEYLEN,
                                                &(mp_auth_options){.timeout_ms = MP_TIMEOUT_NOW}));
    CHECK(th_now_ms() - t0 < 4000); /* not the 5 s default */
    CHECK_RC(MP_EINVAL, mp_answer_challenge(b, KEY, KEYLEN, &(mp_auth_options){.timeout_ms = -3}));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    mp_conn *c = NULL;
    CHECK_RC(MP_EINVAL,
             mp_client(&c, "127.0.0.1:1", &(mp_client_options){.connect_timeout_ms = -3}));
    CHECK_RC(MP_EINVAL,
             mp_client(&c, "127.0.0.1:1", &(mp_client_options){.handshake_timeout_ms = -3}));
    mp_listener *l = NULL;
    CHECK_RC(MP_EINVAL, mp_listener_new(&l, "127.0.0.1:0",
                                        &(mp_listener_options){.handshake_timeout_ms = -3}));
    CHECK_OK(mp_listener_new(&l, "127.0.0.1:0",
                             &(mp_listener_options){.handshake_timeout_ms = MP_TIMEOUT_NOW}));
    mp_listener_close(l);
    mp_listener_destroy(l);
}

/* ---- frames with deadlines (net/frame.c, the manager client's transport) ---- */

static int recv_frame_ms(int fd, int first_ms, int rest_ms, void **out, size_t *len, bool *extra)
{
    mp__deadline d;
    CHECK_OK(mp__deadline_init(&d, first_ms));
    return mp__net_recv_frame(fd, &d, rest_ms, 0, out, len, extra);
}

TEST(frames_with_deadlines_follow_the_wire_format_and_end_on_time)
{
    int sv[2];
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    void *out;
    size_t len;
    bool extra;
    /* A frame sent is a frame received; a second one behind it is reported. */
    CHECK_OK(mp__net_send_frame(sv[0], "hello", 5, &forever));
    CHECK_OK(mp__net_send_frame(sv[0], "more", 4, &forever));
    th_sleep_ms(20);
    CHECK_OK(recv_frame_ms(sv[1], 1000, 1000, &out, &len, &extra));
    CHECK_EQ((size_t)5, len);
    CHECK(memcmp(out, "hello", 5) == 0);
    CHECK(extra);
    free(out);
    /* Nothing comes: MP_ETIMEDOUT at the first deadline. */
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sv[1], 100, 5000, &out, &len, &extra));
    CHECK(th_now_ms() - t0 >= 90);
    /* A large frame (memory grows past the first allocation as it arrives). */
    size_t big = (size_t)3 << 20;
    unsigned char *m = malloc(big);
    for (size_t i = 0; i < big; i++)
        m[i] = (unsigned char)(i * 7);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(mp__net_send_frame(sv[0], m, big, &forever) == 0 ? 0 : 1);
    }
    CHECK_OK(recv_frame_ms(sv[1], 5000, 5000, &out, &len, &extra));
    CHECK_EQ(big, len);
    CHECK(memcmp(out, m, big) == 0);
    CHECK(!extra);
    free(out);
    free(m);
    int st;
    CHECK_EQ(pid, waitpid(pid, &st, 0));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Half a frame, then silence: MP_ETIMEDOUT once rest_ms after its first byte
     * has passed, although the first deadline is far. */
    unsigned char half[6] = {0, 0, 0, 10, 'a', 'b'};
    CHECK_EQ(6, write(sv[0], half, sizeof half));
    t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sv[1], -1, 200, &out, &len, &extra));
    uint64_t took = th_now_ms() - t0;
    CHECK(took >= 180 && took < 3000);
    /* A length CPython cannot send. */
    int sp[2];
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    unsigned char bad[4] = {0xff, 0xff, 0xff, 0xfe};
    CHECK_EQ(4, write(sp[0], bad, 4));
    CHECK_RC(MP_EPROTO, recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    close(sp[0]);
    close(sp[1]);
    /* Closed inside a frame, and between frames. */
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    CHECK_EQ(6, write(sp[0], half, sizeof half));
    close(sp[0]);
    CHECK_RC(MP_ETRUNCATED, recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    CHECK_RC(MP_EEOF, recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    close(sp[1]);
    /* A peer that does not read: the send ends at its deadline. */
    mp__deadline soon;
    mp__deadline_init(&soon, 200);
    CHECK_RC(MP_ETIMEDOUT, mp__net_send_frame(sv[1], m = calloc(1, 8 << 20), 8 << 20, &soon));
    free(m);
    close(sv[0]);
    close(sv[1]);
}

/* Sends one frame of text on fd after ms, from a child. */
static pid_t send_frame_later(int fd, const char *text, int ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        mp__deadline forever;
        mp__deadline_init(&forever, -1);
        th_sleep_ms(ms);
        _exit(mp__net_send_frame(fd, text, strlen(text), &forever) == 0 ? 0 : 1);
    }
    return pid;
}

static void reap_ok(pid_t pid)
{
    int st;
    CHECK_EQ(pid, waitpid(pid, &st, 0));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The manager's channels: a receive timeout set once (mp__net_set_rcvtimeo) and
 * vouched for by the thread (mp__net_trust_rcvtimeo) lets a reply be awaited by
 * the socket's blocking recv; every deadline still holds, as on the poll path. */
TEST(frames_on_a_vouched_receive_timeout_still_end_on_time)
{
    int sv[2];
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK_RC(MP_EINVAL, mp__net_set_rcvtimeo(sv[1], 0));
    CHECK_RC(MP_EINVAL, mp__net_set_rcvtimeo(-1, 50));
    CHECK_OK(mp__net_set_rcvtimeo(sv[1], 50));
    mp__net_trust_rcvtimeo(sv[1], 50);
    void *out;
    size_t len;
    bool extra;
    /* Nothing comes: MP_ETIMEDOUT at the first deadline, not at the receive
     * timeout, and not much later. */
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sv[1], 300, 5000, &out, &len, &extra));
    uint64_t took = th_now_ms() - t0;
    CHECK(took >= 290);
    CHECK(took < 2000);
    /* A reply that comes after several receive timeouts, with a finite and with
     * no deadline. */
    pid_t pid = send_frame_later(sv[0], "late", 180);
    CHECK_OK(recv_frame_ms(sv[1], 5000, 1000, &out, &len, &extra));
    CHECK_EQ((size_t)4, len);
    CHECK(memcmp(out, "late", 4) == 0);
    CHECK(!extra);
    free(out);
    reap_ok(pid);
    pid = send_frame_later(sv[0], "later", 180);
    CHECK_OK(recv_frame_ms(sv[1], -1, 1000, &out, &len, &extra));
    CHECK_EQ((size_t)5, len);
    free(out);
    reap_ok(pid);
    /* Half a frame, then silence: the rest's deadline holds. */
    unsigned char half[6] = {0, 0, 0, 10, 'a', 'b'};
    CHECK_EQ(6, write(sv[0], half, sizeof half));
    t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sv[1], -1, 200, &out, &len, &extra));
    took = th_now_ms() - t0;
    CHECK(took >= 180 && took < 3000);
    /* Bytes after a frame are reported. */
    int sp[2];
    CHECK_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    CHECK_OK(mp__net_set_rcvtimeo(sp[1], 50));
    mp__net_trust_rcvtimeo(sp[1], 50);
    mp__deadline forever;
    mp__deadline_init(&forever, -1);
    CHECK_OK(mp__net_send_frame(sp[0], "one", 3, &forever));
    CHECK_OK(mp__net_send_frame(sp[0], "two", 3, &forever));
    th_sleep_ms(20);
    CHECK_OK(recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    CHECK(extra);
    free(out);
    /* A socket made non-blocking behind the vouch: the wait is a poll, not a spin
     * of recvs that say EAGAIN. */
    CHECK_EQ(0, fcntl(sp[1], F_SETFL, fcntl(sp[1], F_GETFL) | O_NONBLOCK));
    double c0 = cpu_ms();
    t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sp[1], 300, 1000, &out, &len, &extra));
    CHECK(th_now_ms() - t0 >= 290);
    CHECK(cpu_ms() - c0 < 100);
    /* Closed inside a frame, then between frames. */
    CHECK_EQ(6, write(sp[0], half, sizeof half));
    close(sp[0]);
    CHECK_RC(MP_ETRUNCATED, recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    CHECK_RC(MP_EEOF, recv_frame_ms(sp[1], 1000, 1000, &out, &len, &extra));
    close(sp[1]);
    mp__net_trust_rcvtimeo(-1, 0);
    /* Not vouched for (another descriptor): the poll path, same results. */
    CHECK_RC(MP_ETIMEDOUT, recv_frame_ms(sv[1], 100, 1000, &out, &len, &extra));
    close(sv[0]);
    close(sv[1]);
}
