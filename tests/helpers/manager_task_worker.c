/* manager_task_worker.c — the tutorial's task worker in C, as tests/task_worker.py
 * (the same arguments and output), for tests that mix C and python3 workers:
 *
 *     manager_task_worker HOST:PORT [NAME] [IDLE_TIMEOUTS]
 *
 * Connects with the authkey in MPROC_AUTHKEY (default "abc"), takes tasks from
 * get_task_queue with get(timeout=1), puts "NAME n * n = n*n" on get_result_queue,
 * and exits 0 after a None task or IDLE_TIMEOUTS empty gets in a row. Exit 1 on any
 * other error (printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOST:PORT [NAME] [IDLE_TIMEOUTS]\n", argv[0]);
        return 2;
    }
    char defname[32];
    snprintf(defname, sizeof defname, "c%d", (int)getpid());
    const char *name = argc > 2 ? argv[2] : defname;
    int idle_limit = argc > 3 ? atoi(argv[3]) : 10;
    const char *key = getenv("MPROC_AUTHKEY") ? getenv("MPROC_AUTHKEY") : "abc";
    mp_manager *m;
    int rc = mp_manager_new(&m, argv[1], key, strlen(key), NULL);
    /* The server may still be starting: retry a refused connect for a few seconds. */
    for (int i = 0; rc == 0 && i < 100; i++) {
        rc = mp_manager_connect(m);
        if (rc != MP_ECONNREFUSED)
            break;
        usleep(100 * 1000);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: connect %s: %s\n", name, argv[1], mp_strerror(rc));
        mp_manager_destroy(m);
        return 1;
    }
    mp_proxy *task = NULL, *result = NULL;
    if ((rc = mp_manager_create(m, "get_task_queue", NULL, NULL, &task)) < 0 ||
        (rc = mp_manager_create(m, "get_result_queue", NULL, NULL, &result)) < 0) {
        fprintf(stderr, "%s: create: %s\n", name, mp_strerror(rc));
        goto out;
    }
    for (int idle = 0; idle < idle_limit;) {
        mp_obj *item = NULL;
        rc = mp_proxy_get(task, &item, 1000);
        if (rc == MP_EEMPTY) {
            idle++;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "%s: get: %s\n", name, mp_strerror(rc));
            goto out;
        }
        idle = 0;
        if (mp_obj_is_none(item)) {
            mp_obj_unref(item);
            rc = 0;
            break;
        }
        int64_t n = 0;
        rc = mp_int_value(item, &n);
        mp_obj_unref(item);
        if (rc < 0) {
            fprintf(stderr, "%s: a task that is not an int\n", name);
            goto out;
        }
        char line[128];
        snprintf(line, sizeof line, "%s %lld * %lld = %lld", name, (long long)n, (long long)n,
                 (long long)(n * n));
        mp_obj *r = mp_str_c(line);
        rc = mp_proxy_put(result, r, -1);
        mp_obj_unref(r);
        if (rc < 0) {
            fprintf(stderr, "%s: put: %s\n", name, mp_strerror(rc));
            goto out;
        }
    }
    rc = 0;
out:
    mp_proxy_destroy(task);
    mp_proxy_destroy(result);
    mp_manager_destroy(m);
    return rc < 0 ? 1 : 0;
}
