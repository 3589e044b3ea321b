/* wait.c — mp_wait, Python's multiprocessing.connection.wait: one poll() over the
 * descriptors of connections, process sentinels and plain descriptors. A
 * connection whose read-ahead buffer already holds a message is ready without
 * looking at its descriptor. */
#include <poll.h>
#include <stdlib.h>

#include "mproc/connection.h"
#include "queue/conn.h"

int mp_wait(mp_wait_object *objs, size_t n, int timeout_ms)
{
    if (objs == NULL && n > 0)
        return MP_EINVAL;
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return rc;
    struct pollfd local[16];
    struct pollfd *pfd = n <= 16 ? local : malloc(n * sizeof *pfd);
    if (pfd == NULL)
        return MP_ENOMEM;
    bool buffered = false;
    for (size_t i = 0; i < n; i++) {
        mp_wait_object *o = &objs[i];
        o->ready = false;
        int fd = -1;
        if (o->conn != NULL && o->process != NULL) {
            rc = MP_EINVAL;
        } else if (o->conn != NULL) {
            fd = mp_conn_fileno(o->conn);
            rc = fd < 0 ? fd : !mp_conn_readable(o->conn) ? MP_EBADF : 0;
            if (rc == 0 && mp__conn_has_buffered(o->conn)) {
                o->ready = true;
                buffered = true;
            }
        } else if (o->process != NULL) {
            fd = mp_process_sentinel(o->process);
            rc = fd < 0 ? fd : 0;
        } else {
            fd = o->fd;
            rc = fd < 0 ? MP_EINVAL : 0;
        }
        if (rc != 0)
            goto out_free;
        pfd[i] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    for (;;) {
        int r = poll(pfd, (nfds_t)n, buffered ? 0 : mp__deadline_poll_ms(&d));
        if (r >= 0)
            break;
        if (errno != EINTR) {
            rc = -errno;
            goto out_free;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (pfd[i].revents & POLLNVAL) {
            rc = MP_EBADF;
            goto out_free;
        }
        if (pfd[i].revents != 0)
            objs[i].ready = true;
        rc += objs[i].ready;
    }
out_free:
    if (pfd != local)
        free(pfd);
    return rc;
}
