/* 72_manager_master.c — mproc-manager serves the queues; C and python3 workers share */
// PROGRAM manager_master
// DEMO sh manager_demo.sh
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* manager_master [port] [ntasks]: the tutorial's master, but the queues live in an
 * mproc-manager server (started by manager_demo.sh with --queue get_task_queue
 * --queue get_result_queue): this master only connects, as the workers do, puts
 * the tasks, reads every result with get(timeout=10) and asks the server to shut
 * down. Authkey 'abc', as the tutorial. */
int main(int argc, char **argv)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s", argc > 1 ? argv[1] : "5000");
    int ntasks = argc > 2 ? atoi(argv[2]) : 20;

    /* QueueManager.register('get_task_queue'); ...; m.connect() */
    mp_manager *m;
    mp_manager_new(&m, address, "abc", 3, NULL);
    int rc = mp_manager_connect(m);
    if (rc < 0) {
        fprintf(stderr, "manager_master: %s: %s\n", address, mp_strerror(rc));
        mp_manager_destroy(m);
        return 1;
    }
    mp_proxy *task, *result;
    mp_manager_create(m, "get_task_queue", NULL, NULL, &task);
    mp_manager_create(m, "get_result_queue", NULL, NULL, &result);
    srand((unsigned)time(NULL));
    for (int i = 0; i < ntasks; i++) {
        int n = rand() % 10000;
        printf("Put task %d...\n", n);
        mp_obj *o = mp_int(n);
        mp_proxy_put(task, o, -1);
        mp_obj_unref(o);
    }
    printf("Try get results...\n");
    int status = 0;
    for (int i = 0; i < ntasks; i++) {
        mp_obj *r;
        rc = mp_proxy_get(result, &r, 10000); /* result.get(timeout=10) */
        if (rc < 0) {
            fprintf(stderr, "manager_master: result %d: %s\n", i, mp_strerror(rc));
            status = 1;
            break;
        }
        printf("Result: %s\n", mp_str_cstr(r));
        mp_obj_unref(r);
    }
    mp_proxy_destroy(task);
    mp_proxy_destroy(result);
    mp_manager_shutdown(m); /* the server program exits */
    mp_manager_destroy(m);
    printf("master exit.\n");
    return status;
}
