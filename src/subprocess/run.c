/* run.c — the convenience functions run, call, check_call and check_output, made
 * of mp_popen as CPython makes them of Popen. On any failure after the start,
 * the child is killed and reaped before returning, so none is left behind. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "subprocess/subprocess.h"

/* Kills and reaps a child we give up on. */
static void kill_and_reap(mp_popen *p)
{
    mp_popen_kill(p);
    mp_popen_wait(p, -1, NULL);
}

static void take_buf(mp__buf *b, bool piped, char **data, size_t *len)
{
    if (!piped)
        return;
    if (b->data == NULL)
        b->data = calloc(1, 1); /* NULL only when out of memory */
    *data = b->data;
    *len = b->len;
    *b = (mp__buf){0};
}

/* MP_EINVAL for a misuse, with Python's ValueError text as the message. */
static int refuse(mp_completed_process *r, const char *why)
{
    r->message = strdup(why);
    return MP_EINVAL;
}

int mp_run(mp_completed_process *r, const char *const *argv, const mp_run_options *opt)
{
    static const mp_run_options defaults;
    if (r == NULL)
        return MP_EINVAL;
    *r = (mp_completed_process){.returncode = -1};
    const mp_run_options *o = opt != NULL ? opt : &defaults;
    /* An options field (mproc/timeout.h): 0 and -1 none, MP_TIMEOUT_NOW zero. */
    int timeout_ms = o->timeout_ms == MP_TIMEOUT_NOW ? 0 : o->timeout_ms > 0 ? o->timeout_ms : -1;
    if (argv == NULL || argv[0] == NULL ||
        (o->timeout_ms < -1 && o->timeout_ms != MP_TIMEOUT_NOW) ||
        (o->input == NULL && o->input_len > 0))
        return MP_EINVAL;
    mp_popen_options po = o->popen;
    if (o->input != NULL) {
        if (po.stdin_mode != MP_INHERIT)
            return refuse(r, "stdin and input arguments may not both be used.");
        po.stdin_mode = MP_PIPE;
    }
    if (o->capture_output) {
        if (po.stdout_mode != MP_INHERIT || po.stderr_mode != MP_INHERIT)
            return refuse(r, "stdout and stderr arguments may not be used with capture_output.");
        po.stdout_mode = po.stderr_mode = MP_PIPE;
    }
    if ((r->args = mp__strv_copy(argv, 0)) == NULL)
        return MP_ENOMEM;

    mp_popen *p;
    int rc = mp_popen_new(&p, argv, &po);
    if (rc != 0) {
        if (p != NULL)
            r->message = strdup(mp_popen_message(p));
        mp_popen_destroy(p);
        return rc;
    }
    mp__deadline d;
    mp__deadline_init(&d, timeout_ms);
    rc = mp__popen_pump(p, o->input, o->input_len, &d);
    if (rc == 0)
        rc = mp__popen_wait_deadline(p, &d);
    if (rc != 0)
        kill_and_reap(p); /* the output read so far is kept */
    take_buf(&p->out, p->out_piped, &r->stdout_data, &r->stdout_len);
    take_buf(&p->err, p->err_piped, &r->stderr_data, &r->stderr_len);
    r->returncode = p->returncode;
    mp_popen_destroy(p);
    if (rc == 0 && o->check && r->returncode != 0)
        rc = MP_ENONZERO;
    if (rc == MP_ENONZERO)
        r->message = mp__called_process_error_text(r->args, o->popen.shell, r->returncode);
    else if (rc == MP_ETIMEDOUT)
        r->message = mp__timeout_expired_text(r->args, o->popen.shell, timeout_ms);
    return rc;
}

void mp_completed_process_free(mp_completed_process *r)
{
    if (r == NULL)
        return;
    free(r->args);
    free(r->stdout_data);
    free(r->stderr_data);
    free(r->message);
    *r = (mp_completed_process){.returncode = -1};
}

int mp_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms, int *returncode)
{
    if (timeout_ms < -1)
        return MP_EINVAL;
    mp_popen *p;
    int rc = mp_popen_new(&p, argv, opt);
    if (rc != 0) {
        mp_popen_destroy(p);
        return rc;
    }
    int code = 0;
    rc = mp_popen_wait(p, timeout_ms, &code);
    if (rc != 0) {
        kill_and_reap(p);
        code = p->returncode;
    }
    if (returncode != NULL)
        *returncode = code;
    mp_popen_destroy(p);
    return rc;
}

int mp_check_call(const char *const *argv, const mp_popen_options *opt, int timeout_ms,
                  int *returncode)
{
    int code = 0;
    int rc = mp_call(argv, opt, timeout_ms, &code);
    if (returncode != NULL)
        *returncode = code;
    if (rc == 0 && code != 0)
        rc = MP_ENONZERO;
    return rc;
}

int mp_check_output(const char *const *argv, const mp_run_options *opt, char **out, size_t *out_len,
                    int *returncode)
{
    static const mp_run_options defaults;
    if (returncode != NULL)
        *returncode = -1;
    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    mp_run_options o = opt != NULL ? *opt : defaults;
    if (o.popen.stdout_mode != MP_INHERIT)
        return MP_EINVAL;
    o.popen.stdout_mode = MP_PIPE;
    o.check = true;
    mp_completed_process r;
    int rc = mp_run(&r, argv, &o);
    *out = r.stdout_data;
    if (out_len != NULL)
        *out_len = r.stdout_len;
    if (returncode != NULL)
        *returncode = r.returncode;
    r.stdout_data = NULL;
    mp_completed_process_free(&r);
    return rc;
}
