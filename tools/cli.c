/* tools/cli.c — mproc-manager's options and authkey loading. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char cli_usage[] =
    "usage: mproc-manager [--listen HOST:PORT] [--queue NAME[:maxsize=N]]...\n"
    "                     [--shared NAME=TYPE]... [--sync]\n"
    "                     (--authkey-file PATH | --authkey-env VAR) [options]\n"
    "\n"
    "Serves queues and the SyncManager types to CPython's multiprocessing.managers\n"
    "clients (3.11-3.13) and to mproc's C clients, with no code.\n"
    "\n"
    "  --listen ADDR          where to listen: HOST:PORT, [V6]:PORT, :PORT (every\n"
    "                         interface), a Unix path or @abstract; a bare PORT means\n"
    "                         127.0.0.1:PORT. Default 127.0.0.1:5000 (loopback only).\n"
    "  --queue NAME[:maxsize=N]\n"
    "                         serve one queue.Queue under the typeid NAME (what a\n"
    "                         client's register(NAME) calls); repeatable.\n"
    "  --shared NAME=TYPE     serve one object of a SyncManager TYPE (Lock, RLock, Event,\n"
    "                         dict, list, Namespace, ...) under the typeid NAME, made\n"
    "                         with no arguments: every client's NAME() gets the same\n"
    "                         object (Python's register(NAME, callable=lambda: obj));\n"
    "                         repeatable.\n"
    "  --sync                 serve the SyncManager typeids: Queue, JoinableQueue, Lock,\n"
    "                         RLock, Semaphore, BoundedSemaphore, Condition, Event,\n"
    "                         Barrier, Value, Array, dict, list, Namespace.\n"
    "  --authkey-file PATH    read the authkey from PATH (one trailing newline dropped);\n"
    "                         refused unless PATH is owned by you and readable by no one\n"
    "                         else (chmod 600).\n"
    "  --authkey-env VAR      read the authkey from environment variable VAR (default\n"
    "                         MPROC_AUTHKEY), which is then removed from the environment.\n"
    "                         The authkey is never taken from the command line.\n"
    "  --no-remote-shutdown   refuse clients' shutdown requests (manager.shutdown()\n"
    "                         raises RemoteError); stop the server with a signal.\n"
    "  --address-file PATH    write the bound address to PATH once listening.\n"
    "  --handshake-timeout MS drop a peer that has not authenticated within MS\n"
    "                         milliseconds (default 5000).\n"
    "  --quiet                log only errors and stats; --verbose also logs each\n"
    "                         connection as it opens.\n"
    "  --version, --help\n"
    "\n"
    "Logs go to stderr: one line per connection (when it closes), authentication\n"
    "failure, refused shutdown request and shutdown.\n"
    "SIGTERM and SIGINT stop the server cleanly; SIGUSR1 prints object and connection\n"
    "counts. Exit status 0 after a clean stop, 1 on a runtime failure, 2 on bad usage.\n"
    "Full documentation: docs/mproc-manager.md in the mproc sources.\n";

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg);
    return -1;
}

static int parse_queue(cli_queue *q, char *spec, char *err, size_t errlen)
{
    char *colon = strchr(spec, ':');
    q->name = spec;
    q->maxsize = 0;
    if (colon == NULL)
        return spec[0] ? 0 : fail(err, errlen, "--queue needs a name%s", "");
    *colon = '\0';
    const char *opt = colon + 1;
    if (spec[0] == '\0')
        return fail(err, errlen, "--queue needs a name before ':%s'", opt);
    if (strncmp(opt, "maxsize=", 8) != 0)
        return fail(err, errlen, "--queue: unknown option '%s' (only maxsize=N)", opt);
    char *end;
    errno = 0;
    long n = strtol(opt + 8, &end, 10);
    if (errno || end == opt + 8 || *end != '\0' || n < 0)
        return fail(err, errlen, "--queue: maxsize must be a number >= 0, not '%s'", opt + 8);
    q->maxsize = n;
    return 0;
}

int cli_parse(cli_options *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:5000";
    o->key_env = NULL;
    o->allow_shutdown = true;
    o->verbosity = 1;
    o->handshake_timeout_ms = 5000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *val = NULL;
        const char *eq = strchr(a, '=');
        char flag[64];
        if (strncmp(a, "--", 2) == 0 && eq != NULL && (size_t)(eq - a) < sizeof flag) {
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = '\0';
            val = (char *)eq + 1;
            a = flag;
        }
#define TAKES_VALUE()                                                                              \
    do {                                                                                           \
        if (val == NULL) {                                                                         \
            if (i + 1 >= argc)                                                                     \
                return fail(err, errlen, "%s needs a value", a);                                   \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
        } else if (strcmp(a, "--version") == 0) {
            o->version = true;
        } else if (strcmp(a, "--listen") == 0) {
            TAKES_VALUE();
            o->listen = val;
        } else if (strcmp(a, "--queue") == 0) {
            TAKES_VALUE();
            if (o->nqueues == CLI_MAX_QUEUES)
                return fail(err, errlen, "too many --queue options (at most %s)", "64");
            if (parse_queue(&o->queues[o->nqueues], val, err, errlen) < 0)
                return -1;
            for (int k = 0; k < o->nqueues; k++)
                if (strcmp(o->queues[k].name, val) == 0)
                    return fail(err, errlen, "--queue %s given twice", val);
            o->nqueues++;
        } else if (strcmp(a, "--shared") == 0) {
            TAKES_VALUE();
            char *eq2 = strchr(val, '=');
            if (eq2 == NULL || eq2 == val || eq2[1] == '\0')
                return fail(err, errlen, "--shared needs NAME=TYPE, not '%s'", val);
            if (o->nshared == CLI_MAX_QUEUES)
                return fail(err, errlen, "too many --shared options (at most %s)", "64");
            *eq2 = '\0';
            o->shared[o->nshared].name = val;
            o->shared[o->nshared].type = eq2 + 1;
            o->nshared++;
        } else if (strcmp(a, "--sync") == 0) {
            o->sync = true;
        } else if (strcmp(a, "--authkey-file") == 0) {
            TAKES_VALUE();
            o->key_file = val;
        } else if (strcmp(a, "--authkey-env") == 0) {
            TAKES_VALUE();
            if (val[0] == '\0')
                return fail(err, errlen, "--authkey-env needs a variable name%s", "");
            o->key_env = val;
        } else if (strcmp(a, "--authkey") == 0) {
            return fail(err, errlen,
                        "%s is not accepted: a key on the command line is visible in ps; "
                        "use --authkey-file or --authkey-env",
                        a);
        } else if (strcmp(a, "--no-remote-shutdown") == 0) {
            o->allow_shutdown = false;
        } else if (strcmp(a, "--address-file") == 0) {
            TAKES_VALUE();
            o->address_file = val;
        } else if (strcmp(a, "--handshake-timeout") == 0) {
            TAKES_VALUE();
            char *end;
            errno = 0;
            long ms = strtol(val, &end, 10);
            if (errno || end == val || *end || ms <= 0 || ms > 3600000)
                return fail(err, errlen, "--handshake-timeout: bad value '%s'", val);
            o->handshake_timeout_ms = (int)ms;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->verbosity = 0;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbosity = 2;
        } else {
            return fail(err, errlen, "unknown argument '%s' (see --help)", argv[i]);
        }
#undef TAKES_VALUE
    }
    if (o->help || o->version)
        return 0;
    if (o->key_file && o->key_env)
        return fail(err, errlen, "give --authkey-file or --authkey-env, not both%s", "");
    if (o->nqueues == 0 && o->nshared == 0 && !o->sync)
        return fail(err, errlen,
                    "nothing to serve: give --queue NAME, --shared NAME=TYPE and/or --sync%s", "");
    /* A bare port is loopback: nothing listens beyond this host unless asked. */
    static char bare[64];
    if (strspn(o->listen, "0123456789") == strlen(o->listen) && o->listen[0]) {
        snprintf(bare, sizeof bare, "127.0.0.1:%s", o->listen);
        o->listen = bare;
    }
    return 0;
}

int cli_load_authkey(cli_options *o, char *err, size_t errlen)
{
    if (o->key_file) {
        int fd = open(o->key_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open authkey file %s: %s", o->key_file, strerror(errno));
            return -1;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return fail(err, errlen, "authkey file %s is not a regular file", o->key_file);
        }
        if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
            close(fd);
            return fail(err, errlen,
                        "authkey file %s is readable by others or not yours; "
                        "chown it and chmod 600 it",
                        o->key_file);
        }
        size_t n = 0;
        for (;;) {
            if (n == sizeof o->key) {
                close(fd);
                return fail(err, errlen, "authkey file %s is longer than 4096 bytes", o->key_file);
            }
            ssize_t r = read(fd, o->key + n, sizeof o->key - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                close(fd);
                return fail(err, errlen, "cannot read authkey file %s", o->key_file);
            }
            if (r == 0)
                break;
            n += (size_t)r;
        }
        close(fd);
        if (n > 0 && o->key[n - 1] == '\n')
            n--;
        if (n == 0)
            return fail(err, errlen, "authkey file %s is empty", o->key_file);
        o->key_len = n;
        return 0;
    }
    const char *var = o->key_env ? o->key_env : "MPROC_AUTHKEY";
    const char *v = getenv(var);
    if (v == NULL || v[0] == '\0')
        return fail(err, errlen,
                    "no authkey: give --authkey-file PATH or set %s "
                    "(the server never runs without one)",
                    var);
    size_t n = strlen(v);
    if (n > sizeof o->key)
        return fail(err, errlen, "authkey in %s is longer than 4096 bytes", var);
    memcpy(o->key, v, n);
    o->key_len = n;
    /* Children and /proc/<pid>/environ readers need not see it from now on. */
    unsetenv(var);
    return 0;
}
