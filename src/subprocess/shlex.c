/* shlex.c — shlex.split (whitespace_split; POSIX mode by default), quote and join.
 *
 * split is CPython's read_token state machine with the settings shlex.split uses:
 * whitespace " \t\r\n", quotes ' and ", escape \ (active outside quotes and inside
 * double quotes, where it only escapes " and \), whitespace_split on (every other
 * character belongs to a word), and '#' as the comment character only with
 * MP_SHLEX_COMMENTS. A word made only of quotes ("") is an empty word, not nothing.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "mproc/shlex.h"

enum state { ST_SPACE, ST_WORD, ST_SQUOTE, ST_DQUOTE, ST_ESCAPE };

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skips the rest of the line after a comment character, '\n' included. */
static const char *skip_line(const char *s)
{
    while (*s != '\0' && *s != '\n')
        s++;
    return *s == '\n' ? s + 1 : s;
}

/* Tokenizes s into buf (words separated by NULs). Returns the word count, or
 * MP_EINVAL with *why set. buf has room for strlen(s) * 2 + 1 bytes.
 * Non-POSIX mode (CPython's posix=False): quotes stay in the word, a closing quote
 * ends the word, backslash is an ordinary character, and a comment inside a word
 * does not end it. */
static int tokenize(const char *s, bool comments, bool posix, char *buf, size_t *used,
                    const char **why)
{
    enum state st = ST_SPACE, escaped_from = ST_WORD;
    char *tok = buf, *w = buf;
    bool quoted = false;
    int n = 0;
    for (;;) {
        char c = *s;
        if (c != '\0')
            s++;
        bool emit = false, eof = false;
        switch (st) {
        case ST_SPACE:
            if (c == '\0') {
                eof = true;
            } else if (is_space(c)) {
                emit = true;
            } else if (comments && c == '#') {
                s = skip_line(s);
            } else if (posix && c == '\\') {
                escaped_from = ST_WORD;
                st = ST_ESCAPE;
            } else if (c == '\'' || c == '"') {
                if (!posix)
                    *w++ = c;
                st = c == '\'' ? ST_SQUOTE : ST_DQUOTE;
            } else {
                *w++ = c;
                st = ST_WORD;
            }
            break;
        case ST_SQUOTE:
        case ST_DQUOTE:
            quoted = true;
            if (c == '\0') {
                if (why != NULL)
                    *why = "No closing quotation";
                return MP_EINVAL;
            }
            if (c == (st == ST_SQUOTE ? '\'' : '"')) {
                if (posix) {
                    st = ST_WORD;
                } else {
                    *w++ = c;
                    st = ST_SPACE;
                    emit = true;
                }
            } else if (posix && st == ST_DQUOTE && c == '\\') {
                escaped_from = ST_DQUOTE;
                st = ST_ESCAPE;
            } else {
                *w++ = c;
            }
            break;
        case ST_ESCAPE:
            if (c == '\0') {
                if (why != NULL)
                    *why = "No escaped character";
                return MP_EINVAL;
            }
            if (escaped_from == ST_DQUOTE && c != '\\' && c != '"')
                *w++ = '\\';
            *w++ = c;
            st = escaped_from;
            break;
        case ST_WORD:
            if (c == '\0') {
                eof = true;
            } else if (is_space(c)) {
                st = ST_SPACE;
                emit = true;
            } else if (comments && c == '#') {
                s = skip_line(s);
                if (posix) {
                    st = ST_SPACE;
                    emit = true;
                }
            } else if (posix && (c == '\'' || c == '"')) {
                st = c == '\'' ? ST_SQUOTE : ST_DQUOTE;
            } else if (posix && c == '\\') {
                escaped_from = ST_WORD;
                st = ST_ESCAPE;
            } else {
                *w++ = c;
            }
            break;
        }
        if (eof)
            emit = true;
        /* Python emits a word when it has characters, or (POSIX) had quotes. */
        if (emit && (w > tok || (posix && quoted))) {
            *w++ = '\0';
            tok = w;
            n++;
        }
        if (emit)
            quoted = false;
        if (eof) {
            *used = (size_t)(w - buf);
            return n;
        }
    }
}

int mp_shlex_split(const char *s, int flags, char ***out, const char **why)
{
    if (out != NULL)
        *out = NULL;
    if (why != NULL)
        *why = NULL;
    if (s == NULL || out == NULL || (flags & ~(MP_SHLEX_COMMENTS | MP_SHLEX_NON_POSIX)) != 0)
        return MP_EINVAL;
    size_t len = strlen(s), used = 0;
    if (len > INT_MAX) /* then the word count could exceed the int we return */
        return MP_E2BIG;
    char *buf = malloc(len * 2 + 1);
    if (buf == NULL)
        return MP_ENOMEM;
    int n = tokenize(s, flags & MP_SHLEX_COMMENTS, !(flags & MP_SHLEX_NON_POSIX), buf, &used, why);
    if (n < 0) {
        free(buf);
        return n;
    }
    char **argv = malloc(((size_t)n + 1) * sizeof *argv + used);
    if (argv == NULL) {
        free(buf);
        return MP_ENOMEM;
    }
    char *str = memcpy(argv + n + 1, buf, used);
    for (int i = 0; i < n; i++) {
        argv[i] = str;
        str += strlen(str) + 1;
    }
    argv[n] = NULL;
    free(buf);
    *out = argv;
    return n;
}

static bool is_safe(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("_@%+=:,./-", c) != NULL);
}

/* Writes quote(s) to dst (when not NULL); returns its length. */
static size_t quote_into(const char *s, char *dst)
{
    bool safe = *s != '\0';
    for (const char *c = s; *c && safe; c++)
        safe = is_safe(*c);
    size_t n = 0;
#define PUT(ch) (dst ? (void)(dst[n] = (ch)) : (void)0, n++)
    if (safe) {
        for (const char *c = s; *c; c++)
            PUT(*c);
        return n;
    }
    PUT('\'');
    for (const char *c = s; *c; c++) {
        if (*c == '\'') {
            for (const char *r = "'\"'\"'"; *r; r++)
                PUT(*r);
        } else {
            PUT(*c);
        }
    }
    PUT('\'');
#undef PUT
    return n;
}

int mp_shlex_quote(const char *s, char **out)
{
    if (out != NULL)
        *out = NULL;
    if (s == NULL || out == NULL)
        return MP_EINVAL;
    size_t n = quote_into(s, NULL);
    char *q = malloc(n + 1);
    if (q == NULL)
        return MP_ENOMEM;
    quote_into(s, q);
    q[n] = '\0';
    *out = q;
    return 0;
}

int mp_shlex_join(const char *const *argv, char **out)
{
    if (out != NULL)
        *out = NULL;
    if (argv == NULL || out == NULL)
        return MP_EINVAL;
    size_t total = 1;
    for (size_t i = 0; argv[i] != NULL; i++)
        total += quote_into(argv[i], NULL) + 1;
    char *j = malloc(total);
    if (j == NULL)
        return MP_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; argv[i] != NULL; i++) {
        if (i > 0)
            j[n++] = ' ';
        n += quote_into(argv[i], j + n);
    }
    j[n] = '\0';
    *out = j;
    return 0;
}
