/* subprocess_capture_256MiB: mp_run("head -c 268435456 /dev/zero") capturing
 * stdout. raw: posix_spawnp with a 1 MiB pipe, read() into a new buffer of the
 * final size each run (the same work: a fresh buffer holding the output, but
 * without growing it, since raw knows the size). */
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define SIZE 268435456UL
#define N 3

extern char **environ;

static double run_mproc(void)
{
    const char *argv[] = {"head", "-c", "268435456", "/dev/zero", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        mp_completed_process r;
        if (mp_run(&r, argv, &(mp_run_options){.capture_output = true}) != 0 ||
            r.stdout_len != SIZE)
            return -1;
        mp_completed_process_free(&r);
    }
    return (bench_now_s() - t0) / N * 1e3;
}

static double run_raw(void)
{
    char *argv[] = {"head", "-c", "268435456", "/dev/zero", NULL};
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        char *buf = malloc(SIZE + 1);
        int fd[2];
        if (buf == NULL || pipe2(fd, O_CLOEXEC) != 0)
            return -1;
        fcntl(fd[0], F_SETPIPE_SZ, 1 << 20);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
        pid_t pid;
        if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
            return -1;
        posix_spawn_file_actions_destroy(&fa);
        close(fd[1]);
        size_t len = 0;
        ssize_t n;
        while ((n = read(fd[0], buf + len, SIZE + 1 - len)) > 0)
            len += (size_t)n;
        close(fd[0]);
        int status;
        if (waitpid(pid, &status, 0) != pid || len != SIZE)
            return -1;
        free(buf);
    }
    return (bench_now_s() - t0) / N * 1e3;
}

BENCH_MAIN("ms", run_mproc, run_raw)
