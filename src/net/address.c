/* address.c — the address strings of mproc/listener.h <-> socket addresses. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net/net.h"

#define SUN_PATH_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path))

static int parse_port(const char *p, const char *text, bool for_listener, int *port, char *err,
                      size_t errlen)
{
    if (*p == '\0') {
        mp__net_msg(err, errlen, "no port in '%s'", text);
        return MP_EINVAL;
    }
    long v = 0;
    for (const char *q = p; *q; q++) {
        if (!isdigit((unsigned char)*q) || q - p >= 5) {
            mp__net_msg(err, errlen, "bad port '%s' in '%s' (expected 0 to 65535)", p, text);
            return MP_EINVAL;
        }
        v = v * 10 + (*q - '0');
    }
    if (v > 65535) {
        mp__net_msg(err, errlen, "bad port '%s' in '%s' (expected 0 to 65535)", p, text);
        return MP_EINVAL;
    }
    if (v == 0 && !for_listener) {
        mp__net_msg(err, errlen, "port 0 in '%s': a client needs the listener's real port", text);
        return MP_EINVAL;
    }
    *port = (int)v;
    return 0;
}

static int parse_unix(mp__addr *out, const char *name, bool abstract, const char *text, char *err,
                      size_t errlen)
{
    size_t n = strlen(name);
    size_t room = (size_t)SUN_PATH_MAX - 1; /* a path needs its NUL; a name its leading NUL */
    if (abstract && n == 0) {
        mp__net_msg(err, errlen, "empty abstract socket name in '%s'", text);
        return MP_EINVAL;
    }
    if (n > room) {
        mp__net_msg(err, errlen,
                    "Unix socket %s of %zu bytes is too long (at most %zu): '%.40s...'",
                    abstract ? "name" : "path", n, room, text);
        return MP_EINVAL;
    }
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
    un->sun_family = AF_UNIX;
    if (abstract) {
        un->sun_path[0] = '\0';
        memcpy(un->sun_path + 1, name, n);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    } else {
        memcpy(un->sun_path, name, n + 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        out->unix_path = true;
    }
    out->family = AF_UNIX;
    return 0;
}

static int resolve_host(mp__addr *out, const char *host, int port, bool v6_only, const char *text,
                        char *err, size_t errlen)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
    if (!v6_only && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        out->len = sizeof *in4;
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *in6;
        out->family = AF_INET6;
        return 0;
    }
    if (v6_only) {
        mp__net_msg(err, errlen, "'%s' in '%s' is not an IPv6 address", host, text);
        return MP_EINVAL;
    }
    /* IPv4 only, as CPython's (host, port) addresses: "localhost" lists ::1 first on
     * many systems, and a listener on [::1] is unreachable for a CPython client at
     * ('localhost', port), as a CPython listener there is for us. IPv6 is "[v6]:port". */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, NULL, &hints, &res);
    if (g != 0) {
        mp__net_msg(err, errlen, "cannot resolve host '%s' in '%s': %s", host, text,
                    gai_strerror(g));
        return g == EAI_MEMORY ? MP_ENOMEM : MP_EINVAL;
    }
    int rc = MP_EINVAL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET && ai->ai_addrlen <= sizeof out->ss) {
            memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
            out->len = ai->ai_addrlen;
            out->family = ai->ai_family;
            in4->sin_port = htons((uint16_t)port);
            rc = 0;
            break;
        }
    }
    freeaddrinfo(res);
    if (rc != 0)
        mp__net_msg(err, errlen,
                    "host '%s' in '%s' has no IPv4 address (use [v6addr]:port for IPv6)", host,
                    text);
    return rc;
}

int mp__addr_parse(mp__addr *out, const char *text, bool for_listener, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || *text == '\0') {
        mp__net_msg(err, errlen, "empty address");
        return MP_EINVAL;
    }
    if (text[0] == '@')
        return parse_unix(out, text + 1, true, text, err, errlen);
    if (strchr(text, '/') != NULL)
        return parse_unix(out, text, false, text, err, errlen);
    char host[256];
    const char *port_text;
    bool v6 = false;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL) {
            mp__net_msg(err, errlen, "no ']' after the IPv6 address in '%s'", text);
            return MP_EINVAL;
        }
        if (close[1] != ':') {
            mp__net_msg(err, errlen, "no port in '%s'", text);
            return MP_EINVAL;
        }
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof host) {
            mp__net_msg(err, errlen, "bad IPv6 address in '%s'", text);
            return MP_EINVAL;
        }
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port_text = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            mp__net_msg(err, errlen,
                        "no port in '%s' (write host:port, [v6addr]:port, a path with a '/', "
                        "or @name)",
                        text);
            return MP_EINVAL;
        }
        size_t n = (size_t)(colon - text);
        if (memchr(text, ':', n) != NULL) {
            mp__net_msg(err, errlen, "an IPv6 address needs brackets, as '[v6addr]:port': '%s'",
                        text);
            return MP_EINVAL;
        }
        if (n >= sizeof host) {
            mp__net_msg(err, errlen, "host name too long in '%.40s...'", text);
            return MP_EINVAL;
        }
        memcpy(host, text, n);
        host[n] = '\0';
        port_text = colon + 1;
    }
    int port;
    int rc = parse_port(port_text, text, for_listener, &port, err, errlen);
    if (rc != 0)
        return rc;
    if (host[0] == '\0') {
        if (!for_listener) {
            mp__net_msg(err, errlen, "no host in '%s'", text);
            return MP_EINVAL;
        }
        struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        out->len = sizeof *in4;
        out->family = AF_INET;
        out->wildcard_host = true;
        return 0;
    }
    return resolve_host(out, host, port, v6, text, err, errlen);
}

void mp__addr_format(const struct sockaddr *sa, socklen_t len, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof ip);
        snprintf(out, MP__ADDR_TEXT_MAX, "%s:%u", ip, ntohs(in4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, MP__ADDR_TEXT_MAX, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t base = offsetof(struct sockaddr_un, sun_path);
        if (len <= base)
            return;
        size_t n = len - base;
        if (un->sun_path[0] == '\0')
            snprintf(out, MP__ADDR_TEXT_MAX, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(out, MP__ADDR_TEXT_MAX, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    }
}

int mp__set_nodelay(int fd, int family)
{
    if (family != AF_INET && family != AF_INET6)
        return 0;
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 ? 0 : -errno;
}
