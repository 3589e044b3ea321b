/* A program linked statically against an installed mproc, using the listener and
 * the authkey handshake, whose HMACs are the library's own (no libcrypto). */
#include <mproc.h>
#include <stdio.h>

int main(void)
{
    mp_listener *l;
    mp_listener_options opt = {.authkey = "key", .authkey_len = 3};
    if (mp_listener_new(&l, "127.0.0.1:0", &opt) != 0)
        return 1;
    mp_conn *c = NULL;
    int rc = mp_listener_accept(l, &c, 0); /* nobody connects: a timeout */
    printf("static mproc listener at %s: accept says %s\n", mp_listener_address(l),
           mp_err_name(rc));
    mp_listener_destroy(l);
    return rc == MP_ETIMEDOUT ? 0 : 1;
}
