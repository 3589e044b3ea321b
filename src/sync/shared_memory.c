/* shared_memory.c — mp_shared_memory: named POSIX shared memory segments.
 *
 * A segment is shm_open + ftruncate (when creating) + mmap(MAP_SHARED); the
 * descriptor is closed as soon as the mapping exists (the mapping keeps the
 * memory), so a handle holds no descriptor.
 *
 * Cleanup at exit: every segment created here and not yet unlinked is on the
 * list `created` (private memory, guarded by created_lock), with the id of the
 * process that created it (pid and start time: a process that is given the pid
 * of a creator that died, forked from one of its children, is not the
 * creator). An atexit handler, installed with the first creation, unlinks the
 * entries whose creator is the exiting process; a child forked later inherits
 * the list and the handler but skips entries it did not create, so a child that
 * exits never removes its parent's segments. Fork handlers (installed with the
 * atexit handler, before the lock is first taken) hold created_lock across every
 * fork(), so the child's copy of the list is whole and its lock free.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fork.h"
#include "core/util.h"
#include "mproc/shared.h"
#include "sync/sync.h"

#define NAME_MAX_LEN 250
#define RANDOM_TRIES 64

struct mp_shared_memory {
    char path[NAME_MAX_LEN + 2]; /* "/name" */
    void *buf;                   /* NULL once closed */
    size_t size;
};

struct created {
    struct created *next;
    uint64_t creator; /* mp__self_id: pid and start time, as a pid is reused */
    char path[NAME_MAX_LEN + 2];
};

static pthread_mutex_t created_lock = PTHREAD_MUTEX_INITIALIZER;
static struct created *created; /* under created_lock */
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static void unlink_created_at_exit(void)
{
    uint64_t self = mp__self_id();
    pthread_mutex_lock(&created_lock);
    struct created **link = &created;
    while (*link != NULL) {
        struct created *c = *link;
        if (c->creator == self) {
            shm_unlink(c->path);
            *link = c->next;
            free(c);
        } else {
            link = &c->next;
        }
    }
    pthread_mutex_unlock(&created_lock);
}

/* fork() holds created_lock across the fork: a child forked while another
 * thread held it would otherwise hang in its exit handler. */
static void install_atexit(void)
{
    static const struct mp__fork_handlers h = {.mutex = &created_lock};
    mp__fork_register(MP__FORK_SHARED_MEMORY, &h);
    atexit(unlink_created_at_exit);
}

static int remember_created(const char *path)
{
    struct created *c = malloc(sizeof *c);
    if (c == NULL)
        return MP_ENOMEM;
    c->creator = mp__self_id();
    snprintf(c->path, sizeof c->path, "%s", path);
    pthread_once(&atexit_once, install_atexit);
    pthread_mutex_lock(&created_lock);
    c->next = created;
    created = c;
    pthread_mutex_unlock(&created_lock);
    return 0;
}

static void forget_created(const char *path)
{
    uint64_t self = mp__self_id();
    pthread_mutex_lock(&created_lock);
    for (struct created **link = &created; *link != NULL; link = &(*link)->next) {
        struct created *c = *link;
        if (c->creator == self && strcmp(c->path, path) == 0) {
            *link = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&created_lock);
}

/* "/name" from name with or without its leading slash. */
static int make_path(char *path, const char *name)
{
    if (name[0] == '/')
        name++;
    size_t len = strlen(name);
    if (len == 0 || len > NAME_MAX_LEN || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) /* /dev/shm itself, or its parent */
        return MP_EINVAL;
    path[0] = '/';
    memcpy(path + 1, name, len + 1);
    return 0;
}

static int random_path(char *path)
{
    unsigned char bytes[4];
    ssize_t n;
    while ((n = getrandom(bytes, sizeof bytes, 0)) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof bytes)
        return n < 0 ? -errno : MP_EIO;
    snprintf(path, NAME_MAX_LEN + 2, "/psm_%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2],
             bytes[3]);
    return 0;
}

/* Maps fd's first size bytes; 0 or -errno. */
static int map_fd(int fd, size_t size, void **buf)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *buf = p;
    return 0;
}

static int create_segment(mp_shared_memory *shm, const char *name, size_t size)
{
    int fd = -1, rc;
    if (size > (size_t)PTRDIFF_MAX) /* more than any mapping (and past off_t) */
        return MP_ENOMEM;
    for (int tries = 0;; tries++) {
        rc = name != NULL ? make_path(shm->path, name) : random_path(shm->path);
        if (rc != 0)
            return rc;
        fd = shm_open(shm->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            break;
        if (errno != EEXIST || name != NULL || tries == RANDOM_TRIES)
            return -errno;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        rc = -errno;
        goto out_unlink;
    }
    rc = map_fd(fd, size, &shm->buf);
    if (rc != 0)
        goto out_unlink;
    shm->size = size;
    mp__close_fd(fd);
    return 0;

out_unlink:
    shm_unlink(shm->path);
    mp__close_fd(fd);
    return rc;
}

static int attach_segment(mp_shared_memory *shm, const char *name)
{
    int rc = make_path(shm->path, name);
    if (rc != 0)
        return rc;
    int fd = shm_open(shm->path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (st.st_size <= 0)
        rc = MP_EINVAL;
    else if ((rc = map_fd(fd, (size_t)st.st_size, &shm->buf)) == 0)
        shm->size = (size_t)st.st_size;
    mp__close_fd(fd);
    return rc;
}

int mp_shared_memory_new(mp_shared_memory **out, const char *name,
                         const mp_shared_memory_options *opt)
{
    bool create = opt != NULL && opt->create;
    if (out == NULL || (create && opt->size == 0) || (!create && name == NULL))
        return MP_EINVAL;
    mp_shared_memory *shm = calloc(1, sizeof *shm);
    if (shm == NULL)
        return MP_ENOMEM;
    int rc = create ? create_segment(shm, name, opt->size) : attach_segment(shm, name);
    if (rc == 0 && create && !opt->keep) {
        rc = remember_created(shm->path);
        if (rc != 0) {
            munmap(shm->buf, shm->size);
            shm_unlink(shm->path);
        }
    }
    if (rc != 0) {
        free(shm);
        return rc;
    }
    *out = shm;
    return 0;
}

const char *mp_shared_memory_name(const mp_shared_memory *shm)
{
    return shm != NULL ? shm->path + 1 : NULL;
}
size_t mp_shared_memory_size(const mp_shared_memory *shm)
{
    return shm != NULL ? shm->size : 0;
}
void *mp_shared_memory_buf(mp_shared_memory *shm)
{
    return shm != NULL ? shm->buf : NULL;
}

int mp_shared_memory_close(mp_shared_memory *shm)
{
    if (shm == NULL)
        return MP_EINVAL;
    if (shm->buf != NULL) {
        munmap(shm->buf, shm->size);
        shm->buf = NULL;
    }
    return 0;
}

int mp_shared_memory_unlink(mp_shared_memory *shm)
{
    if (shm == NULL)
        return MP_EINVAL;
    forget_created(shm->path);
    return shm_unlink(shm->path) == 0 ? 0 : -errno;
}

void mp_shared_memory_destroy(mp_shared_memory *shm)
{
    if (shm == NULL)
        return;
    mp_shared_memory_close(shm);
    free(shm);
}
