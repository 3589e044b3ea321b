/* test_manager_scale.c — the mproc-manager program under load and faults, and
 * across network namespaces.
 *
 * Sizes: `make check` runs a small size of each (seconds); with MPROC_HEAVY=1 the
 * issue's full sizes run (100 clients x 10,000 operations, 1,000 garbage and
 * silent connections, 100 workers in four namespaces). CI runs the full sizes in a
 * job of their own: MPROC_HEAVY=1 ctest -R manager_scale. */
// TEST_TIMEOUT 600
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "sync_manager_fixture.h"

static bool heavy(void)
{
    return getenv("MPROC_HEAVY") && strcmp(getenv("MPROC_HEAVY"), "0");
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* ---- load ---- */

typedef struct load_arg {
    const char *address;
    int id, ops;
    int report; /* write end: the number of items this client got */
} load_arg;

/* ops/2 puts of distinct ints onto get_q, ops/2 gets (each item got is recorded as
 * d[item] = id), and a dict write per put. */
static int load_client(void *p)
{
    load_arg *a = p;
    mp_manager *m = fx_connect(a->address);
    mp_proxy *q, *d;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    CHECK_OK(mp_manager_create(m, "get_dict", NULL, NULL, &d));
    int got = 0;
    for (int j = 0; j < a->ops / 2; j++) {
        mp_obj *item = mp_int((int64_t)a->id * a->ops + j);
        CHECK_OK(mp_proxy_put(q, item, -1));
        mp_obj_unref(item);
        mp_obj *back = NULL;
        int rc = mp_proxy_get(q, &back, 0);
        if (rc == MP_EEMPTY)
            continue;
        CHECK_OK(rc);
        /* d[item] = id: a duplicate delivery would show as fewer keys than gets. */
        CHECK_OK(mp_proxy_dict_set(d, back, mp_int(a->id)));
        got++;
    }
    CHECK_EQ(sizeof got, write(a->report, &got, sizeof got));
    mp_proxy_destroy(q);
    mp_proxy_destroy(d);
    mp_manager_destroy(m);
    return 0;
}

static void load_round(const char *address, int clients, int ops, long *got_total)
{
    int pfd[2];
    CHECK(pipe2(pfd, O_CLOEXEC) == 0);
    int *pids = calloc((size_t)clients, sizeof *pids);
    load_arg *args = calloc((size_t)clients, sizeof *args);
    for (int i = 0; i < clients; i++) {
        args[i] = (load_arg){address, i, ops, pfd[1]};
        pids[i] = th_fork(load_client, &args[i]);
    }
    for (int i = 0; i < clients; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    *got_total = 0;
    for (int i = 0; i < clients; i++) {
        int g;
        CHECK_EQ(sizeof g, read(pfd[0], &g, sizeof g));
        *got_total += g;
    }
    close(pfd[0]);
    close(pfd[1]);
    free(pids);
    free(args);
}

TEST(many_clients_lose_and_duplicate_nothing_and_memory_stays_flat)
{
    int clients = heavy() ? 100 : 8, ops = heavy() ? 10000 : 400;
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--shared", "get_dict=dict", "--quiet", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *q, *d;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    CHECK_OK(mp_manager_create(m, "get_dict", NULL, NULL, &d));
    long rss_warm = 0;
    for (int round = 0; round < 3; round++) {
        long got = 0;
        load_round(fp.address, clients, ops, &got);
        /* Every item put was got exactly once (a dict key each) or is still queued. */
        CHECK_EQ(got, mp_proxy_len(d));
        long queued = mp_proxy_qsize(q);
        CHECK_EQ((long)clients * (ops / 2), got + queued);
        for (long i = 0; i < queued; i++) {
            mp_obj *item = NULL;
            CHECK_OK(mp_proxy_get(q, &item, 1000));
            mp_obj *v = NULL;
            CHECK_RC(MP_ENOENT, mp_proxy_dict_get(d, item, &v));
            int64_t n;
            CHECK_OK(mp_int_value(item, &n));
            CHECK(n >= 0 && n < (int64_t)clients * ops && n % ops < ops / 2);
            mp_obj_unref(item);
        }
        CHECK_OK(mp_proxy_call(d, "clear", NULL, NULL, 0, NULL));
        long objs = -1;
        CHECK_OK(mp_manager_number_of_objects(m, &objs));
        CHECK_EQ(2, objs);
        long rss = rss_kib(mp_popen_pid(fp.p));
        fprintf(stderr, "round %d: %d clients x %d ops, server RSS %ld KiB\n", round, clients, ops,
                rss);
        /* Round 0 warms the allocator up; from then on the server must stay flat. */
        if (round == 1)
            rss_warm = rss;
        else if (round > 1)
            CHECK(rss < rss_warm + rss_warm / 4 + 4096);
    }
    mp_proxy_destroy(q);
    mp_proxy_destroy(d);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

/* ---- faults ---- */

typedef struct victim_arg {
    const char *address;
    int ready;
    bool lock; /* acquire get_lock (and hold or wait); else block in get_q.get() */
} victim_arg;

static int victim(void *p)
{
    victim_arg *a = p;
    mp_manager *m = fx_connect(a->address);
    mp_proxy *x;
    CHECK_OK(mp_manager_create(m, a->lock ? "get_lock" : "get_q", NULL, NULL, &x));
    char b = 1;
    CHECK_EQ(1, write(a->ready, &b, 1));
    if (a->lock) {
        mp_proxy_acquire(x, -1);
    } else {
        mp_obj *item;
        mp_proxy_get(x, &item, -1);
    }
    for (;;)
        pause();
}

TEST(clients_killed_mid_get_and_holding_a_lock_lose_nothing)
{
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--shared", "get_lock=Lock", "--quiet", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *q, *lk;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    CHECK_OK(mp_manager_create(m, "get_lock", NULL, NULL, &lk));
    long base = -1;
    CHECK_OK(mp_manager_number_of_objects(m, &base));
    int rounds = heavy() ? 20 : 3, per = 8;
    for (int r = 0; r < rounds; r++) {
        int pfd[2];
        CHECK(pipe2(pfd, O_CLOEXEC) == 0);
        int pids[8];
        for (int i = 0; i < per; i++) {
            victim_arg a = {fp.address, pfd[1], i % 2 == 0};
            pids[i] = th_fork(victim, &a);
        }
        for (int i = 0; i < per; i++) {
            char b;
            CHECK_EQ(1, read(pfd[0], &b, 1));
        }
        /* Some hold the lock, the others wait for it or for an item; kill them all
         * at a random moment of their waiting. */
        th_sleep_ms(50 + (unsigned)(rand() % 200));
        for (int i = 0; i < per; i++)
            kill(pids[i], SIGKILL);
        for (int i = 0; i < per; i++)
            CHECK_EQ(-SIGKILL, th_wait(pids[i]));
        close(pfd[0]);
        close(pfd[1]);
        /* No dead get takes an item put now, and the lock is free again. */
        th_sleep_ms(100);
        for (int i = 0; i < 10; i++) {
            mp_obj *o = mp_int(r * 100 + i);
            CHECK_OK(mp_proxy_put(q, o, -1));
            mp_obj_unref(o);
        }
        for (int i = 0; i < 10; i++) {
            mp_obj *o = NULL;
            CHECK_OK(mp_proxy_get(q, &o, 2000));
            int64_t n;
            CHECK_OK(mp_int_value(o, &n));
            CHECK_EQ(r * 100 + i, n);
            mp_obj_unref(o);
        }
        CHECK_OK(mp_proxy_acquire(lk, 2000));
        CHECK_OK(mp_proxy_release(lk));
        long now = -1;
        CHECK_OK(mp_manager_number_of_objects(m, &now));
        CHECK_EQ(base, now);
    }
    mp_proxy_destroy(q);
    mp_proxy_destroy(lk);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

static int tcp_connect(const char *address)
{
    char host[64];
    int port;
    CHECK_EQ(2, sscanf(address, "%63[^:]:%d", host, &port));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

TEST(garbage_and_silent_connections_do_not_starve_real_clients)
{
    int bad = heavy() ? 1000 : 200;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)bad + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)bad + 64)
        SKIP("descriptor limit %lu is below %d", (unsigned long)rl.rlim_cur, bad + 64);
    fx_program fp;
    const char *args[] = {"--queue", "get_q", "--quiet", "--handshake-timeout", "1000", NULL};
    fx_program_start(&fp, args);
    mp_manager *m = fx_connect(fp.address);
    mp_proxy *q;
    CHECK_OK(mp_manager_create(m, "get_q", NULL, NULL, &q));
    int *fds = calloc((size_t)bad, sizeof *fds);
    uint64_t worst = 0;
    int ops = 0;
    for (int i = 0; i < bad; i++) {
        fds[i] = tcp_connect(fp.address);
        if (fds[i] >= 0 && i % 2 == 0) {
            char junk[300];
            memset(junk, 0x41 + i % 26, sizeof junk);
            ssize_t w = write(fds[i], junk, sizeof junk);
            (void)w;
        }
        if (i % 10 == 0) {
            /* A real client's round trips, each within its timeout. */
            uint64_t t0 = th_now_ms();
            mp_obj *o = mp_int(i);
            CHECK_OK(mp_proxy_put(q, o, 2000));
            mp_obj_unref(o);
            o = NULL;
            CHECK_OK(mp_proxy_get(q, &o, 2000));
            mp_obj_unref(o);
            uint64_t dt = th_now_ms() - t0;
            worst = dt > worst ? dt : worst;
            ops++;
        }
    }
    fprintf(stderr, "%d garbage/silent connections; %d real round trips, the slowest %llu ms\n",
            bad, ops, (unsigned long long)worst);
    CHECK(worst < 1000);
    for (int i = 0; i < bad; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    /* A new client gets in once the bad peers are gone. */
    uint64_t t0 = th_now_ms();
    mp_manager *m2 = fx_connect(fp.address);
    CHECK(th_now_ms() - t0 < 5000);
    mp_manager_destroy(m2);
    mp_proxy_destroy(q);
    mp_manager_destroy(m);
    CHECK_EQ(0, fx_program_stop(&fp, SIGTERM));
}

/* ---- across hosts ---- */

TEST(workers_in_four_network_namespaces_do_every_task_exactly_once)
{
    if (geteuid() != 0)
        SKIP("network namespaces need root");
    const char *py = fx_need_python("3.11");
    char workers[16], tasks[16];
    snprintf(workers, sizeof workers, "%d", heavy() ? 100 : 12);
    snprintf(tasks, sizeof tasks, "%d", heavy() ? 5000 : 300);
    const char *argv[] = {py,           fx_source("tests/netns_scaleout.py"),
                          "--manager",  fx_built("tools/mproc-manager"),
                          "--c-worker", fx_helper("manager_task_worker"),
                          "--workers",  workers,
                          "--tasks",    tasks,
                          NULL};
    char *out = NULL;
    int code = fx_run(argv, NULL, 500000, &out, NULL);
    fprintf(stderr, "%s", out ? out : "");
    if (code == 77)
        SKIP("%s", out ? out : "namespaces cannot be made here");
    CHECK_EQ(0, code);
    CHECK(strstr(out, "missing 0, duplicated 0, extra 0, kinds ['c', 'py']") != NULL);
    free(out);
}
