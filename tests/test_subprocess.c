/* test_subprocess.c — mp_popen, mp_run, mp_call, mp_check_call, mp_check_output.
 * The child program is tests/helpers/subprocess_helper (see its roles there). */
// TEST_TIMEOUT 120
// TEST_VARIANT nopidfd MPROC_NO_PIDFD=1
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "linux/pidfd.h"

static char helper_path[4096];

static const char *helper(void)
{
    const char *dir = getenv("MPROC_TEST_HELPERS");
    CHECK(dir != NULL);
    snprintf(helper_path, sizeof helper_path, "%s/subprocess_helper", dir);
    return helper_path;
}

/* Runs the helper with up to 3 arguments, capturing stdout; returns the result. */
static mp_completed_process run_helper(const char *a1, const char *a2, const char *a3,
                                       const mp_run_options *opt)
{
    const char *argv[] = {helper(), a1, a2, a3, NULL};
    mp_run_options o = opt ? *opt : (mp_run_options){0};
    if (o.popen.stdout_mode == MP_INHERIT && !o.capture_output)
        o.popen.stdout_mode = MP_PIPE;
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &o));
    CHECK_EQ(0, r.returncode);
    return r;
}

static bool no_children_left(void)
{
    siginfo_t si = {0};
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0;
}

static bool fd_list_has(const char *list, int fd)
{
    char want[16];
    snprintf(want, sizeof want, "%d", fd);
    char *copy = strdup(list), *save = NULL;
    bool found = false;
    for (char *t = strtok_r(copy, " \n", &save); t && !found; t = strtok_r(NULL, " \n", &save))
        found = strcmp(t, want) == 0;
    free(copy);
    return found;
}

/* ---- stdio combinations ---------------------------------------------------- */

TEST(run_captures_stdout_of_echo)
{
    const char *argv[] = {"echo", "Hello", NULL};
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true}));
    CHECK_EQ(0, r.returncode);
    CHECK_STR("Hello\n", r.stdout_data);
    CHECK_EQ(6, r.stdout_len);
    CHECK_STR("", r.stderr_data);
    CHECK_STR("echo", r.args[0]);
    CHECK_STR("Hello", r.args[1]);
    CHECK(r.args[2] == NULL);
    mp_completed_process_free(&r);
}

TEST(run_without_capture_leaves_output_null)
{
    const char *argv[] = {helper(), "out", "0", NULL};
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, NULL));
    CHECK(r.stdout_data == NULL);
    CHECK(r.stderr_data == NULL);
    mp_completed_process_free(&r);
}

TEST(stdout_goes_to_given_descriptor)
{
    int fd[2];
    CHECK(pipe2(fd, O_CLOEXEC) == 0);
    const char *argv[] = {"echo", "via fd", NULL};
    int code = -1;
    CHECK_OK(
        mp_call(argv, &(mp_popen_options){.stdout_mode = MP_FD, .stdout_fd = fd[1]}, -1, &code));
    CHECK_EQ(0, code);
    close(fd[1]);
    char buf[64] = {0};
    CHECK_EQ(7, read(fd[0], buf, sizeof buf));
    CHECK_STR("via fd\n", buf);
    close(fd[0]);
}

TEST(stdin_from_given_descriptor)
{
    int fd[2];
    CHECK(pipe2(fd, O_CLOEXEC) == 0);
    CHECK_EQ(4, write(fd[1], "abc\n", 4));
    close(fd[1]);
    mp_completed_process r = run_helper(
        "cat", NULL, NULL, &(mp_run_options){.popen.stdin_mode = MP_FD, .popen.stdin_fd = fd[0]});
    CHECK_STR("abc\n", r.stdout_data);
    mp_completed_process_free(&r);
    close(fd[0]);
}

TEST(devnull_stdin_reads_end_of_file)
{
    mp_completed_process r =
        run_helper("cat", NULL, NULL, &(mp_run_options){.popen.stdin_mode = MP_DEVNULL});
    CHECK_STR("", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(devnull_stdout_discards_output)
{
    const char *argv[] = {helper(), "both", "100000", NULL};
    mp_completed_process r;
    CHECK_OK(
        mp_run(&r, argv,
               &(mp_run_options){.popen.stdout_mode = MP_DEVNULL, .popen.stderr_mode = MP_PIPE}));
    CHECK_EQ(0, r.returncode);
    CHECK(r.stdout_data == NULL);
    CHECK_EQ(100000, r.stderr_len);
    mp_completed_process_free(&r);
}

TEST(stderr_into_stdout_merges_both)
{
    const char *argv[] = {"echo hello; echo world >&2", NULL};
    mp_completed_process r;
    CHECK_OK(
        mp_run(&r, argv,
               &(mp_run_options){
                   .popen = {.shell = true, .stdout_mode = MP_PIPE, .stderr_mode = MP_STDOUT}}));
    CHECK_STR("hello\nworld\n", r.stdout_data);
    CHECK(r.stderr_data == NULL);
    mp_completed_process_free(&r);
}

TEST(stderr_pipe_is_separate_from_stdout)
{
    const char *argv[] = {"echo out; echo err >&2", NULL};
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true, .popen.shell = true}));
    CHECK_STR("out\n", r.stdout_data);
    CHECK_STR("err\n", r.stderr_data);
    mp_completed_process_free(&r);
}

TEST(popen_pipes_can_be_streamed_directly)
{
    const char *argv[] = {helper(), "cat", NULL};
    mp_popen *p;
    CHECK_OK(
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    CHECK(mp_popen_stdin(p) >= 0);
    CHECK(mp_popen_stdout(p) >= 0);
    CHECK_EQ(-1, mp_popen_stderr(p));
    CHECK_EQ(5, write(mp_popen_stdin(p), "line\n", 5));
    char buf[16] = {0};
    CHECK_EQ(5, read(mp_popen_stdout(p), buf, sizeof buf));
    CHECK_STR("line\n", buf);
    CHECK_OK(mp_popen_close_stdin(p));
    CHECK_OK(mp_popen_close_stdin(p));
    CHECK_EQ(-1, mp_popen_stdin(p));
    int code = -1;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(0, code);
    mp_popen_destroy(p);
}

TEST(pipeline_feeds_one_child_from_another)
{
    const char *producer[] = {helper(), "out", "100000", NULL};
    const char *consumer[] = {"wc", "-c", NULL};
    mp_popen *p1, *p2;
    CHECK_OK(mp_popen_new(&p1, producer, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    CHECK_OK(mp_popen_new(&p2, consumer,
                          &(mp_popen_options){.stdin_mode = MP_FD,
                                              .stdin_fd = mp_popen_stdout(p1),
                                              .stdout_mode = MP_PIPE}));
    CHECK_OK(mp_popen_close_stdout(p1));
    CHECK_EQ(-1, mp_popen_stdout(p1));
    CHECK_OK(mp_popen_close_stdout(p1));
    char *out;
    CHECK_OK(mp_popen_communicate(p2, NULL, 0, -1, &out, NULL, NULL, NULL));
    CHECK_EQ(100000, atoi(out));
    free(out);
    int code = -1;
    CHECK_OK(mp_popen_wait(p1, -1, &code));
    CHECK_EQ(0, code);
    CHECK_RC(MP_EINVAL, mp_popen_close_stderr(NULL));
    mp_popen_destroy(p1);
    mp_popen_destroy(p2);
}

/* ---- communicate ----------------------------------------------------------- */

TEST(communicate_moves_megabytes_both_ways_without_deadlock)
{
    size_t n = 8u << 20;
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i * 131 + (i >> 12));
    const char *argv[] = {helper(), "echo-both", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv,
                          &(mp_popen_options){.stdin_mode = MP_PIPE,
                                              .stdout_mode = MP_PIPE,
                                              .stderr_mode = MP_PIPE}));
    char *out, *err;
    size_t out_len, err_len;
    CHECK_OK(mp_popen_communicate(p, in, n, -1, &out, &out_len, &err, &err_len));
    CHECK_EQ(n, out_len);
    CHECK_EQ(n, err_len);
    CHECK(memcmp(in, out, n) == 0);
    CHECK(memcmp(in, err, n) == 0);
    int code = -1;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(0, code);
    free(out);
    free(err);
    free(in);
    mp_popen_destroy(p);
}

TEST(communicate_timeout_then_resume_keeps_all_output)
{
    const char *argv[] = {helper(), "partial", "1500", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    char *out = (char *)1;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, NULL, 0, 200, &out, NULL, NULL, NULL));
    CHECK(th_now_ms() - t0 >= 190);
    CHECK(out == NULL);
    CHECK_RC(MP_ENOTREADY, mp_popen_returncode(p, NULL));
    size_t len;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, -1, &out, &len, NULL, NULL));
    CHECK_STR("part1\npart2\n", out);
    CHECK_EQ(12, len);
    free(out);
    mp_popen_destroy(p);
}

TEST(communicate_resumes_input_after_timeout)
{
    /* The child reads after a delay; the first call times out with the input
     * partly written, the second finishes it without writing anything twice. */
    size_t n = 4u << 20;
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('A' + i % 23);
    const char *argv[] = {"sleep 0.5; cat", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(
        &p, argv,
        &(mp_popen_options){.shell = true, .stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, in, n, 100, NULL, NULL, NULL, NULL));
    char *out;
    size_t len;
    CHECK_OK(mp_popen_communicate(p, in, n, -1, &out, &len, NULL, NULL));
    CHECK_EQ(n, len);
    CHECK(memcmp(in, out, n) == 0);
    free(out);
    free(in);
    mp_popen_destroy(p);
}

TEST(communicate_with_child_that_does_not_read_stdin)
{
    size_t n = 4u << 20;
    char *in = calloc(1, n);
    const char *argv[] = {helper(), "exit", "0", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE}));
    CHECK_OK(mp_popen_communicate(p, in, n, -1, NULL, NULL, NULL, NULL));
    int code = -1;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(0, code);
    sigset_t pending;
    sigpending(&pending);
    CHECK(!sigismember(&pending, SIGPIPE));
    free(in);
    mp_popen_destroy(p);
}

TEST(communicate_with_child_that_closes_stdin_early)
{
    size_t n = 2u << 20;
    char *in = calloc(1, n);
    const char *argv[] = {helper(), "closein", "100", NULL};
    mp_popen *p;
    CHECK_OK(
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    char *out;
    CHECK_OK(mp_popen_communicate(p, in, n, -1, &out, NULL, NULL, NULL));
    CHECK_STR("closed\n", out);
    free(out);
    free(in);
    mp_popen_destroy(p);
}

TEST(communicate_survives_child_killed_mid_transfer)
{
    size_t n = 8u << 20;
    char *in = calloc(1, n);
    const char *argv[] = {"head -c 1000; kill -9 $$", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(
        &p, argv,
        &(mp_popen_options){.shell = true, .stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    char *out;
    size_t len;
    CHECK_OK(mp_popen_communicate(p, in, n, -1, &out, &len, NULL, NULL));
    CHECK_EQ(1000, len);
    int code = 0;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(-SIGKILL, code);
    free(out);
    free(in);
    mp_popen_destroy(p);
}

TEST(communicate_input_without_stdin_pipe_is_einval)
{
    const char *argv[] = {helper(), "exit", "0", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, "x", 1, -1, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, NULL, 0, -2, NULL, NULL, NULL, NULL));
    char *out = (char *)1;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, -1, &out, NULL, NULL, NULL));
    CHECK(out == NULL); /* stdout is not a pipe */
    mp_popen_destroy(p);
}

/* ---- spawn failures --------------------------------------------------------- */

TEST(missing_program_is_enoent_with_its_name)
{
    const char *argv[] = {"nosuchcmd-mproc", NULL};
    mp_popen *p;
    CHECK_RC(MP_ENOENT, mp_popen_new(&p, argv, NULL));
    CHECK(p != NULL);
    CHECK_STR("No such file or directory: 'nosuchcmd-mproc'", mp_popen_message(p));
    CHECK_EQ(0, mp_popen_pid(p));
    CHECK_RC(MP_EINVAL, mp_popen_wait(p, -1, NULL));
    mp_popen_destroy(p);
    CHECK(no_children_left());
}

TEST(run_reports_missing_program_message)
{
    const char *argv[] = {"/no/such/dir/prog", NULL};
    mp_completed_process r;
    CHECK_RC(MP_ENOENT, mp_run(&r, argv, NULL));
    CHECK_STR("No such file or directory: '/no/such/dir/prog'", r.message);
    CHECK_EQ(-1, r.returncode);
    mp_completed_process_free(&r);
}

static void make_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    CHECK(fd >= 0);
    CHECK_EQ((long)strlen(text), write(fd, text, strlen(text)));
    close(fd);
    CHECK(chmod(path, mode) == 0);
}

TEST(non_executable_file_is_eacces)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/mptest-%d-noexec", (int)getpid());
    make_file(path, "#!/bin/sh\necho hi\n", 0644);
    const char *argv[] = {path, NULL};
    mp_popen *p;
    CHECK_RC(MP_EACCES, mp_popen_new(&p, argv, NULL));
    char want[128];
    snprintf(want, sizeof want, "Permission denied: '%s'", path);
    CHECK_STR(want, mp_popen_message(p));
    mp_popen_destroy(p);
    unlink(path);
    CHECK(no_children_left());
}

TEST(file_without_interpreter_line_is_enoexec)
{
    /* execvp would hand it to /bin/sh; Python (and mproc) report the error. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/mptest-%d-noshebang", (int)getpid());
    make_file(path, "echo hi\n", 0755);
    const char *argv[] = {path, NULL};
    mp_popen *p;
    CHECK_RC(MP_ENOEXEC, mp_popen_new(&p, argv, NULL));
    char want[128];
    snprintf(want, sizeof want, "Exec format error: '%s'", path);
    CHECK_STR(want, mp_popen_message(p));
    mp_popen_destroy(p);
    unlink(path);
    CHECK(no_children_left());
}

TEST(path_search_remembers_eacces_and_prefers_a_later_match)
{
    char d1[64], d2[64], f1[96], f2[96], path[256];
    snprintf(d1, sizeof d1, "/tmp/mptest-%d-d1", (int)getpid());
    snprintf(d2, sizeof d2, "/tmp/mptest-%d-d2", (int)getpid());
    CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0);
    snprintf(f1, sizeof f1, "%s/mpprog", d1);
    snprintf(f2, sizeof f2, "%s/mpprog", d2);
    make_file(f1, "#!/bin/sh\necho one\n", 0644);
    snprintf(path, sizeof path, "PATH=/nonexistent:%s", d1);
    const char *argv[] = {"mpprog", NULL};
    const char *env1[] = {path, NULL};
    mp_popen *p;
    CHECK_RC(MP_EACCES, mp_popen_new(&p, argv, &(mp_popen_options){.env = env1}));
    CHECK_STR("Permission denied: 'mpprog'", mp_popen_message(p));
    mp_popen_destroy(p);

    make_file(f2, "#!/bin/sh\necho two\n", 0755);
    snprintf(path, sizeof path, "PATH=%s:/nonexistent:%s", d1, d2);
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true, .popen.env = env1}));
    CHECK_STR("two\n", r.stdout_data);
    mp_completed_process_free(&r);
    unlink(f1);
    unlink(f2);
    rmdir(d1);
    rmdir(d2);
}

TEST(missing_cwd_is_enoent_with_the_directory)
{
    const char *argv[] = {helper(), "pwd", NULL};
    mp_popen *p;
    CHECK_RC(MP_ENOENT,
             mp_popen_new(&p, argv, &(mp_popen_options){.cwd = "/nonexistent-mproc-dir"}));
    CHECK_STR("No such file or directory: '/nonexistent-mproc-dir'", mp_popen_message(p));
    mp_popen_destroy(p);
    CHECK(no_children_left());
}

TEST(a_thousand_failed_spawns_leave_nothing_behind)
{
    const char *argv[] = {"nosuchcmd-mproc", NULL};
    for (int i = 0; i < 1000; i++) {
        mp_popen *p;
        CHECK_RC(MP_ENOENT, mp_popen_new(&p, argv,
                                         &(mp_popen_options){.stdin_mode = MP_PIPE,
                                                             .stdout_mode = MP_PIPE,
                                                             .stderr_mode = MP_DEVNULL}));
        mp_popen_destroy(p);
    }
    CHECK(no_children_left()); /* the harness also checks descriptors */
}

TEST(closed_pass_fd_is_ebadf_before_any_spawn)
{
    int fd[2];
    CHECK(pipe2(fd, O_CLOEXEC) == 0);
    close(fd[0]);
    close(fd[1]);
    const char *argv[] = {helper(), "fds", NULL};
    mp_popen *p;
    CHECK_RC(MP_EBADF,
             mp_popen_new(&p, argv, &(mp_popen_options){.pass_fds = &fd[1], .n_pass_fds = 1}));
    CHECK(p == NULL);
    CHECK_RC(MP_EBADF,
             mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_FD, .stdout_fd = fd[0]}));
    CHECK(p == NULL);
    CHECK(no_children_left());
}

static int fail_preexec(void *arg)
{
    (void)arg;
    return 1;
}

static int umask_preexec(void *arg)
{
    umask(*(mode_t *)arg);
    return 0;
}

TEST(preexec_runs_in_the_child_before_exec)
{
    mode_t m = 0027;
    mp_completed_process r =
        run_helper("umask", NULL, NULL,
                   &(mp_run_options){.popen = {.preexec = umask_preexec, .preexec_arg = &m}});
    CHECK_STR("027\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(failing_preexec_is_espawn)
{
    const char *argv[] = {helper(), "exit", "0", NULL};
    mp_popen *p;
    CHECK_RC(MP_ESPAWN, mp_popen_new(&p, argv, &(mp_popen_options){.preexec = fail_preexec}));
    CHECK_STR("preexec callback failed", mp_popen_message(p));
    mp_popen_destroy(p);
    CHECK(no_children_left());
}

TEST(bad_arguments_are_einval)
{
    const char *empty[] = {NULL};
    const char *argv[] = {"true", NULL};
    mp_popen *p = (mp_popen *)1;
    CHECK_RC(MP_EINVAL, mp_popen_new(NULL, argv, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_new(&p, NULL, NULL));
    CHECK(p == NULL);
    CHECK_RC(MP_EINVAL, mp_popen_new(&p, empty, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_STDOUT}));
    CHECK_RC(MP_EINVAL,
             mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_FD, .stdin_fd = -1}));
    CHECK_RC(MP_EINVAL, mp_popen_new(&p, argv, &(mp_popen_options){.stderr_mode = (mp_stdio)42}));
    int bad = -3;
    CHECK_RC(MP_EINVAL,
             mp_popen_new(&p, argv, &(mp_popen_options){.pass_fds = &bad, .n_pass_fds = 1}));
    mp_completed_process r;
    CHECK_RC(MP_EINVAL,
             mp_run(&r, argv,
                    &(mp_run_options){.capture_output = true, .popen.stdout_mode = MP_DEVNULL}));
    mp_completed_process_free(&r);
    CHECK_RC(MP_EINVAL, mp_run(&r, argv,
                               &(mp_run_options){
                                   .input = "x", .input_len = 1, .popen.stdin_mode = MP_DEVNULL}));
    mp_completed_process_free(&r);
    CHECK_RC(MP_EINVAL, mp_run(NULL, argv, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_wait(NULL, -1, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_kill(NULL));
    CHECK_RC(MP_EINVAL, mp_call(argv, NULL, -5, NULL));
    mp_popen_destroy(NULL);
    mp_completed_process_free(NULL);
}

/* ---- environment, cwd, program ------------------------------------------------ */

TEST(empty_env_gives_the_child_no_variables)
{
    const char *empty[] = {NULL};
    mp_completed_process r =
        run_helper("envcount", NULL, NULL, &(mp_run_options){.popen.env = empty});
    CHECK_STR("0\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(env_extra_adds_to_the_parent_environment)
{
    setenv("MPROC_TEST_KEEP", "kept", 1);
    const char *extra[] = {"MPROC_TEST_NEW=added", NULL};
    mp_completed_process r =
        run_helper("env", "MPROC_TEST_NEW", NULL, &(mp_run_options){.popen.env_extra = extra});
    CHECK_STR("added\n", r.stdout_data);
    mp_completed_process_free(&r);
    r = run_helper("env", "MPROC_TEST_KEEP", NULL, &(mp_run_options){.popen.env_extra = extra});
    CHECK_STR("kept\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(env_extra_overrides_a_variable_of_env)
{
    const char *env[] = {"A=1", "B=2", NULL};
    const char *extra[] = {"B=3", NULL};
    mp_completed_process r =
        run_helper("env", "B", NULL, &(mp_run_options){.popen = {.env = env, .env_extra = extra}});
    CHECK_STR("3\n", r.stdout_data);
    mp_completed_process_free(&r);
    r = run_helper("envcount", NULL, NULL,
                   &(mp_run_options){.popen = {.env = env, .env_extra = extra}});
    CHECK_STR("2\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(env_extra_name_without_value_removes_the_variable)
{
    setenv("MPROC_TEST_GONE", "here", 1);
    const char *extra[] = {"MPROC_TEST_GONE", NULL};
    mp_completed_process r =
        run_helper("env", "MPROC_TEST_GONE", NULL, &(mp_run_options){.popen.env_extra = extra});
    CHECK_STR("(unset)\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(program_is_searched_on_the_path_of_env)
{
    char path[4200];
    snprintf(path, sizeof path, "PATH=%s", getenv("MPROC_TEST_HELPERS"));
    const char *env[] = {path, NULL};
    const char *argv[] = {"subprocess_helper", "exit", "7", NULL};
    int code = -1;
    CHECK_OK(mp_call(argv, &(mp_popen_options){.env = env}, -1, &code));
    CHECK_EQ(7, code);
    const char *env2[] = {"PATH=/nonexistent", NULL};
    const char *sh[] = {"sh", "-c", "true", NULL};
    CHECK_RC(MP_ENOENT, mp_call(sh, &(mp_popen_options){.env = env2}, -1, &code));
}

TEST(cwd_sets_the_working_directory)
{
    mp_completed_process r = run_helper("pwd", NULL, NULL, &(mp_run_options){.popen.cwd = "/tmp"});
    CHECK_STR("/tmp\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(shell_runs_a_command_line_with_arguments)
{
    const char *argv[] = {"echo $((1+2)) $0 $1", "zero", "one", NULL};
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true, .popen.shell = true}));
    CHECK_STR("3 zero one\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(executable_replaces_the_program_but_not_argv0)
{
    const char *argv[] = {"myname", "argv", NULL};
    mp_completed_process r;
    CHECK_OK(
        mp_run(&r, argv, &(mp_run_options){.capture_output = true, .popen.executable = helper()}));
    CHECK_STR("myname\nargv\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(popen_args_is_a_copy_of_argv)
{
    char name[] = "echo";
    const char *argv[] = {name, "x", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_DEVNULL}));
    name[0] = 'X';
    CHECK_STR("echo", mp_popen_args(p)[0]);
    CHECK_STR("x", mp_popen_args(p)[1]);
    CHECK(mp_popen_args(p)[2] == NULL);
    CHECK(mp_popen_pid(p) > 0);
    CHECK_OK(mp_popen_wait(p, -1, NULL));
    mp_popen_destroy(p);
}

/* ---- descriptors ------------------------------------------------------------ */

TEST(close_fds_default_closes_inheritable_descriptors)
{
    int fd = fcntl(2, F_DUPFD, 10); /* inheritable: no FD_CLOEXEC */
    CHECK(fd >= 10);
    mp_completed_process r = run_helper("fds", NULL, NULL, NULL);
    CHECK(!fd_list_has(r.stdout_data, fd));
    CHECK(fd_list_has(r.stdout_data, 0) && fd_list_has(r.stdout_data, 1) &&
          fd_list_has(r.stdout_data, 2));
    mp_completed_process_free(&r);
    r = run_helper("fds", NULL, NULL, &(mp_run_options){.popen.keep_fds = true});
    CHECK(fd_list_has(r.stdout_data, fd));
    mp_completed_process_free(&r);
    close(fd);
}

TEST(pass_fds_keeps_descriptors_open_in_the_child)
{
    int a[2], b[2];
    CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0);
    int pass[] = {b[1], a[0]};
    mp_completed_process r = run_helper(
        "fds", NULL, NULL, &(mp_run_options){.popen = {.pass_fds = pass, .n_pass_fds = 2}});
    CHECK(fd_list_has(r.stdout_data, a[0]));
    CHECK(fd_list_has(r.stdout_data, b[1]));
    CHECK(!fd_list_has(r.stdout_data, a[1]));
    CHECK(!fd_list_has(r.stdout_data, b[0]));
    mp_completed_process_free(&r);
    CHECK(fcntl(a[0], F_GETFD) & FD_CLOEXEC); /* the parent's flag is untouched */
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

TEST(child_gets_only_0_1_2_by_default)
{
    mp_completed_process r = run_helper("fds", NULL, NULL, NULL);
    CHECK_STR("0 1 2\n", r.stdout_data);
    mp_completed_process_free(&r);
}

/* In a forked child: stdio closed, then pipes land on 0, 1, 2. */
static int closed_stdio_child(void *arg)
{
    const char *h = arg;
    close(0);
    close(1);
    close(2);
    const char *argv[] = {h, "cat", NULL};
    mp_popen *p;
    if (mp_popen_new(&p, argv,
                     &(mp_popen_options){
                         .stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE, .stderr_mode = MP_PIPE}))
        return 10;
    char *out = NULL, *err = NULL;
    if (mp_popen_communicate(p, "through\n", 8, 20000, &out, NULL, &err, NULL))
        return 11;
    int ok = out && strcmp(out, "through\n") == 0 && err && err[0] == '\0';
    free(out);
    free(err);
    mp_popen_destroy(p);
    return ok ? 0 : 12;
}

TEST(works_when_the_parent_has_closed_its_stdio)
{
    CHECK_EQ(0, th_wait(th_fork(closed_stdio_child, (void *)helper())));
}

/* In a forked child: fd 0 is a write end and fd 1 a read end, and the child's
 * stdin must come from fd 1 and its stdout go to fd 0 (a crossed swap). */
static int swapped_stdio_child(void *arg)
{
    const char *h = arg;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
        return 10;
    if (dup3(in[0], 1, O_CLOEXEC) < 0 || dup3(out[1], 0, O_CLOEXEC) < 0)
        return 11;
    close(in[0]);
    close(out[1]);
    const char *argv[] = {h, "cat", NULL};
    mp_popen *p;
    if (mp_popen_new(&p, argv,
                     &(mp_popen_options){
                         .stdin_mode = MP_FD, .stdin_fd = 1, .stdout_mode = MP_FD, .stdout_fd = 0}))
        return 12;
    close(0);
    close(1);
    if (write(in[1], "swap\n", 5) != 5)
        return 13;
    close(in[1]);
    char buf[16] = {0};
    ssize_t n = read(out[0], buf, sizeof buf);
    int code = -1;
    mp_popen_wait(p, -1, &code);
    mp_popen_destroy(p);
    return n == 5 && strcmp(buf, "swap\n") == 0 && code == 0 ? 0 : 14;
}

TEST(works_when_the_parent_stdio_is_swapped)
{
    CHECK_EQ(0, th_wait(th_fork(swapped_stdio_child, (void *)helper())));
}

/* ---- session, group, umask, signals -------------------------------------------- */

TEST(start_new_session_gives_a_new_session_id)
{
    mp_completed_process r =
        run_helper("sid", NULL, NULL, &(mp_run_options){.popen.start_new_session = true});
    int sid, pgid, pid;
    CHECK_EQ(3, sscanf(r.stdout_data, "%d %d %d", &sid, &pgid, &pid));
    CHECK_EQ(pid, sid);
    CHECK(sid != getsid(0));
    mp_completed_process_free(&r);
    r = run_helper("sid", NULL, NULL, NULL);
    CHECK_EQ(3, sscanf(r.stdout_data, "%d %d %d", &sid, &pgid, &pid));
    CHECK_EQ(getsid(0), sid);
    mp_completed_process_free(&r);
}

TEST(process_group_zero_makes_the_child_a_group_leader)
{
    mp_completed_process r =
        run_helper("sid", NULL, NULL, &(mp_run_options){.popen.set_process_group = true});
    int sid, pgid, pid;
    CHECK_EQ(3, sscanf(r.stdout_data, "%d %d %d", &sid, &pgid, &pid));
    CHECK_EQ(pid, pgid);
    CHECK_EQ(getsid(0), sid);
    mp_completed_process_free(&r);
}

TEST(umask_is_set_in_the_child)
{
    mp_completed_process r = run_helper(
        "umask", NULL, NULL, &(mp_run_options){.popen = {.set_umask = true, .umask = 0077}});
    CHECK_STR("077\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(restore_signals_resets_ignored_sigpipe_and_keeps_the_mask)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    sigset_t usr1, oldmask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &oldmask);
    mp_completed_process r = run_helper("sigpipe", NULL, NULL, NULL);
    CHECK_STR("dfl blocked\n", r.stdout_data);
    mp_completed_process_free(&r);
    r = run_helper("sigpipe", NULL, NULL, &(mp_run_options){.popen.keep_signals = true});
    CHECK_STR("ign blocked\n", r.stdout_data);
    mp_completed_process_free(&r);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old, NULL);
}

static volatile sig_atomic_t handler_ran_in;
static void note_pid(int sig)
{
    (void)sig;
    handler_ran_in = getpid();
}

TEST(parent_signal_handlers_never_run_in_the_child)
{
    /* A handled signal sent to the child must kill it (SIG_DFL), not run our
     * handler on shared memory. */
    struct sigaction sa = {.sa_handler = note_pid}, old;
    sigaction(SIGUSR1, &sa, &old);
    const char *argv[] = {helper(), "sleep", "20000", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_DEVNULL}));
    CHECK_OK(mp_popen_send_signal(p, SIGUSR1));
    int code = 0;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(-SIGUSR1, code);
    CHECK_EQ(0, handler_ran_in);
    mp_popen_destroy(p);
    sigaction(SIGUSR1, &old, NULL);
}

TEST(exit_by_signal_is_a_negative_returncode)
{
    const char *argv[] = {helper(), "signal", "9", NULL};
    int code = 0;
    CHECK_OK(mp_call(argv, NULL, -1, &code));
    CHECK_EQ(-9, code);
}

TEST(terminate_ends_a_running_child_with_sigterm)
{
    const char *argv[] = {helper(), "sleep", "20000", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    CHECK_RC(MP_ENOTREADY, mp_popen_poll(p, NULL));
    CHECK_OK(mp_popen_terminate(p));
    int code = 0;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(-SIGTERM, code);
    mp_popen_destroy(p);
}

TEST(popen_poll_accepts_a_null_returncode)
{
    const char *argv[] = {helper(), "exit", "3", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    int rc;
    uint64_t t0 = th_now_ms();
    while ((rc = mp_popen_poll(p, NULL)) == MP_ENOTREADY && th_now_ms() - t0 < 20000)
        th_sleep_ms(5);
    CHECK_OK(rc);
    int code = -1;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(3, code);
    CHECK_OK(mp_popen_poll(p, NULL)); /* reaped already: still 0 */
    CHECK_RC(MP_EINVAL, mp_popen_poll(NULL, NULL));
    mp_popen_destroy(p);
}

TEST(kill_and_terminate_of_a_finished_child_are_no_ops)
{
    const char *argv[] = {helper(), "exit", "4", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    int code = -1;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(4, code);
    CHECK_OK(mp_popen_kill(p));
    CHECK_OK(mp_popen_terminate(p));
    CHECK_OK(mp_popen_send_signal(p, SIGUSR1));
    CHECK_OK(mp_popen_poll(p, &code));
    CHECK_EQ(4, code);
    CHECK_OK(mp_popen_wait(p, 0, &code));
    CHECK_EQ(4, code);
    mp_popen_destroy(p);
}

TEST(kill_of_an_exited_unreaped_child_is_a_no_op)
{
    const char *argv[] = {helper(), "exit", "5", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    /* Let it become a zombie without our reaping it. */
    siginfo_t si;
    CHECK(waitid(P_PID, (id_t)mp_popen_pid(p), &si, WEXITED | WNOWAIT) == 0);
    CHECK_OK(mp_popen_kill(p));
    int code = -1;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(5, code);
    mp_popen_destroy(p);
}

TEST(wait_times_out_on_a_running_child)
{
    const char *argv[] = {helper(), "sleep", "20000", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_popen_wait(p, 150, NULL));
    uint64_t waited = th_now_ms() - t0;
    CHECK(waited >= 140);
    CHECK(waited < 15000);
    CHECK_RC(MP_ETIMEDOUT, mp_popen_wait(p, 0, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_wait(p, -2, NULL));
    CHECK_OK(mp_popen_kill(p));
    int code = 0;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(-SIGKILL, code);
    mp_popen_destroy(p);
}

TEST(destroyed_running_child_is_reaped_later)
{
    const char *argv[] = {helper(), "sleep", "100", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    mp_popen_destroy(p); /* still running: not waited for */
    const char *t[] = {"true", NULL};
    uint64_t t0 = th_now_ms();
    while (!no_children_left() && th_now_ms() - t0 < 30000) {
        th_sleep_ms(50);
        CHECK_OK(mp_call(t, NULL, -1, NULL)); /* each spawn reaps finished orphans */
    }
    CHECK(no_children_left());
}

TEST(handle_of_another_process_is_echild)
{
    const char *argv[] = {helper(), "sleep", "200", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    pid_t pid = fork();
    if (pid == 0)
        _exit(mp_popen_wait(p, 0, NULL) == MP_ECHILD && mp_popen_kill(p) == MP_ECHILD ? 0 : 1);
    CHECK_EQ(0, th_wait(pid));
    CHECK_OK(mp_popen_wait(p, -1, NULL));
    mp_popen_destroy(p);
}

/* ---- run, call, check_call, check_output ------------------------------------- */

TEST(run_feeds_input_to_the_child)
{
    const char *argv[] = {"sort", NULL};
    mp_completed_process r;
    const char *in = "pear\napple\nfig\n";
    CHECK_OK(mp_run(
        &r, argv, &(mp_run_options){.input = in, .input_len = strlen(in), .capture_output = true}));
    CHECK_STR("apple\nfig\npear\n", r.stdout_data);
    mp_completed_process_free(&r);
}

TEST(run_check_reports_nonzero_exit_with_the_result)
{
    const char *argv[] = {"echo partial; exit 3", NULL};
    mp_completed_process r;
    CHECK_RC(MP_ENONZERO,
             mp_run(&r, argv,
                    &(mp_run_options){.check = true, .capture_output = true, .popen.shell = true}));
    CHECK_EQ(3, r.returncode);
    CHECK_STR("partial\n", r.stdout_data);
    mp_completed_process_free(&r);
    CHECK_OK(
        mp_run(&r, argv, &(mp_run_options){.popen.shell = true, .popen.stdout_mode = MP_DEVNULL}));
    CHECK_EQ(3, r.returncode);
    mp_completed_process_free(&r);
}

TEST(run_timeout_kills_the_child_and_keeps_partial_output)
{
    const char *argv[] = {helper(), "partial", "20000", NULL};
    mp_completed_process r;
    uint64_t t0 = th_now_ms();
    /* Long enough for the child to print part1 even on a loaded machine. */
    CHECK_RC(MP_ETIMEDOUT,
             mp_run(&r, argv, &(mp_run_options){.capture_output = true, .timeout_ms = 1500}));
    CHECK(th_now_ms() - t0 >= 1490);
    CHECK(th_now_ms() - t0 < 15000);
    CHECK_STR("part1\n", r.stdout_data);
    CHECK_EQ(-SIGKILL, r.returncode);
    mp_completed_process_free(&r);
    CHECK(no_children_left());
}

TEST(call_returns_the_exit_status)
{
    const char *argv[] = {helper(), "exit", "42", NULL};
    int code = -1;
    CHECK_OK(mp_call(argv, NULL, -1, &code));
    CHECK_EQ(42, code);
}

TEST(call_timeout_kills_the_child)
{
    const char *argv[] = {helper(), "sleep", "20000", NULL};
    int code = 0;
    CHECK_RC(MP_ETIMEDOUT, mp_call(argv, NULL, 100, &code));
    CHECK_EQ(-SIGKILL, code);
    CHECK(no_children_left());
}

TEST(check_call_nonzero_is_enonzero)
{
    const char *fail[] = {"false", NULL};
    const char *ok[] = {"true", NULL};
    int code = -1;
    CHECK_RC(MP_ENONZERO, mp_check_call(fail, NULL, -1, &code));
    CHECK_EQ(1, code);
    CHECK_OK(mp_check_call(ok, NULL, -1, &code));
    CHECK_EQ(0, code);
    CHECK_RC(MP_ENOENT, mp_check_call((const char *[]){"nosuchcmd-mproc", NULL}, NULL, -1, NULL));
}

TEST(check_output_returns_stdout)
{
    const char *argv[] = {"echo", "out", NULL};
    char *out;
    size_t len;
    CHECK_OK(mp_check_output(argv, NULL, &out, &len, NULL));
    CHECK_STR("out\n", out);
    CHECK_EQ(4, len);
    free(out);
    const char *fail[] = {"echo gone; exit 2", NULL};
    int code = 0;
    CHECK_RC(MP_ENONZERO,
             mp_check_output(fail, &(mp_run_options){.popen.shell = true}, &out, NULL, &code));
    CHECK_STR("gone\n", out);
    CHECK_EQ(2, code); /* CalledProcessError.returncode */
    free(out);
    CHECK_RC(MP_EINVAL, mp_check_output(argv, &(mp_run_options){.popen.stdout_mode = MP_PIPE}, &out,
                                        NULL, &code));
    CHECK(out == NULL);
    CHECK_EQ(-1, code);
}

TEST(large_output_is_captured_whole)
{
    const char *argv[] = {helper(), "out", "20000000", NULL};
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true}));
    CHECK_EQ(20000000, r.stdout_len);
    bool same = true;
    for (size_t i = 0; i < r.stdout_len && same; i++)
        same = r.stdout_data[i] == (char)('a' + (i * 7 + i / 4096) % 26);
    CHECK(same);
    CHECK_EQ('\0', r.stdout_data[r.stdout_len]);
    mp_completed_process_free(&r);
}

/* ---- coexistence ------------------------------------------------------------ */

static int exit_seven(void *arg)
{
    (void)arg;
    return 7;
}

TEST(other_children_keep_their_status_and_no_sigchld_handler_is_installed)
{
    int other = th_fork(exit_seven, NULL);
    siginfo_t si;
    CHECK(waitid(P_PID, (id_t)other, &si, WEXITED | WNOWAIT) == 0); /* it has exited */
    const char *argv[] = {helper(), "exit", "0", NULL};
    for (int i = 0; i < 20; i++)
        CHECK_OK(mp_call(argv, NULL, -1, NULL));
    struct sigaction sa;
    sigaction(SIGCHLD, NULL, &sa);
    CHECK(sa.sa_handler == SIG_DFL);
    CHECK_EQ(7, th_wait(other));
}

struct spawner {
    const char *helper;
    int failures;
};

static void *spawn_many(void *arg)
{
    struct spawner *s = arg;
    for (int i = 0; i < 40; i++) {
        char n[16];
        snprintf(n, sizeof n, "%d", 1000 + i * 37);
        const char *argv[] = {s->helper, "out", n, NULL};
        mp_completed_process r;
        if (mp_run(&r, argv, &(mp_run_options){.capture_output = true}) != 0 || r.returncode != 0 ||
            r.stdout_len != (size_t)(1000 + i * 37) || r.stderr_len != 0)
            s->failures++;
        mp_completed_process_free(&r);
    }
    return NULL;
}

TEST(concurrent_spawns_from_threads_keep_their_pipes_apart)
{
    pthread_t t[4];
    struct spawner s[4];
    const char *path = helper(); /* before the threads: helper() writes a global */
    for (int i = 0; i < 4; i++) {
        s[i] = (struct spawner){path, 0};
        CHECK(pthread_create(&t[i], NULL, spawn_many, &s[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(0, s[i].failures);
    }
}

/* In a forked child: 0, 1 and 2 are three files; the child's stdin, stdout and
 * stderr are each permutation of them in turn (CPython's test_swap_fds). */
static int permuted_stdio_child(void *arg)
{
    (void)arg;
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const char *argv[] = {"cat; echo err >&2", NULL};
    for (int k = 0; k < 6; k++) {
        const int *pm = perms[k];
        for (int fd = 0; fd < 3; fd++) {
            int m = memfd_create("mptest", MFD_CLOEXEC);
            if (m < 0 || dup3(m, fd, O_CLOEXEC) < 0)
                return 10;
            close(m);
        }
        if (pwrite(pm[0], "in-data\n", 8, 0) != 8)
            return 11;
        mp_popen *p;
        if (mp_popen_new(&p, argv,
                         &(mp_popen_options){.shell = true,
                                             .stdin_mode = MP_FD,
                                             .stdin_fd = pm[0],
                                             .stdout_mode = MP_FD,
                                             .stdout_fd = pm[1],
                                             .stderr_mode = MP_FD,
                                             .stderr_fd = pm[2]}))
            return 12;
        int code = -1;
        mp_popen_wait(p, -1, &code);
        mp_popen_destroy(p);
        char out[32] = {0}, err[32] = {0};
        if (code != 0 || pread(pm[1], out, sizeof out - 1, 0) < 0 ||
            pread(pm[2], err, sizeof err - 1, 0) < 0)
            return 13;
        if (strcmp(out, "in-data\n") != 0 || strcmp(err, "err\n") != 0)
            return 20 + k;
    }
    return 0;
}

TEST(every_permutation_of_the_parent_stdio_reaches_the_right_stream)
{
    CHECK_EQ(0, th_wait(th_fork(permuted_stdio_child, NULL)));
}

static void on_alarm(int sig)
{
    (void)sig;
}

TEST(communicate_and_wait_resume_after_signals)
{
    struct sigaction sa = {.sa_handler = on_alarm}, old; /* no SA_RESTART: syscalls get EINTR */
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    const char *argv[] = {helper(), "partial", "400", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    char *out;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 20000, &out, NULL, NULL, NULL));
    CHECK_STR("part1\npart2\n", out);
    free(out);
    mp_popen_destroy(p);
    const char *sleeper[] = {helper(), "sleep", "300", NULL};
    CHECK_OK(mp_popen_new(&p, sleeper, &(mp_popen_options){.stdout_mode = MP_DEVNULL}));
    int code = -1;
    CHECK_RC(MP_ETIMEDOUT, mp_popen_wait(p, 100, &code));
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(0, code);
    mp_popen_destroy(p);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
}

/* ---- one handle, several threads: wait, poll and signals ------------------- */

struct waiter {
    mp_popen *p;
    int rc, code;
};

static void *wait_forever(void *arg)
{
    struct waiter *w = arg;
    w->code = 1000;
    w->rc = mp_popen_wait(w->p, -1, &w->code);
    return NULL;
}

TEST(concurrent_waits_all_get_the_real_returncode)
{
    /* Two threads wait on one child; the one that does not reap it must still
     * report the child's status, not the 255 of a lost status. */
    const char *argv[] = {helper(), "cat", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv,
                          &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_DEVNULL}));
    struct waiter w[3] = {{.p = p}, {.p = p}, {.p = p}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, wait_forever, &w[i]) == 0);
    th_sleep_ms(200);                  /* let them block in their waits */
    CHECK_OK(mp_popen_close_stdin(p)); /* cat sees end-of-file and exits 0 */
    for (int i = 0; i < 3; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK_OK(w[i].rc);
        CHECK_EQ(0, w[i].code);
    }
    int code = 1000;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(0, code);
    mp_popen_destroy(p);
}

TEST(kill_from_another_thread_ends_a_wait)
{
    for (int round = 0; round < 20; round++) {
        const char *argv[] = {helper(), "sleep", "20000", NULL};
        mp_popen *p;
        CHECK_OK(mp_popen_new(&p, argv, NULL));
        struct waiter w = {.p = p};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, wait_forever, &w) == 0);
        if (round % 2)
            th_sleep_ms(20);
        CHECK_OK(mp_popen_kill(p));
        CHECK_OK(mp_popen_kill(p)); /* a second kill races with the reaping: a no-op */
        CHECK(pthread_join(t, NULL) == 0);
        CHECK_OK(w.rc);
        CHECK_EQ(-SIGKILL, w.code);
        int code = 0;
        CHECK_OK(mp_popen_poll(p, &code));
        CHECK_EQ(-SIGKILL, code);
        CHECK_OK(mp_popen_kill(p));
        mp_popen_destroy(p);
    }
}

/* ---- the child's own descriptor moves can fail ------------------------------ */

/* In a forked child: 0, 1, 2 closed and no room above 2 (RLIMIT_NOFILE of 3), so
 * the error pipe lands on 0 and 1 and the child cannot move it out of the way.
 * The spawn must fail with the child's errno, not look like a started program. */
static int no_room_for_the_error_pipe_child(void *arg)
{
    const char *h = arg;
    close(0);
    close(1);
    close(2);
    struct rlimit rl, old;
    if (getrlimit(RLIMIT_NOFILE, &old) != 0)
        return 10;
    rl = old;
    rl.rlim_cur = 3;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 11;
    const char *argv[] = {h, "exit", "0", NULL};
    mp_popen *p = NULL;
    int rc = mp_popen_new(&p, argv, NULL);
    setrlimit(RLIMIT_NOFILE, &old); /* LeakSanitizer needs descriptors at exit */
    int code = -1000;
    if (rc == 0) {
        mp_popen_wait(p, -1, &code);
        mp_popen_destroy(p);
        return code == 127 ? 12 : 13; /* 12: the failure looked like a start */
    }
    bool ok = rc == MP_EINVAL && p != NULL && mp_popen_pid(p) == 0 &&
              strstr(mp_popen_message(p), "dup2") != NULL;
    mp_popen_destroy(p);
    return ok ? 0 : 14;
}

TEST(child_that_cannot_move_the_error_pipe_reports_it)
{
    CHECK_EQ(0, th_wait(th_fork(no_room_for_the_error_pipe_child, (void *)helper())));
}

/* ---- fork while another thread reaps orphans -------------------------------- */

static atomic_bool churn_stop;

/* Each failed spawn walks the list of orphans twice under its lock. */
static void *churn_orphans(void *arg)
{
    (void)arg;
    const char *argv[] = {"/nonexistent-mproc-test/prog", NULL};
    while (!atomic_load(&churn_stop)) {
        mp_popen *p = NULL;
        mp_popen_new(&p, argv, NULL);
        mp_popen_destroy(p);
    }
    return NULL;
}

static int spawn_in_forked_child(void *arg)
{
    (void)arg;
    alarm(10); /* a child that inherited a held lock hangs: end it */
    const char *argv[] = {"/nonexistent-mproc-test/prog", NULL};
    mp_popen *p = NULL;
    int rc = mp_popen_new(&p, argv, NULL);
    mp_popen_destroy(p);
    /* _exit: the churning thread's blocks in flight were copied here without the
     * thread, and a leak check at exit() would count them. */
    _exit(rc == MP_ENOENT ? 0 : 1);
}

TEST(fork_while_another_thread_reaps_orphans_leaves_the_child_usable)
{
    SKIP_UNDER_ASAN("its allocator is not fork-safe, and this test forks while another "
                    "thread allocates");
    enum { N_ORPHANS = 48, N_FORKS = 1000 };
    pid_t pids[N_ORPHANS];
    for (int i = 0; i < N_ORPHANS; i++) {
        const char *argv[] = {helper(), "sleep", "60000", NULL};
        mp_popen *p;
        CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_DEVNULL}));
        pids[i] = mp_popen_pid(p);
        mp_popen_destroy(p); /* running: now an orphan on mproc's list */
    }
    atomic_store(&churn_stop, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, churn_orphans, NULL) == 0);
    /* The window is narrow: many forks, stopping at the first stuck child. */
    int bad = 0;
    for (int i = 0; i < N_FORKS && bad == 0; i++)
        bad += th_wait(th_fork(spawn_in_forked_child, NULL)) != 0;
    atomic_store(&churn_stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    for (int i = 0; i < N_ORPHANS; i++)
        kill(pids[i], SIGKILL);
    const char *t_argv[] = {"true", NULL};
    uint64_t t0 = th_now_ms();
    while (!no_children_left() && th_now_ms() - t0 < 30000) {
        th_sleep_ms(20);
        CHECK_OK(mp_call(t_argv, NULL, -1, NULL)); /* reaps the killed orphans */
    }
    CHECK(no_children_left());
    CHECK_EQ(0, bad);
}

TEST(resumed_communicate_refuses_input_other_than_the_first)
{
    /* Python: "Cannot send input after starting communication". Input silently
     * dropped (stdin already closed) or cut short would lose data unnoticed. */
    const char *argv[] = {helper(), "sleep", "20000", NULL};
    mp_popen *p;
    CHECK_OK(
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, NULL, 0, 50, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, "late", 4, 0, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, NULL, 0, 0, NULL, NULL, NULL, NULL));
    CHECK_OK(mp_popen_kill(p));
    CHECK_OK(mp_popen_wait(p, -1, NULL));
    mp_popen_destroy(p);

    /* A longer input than the interrupted call's is refused too. */
    const char *cat[] = {"sleep 0.3; cat", NULL};
    CHECK_OK(mp_popen_new(
        &p, cat,
        &(mp_popen_options){.shell = true, .stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, "abc", 3, 0, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, "abcdef", 6, -1, NULL, NULL, NULL, NULL));
    char *out;
    CHECK_OK(mp_popen_communicate(p, "abc", 3, -1, &out, NULL, NULL, NULL));
    CHECK_STR("abc", out);
    free(out);
    mp_popen_destroy(p);
}

TEST(path_entry_too_long_or_looping_does_not_stop_the_search)
{
    /* As CPython: every PATH entry is tried, and the first error other than
     * ENOENT/ENOTDIR is reported only when no entry runs. */
    char loop[64];
    snprintf(loop, sizeof loop, "/tmp/mptest-%d-loop", (int)getpid());
    unlink(loop);
    CHECK(symlink(loop, loop) == 0); /* loop/subprocess_helper: ELOOP */
    size_t long_len = 5000;
    char *path = malloc(long_len + 4300);
    strcpy(path, "PATH=/");
    memset(path + 6, 'x', long_len); /* longer than PATH_MAX: ENAMETOOLONG */
    snprintf(path + 6 + long_len, 4300, ":%s:%s", loop, getenv("MPROC_TEST_HELPERS"));
    const char *env[] = {path, NULL};
    const char *argv[] = {"subprocess_helper", "exit", "7", NULL};
    int code = -1;
    int rc = mp_call(argv, &(mp_popen_options){.env = env}, -1, &code);
    unlink(loop);
    CHECK_OK(rc);
    CHECK_EQ(7, code);

    /* Nothing runs: the first interesting error is the one reported. */
    snprintf(path + 6 + long_len, 4300, ":/nonexistent");
    mp_popen *p = NULL;
    CHECK_RC(-ENAMETOOLONG, mp_popen_new(&p, argv, &(mp_popen_options){.env = env}));
    mp_popen_destroy(p);
    free(path);
}

TEST(empty_path_entry_is_the_current_directory)
{
    const char *dir = getenv("MPROC_TEST_HELPERS");
    const char *argv[] = {"subprocess_helper", "exit", "9", NULL};
    const char *paths[] = {"PATH=", "PATH=/nonexistent:", "PATH=:/nonexistent",
                           "PATH=/nonexistent::/x"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        const char *env[] = {paths[i], NULL};
        int code = -1;
        CHECK_OK(mp_call(argv, &(mp_popen_options){.env = env, .cwd = dir}, -1, &code));
        CHECK_EQ(9, code);
        /* Elsewhere the same search finds nothing. */
        CHECK_RC(MP_ENOENT, mp_call(argv, &(mp_popen_options){.env = env, .cwd = "/"}, -1, &code));
    }
}

TEST(communicate_after_the_streams_were_read_or_closed)
{
    const char *argv[] = {helper(), "echo-both", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv,
                          &(mp_popen_options){.stdin_mode = MP_PIPE,
                                              .stdout_mode = MP_PIPE,
                                              .stderr_mode = MP_PIPE}));
    /* Read stdout directly to its end, close stderr unread. */
    CHECK(write(mp_popen_stdin(p), "xy\n", 3) == 3);
    CHECK_OK(mp_popen_close_stdin(p));
    CHECK_OK(mp_popen_close_stdin(p)); /* again: a no-op */
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = read(mp_popen_stdout(p), buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    CHECK_STR("xy\n", buf);
    CHECK_OK(mp_popen_close_stderr(p));
    CHECK_EQ(-1, mp_popen_stderr(p));
    /* Input now has no pipe to go to. */
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, "z", 1, -1, NULL, NULL, NULL, NULL));
    char *out = NULL, *err = NULL;
    size_t out_len = 99, err_len = 99;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, -1, &out, &out_len, &err, &err_len));
    CHECK_STR("", out); /* pipes, so strings, empty: nothing was left to read */
    CHECK_STR("", err);
    CHECK_EQ(0, out_len);
    CHECK_EQ(0, err_len);
    free(out);
    free(err);
    /* Once more after the end: Python's "read of closed file", at once. */
    CHECK_RC(MP_ECLOSED, mp_popen_communicate(p, NULL, 0, 0, &out, NULL, &err, NULL));
    CHECK(out == NULL && err == NULL);
    CHECK_STR("read of closed file", mp_popen_message(p));
    int code = -1;
    CHECK_OK(mp_popen_returncode(p, &code));
    CHECK_EQ(0, code);
    mp_popen_destroy(p);
}

/* ---- another thread forks while we spawn ------------------------------------ */

static int preexec_ok(void *arg)
{
    (void)arg;
    return 0;
}

static int holders_pipe[2] = {-1, -1};
static atomic_bool spawner_done, holders_forked;
static atomic_bool holders_rescued;

/* Forks 64 children that keep every descriptor they inherited (no exec) until
 * holders_pipe's write end is closed; any error pipe of a spawn in flight is among
 * them. Then waits for the spawning thread, 20 s at most: a spawn that is still
 * stuck then waited for one of these children. */
static void *fork_holders(void *arg)
{
    (void)arg;
    pid_t kids[64];
    int n = 0;
    for (; n < 64; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(holders_pipe[1]);
            char c;
            while (read(holders_pipe[0], &c, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
        if (pid < 0)
            break;
        kids[n] = pid;
        th_sleep_ms(3);
    }
    atomic_store(&holders_forked, true);
    uint64_t t0 = th_now_ms();
    while (!atomic_load(&spawner_done) && th_now_ms() - t0 < 20000)
        th_sleep_ms(10);
    atomic_store(&holders_rescued, !atomic_load(&spawner_done));
    close(holders_pipe[1]);
    for (int i = 0; i < n; i++)
        th_wait(kids[i]);
    return NULL;
}

TEST(spawn_does_not_wait_for_children_forked_meanwhile_by_other_threads)
{
    /* The fast path knows the child has exec'd or failed when clone returns; it
     * must not wait for the error pipe's end-of-file, which a process forked by
     * another thread in the meantime may delay for as long as it lives. The fork
     * path (a preexec callback; every spawn under AddressSanitizer) has the
     * pipe's copies closed in such processes. Odd spawns take the fork path. */
    CHECK(pipe2(holders_pipe, O_CLOEXEC) == 0);
    atomic_store(&spawner_done, false);
    atomic_store(&holders_forked, false);
    atomic_store(&holders_rescued, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fork_holders, NULL) == 0);
    const char *argv[] = {"true", NULL};
    int spawns = 0;
    while (!atomic_load(&holders_forked)) {
        mp_popen *p;
        CHECK_OK(
            mp_popen_new(&p, argv, &(mp_popen_options){.preexec = spawns % 2 ? preexec_ok : NULL}));
        CHECK_OK(mp_popen_wait(p, -1, NULL));
        mp_popen_destroy(p);
        spawns++;
    }
    atomic_store(&spawner_done, true);
    CHECK(pthread_join(t, NULL) == 0);
    close(holders_pipe[0]);
    CHECK(spawns > 0);
    CHECK(!atomic_load(&holders_rescued));
}

/* ---- what a newcomer trips over (issue 15) ----------------------------------- */

/* Python's `for line in p.stdout:`: the descriptor is taken over, wrapped in a
 * FILE *, read line by line and fclose'd; the handle never closes it again. */
TEST(take_stdout_reads_lines_as_they_come_and_the_handle_forgets_it)
{
    const char *argv[] = {"sh", "-c", "echo one; echo two; echo three", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    int fd = mp_popen_take_stdout(p);
    CHECK(fd >= 0);
    CHECK_EQ(-1, mp_popen_stdout(p));
    CHECK_RC(MP_EBADF, mp_popen_take_stdout(p)); /* taken before */
    CHECK_RC(MP_EBADF, mp_popen_take_stdin(p));  /* not a pipe */
    CHECK_RC(MP_EINVAL, mp_popen_take_stderr(NULL));
    FILE *f = fdopen(fd, "r");
    CHECK(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    char got[64] = "";
    int lines = 0;
    while (getline(&line, &cap, f) > 0) {
        strcat(got, line);
        lines++;
    }
    free(line);
    CHECK_EQ(3, lines);
    CHECK_STR("one\ntwo\nthree\n", got);
    int code = -1;
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(0, code);
    /* communicate treats the taken stream as closed */
    char *out = NULL;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, -1, &out, NULL, NULL, NULL));
    CHECK_STR("", out);
    free(out);
    /* Another descriptor takes a number; destroy must not close the taken one. */
    mp_popen_destroy(p);
    CHECK(fcntl(fd, F_GETFD) >= 0);
    CHECK_EQ(0, fclose(f));
}

TEST(take_stdin_gives_the_write_end_to_the_caller)
{
    const char *argv[] = {"cat", NULL};
    mp_popen *p;
    CHECK_OK(
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    int in = mp_popen_take_stdin(p);
    CHECK(in >= 0);
    CHECK_EQ(-1, mp_popen_stdin(p));
    CHECK(write(in, "abc", 3) == 3);
    close(in);
    char *out = NULL;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, &out, NULL, NULL, NULL));
    CHECK_STR("abc", out);
    free(out);
    mp_popen_destroy(p);
}

TEST(run_nonzero_and_timeout_carry_pythons_messages)
{
    mp_completed_process r;
    const char *exit2[] = {"sh", "-c", "exit 2", "it's", NULL};
    CHECK_RC(MP_ENONZERO, mp_run(&r, exit2, &(mp_run_options){.check = true}));
    CHECK_STR("Command '['sh', '-c', 'exit 2', \"it's\"]' returned non-zero exit status 2.",
              r.message);
    mp_completed_process_free(&r);

    const char *shell[] = {"exit 3", NULL};
    CHECK_RC(MP_ENONZERO, mp_run(&r, shell, &(mp_run_options){.check = true, .popen.shell = true}));
    CHECK_STR("Command 'exit 3' returned non-zero exit status 3.", r.message);
    mp_completed_process_free(&r);

    const char *killed[] = {"sh", "-c", "kill -9 $$", NULL};
    CHECK_RC(MP_ENONZERO, mp_run(&r, killed, &(mp_run_options){.check = true}));
    CHECK_STR("Command '['sh', '-c', 'kill -9 $$']' died with <Signals.SIGKILL: 9>.", r.message);
    mp_completed_process_free(&r);

    const char *odd[] = {
        "false",      "a\\b", "x\x7f\xc2\xa0\xc2\x85y", "\xc3\xa9\xe4\xb8\xad", "\xff",
        "it's \"q\"", NULL};
    CHECK_RC(MP_ENONZERO, mp_run(&r, odd, &(mp_run_options){.check = true}));
    CHECK_STR("Command '['false', 'a\\\\b', 'x\\x7f\\xa0\\x85y', '\xc3\xa9\xe4\xb8\xad', "
              "'\\udcff', 'it\\'s \"q\"']' returned non-zero exit status 1.",
              r.message);
    mp_completed_process_free(&r);

    const char *sleeper[] = {"sleep", "10", NULL};
    CHECK_RC(MP_ETIMEDOUT, mp_run(&r, sleeper, &(mp_run_options){.timeout_ms = 300}));
    CHECK_STR("Command '['sleep', '10']' timed out after 0.3 seconds", r.message);
    mp_completed_process_free(&r);
    const char *line[] = {"sleep 10", NULL};
    CHECK_RC(MP_ETIMEDOUT,
             mp_run(&r, line, &(mp_run_options){.timeout_ms = 1000, .popen.shell = true}));
    CHECK_STR("Command 'sleep 10' timed out after 1 seconds", r.message);
    mp_completed_process_free(&r);

    /* Success keeps NULL; a misuse has Python's ValueError text. */
    const char *ok[] = {"true", NULL};
    CHECK_OK(mp_run(&r, ok, &(mp_run_options){.check = true}));
    CHECK(r.message == NULL);
    mp_completed_process_free(&r);
    CHECK_RC(MP_EINVAL, mp_run(&r, ok,
                               &(mp_run_options){
                                   .input = "x", .input_len = 1, .popen.stdin_mode = MP_DEVNULL}));
    CHECK_STR("stdin and input arguments may not both be used.", r.message);
    mp_completed_process_free(&r);
}

/* mproc/timeout.h: in mp_run_options, 0 and -1 are no limit, MP_TIMEOUT_NOW is
 * Python's timeout=0, and mp_call's plain argument 0 does not block. */
TEST(run_option_timeout_now_is_an_immediate_timeout)
{
    const char *sleeper[] = {"sleep", "10", NULL};
    mp_completed_process r;
    uint64_t t0 = th_now_ms();
    CHECK_RC(MP_ETIMEDOUT, mp_run(&r, sleeper, &(mp_run_options){.timeout_ms = MP_TIMEOUT_NOW}));
    CHECK(th_now_ms() - t0 < 5000);
    CHECK_EQ(-SIGKILL, r.returncode);
    CHECK_STR("Command '['sleep', '10']' timed out after 0 seconds", r.message);
    mp_completed_process_free(&r);
    CHECK_RC(MP_ETIMEDOUT,
             mp_run(&r, sleeper,
                    &(mp_run_options){.timeout_ms = MP_TIMEOUT_NOW, .capture_output = true}));
    mp_completed_process_free(&r);
    const char *quick[] = {"sh", "-c", "sleep 0.2", NULL};
    CHECK_OK(mp_run(&r, quick, &(mp_run_options){.timeout_ms = -1}));
    mp_completed_process_free(&r);
    CHECK_OK(mp_run(&r, quick, &(mp_run_options){.timeout_ms = 0}));
    mp_completed_process_free(&r);
    CHECK_RC(MP_EINVAL, mp_run(&r, quick, &(mp_run_options){.timeout_ms = -3}));
    mp_completed_process_free(&r);
    char *out = NULL;
    int code = 0;
    CHECK_RC(MP_ETIMEDOUT, mp_check_output(sleeper, &(mp_run_options){.timeout_ms = MP_TIMEOUT_NOW},
                                           &out, NULL, &code));
    CHECK_EQ(-SIGKILL, code);
    free(out);
    CHECK_RC(MP_ETIMEDOUT, mp_call(sleeper, NULL, 0, &code));
    CHECK_RC(MP_EINVAL, mp_call(sleeper, NULL, MP_TIMEOUT_NOW, &code));
}

TEST(second_communicate_is_eclosed)
{
    const char *argv[] = {"echo", "hi", NULL};
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    char *out = NULL;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, &out, NULL, NULL, NULL));
    CHECK_STR("hi\n", out);
    free(out);
    CHECK_RC(MP_ECLOSED, mp_popen_communicate(p, NULL, 0, 10000, &out, NULL, NULL, NULL));
    CHECK(out == NULL);
    CHECK_STR("read of closed file", mp_popen_message(p));
    mp_popen_destroy(p);

    const char *cat[] = {"cat", NULL};
    CHECK_OK(mp_popen_new(&p, cat,
                          &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_DEVNULL}));
    CHECK_OK(mp_popen_communicate(p, "x", 1, 10000, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_ECLOSED, mp_popen_communicate(p, "y", 1, 10000, NULL, NULL, NULL, NULL));
    CHECK_STR("write to closed file", mp_popen_message(p));
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, NULL, NULL, NULL, NULL)); /* as Python */
    mp_popen_destroy(p);

    /* Without pipes communicate only waits: again and again, as in Python. */
    const char *t[] = {"true", NULL};
    CHECK_OK(mp_popen_new(&p, t, NULL));
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, NULL, NULL, NULL, NULL));
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, NULL, NULL, NULL, NULL));
    CHECK_STR("", mp_popen_message(p));
    mp_popen_destroy(p);
}

TEST(communicate_misuse_leaves_pythons_message)
{
    const char *argv[] = {"cat", NULL};
    mp_popen *p;
    CHECK_OK(
        mp_popen_new(&p, argv, &(mp_popen_options){.stdin_mode = MP_PIPE, .stdout_mode = MP_PIPE}));
    CHECK_STR("", mp_popen_message(p));
    CHECK_RC(MP_ETIMEDOUT, mp_popen_communicate(p, "abc", 3, 0, NULL, NULL, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_popen_communicate(p, "ab", 2, 0, NULL, NULL, NULL, NULL));
    CHECK_STR("Cannot send input after starting communication", mp_popen_message(p));
    char *out = NULL;
    CHECK_OK(mp_popen_communicate(p, "abc", 3, 10000, &out, NULL, NULL, NULL));
    CHECK_STR("abc", out);
    free(out);
    mp_popen_destroy(p);
}

/* CPython's _try_wait: ChildProcessError (the status is gone) gives returncode 0. */
TEST(sigchld_ignored_reports_returncode_zero_as_cpython)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    CHECK(sigaction(SIGCHLD, &ign, &old) == 0);
    const char *argv[] = {"sh", "-c", "exit 3", NULL};
    int code = -1;
    CHECK_OK(mp_call(argv, NULL, 10000, &code));
    CHECK_EQ(0, code);
    mp_completed_process r;
    CHECK_OK(mp_run(&r, argv, &(mp_run_options){.capture_output = true}));
    CHECK_EQ(0, r.returncode);
    mp_completed_process_free(&r);
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, NULL));
    CHECK_OK(mp_popen_wait(p, -1, &code));
    CHECK_EQ(0, code);
    mp_popen_destroy(p);
    CHECK(sigaction(SIGCHLD, &old, NULL) == 0);
}

/* CPython joins each PATH directory with '' and gets EACCES from "dir/". */
TEST(empty_program_name_is_eacces_as_cpython)
{
    mp_popen *p = NULL;
    const char *empty[] = {"", NULL};
    CHECK_RC(MP_EACCES, mp_popen_new(&p, empty, NULL));
    CHECK(p != NULL);
    CHECK_STR("Permission denied: ''", mp_popen_message(p));
    mp_popen_destroy(p);
    const char *ls[] = {"ls", NULL};
    CHECK_RC(MP_EACCES, mp_popen_new(&p, ls, &(mp_popen_options){.executable = ""}));
    CHECK_STR("Permission denied: ''", mp_popen_message(p));
    mp_popen_destroy(p);
    mp_completed_process r;
    CHECK_RC(MP_EACCES, mp_run(&r, empty, NULL));
    CHECK_STR("Permission denied: ''", r.message);
    mp_completed_process_free(&r);
}

static int count_open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* Documented in subprocess.h: the pidfd is held until destroy; communicate closes
 * the parent's pipe ends. */
TEST(live_handle_holds_its_pidfd_until_destroy_and_communicate_closes_pipes)
{
    bool pidfds = getenv("MPROC_NO_PIDFD") == NULL && mp__have_pidfd();
    const char *argv[] = {"echo", "x", NULL};
    int before = count_open_fds();
    mp_popen *p;
    CHECK_OK(mp_popen_new(&p, argv, &(mp_popen_options){.stdout_mode = MP_PIPE}));
    int out_fd = mp_popen_stdout(p);
    CHECK_EQ(before + 1 + pidfds, count_open_fds());
    char *out = NULL;
    CHECK_OK(mp_popen_communicate(p, NULL, 0, 10000, &out, NULL, NULL, NULL));
    free(out);
    CHECK_EQ(-1, mp_popen_stdout(p));
    CHECK(fcntl(out_fd, F_GETFD) < 0 || pidfds); /* closed (unless the pidfd reused it) */
    CHECK_EQ(before + pidfds, count_open_fds()); /* the ended child's pidfd is still held */
    mp_popen_destroy(p);
    CHECK_EQ(before, count_open_fds());
}

/* Runs in a forked child whose stdout is the pipe in arg: "a" printed before
 * mp_popen_new stays in the stdio buffer, so the command's "b" comes first. */
static int print_then_spawn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    CHECK(dup2(fd, 1) == 1);
    setvbuf(stdout, NULL, _IOFBF, 4096);
    printf("a");
    const char *argv[] = {"printf", "b", NULL};
    int code = -1;
    CHECK_OK(mp_call(argv, NULL, 10000, &code));
    CHECK_EQ(0, code);
    fflush(stdout);
    return 0;
}

/* Documented in subprocess.h: mp_popen_new does not flush stdio (as CPython's
 * Popen), unlike mp_process_start. */
TEST(popen_new_does_not_flush_stdio)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK_EQ(0, th_wait(th_fork(print_then_spawn, (void *)(intptr_t)fds[1])));
    close(fds[1]);
    char buf[8] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    CHECK_STR("ba", buf);
}

/* Python's own str() of CalledProcessError / TimeoutExpired for the given words
 * (python3 decodes its argv as os.fsdecode does), or NULL without python3. */
static char *python_message(const char *kind, int value, const char *const *words)
{
    const char *code = "import subprocess,sys\n"
                       "k,v,w=sys.argv[1],int(sys.argv[2]),sys.argv[3:]\n"
                       "e=subprocess.CalledProcessError(v,w) if k=='e' else "
                       "subprocess.TimeoutExpired(w,v/1000 if v%1000 else v//1000)\n"
                       "sys.stdout.buffer.write(str(e).encode('utf-8','surrogateescape'))\n";
    char num[16];
    snprintf(num, sizeof num, "%d", value);
    const char *argv[32] = {"python3", "-c", code, kind, num};
    int n = 5;
    for (int i = 0; words[i] != NULL && n < 31; i++)
        argv[n++] = words[i];
    argv[n] = NULL;
    mp_completed_process r;
    int rc = mp_run(&r, argv, &(mp_run_options){.capture_output = true});
    char *res = rc == 0 && r.returncode == 0 ? r.stdout_data : NULL;
    if (res != NULL)
        r.stdout_data = NULL;
    mp_completed_process_free(&r);
    return res;
}

TEST(messages_match_a_live_python3)
{
    const char *words[] = {"sh",
                           "-c",
                           "exit 7",
                           "it's",
                           "say \"hi\"",
                           "both ' \"",
                           "a\\b",
                           "tab\t",
                           "nl\nx\r",
                           "\x01\x1f\x7f",
                           "\xc3\xa9\xe2\x82\xac",
                           "\xc2\x85\xc2\xa0\xc2\xad",
                           "\xff\xfe",
                           "\xf0\x9f\x98\x80",
                           NULL};
    char *want = python_message("e", 7, words);
    if (want == NULL)
        SKIP("python3 cannot be run");
    mp_completed_process r;
    CHECK_RC(MP_ENONZERO, mp_run(&r, words, &(mp_run_options){.check = true}));
    CHECK_STR(want, r.message);
    mp_completed_process_free(&r);
    free(want);

    const char *killer[] = {"sh", "-c", "kill -TERM $$", NULL};
    want = python_message("e", -SIGTERM, killer);
    CHECK(want != NULL);
    CHECK_RC(MP_ENONZERO, mp_run(&r, killer, &(mp_run_options){.check = true}));
    CHECK_STR(want, r.message);
    mp_completed_process_free(&r);
    free(want);

    const char *sleeper[] = {"sleep", "10", NULL};
    const int timeouts[] = {250, 1000};
    for (int i = 0; i < 2; i++) {
        want = python_message("t", timeouts[i], sleeper);
        CHECK(want != NULL);
        CHECK_RC(MP_ETIMEDOUT, mp_run(&r, sleeper, &(mp_run_options){.timeout_ms = timeouts[i]}));
        CHECK_STR(want, r.message);
        mp_completed_process_free(&r);
        free(want);
    }
}
