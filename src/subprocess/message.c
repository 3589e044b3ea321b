/* message.c — the texts of CPython's CalledProcessError and TimeoutExpired
 * (subprocess.py, __str__), for mp_completed_process.message: the command shown
 * as Python shows Popen.args (repr of the list, or a shell command line as is),
 * then what happened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subprocess/subprocess.h"

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

char *mp__called_process_error_text(char *const *args, bool shell, int returncode)
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

/* The timeout in seconds as Python prints the number a caller would have passed:
 * 2 for 2000 ms, 1.5 for 1500 ms, 0.001 for 1 ms. */
char *mp__timeout_expired_text(char *const *args, bool shell, int timeout_ms)
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
