/* manager_server_memory: the server's resident memory (VmRSS, KiB; lower is
 * better) holding 10,000 queued 64-byte items with 100 idle client connections
 * (each an authenticated persistent channel). The mproc server is started with
 * mp_manager_start (a fork of this small program); the CPython side
 * (manager_server_memory.py) measures CPython's server process the same way.
 * No raw side. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define ITEMS 10000
#define CLIENTS 100

/* The first child process of ours, from /proc/self/task/<tid>/children. */
static long child_pid(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long pid = -1;
    while (d && pid < 0 && (e = readdir(d)) != NULL) {
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1)
                pid = -1;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return pid;
}

static long rss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double run_mproc(void)
{
    mp_served *q;
    mp_manager *m;
    if (mp_served_queue_new(&q, 0) < 0 || mp_manager_new(&m, "127.0.0.1:0", "abc", 3, NULL) < 0)
        return -1;
    int rc = mp_manager_register(m, "get_queue", &(mp_manager_register_options){.object = q});
    mp_served_unref(q);
    if (rc < 0 || mp_manager_start(m) < 0)
        return -1;
    long pid = child_pid();
    mp_proxy *p;
    if (mp_manager_create(m, "get_queue", NULL, NULL, &p) < 0)
        return -1;
    char item[64];
    memset(item, 'x', sizeof item);
    mp_obj *o = mp_bytes(item, sizeof item);
    for (int i = 0; i < ITEMS; i++)
        if (mp_proxy_put(p, o, -1) < 0)
            return -1;
    mp_obj_unref(o);
    mp_manager *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        if (mp_manager_new(&c[i], mp_manager_address(m), "abc", 3, NULL) < 0 ||
            mp_manager_connect(c[i]) < 0)
            return -1;
    usleep(200 * 1000);
    long kib = rss_kib(pid);
    for (int i = 0; i < CLIENTS; i++)
        mp_manager_destroy(c[i]);
    mp_proxy_destroy(p);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    return (double)kib;
}

BENCH_MAIN("KiB", run_mproc, NULL)
