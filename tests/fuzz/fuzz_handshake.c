/* fuzz_handshake.c — libFuzzer target for the authkey handshake reader: whatever
 * bytes a peer sends during the handshake, it must end in success or a clean error
 * code, never a crash, an overread, a leak, an allocation on a claimed length or a
 * hang. The first input byte picks the role (bits 0-1: answerer, challenger,
 * listener = challenge then answer, client = answer then challenge; bit 2:
 * refuse_md5); the rest is the peer's byte stream. Every input is also given to the
 * pure answer and verify functions. Built and run by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    bool refuse = (mode & 4) != 0;

    unsigned char out[MP_HANDSHAKE_FRAME_MAX];
    size_t outlen = 0;
    char err[200];
    int rc = mp__auth_respond("abc", 3, data, size, refuse, out, &outlen, err, sizeof err);
    if ((rc != 0 && rc != MP_EAUTH) || (rc == 0 && outlen > sizeof out))
        abort();
    static const unsigned char chal[48] = "{sha256}0123456789012345678901234567890123456789";
    rc = mp__auth_verify("abc", 3, chal, sizeof chal, data, size, refuse, err, sizeof err);
    if (rc != 0 && rc != MP_EAUTH)
        abort();

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int bufsize = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
        abort();
    shutdown(sv[0], SHUT_WR); /* end-of-file after the bytes; our sends still land */

    static const enum mp__auth_step roles[4][2] = {
        {MP__AUTH_ANSWER, MP__AUTH_ANSWER},
        {MP__AUTH_DELIVER, MP__AUTH_DELIVER},
        {MP__AUTH_DELIVER, MP__AUTH_ANSWER},
        {MP__AUTH_ANSWER, MP__AUTH_DELIVER},
    };
    int role = mode & 3;
    mp__auth a;
    mp__auth_init(&a, sv[1], "abc", 3, refuse, roles[role], role < 2 ? 1 : 2);
    mp__deadline d;
    mp__deadline_init(&d, 2000);
    rc = mp__auth_run(&a, &d);
    /* Codes a peer can cause; anything else (a timeout included) is a bug. */
    if (rc != 0 && rc != MP_EAUTH && rc != MP_EPROTO && rc != MP_EEOF && rc != MP_ETRUNCATED &&
        rc != MP_ECONNRESET && rc != MP_EPIPE)
        abort();
    if (rc != 0 && a.err[0] == '\0')
        abort();
    close(sv[0]);
    close(sv[1]);
    return 0;
}
