/* manager_server_memory: the server's resident memory (VmRSS, KiB; lower is
 * better) holding 10,000 queued 64-byte items with 100 idle client connections
 * (each an authenticated persistent channel). The mproc server is the
 * mproc-manager program; the CPython side (manager_server_memory.py) measures
 * CPython's server process (BaseManager.start) the same way. No raw side. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

#define ITEMS 10000
#define CLIENTS 100

/* Starts the mproc-manager program (beside this binary's directory: build/tools)
 * serving get_queue; its pid in *pid, its address in address. */
static int start_program(long *pid, char *address, size_t cap)
{
    char exe[4096], prog[4200], file[64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(prog, sizeof prog, "%s/../tools/mproc-manager", exe);
    snprintf(file, sizeof file, "/tmp/mproc-bench-addr.%d", (int)getpid());
    unlink(file);
    pid_t p = fork();
    if (p == 0) {
        setenv("MPROC_AUTHKEY", "abc", 1);
        execl(prog, prog, "--queue", "get_queue", "--quiet", "--listen", "127.0.0.1:0",
              "--address-file", file, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(file, "r");
        if (f != NULL) {
            bool got = fgets(address, (int)cap, f) != NULL;
            fclose(f);
            if (got) {
                address[strcspn(address, "\n")] = '\0';
                *pid = p;
                return 0;
            }
        }
        usleep(10000);
    }
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    return -1;
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
    long pid;
    char address[128];
    if (start_program(&pid, address, sizeof address) < 0)
        return -1;
    mp_manager *m;
    mp_proxy *p;
    if (mp_manager_new(&m, address, "abc", 3, NULL) < 0 || mp_manager_connect(m) < 0 ||
        mp_manager_create(m, "get_queue", NULL, NULL, &p) < 0)
        return -1;
    char item[64];
    memset(item, 'x', sizeof item);
    mp_obj *o = mp_bytes(item, sizeof item);
    for (int i = 0; i < ITEMS; i++)
        if (mp_proxy_put(p, o, -1) < 0)
            return -1;
    mp_obj_unref(o);
    /* Idle channels: each connected manager holds one authenticated connection that
     * sent accept_connection, as the CPython side's. */
    mp_manager *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        if (mp_manager_new(&c[i], address, "abc", 3, NULL) < 0 || mp_manager_connect(c[i]) < 0)
            return -1;
    usleep(200 * 1000);
    long kib = rss_kib(pid);
    for (int i = 0; i < CLIENTS; i++)
        mp_manager_destroy(c[i]);
    mp_proxy_destroy(p);
    mp_manager_shutdown(m);
    mp_manager_destroy(m);
    int st;
    waitpid((pid_t)pid, &st, 0);
    return (double)kib;
}

BENCH_MAIN("KiB", run_mproc, NULL)
