/* tests/sync_manager_fixture.h — what the manager, SyncManager and mproc-manager
 * tests share (and the listener's tests): python interpreters by version, running
 * a program and capturing its output, the mproc-manager program started on a free
 * port, and a server run by serve_forever on a thread of the test process. */
#ifndef MPROC_TESTS_SYNC_MANAGER_FIXTURE_H
#define MPROC_TESTS_SYNC_MANAGER_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mproc/manager.h"

#define FX_KEY "fixture-key"
#define FX_KEYLEN 11

/* The python3 of version ver ("3.11", "3.12", "3.13"): under pyenv, or NULL. */
static inline const char *fx_python(const char *ver)
{
    static char path[3][512];
    int slot = ver[3] == '1' ? 0 : ver[3] == '2' ? 1 : 2;
    const char *root = getenv("PYENV_ROOT");
    char pattern[600];
    if (root != NULL)
        snprintf(pattern, sizeof pattern, "%s/versions/%s.*/bin/python3", root, ver);
    else
        snprintf(pattern, sizeof pattern, "%s/.pyenv/versions/%s.*/bin/python3",
                 getenv("HOME") ? getenv("HOME") : "/root", ver);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        globfree(&g);
        return NULL;
    }
    snprintf(path[slot], sizeof path[slot], "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    return path[slot];
}

static inline const char *fx_need_python(const char *ver)
{
    const char *py = fx_python(ver);
    if (py == NULL)
        SKIP("python %s is not installed under pyenv here", ver);
    return py;
}

/* getenv(env) (or "."), then between, then rel: in one of 16 static buffers used
 * in turn, so a few paths may be held at once. */
static inline const char *fx_path(const char *env, const char *between, const char *rel)
{
    static char buf[16][1024];
    static int slot;
    const char *dir = getenv(env);
    char *b = buf[slot++ % 16];
    snprintf(b, 1024, "%s%s%s", dir ? dir : ".", between, rel);
    return b;
}

/* A file of the source tree (tests/...). */
static inline const char *fx_source(const char *rel)
{
    return fx_path("MPROC_SOURCE_DIR", "/", rel);
}

/* A program of the build tree, relative to the build directory ("tools/mproc-manager"). */
static inline const char *fx_built(const char *rel)
{
    return fx_path("MPROC_TEST_HELPERS", "/../", rel);
}

/* A helper program of tests/helpers. */
static inline const char *fx_helper(const char *name)
{
    return fx_path("MPROC_TEST_HELPERS", "/", name);
}

/* Runs argv with the environment extras, captures stdout and stderr, waits up to
 * timeout_ms. Returns the exit code (or -signal); *out gets stdout (malloc'd). */
static inline int fx_run(const char *const *argv, const char *const *env_extra, int timeout_ms,
                         char **out, char **err)
{
    mp_completed_process r;
    int rc = mp_run(&r, argv,
                    &(mp_run_options){.capture_output = true,
                                      .timeout_ms = timeout_ms,
                                      .popen = {.env_extra = env_extra}});
    if (rc < 0 && rc != MP_ETIMEDOUT && rc != MP_ENONZERO) {
        fprintf(stderr, "fx_run %s: %s %s\n", argv[0], mp_err_name(rc), r.message ? r.message : "");
        mp_completed_process_free(&r);
        return -1000;
    }
    int code = rc == MP_ETIMEDOUT ? -999 : r.returncode;
    if (out) {
        *out = r.stdout_data;
        r.stdout_data = NULL;
    }
    if (err) {
        *err = r.stderr_data;
        r.stderr_data = NULL;
    } else if (r.stderr_len > 0 && code != 0) {
        fprintf(stderr, "--- stderr of %s:\n%s\n", argv[0], r.stderr_data);
    }
    mp_completed_process_free(&r);
    return code;
}

/* The mproc-manager program, started with extra arguments on a free port of
 * 127.0.0.1 (unless args has a --listen), the authkey FX_KEY in MPROC_AUTHKEY. */
typedef struct fx_program {
    mp_popen *p;
    char address[128];
    char address_file[256];
    char log[256]; /* its stderr goes here */
} fx_program;

/* The log files of this test process (one path, reused by each start), removed
 * when it exits; not by a child it forked, which exits first. */
static char fx_log_path[256];
static pid_t fx_log_owner;

static void fx_remove_log(void)
{
    if (getpid() == fx_log_owner)
        unlink(fx_log_path);
}

static inline void fx_program_start(fx_program *fp, const char *const *args)
{
    memset(fp, 0, sizeof *fp);
    if (fx_log_owner != getpid()) {
        fx_log_owner = getpid();
        snprintf(fx_log_path, sizeof fx_log_path, "/tmp/mproc-test-log.%d", (int)getpid());
        atexit(fx_remove_log);
    }
    snprintf(fp->address_file, sizeof fp->address_file, "/tmp/mproc-test-addr.%d", (int)getpid());
    snprintf(fp->log, sizeof fp->log, "%s", fx_log_path);
    unlink(fp->address_file);
    const char *argv[64];
    int n = 0;
    argv[n++] = fx_built("tools/mproc-manager");
    bool listen = false;
    for (int i = 0; args && args[i] && n < 56; i++) {
        listen |= strcmp(args[i], "--listen") == 0;
        argv[n++] = args[i];
    }
    if (!listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    argv[n++] = "--address-file";
    argv[n++] = fp->address_file;
    argv[n] = NULL;
    int logfd = open(fp->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(logfd >= 0);
    const char *env[] = {"MPROC_AUTHKEY=" FX_KEY, NULL};
    CHECK_OK(mp_popen_new(
        &fp->p, argv,
        &(mp_popen_options){.env_extra = env, .stderr_mode = MP_FD, .stderr_fd = logfd}));
    close(logfd);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(fp->address_file, "r");
        if (f != NULL) {
            bool got = fgets(fp->address, sizeof fp->address, f) != NULL;
            fclose(f);
            if (got) {
                fp->address[strcspn(fp->address, "\n")] = '\0';
                return;
            }
        }
        int code;
        if (mp_popen_poll(fp->p, &code) == 0)
            th_fail(__FILE__, __LINE__, "mproc-manager exited with %d before listening", code);
        th_sleep_ms(10);
    }
    th_fail(__FILE__, __LINE__, "mproc-manager did not listen within 10 s");
}

/* Stops the program with sig (0: none, it should exit by itself) and returns its
 * exit code. */
static inline int fx_program_stop(fx_program *fp, int sig)
{
    if (sig)
        mp_popen_send_signal(fp->p, sig);
    int code = -1000;
    if (mp_popen_wait(fp->p, 15000, &code) < 0) {
        mp_popen_kill(fp->p);
        mp_popen_wait(fp->p, -1, &code);
        code = -999;
    }
    mp_popen_destroy(fp->p);
    fp->p = NULL;
    unlink(fp->address_file);
    return code;
}

/* The program's stderr so far (malloc'd). */
static inline char *fx_program_log(const fx_program *fp)
{
    FILE *f = fopen(fp->log, "r");
    if (f == NULL)
        return strdup("");
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Reads one line (up to '\n', which is kept) from fd into buf within timeout_ms;
 * returns its length, or -1 on timeout or EOF. The descriptor may be non-blocking. */
static inline int fx_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - th_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t r = read(fd, buf + n, 1);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            break;
        if (buf[n++] == '\n') {
            buf[n] = '\0';
            return (int)n;
        }
    }
    buf[n] = '\0';
    return -1;
}

/* A C client manager connected to address. */
static inline mp_manager *fx_connect(const char *address)
{
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, address, FX_KEY, FX_KEYLEN, NULL));
    CHECK_OK(mp_manager_connect(m));
    return m;
}

/* ---- a server on a thread of this process (so the sanitizers see it too) ---- */

/* The thread running serve_forever (one server at a time per test). */
static inline pthread_t *fx_serving_thread(void)
{
    static pthread_t t;
    return &t;
}

static inline void *fx_serve_main(void *arg)
{
    static int rc;
    rc = mp_manager_serve_forever(arg);
    return &rc;
}

/* Runs mp_manager_serve_forever(m) on a thread and waits (5 s at most) until it
 * listens, so that mp_manager_address(m) is the bound address. */
static inline void fx_serve_thread(mp_manager *m)
{
    const char *given = mp_manager_address(m);
    char before[256];
    snprintf(before, sizeof before, "%s", given);
    CHECK_EQ(0, pthread_create(fx_serving_thread(), NULL, fx_serve_main, m));
    for (int i = 0; i < 500 && strcmp(mp_manager_address(m), before) == 0; i++)
        th_sleep_ms(10);
    CHECK(strcmp(mp_manager_address(m), before) != 0);
}

/* A manager on 127.0.0.1 (a free port) with authkey key (keylen bytes) and opt,
 * serving two empty queues registered as q1 and q2, run by fx_serve_thread. */
static inline mp_manager *fx_serve_queues(const char *key, size_t keylen, const char *q1,
                                          const char *q2, const mp_manager_options *opt)
{
    mp_served *a, *b;
    CHECK_OK(mp_served_queue_new(&a, 0));
    CHECK_OK(mp_served_queue_new(&b, 0));
    mp_manager *m;
    CHECK_OK(mp_manager_new(&m, "127.0.0.1:0", key, keylen, opt));
    CHECK_OK(mp_manager_register(m, q1, &(mp_manager_register_options){.object = a}));
    CHECK_OK(mp_manager_register(m, q2, &(mp_manager_register_options){.object = b}));
    mp_served_unref(a);
    mp_served_unref(b);
    fx_serve_thread(m);
    return m;
}

/* Stops the server of fx_serve_thread (if a 'shutdown' request has not already),
 * joins its thread, checks that serve_forever returned 0 and destroys m. */
static inline void fx_stop_here(mp_manager *m)
{
    CHECK_OK(mp_manager_stop(m));
    void *ret;
    CHECK_EQ(0, pthread_join(*fx_serving_thread(), &ret));
    CHECK_EQ(0, *(int *)ret);
    mp_manager_destroy(m);
}

#endif
