/* subprocess_cat_64MiB: mp_run("cat") with 64 MiB of input, reading the same
 * 64 MiB back (communicate both ways at once).
 * raw: posix_spawnp with two 1 MiB pipes and a hand-written poll() loop reading
 * into a new buffer of the final size each run (the same work, minus growing the
 * buffer, since raw knows the size). */
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define SIZE (64UL << 20)
#define N 5

static double run_mproc(void)
{
    char *in = malloc(SIZE);
    if (in == NULL)
        return -1;
    memset(in, 'x', SIZE);
    const char *argv[] = {"cat", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_completed_process r;
        if (mp_run(&r, argv,
                   &(mp_run_options){.input = in, .input_len = SIZE, .capture_output = true}) !=
                0 ||
            r.stdout_len != SIZE)
            return -1;
        mp_completed_process_free(&r);
    }
    double ms = (bench_now_s() - t0) / N * 1e3;
    free(in);
    return ms;
}

extern char **environ;

static int cat_once(const char *in, char *out)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
        return -1;
    fcntl(to[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(from[0], F_SETPIPE_SZ, 1 << 20);
    fcntl(to[1], F_SETFL, O_NONBLOCK);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    char *argv[] = {"cat", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "cat", &fa, NULL, argv, environ) != 0)
        return -1;
    posix_spawn_file_actions_destroy(&fa);
    close(to[0]);
    close(from[1]);
    size_t off = 0, got = 0;
    int wfd = to[1], rfd = from[0];
    while (rfd >= 0) {
        struct pollfd p[2] = {{.fd = rfd, .events = POLLIN}, {.fd = wfd, .events = POLLOUT}};
        if (poll(p, wfd >= 0 ? 2 : 1, -1) < 0)
            return -1;
        if (wfd >= 0 && p[1].revents) {
            ssize_t n = write(wfd, in + off, SIZE - off < (1 << 20) ? SIZE - off : (1 << 20));
            if (n > 0)
                off += (size_t)n;
            if (off == SIZE) {
                close(wfd);
                wfd = -1;
            }
        }
        if (p[0].revents) {
            ssize_t n = read(rfd, out + got, SIZE + 1 - got);
            if (n > 0) {
                got += (size_t)n;
            } else {
                close(rfd);
                rfd = -1;
            }
        }
    }
    int status;
    waitpid(pid, &status, 0);
    return got == SIZE ? 0 : -1;
}

static double run_raw(void)
{
    char *in = malloc(SIZE);
    if (in == NULL)
        return -1;
    memset(in, 'x', SIZE);
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        char *out = malloc(SIZE + 1);
        if (out == NULL || cat_once(in, out) != 0)
            return -1;
        free(out);
    }
    double ms = (bench_now_s() - t0) / N * 1e3;
    free(in);
    return ms;
}

BENCH_MAIN("ms", run_mproc, run_raw)
