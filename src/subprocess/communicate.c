/* communicate.c — mp_popen_communicate: feeding stdin and draining stdout and
 * stderr at once with poll(), so no pipe can fill up while we wait on another.
 *
 * Our end of the stdin pipe is made non-blocking (only we hold that open file
 * description), so a write never waits for the child and big chunks can be
 * written. SIGPIPE is blocked in the calling thread for the duration, and one that
 * our own write raised is consumed before the mask is restored, so a child that
 * exits without reading its input never kills the caller.
 *
 * A timeout leaves the state in the handle: bytes of input already written
 * (in_off) and output read so far (out, err). The next call continues from there.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subprocess/subprocess.h"

#define WRITE_CHUNK (1 << 20)
#define READ_MIN (64 * 1024)
#define PIPE_SIZE (1 << 20)

/* Reads what is there into b; 0: end-of-file, 1: more may come, or an error. */
static int read_into(int fd, mp__buf *b)
{
    if (b->cap - b->len < READ_MIN + 1) {
        size_t cap = b->cap ? b->cap * 2 : 2 * READ_MIN;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return MP_ENOMEM;
        b->data = d;
        b->cap = cap;
        b->data[b->len] = '\0';
    }
    for (;;) {
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
        if (n > 0) {
            b->len += (size_t)n;
            b->data[b->len] = '\0';
            return 1;
        }
        if (n == 0)
            return 0;
        if (errno == EAGAIN)
            return 1;
        if (errno != EINTR)
            return -errno;
    }
}

static void close_ref(int *fd)
{
    mp__close_fd(*fd);
    *fd = -1;
}

int mp__popen_pump(mp_popen *p, const void *input, size_t input_len, const mp__deadline *d)
{
    if (!p->comm_started) {
        p->comm_started = true;
        p->in_len = input_len;
        if (p->fd_in >= 0 && input_len == 0)
            close_ref(&p->fd_in);
        if (p->fd_in >= 0) {
            fcntl(p->fd_in, F_SETFL, fcntl(p->fd_in, F_GETFL) | O_NONBLOCK);
            if (input_len > 64 * 1024)
                fcntl(p->fd_in, F_SETPIPE_SZ, PIPE_SIZE); /* a hint; may be refused */
        }
        if (p->fd_out >= 0)
            fcntl(p->fd_out, F_SETPIPE_SZ, PIPE_SIZE);
    }
    if (p->fd_in < 0 && p->fd_out < 0 && p->fd_err < 0)
        return 0;

    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    bool sigpipe_blocked = p->fd_in >= 0;
    if (sigpipe_blocked)
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    int rc = 0;
    while (rc == 0 && (p->fd_in >= 0 || p->fd_out >= 0 || p->fd_err >= 0)) {
        struct pollfd pfd[3];
        int n = 0, i_in = -1, i_out = -1, i_err = -1;
        if (p->fd_in >= 0) {
            i_in = n;
            pfd[n++] = (struct pollfd){.fd = p->fd_in, .events = POLLOUT};
        }
        if (p->fd_out >= 0) {
            i_out = n;
            pfd[n++] = (struct pollfd){.fd = p->fd_out, .events = POLLIN};
        }
        if (p->fd_err >= 0) {
            i_err = n;
            pfd[n++] = (struct pollfd){.fd = p->fd_err, .events = POLLIN};
        }
        int ready = poll(pfd, (nfds_t)n, mp__deadline_poll_ms(d));
        if (ready < 0) {
            if (errno != EINTR)
                rc = -errno;
            continue;
        }
        if (ready == 0) {
            rc = MP_ETIMEDOUT;
            break;
        }
        if (i_in >= 0 && pfd[i_in].revents) {
            size_t left = input_len - p->in_off;
            ssize_t w = write(p->fd_in, (const char *)input + p->in_off,
                              left < WRITE_CHUNK ? left : WRITE_CHUNK);
            if (w > 0)
                p->in_off += (size_t)w;
            /* EPIPE: the child closed its stdin or exited; not an error. */
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || p->in_off == input_len)
                close_ref(&p->fd_in);
        }
        if (i_out >= 0 && pfd[i_out].revents) {
            int r = read_into(p->fd_out, &p->out);
            if (r <= 0)
                close_ref(&p->fd_out);
            if (r < 0)
                rc = r;
        }
        if (i_err >= 0 && pfd[i_err].revents) {
            int r = read_into(p->fd_err, &p->err);
            if (r <= 0)
                close_ref(&p->fd_err);
            if (r < 0)
                rc = r;
        }
    }

    if (sigpipe_blocked) {
        sigpending(&pending);
        if (!was_pending && sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    return rc;
}

/* Hands the buffer over to the caller (an empty string for a pipe that gave
 * nothing, NULL for a stream that is not a pipe). */
static int take(mp__buf *b, bool piped, char **out, size_t *len)
{
    if (out == NULL) {
        if (len != NULL)
            *len = b->len;
        return 0;
    }
    if (piped && b->data == NULL) {
        b->data = calloc(1, 1);
        if (b->data == NULL)
            return MP_ENOMEM;
    }
    *out = b->data;
    if (len != NULL)
        *len = b->len;
    *b = (mp__buf){0};
    return 0;
}

int mp_popen_communicate(mp_popen *p, const void *input, size_t input_len, int timeout_ms,
                         char **out, size_t *out_len, char **err, size_t *err_len)
{
    if (out != NULL)
        *out = NULL;
    if (err != NULL)
        *err = NULL;
    if (p == NULL || p->failed || (input == NULL && input_len > 0))
        return MP_EINVAL;
    if (!mp__id_is_self(p->owner))
        return MP_ECHILD;
    /* After a communicate that returned everything, the pipes are closed and the
     * output was handed over: Python's "read of closed file" (a command without
     * pipes is only waited for again, as in Python). */
    if (p->comm_done && (p->out_piped || p->err_piped))
        return mp__popen_note(p, MP_ECLOSED, "read of closed file");
    if (p->comm_done && input_len > 0 && p->in_piped)
        return mp__popen_note(p, MP_ECLOSED, "write to closed file");
    if (!p->comm_started && input_len > 0 && p->fd_in < 0)
        return mp__popen_note(p, MP_EINVAL, "input given, but stdin is not a pipe");
    /* A resumed call passes the input of the first (or none once stdin is closed):
     * other input would be dropped or cut short without a word. */
    if (p->comm_started && input_len != p->in_len && (input_len > 0 || p->fd_in >= 0))
        return mp__popen_note(p, MP_EINVAL, "Cannot send input after starting communication");
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return mp__popen_note(p, rc, "timeout below -1");
    if ((rc = mp__popen_pump(p, input, input_len, &d)) != 0)
        return rc;
    if ((rc = mp__popen_wait_deadline(p, &d)) != 0)
        return rc;
    if ((rc = take(&p->out, p->out_piped, out, out_len)) != 0)
        return rc;
    if ((rc = take(&p->err, p->err_piped, err, err_len)) != 0) {
        if (out != NULL) {
            free(*out);
            *out = NULL;
        }
        return rc;
    }
    p->comm_done = true;
    return 0;
}
