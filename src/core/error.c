/* error.c — names and descriptions of MP_E* codes. */
#include <string.h>

#include "linux/sys.h"
#include "mproc/error.h"
#include "mproc/version.h"

struct code_info {
    int code;
    const char *name;
    const char *text; /* NULL: use the C library's description of -code */
};

static const struct code_info codes[] = {
    {MP_EPERM, "MP_EPERM", NULL},
    {MP_ENOENT, "MP_ENOENT", NULL},
    {MP_ESRCH, "MP_ESRCH", NULL},
    {MP_EINTR, "MP_EINTR", NULL},
    {MP_EIO, "MP_EIO", NULL},
    {MP_E2BIG, "MP_E2BIG", NULL},
    {MP_ENOEXEC, "MP_ENOEXEC", NULL},
    {MP_EBADF, "MP_EBADF", NULL},
    {MP_ECHILD, "MP_ECHILD", "not a child of the calling process"},
    {MP_EAGAIN, "MP_EAGAIN", NULL},
    {MP_ENOMEM, "MP_ENOMEM", NULL},
    {MP_EACCES, "MP_EACCES", NULL},
    {MP_EBUSY, "MP_EBUSY", NULL},
    {MP_EEXIST, "MP_EEXIST", NULL},
    {MP_ENOTDIR, "MP_ENOTDIR", NULL},
    {MP_EISDIR, "MP_EISDIR", NULL},
    {MP_EINVAL, "MP_EINVAL", NULL},
    {MP_EMFILE, "MP_EMFILE", NULL},
    {MP_ENOSPC, "MP_ENOSPC", NULL},
    {MP_EPIPE, "MP_EPIPE", NULL},
    {MP_ERANGE, "MP_ERANGE", NULL},
    {MP_ENOSYS, "MP_ENOSYS", "not implemented"},
    {MP_EOVERFLOW, "MP_EOVERFLOW", NULL},
    {MP_EMSGSIZE, "MP_EMSGSIZE", NULL},
    {MP_EPROTO, "MP_EPROTO", NULL},
    {MP_EALREADY, "MP_EALREADY", NULL},
    {MP_ECONNRESET, "MP_ECONNRESET", NULL},
    {MP_ECONNREFUSED, "MP_ECONNREFUSED", NULL},
    {MP_ETIMEDOUT, "MP_ETIMEDOUT", NULL},
    {MP_EOWNERDEAD, "MP_EOWNERDEAD", "previous owner died while holding it"},
    {MP_ENOTRECOVERABLE, "MP_ENOTRECOVERABLE", NULL},
    {MP_EADDRINUSE, "MP_EADDRINUSE", NULL},
    {MP_EADDRNOTAVAIL, "MP_EADDRNOTAVAIL", NULL},
    {MP_ENETUNREACH, "MP_ENETUNREACH", NULL},
    {MP_EHOSTUNREACH, "MP_EHOSTUNREACH", NULL},
    {MP_ENOTSTARTED, "MP_ENOTSTARTED", "not started"},
    {MP_ECLOSED, "MP_ECLOSED", "object is closed"},
    {MP_EDAEMON, "MP_EDAEMON", "daemonic processes are not allowed to have children"},
    {MP_ENOTREADY, "MP_ENOTREADY", "result not ready"},
    {MP_EFULL, "MP_EFULL", "queue is full"},
    {MP_EEMPTY, "MP_EEMPTY", "queue is empty"},
    {MP_EEOF, "MP_EEOF", "end of file: the peer closed its end"},
    {MP_ETRUNCATED, "MP_ETRUNCATED", "message truncated: the peer went away mid-message"},
    {MP_ETOOSHORT, "MP_ETOOSHORT", "buffer too short for the message"},
    {MP_EBROKEN, "MP_EBROKEN", "barrier is broken"},
    {MP_ENONZERO, "MP_ENONZERO", "command returned non-zero exit status"},
    {MP_ETASKFAILED, "MP_ETASKFAILED", "task failed"},
    {MP_EWORKERDIED, "MP_EWORKERDIED", "worker died while running the task"},
    {MP_ETERMINATED, "MP_ETERMINATED", "pool was terminated"},
    {MP_EAUTH, "MP_EAUTH", "authentication failed"},
    {MP_ESPAWN, "MP_ESPAWN", "child failed before exec"},
    {MP_ETYPE, "MP_ETYPE", "value of the wrong type"},
    {MP_EREMOTE, "MP_EREMOTE", "the remote side raised an exception"},
};

static const struct code_info *find(int code)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].code == code)
            return &codes[i];
    return NULL;
}

const char *mp_strerror(int code)
{
    if (code >= 0)
        return "success";
    const struct code_info *c = find(code);
    if (c != NULL && c->text != NULL)
        return c->text;
    if (code > MP_ELIBRARY_FIRST) {
        const char *s = mp__errno_text(-code); /* static, unlike strerror's */
        if (s != NULL)
            return s;
    }
    return "unknown error";
}

const char *mp_err_name(int code)
{
    if (code >= 0)
        return "MP_OK";
    const struct code_info *c = find(code);
    return c != NULL ? c->name : "MP_E?";
}

const char *mp_version(void)
{
    return MP_VERSION_STRING;
}

unsigned mp_version_hex(void)
{
    return MP_VERSION_HEX;
}
