/* run.c — the convenience functions run, call, check_call and check_output, made
 * of mp_popen as CPython makes them of Popen. On any failure after the start,
 * the child is killed and reaped before returning, so none is left behind. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subprocess/subprocess.h"

static char **copy_args(const char *const *argv)
{
    size_t n = 0, bytes = 0;
    for (; argv[n] != NULL; n++)
        bytes += strlen(argv[n]) + 1;
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (out == NULL)
        return NULL;
    char *s = (char *)(out + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(argv[i]) + 1;
        out[i] = memcpy(s, argv[i], len);
        s += len;
    }
    out[n] = NULL;
    return out;
}

/* ---- CPython's texts of CalledProcessError and TimeoutExpired ---------------- */

/* Appends to a growing string; on failure of memory the string becomes NULL. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->s == NULL && t->cap != 0)
        return; /* out of memory before */
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *d = realloc(t->s, cap);
        if (d == NULL) {
            free(t->s);
            *t = (text){.cap = 1};
            return;
        }
        t->s = d;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* The length of the UTF-8 sequence at s (1 to 4) and its code point, or 0 when
 * the bytes there are not valid UTF-8. */
static size_t utf8_seq(const unsigned char *s, unsigned *cp)
{
    unsigned c = s[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0)
        return 0;
    unsigned v = n == 1 ? c : c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* repr(str) of a command-line word, as Python shows it inside a list: quotes
 * chosen as Python chooses them, control characters escaped, bytes that are not
 * UTF-8 as the surrogates os.fsdecode makes of them ('\udcff'). Printable
 * non-ASCII characters stay as they are (Python's isprintable, approximated:
 * C1 controls, NO-BREAK SPACE and SOFT HYPHEN are escaped). */
static void put_repr(text *t, const char *word)
{
    char q = strchr(word, '\'') != NULL && strchr(word, '"') == NULL ? '"' : '\'';
    put(t, &q, 1);
    const unsigned char *s = (const unsigned char *)word;
    char esc[16];
    while (*s) {
        unsigned cp;
        size_t n = utf8_seq(s, &cp);
        if (n == 0) {
            snprintf(esc, sizeof esc, "\\udc%02x", *s);
            puts_(t, esc);
            s++;
            continue;
        }
        if (cp == (unsigned char)q || cp == '\\') {
            char two[2] = {'\\', (char)cp};
            put(t, two, 2);
        } else if (cp == '\n') {
            puts_(t, "\\n");
        } else if (cp == '\r') {
            puts_(t, "\\r");
        } else if (cp == '\t') {
            puts_(t, "\\t");
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            puts_(t, esc);
        } else {
            put(t, (const char *)s, n);
        }
        s += n;
    }
    put(t, &q, 1);
}

/* "Command '...'": Python's %s of Popen.args, the command line itself for a
 * shell command given as one string, else the repr of the list. */
static void put_command(text *t, char *const *args, bool shell)
{
    puts_(t, "Command '");
    if (shell && args[0] != NULL && args[1] == NULL) {
        puts_(t, args[0]);
    } else {
        puts_(t, "[");
        for (size_t i = 0; args[i] != NULL; i++) {
            if (i > 0)
                puts_(t, ", ");
            put_repr(t, args[i]);
        }
        puts_(t, "]");
    }
    puts_(t, "'");
}

/* Python's repr of signal.Signals(n) on Linux, or NULL for a number it has no
 * member for. */
static const char *signal_name(int n)
{
    static const char *const names[] = {
        NULL,        "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",   "SIGTRAP", "SIGABRT", "SIGBUS",
        "SIGFPE",    "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",  "SIGPIPE", "SIGALRM", "SIGTERM",
        "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",  "SIGTTIN", "SIGTTOU", "SIGURG",
        "SIGXCPU",   "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",   "SIGPWR",  "SIGSYS",
    };
    if (n > 0 && n < (int)(sizeof names / sizeof names[0]))
        return names[n];
    return n == 34 ? "SIGRTMIN" : n == 64 ? "SIGRTMAX" : NULL;
}

/* CalledProcessError's str(). */
static char *nonzero_message(char *const *args, bool shell, int returncode)
{
    text t = {0};
    char tail[96];
    put_command(&t, args, shell);
    if (returncode < 0 && signal_name(-returncode) != NULL)
        snprintf(tail, sizeof tail, " died with <Signals.%s: %d>.", signal_name(-returncode),
                 -returncode);
    else if (returncode < 0)
        snprintf(tail, sizeof tail, " died with unknown signal %d.", -returncode);
    else
        snprintf(tail, sizeof tail, " returned non-zero exit status %d.", returncode);
    puts_(&t, tail);
    return t.s;
}

/* TimeoutExpired's str(), the timeout in seconds as Python prints the number a
 * caller would have passed: 2 for 2000 ms, 1.5 for 1500 ms, 0.001 for 1 ms. */
static char *timeout_message(char *const *args, bool shell, int timeout_ms)
{
    text t = {0};
    char secs[32], tail[64];
    if (timeout_ms % 1000 == 0) {
        snprintf(secs, sizeof secs, "%d", timeout_ms / 1000);
    } else {
        snprintf(secs, sizeof secs, "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
        for (size_t n = strlen(secs); secs[n - 1] == '0'; n--)
            secs[n - 1] = '\0';
    }
    put_command(&t, args, shell);
    snprintf(tail, sizeof tail, " timed out after %s seconds", secs);
    puts_(&t, tail);
    return t.s;
}

/* Kills and reaps a child we give up on. */
static void kill_and_reap(mp_popen *p)
{
    mp_popen_kill(p);
    mp_popen_wait(p, -1, NULL);
}

static void take_buf(mp__buf *b, bool piped, char **data, size_t *len)
{
    if (!piped)
        return;
    if (b->data == NULL)
        b->data = calloc(1, 1); /* NULL only when out of memory */
    *data = b->data;
    *len = b->len;
    *b = (mp__buf){0};
}

/* MP_EINVAL for a misuse, with Python's ValueError text as the message. */
static int refuse(mp_completed_process *r, const char *why)
{
    r->message = strdup(why);
    return MP_EINVAL;
}

int mp_run(mp_completed_process *r, const char *const *argv, const mp_run_options *opt)
{
    static const mp_run_options defaults;
    if (r == NULL)
        return MP_EINVAL;
    *r = (mp_completed_process){.returncode = -1};
    const mp_run_options *o = opt != NULL ? opt : &defaults;
    /* An options field (mproc/timeout.h): 0 and -1 none, MP_TIMEOUT_NOW zero. */
    int timeout_ms = o->timeout_ms == MP_TIMEOUT_NOW ? 0 : o->timeout_ms > 0 ? o->timeout_ms : -1;
    if (argv == NULL || argv[0] == NULL ||
        (o->timeout_ms < -1 && o->timeout_ms != MP_TIMEOUT_NOW) ||
        (o->input == NULL && o->input_len > 0))
        return MP_EINVAL;
    mp_popen_options po = o->popen;
    if (o->input != NULL) {
        if (po.stdin_mode != MP_INHERIT)
            return refuse(r, "stdin and input arguments may not both be used.");
        po.stdin_mode = MP_PIPE;
    }
    if (o->capture_output) {
        if (po.stdout_mode != MP_INHERIT || po.stderr_mode != MP_INHERIT)
            return refuse(r, "stdout and stderr arguments may not be used with capture_output.");
        po.stdout_mode = po.stderr_mode = MP_PIPE;
    }
    if ((r->args = copy_args(argv)) == NULL)
        return MP_ENOMEM;

    mp_popen *p;
    int rc = mp_popen_new(&p, argv, &po);
    if (rc != 0) {
        if (p != NULL)
            r->message = strdup(mp_popen_message(p));
        mp_popen_destroy(p);
        return rc;
    }
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    rc = mp__popen_pump(p, o->input, o->input_len, &d);
    if (rc == 0)
        rc = mp__popen_wait_deadline(p, &d);
    if (rc != 0)
        kill_and_reap(p); /* the output read so far is kept */
    take_buf(&p->out, p->out_piped, &r->stdout_data, &r->stdout_len);
    take_buf(&p->err, p->err_piped, &r->stderr_data, &r->stderr_len);
    r->returncode = p->returncode;
    mp_popen_destroy(p);
    if (rc == 0 && o->check && r->returncode != 0)
        rc = MP_ENONZERO;
    if (rc == MP_ENONZERO)
        r->message = nonzero_message(r->args, o->popen.shell, r->returncode);
    else if (rc == MP_ETIMEDOUT)
        r->message = timeout_message(r->args, o->popen.shell, timeout_ms);
    return rc;
}

void mp_completed_process_free(mp_completed_process *r)
{
    if (r == NULL)
        return;
    free(r->args);
    free(r->stdout_data);
    free(r->stderr_data);
    free(r->message);
    *r = (mp_completed_process){.returncode = -1};
}

int mp_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms, int *returncode)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_popen *p;
    int rc = mp_popen_new(&p, argv, opt);
    if (rc != 0) {
        mp_popen_destroy(p);
        return rc;
    }
    int code = 0;
    rc = mp_popen_wait(p, timeout_ms, &code);
    if (rc != 0) {
        kill_and_reap(p);
        code = p->returncode;
    }
    if (returncode != NULL)
        *returncode = code;
    mp_popen_destroy(p);
    return rc;
}

int mp_check_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms,
                  int *returncode)
{
    int code = 0;
    int rc = mp_call(argv, opt, timeout_ms, &code);
    if (returncode != NULL)
        *returncode = code;
    if (rc == 0 && code != 0)
        rc = MP_ENONZERO;
    return rc;
}

int mp_check_output(const char *const *argv, const mp_run_options *opt, char **out, size_t *out_len,
                    int *returncode)
{
    static const mp_run_options defaults;
    if (returncode != NULL)
        *returncode = -1;
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    mp_run_options o = opt != NULL ? *opt : defaults;
    if (o.popen.stdout_mode != MP_INHERIT)
        return MP_EINVAL;
    o.popen.stdout_mode = MP_PIPE;
    o.check = true;
    mp_completed_process r;
    int rc = mp_run(&r, argv, &o);
    *out = r.stdout_data;
    if (out_len != NULL)
        *out_len = r.stdout_len;
    if (returncode != NULL)
        *returncode = r.returncode;
    r.stdout_data = NULL;
    mp_completed_process_free(&r);
    return rc;
}
