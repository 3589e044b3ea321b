/* tools/sockwatch.c — see sockwatch.h. */
#include "sockwatch.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sockwatch_init(sockwatch *w)
{
    memset(w, 0, sizeof *w);
}

void sockwatch_free(sockwatch *w)
{
    free(w->conns);
    memset(w, 0, sizeof *w);
}

size_t sockwatch_count(const sockwatch *w)
{
    return w->n;
}

/* The socket inodes among our descriptors, sorted. */
static size_t own_inodes(unsigned long **out)
{
    *out = NULL;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l <= 0)
            continue;
        link[l] = '\0';
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            unsigned long *v = realloc(*out, cap * sizeof *v);
            if (v == NULL)
                break;
            *out = v;
        }
        (*out)[n++] = ino;
    }
    closedir(d);
    return n;
}

static bool mine(const unsigned long *v, size_t n, unsigned long ino)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == ino)
            return true;
    return false;
}

static void hex_peer(const char *hex, char *out, size_t len)
{
    char addr[40] = "";
    unsigned port = 0;
    const char *colon = strchr(hex, ':');
    if (colon == NULL) {
        snprintf(out, len, "?");
        return;
    }
    sscanf(colon + 1, "%x", &port);
    size_t hl = (size_t)(colon - hex);
    if (hl == 8) {
        unsigned a;
        sscanf(hex, "%8x", &a);
        snprintf(out, len, "%u.%u.%u.%u:%u", a & 0xff, (a >> 8) & 0xff, (a >> 16) & 0xff, a >> 24,
                 port);
        return;
    }
    /* IPv6: four little-endian 32-bit words. */
    unsigned char b[16];
    for (int w = 0; w < 4; w++) {
        unsigned v;
        char word[9];
        memcpy(word, hex + w * 8, 8);
        word[8] = '\0';
        sscanf(word, "%x", &v);
        for (int k = 0; k < 4; k++)
            b[w * 4 + k] = (unsigned char)(v >> (8 * k));
    }
    size_t o = 0;
    for (int i = 0; i < 16; i += 2)
        o += (size_t)snprintf(addr + o, sizeof addr - o, "%s%x", i ? ":" : "",
                              (unsigned)(b[i] << 8 | b[i + 1]));
    snprintf(out, len, "[%s]:%u", addr, port);
}

static sockwatch_conn *find(sockwatch *w, unsigned long ino)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->conns[i].inode == ino)
            return &w->conns[i];
    return NULL;
}

static void saw(sockwatch *w, unsigned long ino, const char *peer,
                void (*log)(int level, const char *fmt, ...))
{
    sockwatch_conn *c = find(w, ino);
    if (c != NULL) {
        c->seen = true;
        return;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        sockwatch_conn *v = realloc(w->conns, cap * sizeof *v);
        if (v == NULL)
            return;
        w->conns = v;
        w->cap = cap;
    }
    c = &w->conns[w->n++];
    c->inode = ino;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->since = time(NULL);
    c->seen = true;
    w->opened++;
    log(1, "connection from %s", peer);
}

static void scan(sockwatch *w, const char *file, const unsigned long *own, size_t nown,
                 void (*log)(int level, const char *fmt, ...))
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return;
    char line[512];
    bool first = true;
    bool unix_file = strstr(file, "unix") != NULL;
    while (fgets(line, sizeof line, f)) {
        if (first) {
            first = false;
            continue;
        }
        unsigned long ino = 0;
        if (unix_file) {
            /* Num RefCount Protocol Flags Type St Inode Path */
            unsigned long flags, st;
            if (sscanf(line, "%*s %*s %*s %lx %*s %lx %lu", &flags, &st, &ino) != 3)
                continue;
            if (!mine(own, nown, ino))
                continue;
            if (flags & 0x10000)
                w->listening = true;
            else if (st == 3)
                saw(w, ino, "unix socket", log);
            continue;
        }
        char local[64], remote[64];
        unsigned st;
        if (sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &ino) != 4)
            continue;
        if (!mine(own, nown, ino))
            continue;
        if (st == 0x0a) {
            w->listening = true;
        } else if (st == 0x01) {
            char peer[64];
            hex_peer(remote, peer, sizeof peer);
            saw(w, ino, peer, log);
        }
    }
    fclose(f);
}

void sockwatch_poll(sockwatch *w, void (*log)(int level, const char *fmt, ...))
{
    unsigned long *own;
    size_t nown = own_inodes(&own);
    for (size_t i = 0; i < w->n; i++)
        w->conns[i].seen = false;
    w->listening = false;
    scan(w, "/proc/self/net/tcp", own, nown, log);
    scan(w, "/proc/self/net/tcp6", own, nown, log);
    scan(w, "/proc/self/net/unix", own, nown, log);
    free(own);
    time_t now = time(NULL);
    for (size_t i = 0; i < w->n;) {
        if (!w->conns[i].seen) {
            log(1, "connection from %s closed after %lds", w->conns[i].peer,
                (long)(now - w->conns[i].since));
            w->conns[i] = w->conns[--w->n];
        } else {
            i++;
        }
    }
}
