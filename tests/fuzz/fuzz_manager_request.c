/* fuzz_manager_request.c — libFuzzer target for the manager server's request
 * decoding: whatever an authenticated peer sends as one frame, decoding must give
 * a well-formed request (ident NULL or a str, a str method, a tuple of args, a dict
 * of str keywords) or MP_EPROTO with a message, never a crash, an overread, a leak
 * or a hang; and the traceback reply the server makes of the message must encode.
 * Reply decoding (the client's side) gets the same bytes. Built and run by
 * `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manager/mgr.h"
#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp__mgr_request req;
    mp_obj_error err;
    int rc = mp__mgr_request_decode(data, size, &req, &err);
    if (rc == 0) {
        if (req.method == NULL || !mp_obj_is_tuple(req.args) || !mp_obj_is_dict(req.kwds))
            abort();
        void *buf;
        size_t len;
        if (mp__mgr_request_encode(req.ident, req.method, req.args, req.kwds, &buf, &len) == 0)
            free(buf);
        mp__mgr_request_free(&req);
    } else if (rc == MP_EPROTO) {
        if (memchr(err.text, '\0', sizeof err.text) == NULL)
            abort();
        char *tb = mp__mgr_traceback_text("serve_client", err.text);
        mp_obj *t = tb ? mp_str_c(tb) : NULL;
        void *buf;
        size_t len;
        if (t != NULL && mp__mgr_reply_encode("#TRACEBACK", t, &buf, &len) == 0)
            free(buf);
        mp_obj_unref(t);
        free(tb);
    } else if (rc != MP_ENOMEM) {
        abort();
    }
    int kind;
    mp_obj *result = NULL;
    rc = mp__mgr_reply_decode(data, size, &kind, &result);
    if (rc == 0 && result == NULL)
        abort();
    mp_obj_unref(result);
    return 0;
}
