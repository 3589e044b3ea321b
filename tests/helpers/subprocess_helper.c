/* subprocess_helper — the child program of tests/test_subprocess.c. One role per
 * run, chosen by argv[1]:
 *   fds          prints its open descriptors, e.g. "0 1 2 5\n"
 *   sid          prints "<sid> <pgid> <pid>\n"
 *   umask        prints its umask in octal
 *   cat          copies stdin to stdout
 *   out N [err]  writes N bytes (a known pattern) to stdout, or to stderr with "err"
 *   both N       writes N bytes to stdout and N to stderr, interleaved
 *   echo-both    copies stdin to stdout and stderr
 *   closein S    closes stdin, prints "closed", sleeps S ms, exits 0
 *   sleep MS     sleeps, then prints "slept"
 *   exit N       exits with status N
 *   signal N     raises signal N
 *   env NAME     prints the value of NAME, or "(unset)"
 *   envcount     prints the number of environment variables
 *   sigpipe      prints "ign" when SIGPIPE is ignored, "dfl" otherwise, then
 *                "blocked" or "unblocked" for SIGUSR1 in its mask
 *   pwd          prints the working directory
 *   argv         prints each argument on a line
 *   partial MS   prints "part1\n", flushes, sleeps MS ms, prints "part2\n"
 */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Byte i of the pattern both sides agree on. */
static char pattern(size_t i)
{
    return (char)('a' + (i * 7 + i / 4096) % 26);
}

static int write_pattern(int fd, size_t n)
{
    char buf[8192];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(off + i);
        if (write_all(fd, buf, k) != 0)
            return 1;
        off += k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *role = argv[1];
    if (strcmp(role, "fds") == 0) {
        DIR *d = opendir("/proc/self/fd");
        if (d == NULL)
            return 3;
        struct dirent *e;
        int fds[1024], n = 0;
        while ((e = readdir(d)) != NULL && n < 1024)
            if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
                fds[n++] = atoi(e->d_name);
        closedir(d);
        for (int i = 0; i < n; i++) /* sort for stable output */
            for (int j = i + 1; j < n; j++)
                if (fds[j] < fds[i]) {
                    int t = fds[i];
                    fds[i] = fds[j];
                    fds[j] = t;
                }
        for (int i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", fds[i]);
        printf("\n");
        return 0;
    }
    if (strcmp(role, "sid") == 0) {
        printf("%d %d %d\n", (int)getsid(0), (int)getpgid(0), (int)getpid());
        return 0;
    }
    if (strcmp(role, "umask") == 0) {
        mode_t m = umask(0);
        printf("%03o\n", (unsigned)m);
        return 0;
    }
    if (strcmp(role, "cat") == 0 || strcmp(role, "echo-both") == 0) {
        bool both = strcmp(role, "echo-both") == 0;
        char buf[65536];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0)
            if (write_all(1, buf, (size_t)n) != 0 || (both && write_all(2, buf, (size_t)n) != 0))
                return 1;
        return 0;
    }
    if (strcmp(role, "out") == 0 && argc >= 3)
        return write_pattern(argc >= 4 && strcmp(argv[3], "err") == 0 ? 2 : 1,
                             strtoull(argv[2], NULL, 10));
    if (strcmp(role, "both") == 0 && argc >= 3) {
        size_t n = strtoull(argv[2], NULL, 10);
        for (size_t off = 0; off < n; off += 4096) {
            size_t k = n - off < 4096 ? n - off : 4096;
            char buf[4096];
            for (size_t i = 0; i < k; i++)
                buf[i] = pattern(off + i);
            if (write_all(1, buf, k) != 0 || write_all(2, buf, k) != 0)
                return 1;
        }
        return 0;
    }
    if (strcmp(role, "closein") == 0 && argc >= 3) {
        close(0);
        printf("closed\n");
        fflush(stdout);
        sleep_ms(atol(argv[2]));
        return 0;
    }
    if (strcmp(role, "sleep") == 0 && argc >= 3) {
        sleep_ms(atol(argv[2]));
        printf("slept\n");
        return 0;
    }
    if (strcmp(role, "exit") == 0 && argc >= 3)
        return atoi(argv[2]);
    if (strcmp(role, "signal") == 0 && argc >= 3) {
        signal(atoi(argv[2]), SIG_DFL);
        raise(atoi(argv[2]));
        return 100;
    }
    if (strcmp(role, "env") == 0 && argc >= 3) {
        const char *v = getenv(argv[2]);
        printf("%s\n", v ? v : "(unset)");
        return 0;
    }
    if (strcmp(role, "envcount") == 0) {
        int n = 0;
        while (environ[n] != NULL)
            n++;
        printf("%d\n", n);
        return 0;
    }
    if (strcmp(role, "sigpipe") == 0) {
        struct sigaction sa;
        sigaction(SIGPIPE, NULL, &sa);
        sigset_t mask;
        sigprocmask(SIG_SETMASK, NULL, &mask);
        printf("%s %s\n", sa.sa_handler == SIG_IGN ? "ign" : "dfl",
               sigismember(&mask, SIGUSR1) ? "blocked" : "unblocked");
        return 0;
    }
    if (strcmp(role, "pwd") == 0) {
        char buf[4096];
        if (getcwd(buf, sizeof buf) == NULL)
            return 1;
        printf("%s\n", buf);
        return 0;
    }
    if (strcmp(role, "argv") == 0) {
        for (int i = 0; i < argc; i++)
            printf("%s\n", argv[i]);
        return 0;
    }
    if (strcmp(role, "partial") == 0 && argc >= 3) {
        printf("part1\n");
        fflush(stdout);
        sleep_ms(atol(argv[2]));
        printf("part2\n");
        return 0;
    }
    return 2;
}
