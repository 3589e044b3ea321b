/* shared_attach — a helper for test_shared: an unrelated process (started with
 * exec, sharing nothing with the test) that attaches to a SharedMemory segment
 * by name, checks that it starts with the text argv[2], writes argv[3] after
 * it, and exits 0. Any failure exits non-zero with a message. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: shared_attach NAME EXPECTED REPLY\n");
        return 2;
    }
    mp_shared_memory *shm;
    int rc = mp_shared_memory_new(&shm, argv[1], NULL);
    if (rc != 0) {
        fprintf(stderr, "shared_attach: attach %s: %s\n", argv[1], mp_err_name(rc));
        return 3;
    }
    size_t have = strlen(argv[2]), reply = strlen(argv[3]);
    char *buf = mp_shared_memory_buf(shm);
    if (mp_shared_memory_size(shm) < have + reply + 1 || memcmp(buf, argv[2], have) != 0) {
        fprintf(stderr, "shared_attach: unexpected content\n");
        return 4;
    }
    memcpy(buf + have, argv[3], reply + 1);
    mp_shared_memory_destroy(shm);
    return 0;
}
