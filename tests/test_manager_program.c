/* test_manager_program.c — the mproc-manager program: its command line and authkey
 * rules, the tutorial's python3 worker against it unchanged, clean exits (signals,
 * remote shutdown), logging and stats, and a server killed and restarted. */
// TEST_TIMEOUT 120
#include <dirent.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "sync_manager_fixture.h"

static int run_program(const char *const *args, const char *const *env, char **err)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = fx_built("tools/mproc-manager");
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return fx_run(argv, env, 10000, NULL, err);
}

TEST(help_points_to_the_documentation)
{
    const char *argv[] = {fx_built("tools/mproc-manager"), "--help", NULL};
    char *out = NULL;
    CHECK_EQ(0, fx_run(argv, NULL, 10000, &out, NULL));
    CHECK(strstr(out, "docs/mproc-manager.md") != NULL);
    CHECK(strstr(out, "--authkey-file") != NULL);
    free(out);
}

TEST(refuses_to_start_without_an_authkey)
{
    const char *args[] = {"--queue", "q", NULL};
    const char *env[] = {"MPROC_AUTHKEY", NULL}; /* removed from the environment */
    char *err = NULL;
    CHECK_EQ(2, run_program(args, env, &err));
    CHECK(strstr(err, "no authkey") != NULL);
    free(err);
}

TEST(refuses_an_authkey_on_the_command_line)
{
    const char *args[] = {"--queue", "q", "--authkey", "secret", NULL};
    char *err = NULL;
    CHECK_EQ(2, run_program(args, NULL, &err));
    CHECK(strstr(err, "visible in ps") != NULL);
    free(err);
}

TEST(refuses_an_authkey_file_others_can_read)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/mproc-test-key.%d", (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(FX_KEY "\n", f);
    fclose(f);
    CHECK(chmod(path, 0644) == 0);
    const char *args[] = {"--queue", "q", "--authkey-file", path, "--listen", "127.0.0.1:0", NULL};
    char *err = NULL;
    CHECK_EQ(2, run_program(args, NULL, &err));
    CHECK(strstr(err, "readable by others") != NULL);
    free(err);
    /* Owner-only: it starts, and the key (without its newline) is the one clients use. */
    CHECK(chmod(path, 0600) == 0);
    fx_program fp;
    const char *ok[] = {"--queue", "get_q", "--authkey-file", path, NULL};
    fx_program_start(&fp, ok);
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, fp.address, FX_KEY, FX_KEYLEN, NULL));
    CHECK_OK(mp_manager_connect(m));
    mp_manager_destroy(m);
    CHECK_OK(mp_manager_new(&m, fp.address, "wrong", 5, NULL));
    CHECK_RC(MP_EAUTH, mp_manager_connect(m));
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
    unlink(path);
}

TEST(bad_usage_exits_2_with_a_message)
{
    const char *unknown[] = {"--frobnicate", NULL};
    const char *maxsize[] = {"--queue", "q:maxsize=-3", NULL};
    const char *nothing[] = {"--quiet", NULL};
    const char *twice[] = {"--queue", "q", "--queue", "q", NULL};
    const char *clash[] = {"--queue", "dict", "--sync", "--listen", "127.0.0.1:0", NULL};
    const char *const *cases[] = {unknown, maxsize, nothing, twice, clash};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        const char *env[] = {"MPROC_AUTHKEY=" FX_KEY, NULL};
        CHECK_EQ(2, run_program(cases[i], env, &err));
        CHECK(strstr(err, "mproc-manager: ") != NULL);
        free(err);
    }
}

/* The tutorial master in C against the program, the tutorial worker in python3. */
static void tutorial(const char *ver)
{
    const char *py = fx_need_python(ver);
    fx_program fp;
    const char *args[] = {"--queue", "get_task_queue", "--queue", "get_result_queue", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *task, *result;
    CHECK_OK(mp_manager_create(m, "get_task_queue", NULL, NULL, &task));
    CHECK_OK(mp_manager_create(m, "get_result_queue", NULL, NULL, &result));
    for (int n = 0; n < 10; n++) {
        mp_obj *o = mp_int(n);
        CHECK_OK(mp_proxy_put(task, o, -1));
        mp_obj_unref(o);
    }
    const char *argv[] = {py, fx_source("tests/task_worker.py"), fp.address, "py", "2", NULL};
    const char *env[] = {"MPROC_AUTHKEY=" FX_KEY, NULL};
    CHECK_EQ(0, fx_run(argv, env, 60000, NULL, NULL));
    bool seen[10] = {false};
    for (int i = 0; i < 10; i++) {
        mp_obj *r = NULL;
        CHECK_OK(mp_proxy_get(result, &r, 10000));
        int n = -1, sq = -1;
        CHECK_EQ(2, sscanf(mp_str_cstr(r), "py %d * %*d = %d", &n, &sq));
        CHECK(n >= 0 && n < 10 && !seen[n] && sq == n * n);
        seen[n] = true;
        mp_obj_unref(r);
    }
    CHECK_EQ(0, mp_proxy_qsize(task));
    mp_proxy_destroy(task);
    mp_proxy_destroy(result);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
    char *log = fx_program_log(&fp);
    CHECK(strstr(log, "listening on 127.0.0.1:") != NULL);
    CHECK(strstr(log, "connection from 127.0.0.1:") != NULL);
    CHECK(strstr(log, "shutdown complete (clean)") != NULL);
    free(log);
}

TEST(tutorial_python_worker_works_unchanged_3_11)
{
    tutorial("3.11");
}
TEST(tutorial_python_worker_works_unchanged_3_13)
{
    tutorial("3.13");
}

TEST(queue_maxsize_option_is_honoured)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q:maxsize=2", "--quiet", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    mp_obj *o = mp_int(1);
    CHECK_OK(mp_proxy_put(q, o, 0));
    CHECK_OK(mp_proxy_put(q, o, 0));
    CHECK_RC(MP_EFULL, mp_proxy_put(q, o, 0));
    mp_obj_unref(o);
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGINT));
}

TEST(remote_shutdown_stops_it_cleanly)
{
    fx_program fp;
    const char *args[] = {"--sync", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    CHECK_OK(mp_manager_shutdown(m));
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, 0));
    char *log = fx_program_log(&fp);
    CHECK(strstr(log, "remote shutdown request from 127.0.0.1:") != NULL);
    CHECK(strstr(log, "shutdown complete (clean)") != NULL);
    free(log);
}

TEST(sigusr1_prints_object_and_connection_counts)
{
    fx_program fp;
    const char *args[] = {"--sync", "--quiet", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *d, *l;
    CHECK_OK(mp_manager_create(m, "dict", NULL, NULL, &d));
    CHECK_OK(mp_manager_create(m, "list", NULL, NULL, &l));
    th_sleep_ms(300);
    CHECK_OK(mp_popen_send_signal(fp.p, SIGUSR1));
    char *log = NULL;
    for (int i = 0; i < 100; i++) {
        free(log);
        log = fx_program_log(&fp);
        if (strstr(log, "stats:"))
            break;
        th_sleep_ms(50);
    }
    long objs = -1;
    size_t conns = 0;
    const char *s = strstr(log, "stats: ");
    CHECK(s != NULL);
    CHECK_EQ(2, sscanf(s, "stats: %ld objects, %zu connections", &objs, &conns));
    CHECK_EQ(2, objs);
    CHECK(conns >= 1);
    CHECK(strstr(s, " authentication failures)") != NULL);
    free(log);
    mp_proxy_destroy(d);
    mp_proxy_destroy(l);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

TEST(killed_server_gives_prompt_errors_and_a_restarted_one_serves_again)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--quiet", NULL};
    fx_program_start(&fp, args);
    char address[128];
    snprintf(address, sizeof address, "%s", fp.address);
    mp_manager *m = fx_connect(address);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    CHECK_EQ(-SIGKILL, fx_program_stop(&fp, SIGKILL));
    uint64_t t0 = th_now_ms();
    mp_obj *o = NULL;
    int rc = mp_proxy_get(q, &o, 5000);
    CHECK(rc == MP_EEOF || rc == MP_ECONNRESET || rc == MP_EPIPE || rc == MP_ECONNREFUSED);
    CHECK(th_now_ms() - t0 < 1000);
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    /* The same address again: clients reconnect. */
    const char *again[] = {"--queue", "get_q", "--quiet", "--listen", address, NULL};
    fx_program_start(&fp, again);
    m = fx_connect(address);
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    o = mp_int(5);
    CHECK_OK(mp_proxy_put(q, o, 0));
    mp_obj_unref(o);
    CHECK_EQ(1, mp_proxy_qsize(q));
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

/* Waits up to 5 s for needle in the program's log; returns the log (malloc'd). */
static char *wait_log(const fx_program *fp, const char *needle)
{
    char *log = NULL;
    for (int i = 0; i < 500; i++) {
        free(log);
        log = fx_program_log(fp);
        if (strstr(log, needle) != NULL)
            break;
        th_sleep_ms(10);
    }
    return log;
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *s = text; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    return n;
}

/* The sockets process pid has open (-1 when /proc does not say). */
static int open_sockets(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char link[320], to[64];
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t k = readlink(link, to, sizeof to - 1);
        n += k > 7 && strncmp(to, "socket:", 7) == 0;
    }
    closedir(d);
    return n;
}

/* A client session (connect, a queue, a put) and a wrong-key client, against a
 * program started with extra; returns its log after SIGTERM. */
static char *session_log(const char *extra)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q", extra, NULL};
    fx_program_start(&fp, args);
    pid_t pid = mp_popen_pid(fp.p);
    int idle = open_sockets(pid); /* the listening socket, before any client */
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    mp_obj *o = mp_int(3);
    CHECK_OK(mp_proxy_put(q, o, 0));
    mp_obj_unref(o);
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    CHECK_OK(mp_manager_new(&m, fp.address, "wrong", 5, NULL));
    CHECK_RC(MP_EAUTH, mp_manager_connect(m));
    mp_manager_destroy(m);
    /* The server logs the failure and the closes after the clients saw them: the
     * log must say "0 connections open" at SIGTERM, so wait until the server has
     * closed every connection's socket (it does after their threads ended), not a
     * fixed 200 ms, which a loaded machine's server thread could outlast. */
    uint64_t t0 = th_now_ms();
    while (idle >= 0 && open_sockets(pid) > idle) {
        CHECK(th_now_ms() - t0 < 30000);
        th_sleep_ms(5);
    }
    th_sleep_ms(200);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
    return fx_program_log(&fp);
}

TEST(logs_one_line_per_connection_auth_failure_and_shutdown)
{
    /* Default: each connection once, when it closes, with its peer and kind. */
    char *log = session_log(NULL);
    int closed = count_in(log, ") closed after ");
    CHECK(closed >= 1); /* a C client's channel (CPython's clients add one-request ones) */
    CHECK_EQ(closed, count_in(log, "connection from 127.0.0.1:"));
    CHECK(strstr(log, ", channel) closed after ") != NULL);
    CHECK_EQ(1, count_in(log, "authentication failed: 127.0.0.1:"));
    CHECK(strstr(log, "digest") != NULL);
    CHECK(strstr(log, "Terminated: stopping, 0 connections open") != NULL);
    CHECK(strstr(log, "shutdown complete (clean)") != NULL);
    free(log);
    /* --verbose: also a line as each connection opens. */
    log = session_log("--verbose");
    closed = count_in(log, ") closed after ");
    CHECK(closed >= 1);
    CHECK_EQ(2 * closed, count_in(log, "connection from 127.0.0.1:"));
    CHECK_EQ(1, count_in(log, "authentication failed: "));
    free(log);
    /* --quiet: none of these. */
    log = session_log("--quiet");
    CHECK_EQ(0, count_in(log, "connection from"));
    CHECK_EQ(0, count_in(log, "authentication failed"));
    CHECK_EQ(0, count_in(log, "stopping"));
    CHECK_EQ(0, count_in(log, "listening on"));
    free(log);
}

TEST(no_remote_shutdown_refuses_c_and_python_clients_and_keeps_serving)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--no-remote-shutdown", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    CHECK_RC(MP_EREMOTE, mp_manager_shutdown(m));
    const char *text = NULL;
    CHECK_OK(mp_manager_remote_error(NULL, &text));
    CHECK(strstr(text, "'shutdown' unrecognized") != NULL);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    CHECK_EQ(0, mp_proxy_qsize(q));
    const char *py = fx_python("3.11");
    if (py == NULL)
        py = "python3";
    char host[64];
    const char *colon = strrchr(fp.address, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - fp.address), fp.address);
    const char *argv[] = {
        py, fx_source("tests/shutdown_peer.py"), host, colon + 1, FX_KEY, "refused", NULL};
    CHECK_EQ(0, fx_run(argv, NULL, 60000, NULL, NULL));
    CHECK_EQ(0, mp_proxy_qsize(q)); /* still serving */
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    char *log = wait_log(&fp, "refused (--no-remote-shutdown)");
    CHECK_EQ(2, count_in(log, "refused (--no-remote-shutdown)"));
    CHECK(strstr(log, "remote shutdown: refused") != NULL); /* the listening line says so */
    free(log);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
    log = fx_program_log(&fp);
    CHECK(strstr(log, "Terminated: stopping") != NULL);
    CHECK(strstr(log, "shutdown complete (clean)") != NULL);
    free(log);
}

/* A Unix socket peer names itself: it binds its own socket to any bytes it likes
 * before connecting, and the server logs that name before any authentication. */
TEST(a_unix_peer_named_with_newlines_cannot_forge_log_lines)
{
    char listen[64];
    snprintf(listen, sizeof listen, "@mproc-test-prog-forge-%d", (int)getpid());
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--verbose", "--listen", listen, NULL};
    fx_program_start(&fp, args);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    static const char evil[] = "evil\nFORGED: remote shutdown request\x1b[2J";
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    memcpy(me.sun_path + 1, evil, sizeof evil - 1);
    CHECK_EQ(0, bind(fd, (struct sockaddr *)&me,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof evil)));
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    size_t ln = strlen(listen) - 1;
    memcpy(to.sun_path + 1, listen + 1, ln);
    CHECK_EQ(0, connect(fd, (struct sockaddr *)&to,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + ln)));
    CHECK_EQ(5, (int)write(fd, "junk!", 5)); /* not a handshake frame */
    char *log = wait_log(&fp, "authentication failed: ");
    close(fd);
    CHECK(strstr(log, "authentication failed: @evil\\x0aFORGED: ") != NULL); /* escaped */
    CHECK(strstr(log, "\nFORGED") == NULL); /* no line of the peer's making */
    CHECK(strchr(log, '\x1b') == NULL);     /* nor its terminal escapes */
    free(log);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

TEST(an_address_in_use_exits_2)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--quiet", NULL};
    fx_program_start(&fp, args);
    const char *again[] = {"--queue", "get_q", "--listen", fp.address, NULL};
    const char *env[] = {"MPROC_AUTHKEY=" FX_KEY, NULL};
    char *err = NULL;
    CHECK_EQ(2, run_program(again, env, &err));
    CHECK(strstr(err, "in use") != NULL);
    free(err);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}
