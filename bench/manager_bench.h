/* bench/manager_bench.h — what the manager_* cases share: a started mproc manager
 * serving one queue.Queue as 'get_queue' (authkey "abc", a free port), and a
 * client of it. */
#ifndef MPROC_BENCH_MANAGER_H
#define MPROC_BENCH_MANAGER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static inline mp_manager *bench_start_server(void)
{
    mp_served *q;
    mp_manager *m;
    if (mp_served_queue_new(&q, 0) < 0 || mp_manager_new(&m, "127.0.0.1:0", "abc", 3, NULL) < 0)
        return NULL;
    int rc = mp_manager_register(m, "get_queue", &(mp_manager_register_options){.object = q});
    mp_served_unref(q);
    if (rc < 0 || (rc = mp_manager_start(m)) < 0) {
        fprintf(stderr, "start: %s\n", mp_err_name(rc));
        mp_manager_destroy(m);
        return NULL;
    }
    return m;
}

/* A client manager connected to address, with a proxy of 'get_queue' in *q. */
static inline mp_manager *bench_client(const char *address, mp_proxy **q)
{
    mp_manager *c;
    if (mp_manager_new(&c, address, "abc", 3, NULL) < 0)
        return NULL;
    int rc = mp_manager_connect(c);
    if (rc == 0)
        rc = mp_manager_create(c, "get_queue", NULL, NULL, q);
    if (rc < 0) {
        fprintf(stderr, "client: %s\n", mp_err_name(rc));
        mp_manager_destroy(c);
        return NULL;
    }
    return c;
}

/* n put+get pairs of a small int; 0 or a negative code. */
static inline int bench_pairs(mp_proxy *q, int n)
{
    mp_obj *seven = mp_int(7);
    for (int i = 0; i < n; i++) {
        mp_obj *got = NULL;
        int rc = mp_proxy_put(q, seven, -1);
        if (rc == 0)
            rc = mp_proxy_get(q, &got, -1);
        mp_obj_unref(got);
        if (rc < 0)
            return rc;
    }
    return 0;
}

#endif /* MPROC_BENCH_MANAGER_H */
