/* 27_shared_memory.c — a named SharedMemory block: one process creates it, another attaches by name
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int reader(void *arg)
{
    const char *name = arg;
    mp_shared_memory *shm;
    if (mp_shared_memory_new(&shm, name, NULL) != 0)
        return 1;
    unsigned char *buf = mp_shared_memory_buf(shm);
    printf("child attached to %s (%zu bytes): %d %d %d %d %d\n", mp_shared_memory_name(shm),
           mp_shared_memory_size(shm), buf[0], buf[1], buf[2], buf[3], buf[4]);
    buf[0] = 99; /* the parent sees this */
    mp_shared_memory_destroy(shm);
    return 0;
}

int main(void)
{
    mp_shared_memory *shm;
    if (mp_shared_memory_new(&shm, NULL, &(mp_shared_memory_options){.create = true, .size = 10}) !=
        0)
        return 1;
    memcpy(mp_shared_memory_buf(shm), (unsigned char[]){1, 2, 3, 4, 5}, 5);
    printf("created %s\n", mp_shared_memory_name(shm));
    mp_process *p;
    if (mp_process_new(&p, reader, (void *)mp_shared_memory_name(shm), NULL) != 0 ||
        mp_process_start(p) != 0)
        return 1;
    mp_process_join(p, -1);
    mp_process_destroy(p);
    printf("parent reads back buf[0] = %d\n", ((unsigned char *)mp_shared_memory_buf(shm))[0]);
    mp_shared_memory_unlink(shm);
    mp_shared_memory_destroy(shm);
    return 0;
}
