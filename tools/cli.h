/* tools/cli.h — the command line of mproc-manager, kept apart from the serving so
 * that the parsing and the authkey rules can be read (and tested) on their own. */
#ifndef MPROC_TOOLS_CLI_H
#define MPROC_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#define CLI_MAX_QUEUES 64
#define CLI_AUTHKEY_MAX 4096

typedef struct cli_queue {
    const char *name; /* points into argv */
    long maxsize;     /* 0: unbounded, as queue.Queue() */
} cli_queue;

typedef struct cli_shared {
    const char *name; /* the typeid clients call */
    const char *type; /* a SyncManager typeid: Lock, dict, ... */
} cli_shared;

typedef struct cli_options {
    const char *listen; /* "host:port"; default 127.0.0.1:5000 */
    cli_queue queues[CLI_MAX_QUEUES];
    int nqueues;
    cli_shared shared[CLI_MAX_QUEUES];
    int nshared;
    bool sync;                /* serve the SyncManager typeids */
    const char *key_file;     /* --authkey-file */
    const char *key_env;      /* --authkey-env; default MPROC_AUTHKEY */
    bool allow_shutdown;      /* remote shutdown request honoured (default true) */
    int verbosity;            /* 0 quiet, 1 default, 2 verbose */
    const char *address_file; /* write the bound address here once listening */
    int handshake_timeout_ms;
    bool help, version;
    unsigned char key[CLI_AUTHKEY_MAX];
    size_t key_len;
} cli_options;

/* Parses argv into *o. On a usage error writes one line to err (errlen bytes) and
 * returns -1; returns 0 on success. */
int cli_parse(cli_options *o, int argc, char **argv, char *err, size_t errlen);

/* Loads the authkey named by o (file first, else the environment variable, which is
 * then removed from the environment). The file must be a regular file owned by the
 * caller and readable by nobody else (mode 0600 or 0400); one trailing newline is
 * dropped. Returns 0, or -1 with a message in err. */
int cli_load_authkey(cli_options *o, char *err, size_t errlen);

extern const char cli_usage[];

#endif
