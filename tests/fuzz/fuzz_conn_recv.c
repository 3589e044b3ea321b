/* fuzz_conn_recv.c — libFuzzer target for the connection decoder: whatever bytes
 * a peer sends, receiving must end in messages or a clean error code, never a
 * crash, an overread, a leak or a hang. The input is the peer's byte stream; its
 * first byte picks how it is received (recv_bytes with a maximum, or
 * recv_bytes_into a small buffer). Built and run by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int bufsize = 1 << 20; /* the whole input fits: write it all, then read */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
        abort();
    close(sv[0]); /* the peer is gone after its bytes: end-of-file or truncation */

    mp_conn *c;
    if (mp_conn_from_fd(&c, sv[1], true, false) != 0)
        abort();
    for (int i = 0; i < 1000; i++) {
        int rc;
        if (mode & 1) {
            void *msg = NULL;
            size_t len = 0;
            rc = mp_conn_recv_bytes(c, &msg, &len, (mode & 2) ? 64 : 1u << 20);
            if (rc == 0 && len > 0 && msg == NULL)
                abort();
            free(msg);
        } else {
            char buf[32];
            size_t len = 0;
            rc = mp_conn_recv_bytes_into(c, buf, sizeof buf, (mode >> 1) % 8, &len);
            if (rc == 0 && len > sizeof buf)
                abort();
        }
        /* Codes a peer can cause; anything else is a decoder bug. */
        if (rc != 0 && rc != MP_EEOF && rc != MP_ETRUNCATED && rc != MP_ETOOSHORT &&
            rc != MP_EMSGSIZE && rc != MP_EPROTO && rc != MP_ENOMEM && rc != MP_ECONNRESET)
            abort();
        if (rc == MP_EEOF || rc == MP_ETRUNCATED || rc == MP_EPROTO || rc == MP_ECONNRESET)
            break;
        if (rc == MP_ETOOSHORT || rc == MP_EMSGSIZE) /* kept: take it with room to spare */
            mode ^= 1;
    }
    mp_conn_destroy(c);
    return 0;
}
