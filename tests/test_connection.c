/* mp_pipe, mp_conn_* and mp_wait: CPython's Pipe and Connection in C. */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "queue/conn.h"

static void pattern(unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)((i + seed) % 251);
}

static bool has_pattern(const unsigned char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)((i + seed) % 251))
            return false;
    return true;
}

static void recv_expect(mp_conn *c, const char *expected)
{
    void *msg = NULL;
    size_t len = 99;
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK(msg != NULL);
    CHECK_EQ(strlen(expected), len);
    CHECK(memcmp(msg, expected, len) == 0);
    free(msg);
}

static void write_raw(int fd, const void *buf, size_t n)
{
    CHECK_EQ((long long)n, write(fd, buf, n));
}

TEST(conn_duplex_pipe_carries_messages_both_ways)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK(mp_conn_readable(a) && mp_conn_writable(a));
    CHECK(mp_conn_readable(b) && mp_conn_writable(b));
    CHECK_OK(mp_conn_send_bytes(a, "ping", 4));
    recv_expect(b, "ping");
    CHECK_OK(mp_conn_send_bytes(b, "pong!", 5));
    recv_expect(a, "pong!");
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_descriptors_are_close_on_exec)
{
    mp_conn *a, *b, *r, *w;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_pipe(&r, &w, false));
    mp_conn *all[] = {a, b, r, w};
    for (int i = 0; i < 4; i++)
        CHECK(fcntl(mp_conn_fileno(all[i]), F_GETFD) & FD_CLOEXEC);
    for (int i = 0; i < 4; i++)
        mp_conn_destroy(all[i]);
}

TEST(conn_simplex_pipe_reads_on_first_writes_on_second)
{
    mp_conn *r, *w;
    CHECK_OK(mp_pipe(&r, &w, false));
    CHECK(mp_conn_readable(r) && !mp_conn_writable(r));
    CHECK(!mp_conn_readable(w) && mp_conn_writable(w));
    void *msg;
    size_t len;
    CHECK_RC(MP_EBADF, mp_conn_send_bytes(r, "x", 1));
    CHECK_RC(MP_EBADF, mp_conn_recv_bytes(w, &msg, &len, 0));
    CHECK_RC(MP_EBADF, mp_conn_poll(w, 0));
    CHECK_OK(mp_conn_send_bytes(w, "one way", 7));
    recv_expect(r, "one way");
    mp_conn_destroy(r);
    mp_conn_destroy(w);
}

TEST(conn_messages_keep_their_boundaries)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    static const size_t sizes[] = {0, 1, 3, 0, 4096, 65535, 65536, 65537, 0, 7};
    static unsigned char buf[70000];
    size_t n = sizeof sizes / sizeof sizes[0];
    /* Written back to back before any read: small ones share a read-ahead. */
    for (size_t i = 0; i < 4; i++) {
        pattern(buf, sizes[i], (unsigned)i);
        CHECK_OK(mp_conn_send_bytes(a, buf, sizes[i]));
    }
    for (size_t i = 0; i < n; i++) {
        if (i >= 4) {
            pattern(buf, sizes[i], (unsigned)i);
            CHECK_OK(mp_conn_send_bytes(a, buf, sizes[i]));
        }
        void *msg;
        size_t len;
        CHECK_OK(mp_conn_recv_bytes(b, &msg, &len, 0));
        CHECK_EQ(sizes[i], len);
        CHECK(has_pattern(msg, len, (unsigned)i));
        free(msg);
    }
    CHECK_EQ(0, mp_conn_poll(b, 0));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

/* The read-ahead buffer starts small and grows while reads fill it: a stream of
 * messages of every size around its steps (1 KiB .. 64 KiB), sent by another
 * process as fast as it can, arrives whole and in order, through both receives. */
static size_t stream_size(int k)
{
    static const size_t sizes[] = {0,    1,    7,    1011, 1012, 1013,  1020,  2036,
                                   2048, 3000, 4084, 8180, 100,  16372, 40000, 65536};
    return sizes[(size_t)k * 7 % (sizeof sizes / sizeof sizes[0])];
}

static int send_stream(void *arg)
{
    mp_conn *c = arg;
    static unsigned char buf[65536];
    for (int k = 0; k < 3000; k++) {
        pattern(buf, stream_size(k), (unsigned)k);
        CHECK_OK(mp_conn_send_bytes(c, buf, stream_size(k)));
    }
    return 0;
}

TEST(conn_read_ahead_grows_with_a_stream_and_keeps_boundaries)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    int pid = th_fork(send_stream, a);
    static unsigned char into[65536];
    for (int k = 0; k < 3000; k++) {
        size_t len;
        if (k % 2) {
            CHECK_OK(mp_conn_recv_bytes_into(b, into, sizeof into, 0, &len));
            CHECK_EQ(stream_size(k), len);
            CHECK(has_pattern(into, len, (unsigned)k));
        } else {
            void *msg;
            CHECK_OK(mp_conn_recv_bytes(b, &msg, &len, 0));
            CHECK_EQ(stream_size(k), len);
            CHECK(has_pattern(msg, len, (unsigned)k));
            free(msg);
        }
    }
    CHECK_EQ(0, th_wait(pid));
    mp_conn_destroy(a);
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(b, &(void *){NULL}, &(size_t){0}, 0));
    mp_conn_destroy(b);
}

struct big {
    mp_conn *c;
    size_t n;
    int count;
};

static int send_big(void *arg)
{
    struct big *bg = arg;
    unsigned char *buf = malloc(bg->n);
    CHECK(buf != NULL);
    for (int k = 0; k < bg->count; k++) {
        pattern(buf, bg->n, (unsigned)k);
        CHECK_OK(mp_conn_send_bytes(bg->c, buf, bg->n));
    }
    free(buf);
    return 0;
}

TEST(conn_large_message_arrives_whole)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn *r, *w;
        CHECK_OK(mp_pipe(&r, &w, duplex));
        struct big bg = {w, (size_t)40 << 20, 2};
        int pid = th_fork(send_big, &bg);
        mp_conn_close(w);
        for (int k = 0; k < bg.count; k++) {
            void *msg;
            size_t len;
            CHECK_OK(mp_conn_recv_bytes(r, &msg, &len, 0));
            CHECK_EQ(bg.n, len);
            CHECK(has_pattern(msg, len, (unsigned)k));
            free(msg);
        }
        void *msg;
        size_t len;
        CHECK_RC(MP_EEOF, mp_conn_recv_bytes(r, &msg, &len, 0));
        CHECK_EQ(0, th_wait(pid));
        mp_conn_destroy(r);
        mp_conn_destroy(w);
    }
}

TEST(conn_peer_close_gives_eof_between_messages)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "last", 4));
    mp_conn_destroy(a);
    CHECK_EQ(1, mp_conn_poll(b, 0));
    recv_expect(b, "last");
    CHECK_EQ(1, mp_conn_poll(b, 0)); /* end-of-file is readable */
    void *msg;
    size_t len;
    char buf[8];
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(b, &msg, &len, 0));
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len));
    mp_conn_destroy(b);
}

TEST(conn_peer_close_mid_message_is_truncation)
{
    /* Cut inside the payload. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    write_raw(sv[1],
              "\0\0\0\x64"
              "only ten..",
              14);
    close(sv[1]);
    void *msg;
    size_t len;
    CHECK_RC(MP_ETRUNCATED, mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(c, &msg, &len, 0));
    mp_conn_destroy(c);

    /* Cut inside the header, and inside a 64-bit length. */
    static const char *cuts[] = {"\0\0", "\xff\xff\xff\xff\0\0\0"};
    static const size_t cut_len[] = {2, 7};
    for (int i = 0; i < 2; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
        write_raw(sv[1], cuts[i], cut_len[i]);
        close(sv[1]);
        CHECK_RC(MP_ETRUNCATED, mp_conn_recv_bytes(c, &msg, &len, 0));
        mp_conn_destroy(c);
    }
}

TEST(conn_reads_64bit_length_frames)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    write_raw(sv[1], "\xff\xff\xff\xff\0\0\0\0\0\0\0\x05hello", 17);
    recv_expect(c, "hello");
    /* A negative length other than -1 is not something CPython sends. */
    write_raw(sv[1], "\xff\xff\xff\xfe", 4);
    void *msg;
    size_t len;
    CHECK_RC(MP_EPROTO, mp_conn_recv_bytes(c, &msg, &len, 0));
    close(sv[1]);
    mp_conn_destroy(c);
}

TEST(conn_frame_header_switches_to_64bit_above_int32)
{
    unsigned char h[MP__FRAME_HEADER_MAX];
    CHECK_EQ(4, mp__frame_header(0, h));
    CHECK(memcmp(h, "\0\0\0\0", 4) == 0);
    CHECK_EQ(4, mp__frame_header(0x7fffffff, h));
    CHECK(memcmp(h, "\x7f\xff\xff\xff", 4) == 0);
    CHECK_EQ(12, mp__frame_header(0x80000000u, h));
    CHECK(memcmp(h, "\xff\xff\xff\xff\0\0\0\0\x80\0\0\0", 12) == 0);
    CHECK_EQ(12, mp__frame_header(0x0102030405060708ull, h));
    CHECK(memcmp(h, "\xff\xff\xff\xff\x01\x02\x03\x04\x05\x06\x07\x08", 12) == 0);
}

TEST(conn_recv_into_too_short_keeps_the_message)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "0123456789", 10));
    CHECK_OK(mp_conn_send_bytes(a, "next", 4));
    char buf[16] = {0};
    size_t len = 0;
    CHECK_RC(MP_ETOOSHORT, mp_conn_recv_bytes_into(b, buf, 9, 0, &len));
    CHECK_EQ(10, len);
    CHECK_RC(MP_ETOOSHORT, mp_conn_recv_bytes_into(b, buf, 16, 7, &len));
    CHECK_EQ(1, mp_conn_poll(b, 0));
    CHECK_OK(mp_conn_recv_bytes_into(b, buf, 16, 6, &len));
    CHECK_EQ(10, len);
    CHECK(memcmp(buf + 6, "0123456789", 10) == 0);
    recv_expect(b, "next");
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_recv_maxlength_refuses_and_keeps_the_message)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "abcdef", 6));
    void *msg = NULL;
    size_t len = 0;
    CHECK_RC(MP_EMSGSIZE, mp_conn_recv_bytes(b, &msg, &len, 5));
    CHECK_EQ(6, len);
    CHECK(msg == NULL);
    CHECK_OK(mp_conn_recv_bytes(b, &msg, &len, 6));
    CHECK_EQ(6, len);
    free(msg);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_send_range_is_checked_like_python)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    const char *s = "0123456789";
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes_range(a, s, 10, 11, 0));
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes_range(a, s, 10, 5, 6));
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes_range(a, s, 10, 1, SIZE_MAX - 1));
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes_range(a, NULL, 10, 0, 1));
    CHECK_EQ(0, mp_conn_poll(b, 0)); /* nothing was sent */
    CHECK_OK(mp_conn_send_bytes_range(a, s, 10, 3, 4));
    recv_expect(b, "3456");
    CHECK_OK(mp_conn_send_bytes_range(a, s, 10, 7, MP_CONN_REST));
    recv_expect(b, "789");
    CHECK_OK(mp_conn_send_bytes_range(a, s, 10, 10, MP_CONN_REST));
    recv_expect(b, "");
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

static int send_later(void *arg)
{
    mp_conn *c = arg;
    th_sleep_ms(150);
    CHECK_OK(mp_conn_send_bytes(c, "late", 4));
    return 0;
}

TEST(conn_poll_times_out_then_sees_a_message)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    uint64_t t0 = th_now_ms();
    CHECK_EQ(0, mp_conn_poll(b, 100));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 100 && waited < 10000);
    CHECK_RC(MP_EINVAL, mp_conn_poll(b, -2));
    int pid = th_fork(send_later, a);
    CHECK_EQ(1, mp_conn_poll(b, -1));
    recv_expect(b, "late");
    CHECK_EQ(0, th_wait(pid));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_send_to_closed_peer_is_epipe_not_sigpipe)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn *r, *w;
        CHECK_OK(mp_pipe(&r, &w, duplex));
        mp_conn_destroy(r);
        int rc = mp_conn_send_bytes(w, "x", 1);
        CHECK(rc == MP_EPIPE || rc == MP_ECONNRESET);
        /* A large message fails too, rather than blocking or killing us. */
        static char big[1 << 20];
        rc = mp_conn_send_bytes(w, big, sizeof big);
        CHECK(rc == MP_EPIPE || rc == MP_ECONNRESET);
        sigset_t pending;
        sigpending(&pending);
        CHECK(!sigismember(&pending, SIGPIPE));
        mp_conn_destroy(w);
    }
}

TEST(conn_closed_connection_refuses_everything)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK(!mp_conn_closed(a));
    CHECK_OK(mp_conn_close(a));
    CHECK_OK(mp_conn_close(a));
    CHECK(mp_conn_closed(a));
    void *msg;
    size_t len;
    char buf[4];
    CHECK_RC(MP_ECLOSED, mp_conn_send_bytes(a, "x", 1));
    CHECK_RC(MP_ECLOSED, mp_conn_recv_bytes(a, &msg, &len, 0));
    CHECK_RC(MP_ECLOSED, mp_conn_recv_bytes_into(a, buf, 4, 0, &len));
    CHECK_RC(MP_ECLOSED, mp_conn_poll(a, 0));
    CHECK_RC(MP_ECLOSED, mp_conn_fileno(a));
    mp_wait_object w = {.conn = a};
    CHECK_RC(MP_ECLOSED, mp_wait(&w, 1, 0));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    mp_conn_destroy(NULL);
}

TEST(conn_bad_arguments_change_nothing)
{
    mp_conn *a, *b;
    void *msg;
    size_t len;
    char buf[4];
    CHECK_RC(MP_EINVAL, mp_pipe(NULL, &b, true));
    CHECK_RC(MP_EINVAL, mp_pipe(&a, NULL, false));
    CHECK_RC(MP_EINVAL, mp_conn_from_fd(&a, -1, true, true));
    CHECK_RC(MP_EINVAL, mp_conn_from_fd(&a, 0, false, false));
    CHECK_RC(MP_EBADF, mp_conn_from_fd(&a, 1000000, true, true));
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes(NULL, "x", 1));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes(NULL, &msg, &len, 0));
    CHECK_RC(MP_EINVAL, mp_conn_poll(NULL, 0));
    CHECK_RC(MP_EINVAL, mp_conn_fileno(NULL));
    CHECK_RC(MP_EINVAL, mp_conn_close(NULL));
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_RC(MP_EINVAL, mp_conn_send_bytes(a, NULL, 1));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes(b, NULL, &len, 0));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes(b, &msg, NULL, 0));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes_into(b, buf, 4, 5, &len));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes_into(b, NULL, 4, 0, &len));
    CHECK_RC(MP_EINVAL, mp_conn_recv_bytes_into(b, buf, 4, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_wait(NULL, 1, 0));
    mp_wait_object both = {.conn = a, .process = mp_current_process()};
    CHECK_RC(MP_EINVAL, mp_wait(&both, 1, 0));
    mp_wait_object w = {.conn = b};
    CHECK_RC(MP_EINVAL, mp_wait(&w, 1, -2));
    CHECK_OK(mp_conn_send_bytes(a, NULL, 0)); /* an empty message is fine */
    recv_expect(b, "");
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

struct py {
    int fd;
};

static int exec_python(void *arg)
{
    struct py *p = arg;
    int flags = fcntl(p->fd, F_GETFD);
    fcntl(p->fd, F_SETFD, flags & ~FD_CLOEXEC); /* only this descriptor is inherited */
    char fdstr[16], script[4096];
    snprintf(fdstr, sizeof fdstr, "%d", p->fd);
    const char *src = getenv("MPROC_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/tests/conn_peer.py", src != NULL ? src : "..");
    execl("/usr/bin/env", "env", "python3", script, fdstr, (char *)NULL);
    _exit(127);
}

TEST(conn_speaks_cpython_framing_with_python3)
{
    mp_conn *mine, *theirs;
    CHECK_OK(mp_pipe(&mine, &theirs, true));
    struct py p = {mp_conn_fileno(theirs)};
    int pid = th_fork(exec_python, &p);
    mp_conn_destroy(theirs);

    size_t sizes[] = {0, 1, 100, 16384, 16385, ((size_t)16 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *buf = malloc(sizes[i] + 1);
        pattern(buf, sizes[i], (unsigned)i);
        CHECK_OK(mp_conn_send_bytes(mine, buf, sizes[i]));
        void *echo;
        size_t len;
        CHECK_OK(mp_conn_recv_bytes(mine, &echo, &len, 0));
        CHECK_EQ(sizes[i], len);
        CHECK(memcmp(echo, buf, len) == 0);
        free(echo);
        free(buf);
    }
    CHECK_OK(mp_conn_send_bytes(mine, "end", 3));
    recv_expect(mine, "");
    recv_expect(mine, "from python");
    void *msg;
    size_t len;
    CHECK_OK(mp_conn_recv_bytes(mine, &msg, &len, 0));
    CHECK_EQ(((size_t)16 << 20) + 7, len);
    CHECK(has_pattern(msg, len, 0));
    free(msg);
    recv_expect(mine, "bye");
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(mine, &msg, &len, 0));
    CHECK_EQ(0, th_wait(pid));
    mp_conn_destroy(mine);
}

static int sleep_then_exit(void *arg)
{
    th_sleep_ms((unsigned)(intptr_t)arg);
    return 0;
}

TEST(conn_wait_reports_ready_connections_and_processes)
{
    mp_conn *a1, *b1, *a2, *b2;
    CHECK_OK(mp_pipe(&a1, &b1, true));
    CHECK_OK(mp_pipe(&a2, &b2, false));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, sleep_then_exit, (void *)(intptr_t)200, NULL));
    CHECK_OK(mp_process_start(p));
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    mp_wait_object objs[4] = {{.conn = b1}, {.conn = a2}, {.process = p}, {.fd = fds[0]}};

    CHECK_EQ(0, mp_wait(objs, 4, 0));
    CHECK_OK(mp_conn_send_bytes(b2, "x", 1));
    CHECK_EQ(1, mp_wait(objs, 4, 1000));
    CHECK(!objs[0].ready && objs[1].ready && !objs[2].ready && !objs[3].ready);
    recv_expect(a2, "x");

    CHECK_EQ(1, mp_wait(objs, 4, -1)); /* the process ends */
    CHECK(!objs[0].ready && !objs[1].ready && objs[2].ready && !objs[3].ready);
    CHECK_OK(mp_process_join(p, 0));

    write_raw(fds[1], "y", 1);
    CHECK_OK(mp_conn_send_bytes(a1, "z", 1));
    CHECK_EQ(3, mp_wait(objs, 4, -1));
    CHECK(objs[0].ready && !objs[1].ready && objs[2].ready && objs[3].ready);

    mp_process_destroy(p);
    close(fds[0]);
    close(fds[1]);
    mp_conn_destroy(a1);
    mp_conn_destroy(b1);
    mp_conn_destroy(a2);
    mp_conn_destroy(b2);
}

TEST(conn_wait_times_out_when_nothing_is_ready)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    mp_wait_object objs[2] = {{.conn = a}, {.conn = b}};
    uint64_t t0 = th_now_ms();
    CHECK_EQ(0, mp_wait(objs, 2, 120));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 120 && waited < 10000);
    CHECK(!objs[0].ready && !objs[1].ready);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_wait_sees_a_message_already_read_ahead)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "one", 3));
    CHECK_OK(mp_conn_send_bytes(a, "two", 3));
    th_sleep_ms(20);
    recv_expect(b, "one"); /* reads "two" ahead with it */
    mp_wait_object w = {.conn = b};
    CHECK_EQ(1, mp_wait(&w, 1, 0));
    CHECK(w.ready);
    CHECK_EQ(1, mp_conn_poll(b, 0));
    recv_expect(b, "two");
    CHECK_EQ(0, mp_wait(&w, 1, 0));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

static void on_alarm(int sig)
{
    (void)sig;
}

TEST(conn_recv_resumes_after_a_signal)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    int pid = th_fork(send_later, a);
    ualarm(50000, 0);
    recv_expect(b, "late");
    CHECK_EQ(0, th_wait(pid));
    ualarm(50000, 0);
    uint64_t t0 = th_now_ms();
    CHECK_EQ(0, mp_conn_poll(b, 200));
    CHECK(th_now_ms() - t0 >= 200);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

struct docs {
    mp_conn *c;
};

static int send_docs_example(void *arg)
{
    mp_conn *c = arg;
    CHECK_OK(mp_conn_send_bytes(c, "1", 1));
    CHECK_OK(mp_conn_send_bytes(c, "hello", 5));
    return 0;
}

TEST(conn_pipe_works_across_fork_in_order)
{
    mp_conn *parent_end, *child_end;
    CHECK_OK(mp_pipe(&parent_end, &child_end, true));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, send_docs_example, child_end, NULL));
    CHECK_OK(mp_process_start(p));
    mp_conn_close(child_end);
    recv_expect(parent_end, "1");
    recv_expect(parent_end, "hello");
    CHECK_OK(mp_process_join(p, -1));
    void *msg;
    size_t len;
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(parent_end, &msg, &len, 0));
    mp_process_destroy(p);
    mp_conn_destroy(parent_end);
    mp_conn_destroy(child_end);
}

TEST(conn_wait_rejects_a_closed_descriptor)
{
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    close(fds[0]);
    close(fds[1]);
    mp_wait_object w = {.fd = fds[0]};
    CHECK_RC(MP_EBADF, mp_wait(&w, 1, 0));
    mp_wait_object neg = {.fd = -1};
    CHECK_RC(MP_EINVAL, mp_wait(&neg, 1, 0));
    CHECK_EQ(0, mp_wait(NULL, 0, 0));
}

/* Random byte streams, some made of valid frames with damage, some pure noise: the
 * decoder returns only the documented codes and never reads past what it got. */
TEST(conn_decoder_survives_random_streams)
{
    unsigned seed = 4242;
    static unsigned char stream[4096];
    for (int round = 0; round < 300; round++) {
        size_t n = 0;
        while (n < sizeof stream - 64) {
            int kind = rand_r(&seed) % 4;
            size_t len = (size_t)(rand_r(&seed) % 40);
            if (kind == 0) { /* a valid short frame */
                n += mp__frame_header(len, stream + n);
            } else if (kind == 1) { /* a valid 64-bit frame */
                memset(stream + n, 0xff, 4);
                for (int i = 0; i < 8; i++)
                    stream[n + 4 + i] = (unsigned char)(i == 7 ? len : 0);
                n += 12;
            } else { /* noise */
                len = (size_t)(rand_r(&seed) % 16);
            }
            for (size_t i = 0; i < len; i++)
                stream[n++] = (unsigned char)rand_r(&seed);
            if (rand_r(&seed) % 8 == 0)
                break;
        }
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        mp_conn *c;
        CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
        write_raw(sv[1], stream, n);
        close(sv[1]);
        for (int k = 0; k < 1000; k++) {
            void *msg;
            size_t len;
            int rc = mp_conn_recv_bytes(c, &msg, &len, 4096);
            if (rc == 0) {
                CHECK(len <= n);
                free(msg);
                continue;
            }
            CHECK(rc == MP_EEOF || rc == MP_ETRUNCATED || rc == MP_EPROTO || rc == MP_EMSGSIZE);
            break;
        }
        mp_conn_destroy(c);
    }
}

/* ---- hostile lengths ---- */

TEST(conn_64bit_length_claiming_terabytes_is_refused_by_maxlength_and_kept)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    write_raw(sv[1], "\xff\xff\xff\xff\0\0\x01\0\0\0\0\0", 12); /* 2^40 bytes */
    void *msg = NULL;
    size_t len = 0;
    CHECK_RC(MP_EMSGSIZE, mp_conn_recv_bytes(c, &msg, &len, 1 << 20));
    CHECK_EQ((uint64_t)1 << 40, len);
    CHECK(msg == NULL);
    CHECK_RC(MP_EMSGSIZE, mp_conn_recv_bytes(c, &msg, &len, 1 << 20)); /* still there */
    char buf[16];
    CHECK_RC(MP_ETOOSHORT, mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len));
    CHECK_EQ((uint64_t)1 << 40, len);
    /* A length no CPython can send (above 2^63 - 1) is a protocol error, with or
     * without a limit, and stays one. */
    int sv2[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2) == 0);
    mp_conn *c2;
    CHECK_OK(mp_conn_from_fd(&c2, sv2[0], true, true));
    write_raw(sv2[1], "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12); /* 2^64 - 1 */
    len = 7;
    CHECK_RC(MP_EPROTO, mp_conn_recv_bytes(c2, &msg, &len, 0));
    CHECK_RC(MP_EPROTO, mp_conn_recv_bytes(c2, &msg, &len, 100));
    CHECK_RC(MP_EPROTO, mp_conn_recv_bytes_into(c2, buf, sizeof buf, 0, &len));
    CHECK_EQ(7, len);
    CHECK(msg == NULL);
    int sv3[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv3) == 0);
    mp_conn *c3;
    CHECK_OK(mp_conn_from_fd(&c3, sv3[0], true, true));
    write_raw(sv3[1], "\xff\xff\xff\xff\x80\0\0\0\0\0\0\0", 12); /* 2^63 */
    CHECK_RC(MP_EPROTO, mp_conn_recv_bytes(c3, &msg, &len, 0));
    close(sv3[1]);
    mp_conn_destroy(c3);
    close(sv[1]);
    close(sv2[1]);
    mp_conn_destroy(c);
    mp_conn_destroy(c2);
}

/* In the calling (child) process: the address space may grow by at most extra
 * bytes beyond what is mapped now (soft limit only, so it can be lifted again). */
static void limit_address_space(size_t extra)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long pages = 0;
    CHECK(fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
    rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
}

static void lift_address_space_limit(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
}

#define SKIP_UNDER_SANITIZERS()                                                                    \
    do {                                                                                           \
        if (MP__ASAN || MP__TSAN)                                                                  \
            SKIP("the sanitizers reserve terabytes of address space: RLIMIT_AS cannot apply");     \
    } while (0)

/* With 64 MiB of address space to spare, headers claiming 8 GiB and 2^62 bytes,
 * followed by a few bytes and the peer's close, are a truncated message, not an
 * allocation of what they claim (which would fail: MP_ENOMEM). */
static int receive_lying_headers(void *arg)
{
    (void)arg;
    static const char *claims[] = {
        "\xff\xff\xff\xff\0\0\0\x02\0\0\0\0", /* 8 GiB */
        "\xff\xff\xff\xff\x40\0\0\0\0\0\0\0", /* 2^62 */
        "\x7f\xff\xff\xff",                   /* 2 GiB - 1, in 32 bits */
    };
    static const size_t claim_len[] = {12, 12, 4};
    for (int i = 0; i < 3; i++) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        mp_conn *c;
        CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
        write_raw(sv[1], claims[i], claim_len[i]);
        write_raw(sv[1], "only a little", 13);
        close(sv[1]);
        limit_address_space((size_t)64 << 20);
        void *msg = NULL;
        size_t len = 0;
        CHECK_RC(MP_ETRUNCATED, mp_conn_recv_bytes(c, &msg, &len, 0));
        CHECK(msg == NULL);
        CHECK_RC(MP_EEOF, mp_conn_recv_bytes(c, &msg, &len, 0));
        lift_address_space_limit();
        mp_conn_destroy(c);
    }
    return 0;
}

TEST(conn_lying_length_costs_no_memory_until_its_bytes_arrive)
{
    SKIP_UNDER_SANITIZERS();
    CHECK_EQ(0, th_wait(th_fork(receive_lying_headers, NULL)));
}

static int send_64mib(void *arg)
{
    int fd = *(int *)arg;
    size_t n = (size_t)64 << 20;
    unsigned char *m = malloc(n);
    CHECK(m != NULL);
    for (size_t i = 0; i < n; i++)
        m[i] = (unsigned char)(i * 7 + i / 4096);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, fd, true, true));
    CHECK_OK(mp_conn_send_bytes(c, m, n));
    mp_conn_destroy(c);
    free(m);
    return 0;
}

/* Memory runs out half way through a real 64 MiB message: MP_ENOMEM, and once
 * memory is there again the next receive returns the whole message. */
static int receive_through_enomem(void *arg)
{
    int *sv = arg;
    close(sv[1]);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    limit_address_space((size_t)40 << 20);
    void *msg = NULL;
    size_t len = 0;
    CHECK_RC(MP_ENOMEM, mp_conn_recv_bytes(c, &msg, &len, 0));
    lift_address_space_limit();
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_EQ((size_t)64 << 20, len);
    const unsigned char *m = msg;
    for (size_t i = 0; i < len; i++)
        if (m[i] != (unsigned char)(i * 7 + i / 4096))
            CHECK(!"byte differs");
    free(msg);
    mp_conn_destroy(c);
    return 0;
}

TEST(conn_recv_out_of_memory_mid_message_keeps_what_arrived)
{
    SKIP_UNDER_SANITIZERS();
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int sender = th_fork(send_64mib, &sv[1]);
    int receiver = th_fork(receive_through_enomem, sv);
    close(sv[0]);
    close(sv[1]);
    CHECK_EQ(0, th_wait(receiver));
    CHECK_EQ(0, th_wait(sender));
}

/* ---- non-blocking descriptors ---- */

struct nb {
    int fd;
    size_t n;
};

static int send_raw_slowly(void *arg)
{
    struct nb *a = arg;
    unsigned char *m = malloc(a->n);
    CHECK(m != NULL);
    pattern(m, a->n, 3);
    unsigned char h[MP__FRAME_HEADER_MAX];
    size_t hl = mp__frame_header(a->n, h);
    for (size_t i = 0; i < hl; i++) { /* a header that arrives a byte at a time */
        write_raw(a->fd, h + i, 1);
        th_sleep_ms(5);
    }
    for (size_t off = 0; off < a->n; off += 100000) {
        size_t k = a->n - off < 100000 ? a->n - off : 100000;
        write_raw(a->fd, m + off, k);
        th_sleep_ms(2);
    }
    free(m);
    return 0;
}

static int recv_raw_slowly(void *arg)
{
    struct nb *a = arg;
    unsigned char *m = malloc(a->n + 4);
    CHECK(m != NULL);
    size_t got = 0;
    while (got < a->n + 4) {
        th_sleep_ms(2);
        ssize_t r = read(a->fd, m + got, a->n + 4 - got < 65536 ? a->n + 4 - got : 65536);
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK(has_pattern(m + 4, a->n, 5));
    free(m);
    return 0;
}

TEST(conn_from_a_nonblocking_descriptor_waits_out_eagain)
{
    enum { N = 3 << 20 };
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    struct nb a = {sv[1], N};
    int pid = th_fork(send_raw_slowly, &a);
    void *msg;
    size_t len;
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_EQ(N, len);
    CHECK(has_pattern(msg, len, 3));
    free(msg);
    CHECK_EQ(0, th_wait(pid));

    unsigned char *big = malloc(N);
    CHECK(big != NULL);
    pattern(big, N, 5);
    pid = th_fork(recv_raw_slowly, &a);
    CHECK_OK(mp_conn_send_bytes(c, big, N));
    CHECK_EQ(0, th_wait(pid));
    free(big);

    /* A non-blocking pipe, simplex. */
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    mp_conn *r, *w;
    CHECK_OK(mp_conn_from_fd(&r, fds[0], true, false));
    CHECK_OK(mp_conn_from_fd(&w, fds[1], false, true));
    CHECK_EQ(0, mp_conn_poll(r, 0));
    CHECK_OK(mp_conn_send_bytes(w, "nb", 2));
    recv_expect(r, "nb");
    mp_conn_destroy(w);
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(r, &msg, &len, 0));
    mp_conn_destroy(r);
    close(sv[1]);
    mp_conn_destroy(c);
}

/* ---- recv_bytes_into and mp_wait corner cases ---- */

static int send_payload_later(void *arg)
{
    int fd = *(int *)arg;
    th_sleep_ms(100);
    write_raw(fd, "abcdefghij", 10);
    return 0;
}

TEST(conn_recv_into_refuses_before_the_payload_arrives_and_keeps_it)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    mp_conn *c;
    CHECK_OK(mp_conn_from_fd(&c, sv[0], true, true));
    write_raw(sv[1], "\0\0\0\x0a", 4); /* the header alone */
    char buf[10];
    size_t len = 0;
    CHECK_RC(MP_ETOOSHORT, mp_conn_recv_bytes_into(c, buf, sizeof buf, 1, &len));
    CHECK_EQ(10, len);
    int pid = th_fork(send_payload_later, &sv[1]);
    CHECK_OK(mp_conn_recv_bytes_into(c, buf, sizeof buf, 0, &len));
    CHECK_EQ(10, len);
    CHECK(memcmp(buf, "abcdefghij", 10) == 0);
    CHECK_EQ(0, th_wait(pid));
    close(sv[1]);
    mp_conn_destroy(c);
}

TEST(conn_wait_counts_duplicates_and_refuses_closed_or_send_only_connections)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "x", 1));
    mp_wait_object w[3] = {{.conn = b}, {.conn = b}, {.conn = a}};
    CHECK_EQ(2, mp_wait(w, 3, 1000));
    CHECK(w[0].ready && w[1].ready && !w[2].ready);
    mp_conn *r, *s;
    CHECK_OK(mp_pipe(&r, &s, false));
    mp_wait_object so[2] = {{.conn = b}, {.conn = s}};
    CHECK_RC(MP_EBADF, mp_wait(so, 2, 0));
    mp_conn_close(a);
    mp_wait_object cl[2] = {{.conn = b}, {.conn = a}};
    CHECK_RC(MP_ECLOSED, mp_wait(cl, 2, 0));
    mp_wait_object both = {.conn = b, .fd = 0};
    CHECK_EQ(1, mp_wait(&both, 1, 0)); /* fd is ignored when conn is set */
    CHECK_RC(MP_EINVAL, mp_wait(w, 1, -2));
    recv_expect(b, "x");
    CHECK_RC(MP_EEOF, mp_conn_recv_bytes(b, &(void *){NULL}, &(size_t){0}, 0));
    mp_conn_destroy(a);
    mp_conn_destroy(b);
    mp_conn_destroy(r);
    mp_conn_destroy(s);
}

/* ---- signals in the middle of a send and of mp_wait ---- */

static int recv_big_slowly(void *arg)
{
    mp_conn *c = arg;
    th_sleep_ms(200); /* let the sender block on a full socket buffer first */
    void *msg;
    size_t len;
    CHECK_OK(mp_conn_recv_bytes(c, &msg, &len, 0));
    CHECK_EQ(8 << 20, len);
    CHECK(has_pattern(msg, len, 11));
    free(msg);
    return 0;
}

TEST(conn_send_and_wait_resume_after_signals)
{
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    int pid = th_fork(recv_big_slowly, b);
    size_t n = 8 << 20;
    unsigned char *big = malloc(n);
    CHECK(big != NULL);
    pattern(big, n, 11);
    ualarm(20000, 20000); /* a signal every 20 ms while the send blocks */
    CHECK_OK(mp_conn_send_bytes(a, big, n));
    CHECK_EQ(0, th_wait(pid));
    mp_wait_object w = {.conn = a};
    uint64_t t0 = th_now_ms();
    CHECK_EQ(0, mp_wait(&w, 1, 300));
    CHECK(th_now_ms() - t0 >= 300);
    ualarm(0, 0);
    free(big);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}

TEST(conn_empty_message_into_a_null_buffer_and_from_a_null_range)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes_range(a, NULL, 0, 0, MP_CONN_REST));
    CHECK_OK(mp_conn_send_bytes(a, NULL, 0));
    size_t len = 99;
    CHECK_OK(mp_conn_recv_bytes_into(b, NULL, 0, 0, &len));
    CHECK_EQ(0, len);
    void *msg = NULL;
    CHECK_OK(mp_conn_recv_bytes(b, &msg, &len, 0));
    CHECK(msg != NULL);
    CHECK_EQ(0, len);
    free(msg);
    mp_conn_destroy(a);
    mp_conn_destroy(b);
}
