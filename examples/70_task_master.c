/* 70_task_master.c — the tutorial's master (task_master): serves two queues, puts, gets */
// PROGRAM task_master
// DEMO sh task_demo.sh
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* task_master [port]: 127.0.0.1, port 5000 by default, authkey 'abc', as the tutorial. */
int main(int argc, char **argv)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s", argc > 1 ? argv[1] : "5000");

    /* task_queue = queue.Queue(); result_queue = queue.Queue() */
    mp_served *task_queue, *result_queue;
    mp_served_queue_new(&task_queue, 0);
    mp_served_queue_new(&result_queue, 0);

    /* QueueManager.register('get_task_queue', callable=lambda: task_queue) ... */
    mp_manager *manager;
    mp_manager_new(&manager, address, "abc", 3, NULL);
    mp_manager_register(manager, "get_task_queue",
                        &(mp_manager_register_options){.object = task_queue});
    mp_manager_register(manager, "get_result_queue",
                        &(mp_manager_register_options){.object = result_queue});
    int rc = mp_manager_start(manager);
    if (rc < 0) {
        fprintf(stderr, "task_master: cannot serve on %s: %s\n", address, mp_strerror(rc));
        return 1;
    }

    mp_proxy *task, *result;
    mp_manager_create(manager, "get_task_queue", NULL, NULL, &task);
    mp_manager_create(manager, "get_result_queue", NULL, NULL, &result);
    srand((unsigned)time(NULL));
    for (int i = 0; i < 10; i++) {
        int n = rand() % 10001;
        printf("Put task %d...\n", n);
        mp_obj *item = mp_int(n);
        mp_proxy_put(task, item, -1);
        mp_obj_unref(item);
    }
    printf("Try get results...\n");
    int status = 0;
    for (int i = 0; i < 10; i++) {
        mp_obj *r;
        rc = mp_proxy_get(result, &r, 10000); /* result.get(timeout=10) */
        if (rc < 0) {
            fprintf(stderr, "task_master: no result: %s\n", mp_strerror(rc));
            status = 1;
            break;
        }
        printf("Result: %s\n", mp_str_cstr(r));
        mp_obj_unref(r);
    }
    mp_proxy_destroy(task);
    mp_proxy_destroy(result);
    mp_manager_shutdown(manager);
    mp_manager_destroy(manager);
    mp_served_unref(task_queue);
    mp_served_unref(result_queue);
    printf("master exit.\n");
    return status;
}
