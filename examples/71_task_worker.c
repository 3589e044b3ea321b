/* 71_task_worker.c — the tutorial's worker (task_worker): takes tasks, puts squares */
// PROGRAM task_worker
// DEMO (run by 70_task_master's demo, against the C master and a python3 one)
#include <mproc.h>
#include <stdio.h>

/* task_worker [port]: the master at 127.0.0.1, port 5000 by default, authkey 'abc'. */
int main(int argc, char **argv)
{
    const char *server_addr = "127.0.0.1";
    char address[64];
    snprintf(address, sizeof address, "%s:%s", server_addr, argc > 1 ? argv[1] : "5000");

    /* QueueManager.register('get_task_queue'); QueueManager.register('get_result_queue') */
    printf("Connect to server %s...\n", server_addr);
    mp_manager *m;
    mp_manager_new(&m, address, "abc", 3, NULL);
    int rc = mp_manager_connect(m);
    if (rc < 0) {
        fprintf(stderr, "task_worker: %s: %s\n", address, mp_strerror(rc));
        mp_manager_destroy(m);
        return 1;
    }
    mp_proxy *task, *result;
    mp_manager_create(m, "get_task_queue", NULL, NULL, &task);
    mp_manager_create(m, "get_result_queue", NULL, NULL, &result);
    for (int i = 0; i < 10; i++) {
        mp_obj *item;
        rc = mp_proxy_get(task, &item, 1000); /* task.get(timeout=1) */
        if (rc == MP_EEMPTY) {                /* except queue.Empty */
            printf("task queue is empty.\n");
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "task_worker: %s\n", mp_strerror(rc));
            break;
        }
        int64_t n;
        mp_int_value(item, &n);
        mp_obj_unref(item);
        printf("run task %lld * %lld...\n", (long long)n, (long long)n);
        char r[64];
        snprintf(r, sizeof r, "%lld * %lld = %lld", (long long)n, (long long)n, (long long)(n * n));
        mp_obj *s = mp_str_c(r);
        mp_proxy_put(result, s, -1);
        mp_obj_unref(s);
    }
    mp_proxy_destroy(task);
    mp_proxy_destroy(result);
    mp_manager_destroy(m);
    printf("worker exit.\n");
    return rc < 0 && rc != MP_EEMPTY ? 1 : 0;
}
