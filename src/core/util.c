/* util.c — the helpers every module shares (core/util.h). */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/util.h"
#include "linux/futex.h"

uint64_t mp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mp__deadline_from_now(mp__deadline *d, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    d->at.tv_sec += timeout_ms / 1000;
    d->at.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (d->at.tv_nsec >= 1000000000L) {
        d->at.tv_sec++;
        d->at.tv_nsec -= 1000000000L;
    }
}

int mp__futex_wait_slice(_Atomic uint32_t *w, uint32_t expected, const mp__deadline *d,
                         unsigned slice_ms)
{
    mp__deadline s;
    mp__deadline_init(&s, (int)slice_ms);
    if (!d->forever && mp__timespec_before(&d->at, &s.at))
        s = *d;
    for (;;) {
        int rc = mp__futex_wait(w, expected, &s);
        if (rc == MP_EINTR)
            continue;
        return rc == MP_ETIMEDOUT ? MP_ETIMEDOUT : 0;
    }
}

void mp__iov_advance(struct iovec **iov, int *n, size_t written)
{
    while (*n > 0 && written >= (*iov)->iov_len) {
        written -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + written;
        (*iov)->iov_len -= written;
    }
}

char **mp__strv_copy(const char *const *v, size_t extra_front)
{
    size_t n = 0, bytes = 0;
    for (; v[n] != NULL; n++)
        bytes += strlen(v[n]) + 1;
    char **out = malloc((n + 1 + extra_front) * sizeof *out + bytes);
    if (out == NULL)
        return NULL;
    char *s = (char *)(out + n + 1 + extra_front);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        out[extra_front + i] = memcpy(s, v[i], len);
        s += len;
    }
    out[extra_front + n] = NULL;
    for (size_t i = 0; i < extra_front; i++)
        out[i] = NULL;
    return out;
}

bool mp__deadline_left(const mp__deadline *d, struct timespec *left)
{
    if (d->forever)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left->tv_sec = d->at.tv_sec - now.tv_sec;
    left->tv_nsec = d->at.tv_nsec - now.tv_nsec;
    if (left->tv_nsec < 0) {
        left->tv_sec--;
        left->tv_nsec += 1000000000L;
    }
    if (left->tv_sec < 0)
        left->tv_sec = left->tv_nsec = 0;
    return true;
}

bool mp__deadline_passed(const mp__deadline *d)
{
    struct timespec left;
    return mp__deadline_left(d, &left) && left.tv_sec == 0 && left.tv_nsec == 0;
}

int mp__deadline_poll_ms(const mp__deadline *d)
{
    struct timespec left;
    if (!mp__deadline_left(d, &left))
        return -1;
    int64_t ms = (int64_t)left.tv_sec * 1000 + (left.tv_nsec + 999999) / 1000000;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

bool mp__reap_nohang(pid_t pid, int *code)
{
    return mp__reap_nohang_lost(pid, code, 255);
}

bool mp__reap_nohang_lost(pid_t pid, int *code, int lost_code)
{
    int status;
    pid_t r;
    do
        r = waitpid(pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    *code = r != pid ? lost_code : WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    return true;
}

void mp__close_fd(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    close(fd);
    errno = saved;
}

int mp__poll_one(int fd, short events, const mp__deadline *d, short *revents)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&pfd, 1, mp__deadline_poll_ms(d));
        if (n > 0) {
            if (revents != NULL)
                *revents = pfd.revents;
            return 1;
        }
        if (n == 0)
            return MP_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}
