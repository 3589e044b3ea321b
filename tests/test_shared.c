/* Value, Array and SharedMemory: typecodes, locks, atomics, sharing across
 * processes, named segments and their lifetime. */
// TEST_TIMEOUT 120
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arena.h"
#include "harness.h"

/* ---- Value --------------------------------------------------------------- */

TEST(value_typecodes_have_c_sizes_and_start_at_zero)
{
    struct {
        char tc;
        size_t size;
    } codes[] = {
        {'c', sizeof(char)},
        {'b', sizeof(signed char)},
        {'B', sizeof(unsigned char)},
        {'h', sizeof(short)},
        {'H', sizeof(unsigned short)},
        {'i', sizeof(int)},
        {'I', sizeof(unsigned)},
        {'l', sizeof(long)},
        {'L', sizeof(unsigned long)},
        {'q', sizeof(long long)},
        {'Q', sizeof(unsigned long long)},
        {'f', sizeof(float)},
        {'d', sizeof(double)},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        mp_value *v;
        CHECK_OK(mp_value_new(&v, codes[i].tc, NULL, NULL));
        CHECK_EQ(codes[i].tc, mp_value_typecode(v));
        CHECK_EQ(codes[i].size, mp_value_size(v));
        CHECK_EQ(0, (uintptr_t)mp_value_ptr(v) % 16);
        for (size_t j = 0; j < codes[i].size; j++)
            CHECK(((unsigned char *)mp_value_ptr(v))[j] == 0);
        CHECK(mp_value_get_lock(v) != NULL); /* lock=True by default */
        mp_value_destroy(v);
    }
}

TEST(value_rejects_bad_arguments)
{
    mp_value *v;
    CHECK_RC(MP_EINVAL, mp_value_new(&v, 'x', NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_value_new(&v, 0, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_value_new(NULL, 'i', NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_value_new_sized(&v, 0, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_value_new_sized(&v, ((size_t)1 << 20) + 1, NULL, NULL));
    CHECK_OK(mp_value_new(&v, 'i', NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_value_get(v, NULL));
    CHECK_RC(MP_EINVAL, mp_value_set(v, NULL));
    CHECK_RC(MP_EINVAL, mp_value_get(NULL, &v));
    CHECK_RC(MP_EINVAL, mp_value_load(v, NULL));
    CHECK(mp_value_ptr(NULL) == NULL);
    CHECK(mp_value_get_lock(NULL) == NULL);
    mp_value_destroy(v);
    mp_value_destroy(NULL);
}

TEST(value_initial_value_and_get_set)
{
    mp_value *v;
    double init = 2.5, out = 0;
    CHECK_OK(mp_value_new(&v, 'd', &init, NULL));
    CHECK_OK(mp_value_get(v, &out));
    CHECK(out == 2.5);
    double next = -1.25;
    CHECK_OK(mp_value_set(v, &next));
    CHECK(*(double *)mp_value_ptr(v) == -1.25);
    CHECK_RC(MP_EINVAL, mp_value_add(v, 1, NULL)); /* no atomics on floats */
    CHECK_RC(MP_EINVAL, mp_value_store(v, 1));
    int64_t e = 0;
    CHECK_RC(MP_EINVAL, mp_value_compare_exchange(v, &e, 1));
    mp_value_destroy(v);
}

TEST(value_without_lock_has_none)
{
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'i', NULL, &(mp_value_options){.no_lock = true}));
    CHECK(mp_value_get_lock(v) == NULL);
    int x = 7, y = 0;
    CHECK_OK(mp_value_set(v, &x));
    CHECK_OK(mp_value_get(v, &y));
    CHECK_EQ(7, y);
    mp_value_destroy(v);
}

TEST(value_default_lock_lives_and_dies_with_the_value)
{
    size_t before = mp__shm_bytes_in_use();
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'i', NULL, NULL));
    mp_rlock *r = mp_value_get_lock(v);
    mp_rlock_destroy(r); /* not the lock's to free: a no-op */
    CHECK_OK(mp_rlock_acquire(r, 0));
    CHECK_OK(mp_rlock_acquire(r, 0));
    CHECK_EQ(2, mp_rlock_count(r));
    CHECK_OK(mp_rlock_release(r));
    CHECK_OK(mp_rlock_release(r));
    mp_value_destroy(v);
    CHECK_EQ(before, mp__shm_bytes_in_use());
}

TEST(value_uses_a_given_lock_and_leaves_it_alive)
{
    mp_rlock *r;
    CHECK_OK(mp_rlock_new(&r, NULL));
    mp_value *a, *b;
    CHECK_OK(mp_value_new(&a, 'i', NULL, &(mp_value_options){.lock = r}));
    CHECK_OK(mp_value_new(&b, 'q', NULL, &(mp_value_options){.lock = r}));
    CHECK(mp_value_get_lock(a) == r && mp_value_get_lock(b) == r);
    mp_value_destroy(a);
    CHECK_OK(mp_rlock_acquire(r, 0)); /* still usable */
    long long x = 1;
    CHECK_OK(mp_value_set(b, &x)); /* recursive: fine while we hold it */
    CHECK_OK(mp_rlock_release(r));
    mp_value_destroy(b);
    mp_rlock_destroy(r);
}

static int locked_increments(void *arg)
{
    mp_value *v = arg;
    for (int i = 0; i < 20000; i++) {
        int rc = mp_rlock_acquire(mp_value_get_lock(v), -1);
        CHECK_OK(rc);
        (*(int *)mp_value_ptr(v))++;
        CHECK_OK(mp_rlock_release(mp_value_get_lock(v)));
    }
    return 0;
}

TEST(value_locked_increments_from_processes_are_exact)
{
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'i', NULL, NULL));
    int pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = th_fork(locked_increments, v);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    CHECK_EQ(80000, *(int *)mp_value_ptr(v));
    mp_value_destroy(v);
}

static int atomic_increments(void *arg)
{
    for (int i = 0; i < 50000; i++)
        CHECK_OK(mp_value_add(arg, 1, NULL));
    return 0;
}

TEST(value_atomic_add_from_processes_is_exact_without_a_lock)
{
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'Q', NULL, &(mp_value_options){.no_lock = true}));
    int pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = th_fork(atomic_increments, v);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    int64_t n;
    CHECK_OK(mp_value_load(v, &n));
    CHECK_EQ(200000, n);
    mp_value_destroy(v);
}

TEST(value_atomics_wrap_and_extend_by_typecode)
{
    mp_value *b, *B, *h;
    CHECK_OK(mp_value_new(&b, 'b', &(signed char){127}, NULL));
    CHECK_OK(mp_value_new(&B, 'B', &(unsigned char){255}, NULL));
    CHECK_OK(mp_value_new(&h, 'h', NULL, NULL));
    int64_t old, now;
    CHECK_OK(mp_value_add(b, 1, &old));
    CHECK_EQ(127, old);
    CHECK_OK(mp_value_load(b, &now));
    CHECK_EQ(-128, now);
    CHECK_OK(mp_value_add(B, 1, &old));
    CHECK_EQ(255, old);
    CHECK_OK(mp_value_load(B, &now));
    CHECK_EQ(0, now);
    CHECK_OK(mp_value_add(h, -3, &old));
    CHECK_EQ(0, old);
    CHECK_OK(mp_value_load(h, &now));
    CHECK_EQ(-3, now);
    CHECK_OK(mp_value_store(h, 70000)); /* truncated to 16 bits */
    CHECK_OK(mp_value_load(h, &now));
    CHECK_EQ((short)70000, now);
    mp_value_destroy(b);
    mp_value_destroy(B);
    mp_value_destroy(h);
}

TEST(value_compare_exchange_swaps_only_on_match)
{
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'l', &(long){10}, NULL));
    int64_t expected = 9;
    CHECK_RC(MP_EAGAIN, mp_value_compare_exchange(v, &expected, 20));
    CHECK_EQ(10, expected);
    CHECK_OK(mp_value_compare_exchange(v, &expected, 20));
    CHECK_EQ(20, *(long *)mp_value_ptr(v));
    mp_value_destroy(v);
}

struct point {
    double x, y;
    int tag;
};

static int move_point(void *arg)
{
    struct point p;
    CHECK_OK(mp_value_get(arg, &p));
    p.x += 1;
    p.tag = 99;
    CHECK_OK(mp_value_set(arg, &p));
    return 0;
}

TEST(value_of_any_size_is_shared_with_children)
{
    mp_value *v;
    struct point p = {1.5, 2.5, 1};
    CHECK_OK(mp_value_new_sized(&v, sizeof p, &p, NULL));
    CHECK_EQ(0, mp_value_typecode(v));
    CHECK_EQ(sizeof p, mp_value_size(v));
    CHECK_RC(MP_EINVAL, mp_value_add(v, 1, NULL));
    CHECK_EQ(0, th_wait(th_fork(move_point, v)));
    CHECK_OK(mp_value_get(v, &p));
    CHECK(p.x == 2.5 && p.y == 2.5 && p.tag == 99);
    mp_value_destroy(v);
}

static int hold_value_lock_forever(void *arg)
{
    CHECK_OK(mp_rlock_acquire(mp_value_get_lock(arg), -1));
    *(int *)mp_value_ptr(arg) = 5;
    kill(getpid(), SIGKILL);
    return 1;
}

TEST(value_get_after_lock_holder_died_says_eownerdead)
{
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'i', NULL, NULL));
    CHECK_EQ(-SIGKILL, th_wait(th_fork(hold_value_lock_forever, v)));
    int x = 0;
    CHECK_RC(MP_EOWNERDEAD, mp_value_get(v, &x));
    CHECK_EQ(5, x);
    CHECK_OK(mp_value_get(v, &x)); /* the lock is healthy again */
    mp_value_destroy(v);
}

TEST(value_destroy_frees_in_creator_only)
{
    size_t before = mp__shm_bytes_in_use();
    mp_value *v;
    CHECK_OK(mp_value_new(&v, 'i', NULL, NULL));
    size_t with = mp__shm_bytes_in_use();
    CHECK(with > before);
    int pid = fork();
    if (pid == 0) {
        mp_value_destroy(v);
        _exit(mp__shm_bytes_in_use() == with ? 0 : 1);
    }
    CHECK_EQ(0, th_wait(pid));
    mp_value_destroy(v);
    CHECK_EQ(before, mp__shm_bytes_in_use());
}

/* ---- Array --------------------------------------------------------------- */

TEST(array_is_zero_filled_or_initialized)
{
    mp_array *a;
    CHECK_OK(mp_array_new(&a, 'i', 1000, NULL, NULL));
    CHECK_EQ(1000, mp_array_len(a));
    CHECK_EQ(sizeof(int), mp_array_item_size(a));
    CHECK_EQ('i', mp_array_typecode(a));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(0, ((int *)mp_array_ptr(a))[i]);
    mp_array_destroy(a);
    double init[3] = {1, 2, 3};
    CHECK_OK(mp_array_new(&a, 'd', 3, init, &(mp_value_options){.no_lock = true}));
    CHECK(mp_array_get_lock(a) == NULL);
    double out[3];
    CHECK_OK(mp_array_read(a, 0, 3, out));
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == 3);
    mp_array_destroy(a);
}

TEST(array_read_write_check_their_range)
{
    mp_array *a;
    CHECK_OK(mp_array_new(&a, 'h', 4, NULL, NULL));
    short in[2] = {7, 8}, out[4] = {0};
    CHECK_OK(mp_array_write(a, 2, 2, in));
    CHECK_RC(MP_ERANGE, mp_array_write(a, 3, 2, in));
    CHECK_RC(MP_ERANGE, mp_array_read(a, 5, 0, out));
    CHECK_RC(MP_ERANGE, mp_array_read(a, SIZE_MAX, 2, out));
    CHECK_RC(MP_EINVAL, mp_array_read(a, 0, 1, NULL));
    CHECK_OK(mp_array_read(a, 4, 0, NULL)); /* empty slice at the end */
    CHECK_OK(mp_array_read(a, 0, 4, out));
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 7 && out[3] == 8);
    CHECK_RC(MP_EINVAL, mp_array_new(&a, 'i', 0, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_array_new(&a, 'z', 3, NULL, NULL));
    CHECK_RC(MP_ENOMEM, mp_array_new(&a, 'q', SIZE_MAX / 4, NULL, NULL));
    mp_array_destroy(a);
    mp_array_destroy(NULL);
}

static int fill_array(void *arg)
{
    mp_array *a = arg;
    for (size_t i = 0; i < mp_array_len(a); i++) {
        CHECK_OK(mp_rlock_acquire(mp_array_get_lock(a), -1));
        ((long *)mp_array_ptr(a))[i] += (long)i;
        CHECK_OK(mp_rlock_release(mp_array_get_lock(a)));
    }
    return 0;
}

TEST(array_is_shared_with_children)
{
    mp_array *a;
    CHECK_OK(mp_array_new_sized(&a, sizeof(long), 100000, NULL, NULL)); /* a large block */
    int pids[2];
    for (int i = 0; i < 2; i++)
        pids[i] = th_fork(fill_array, a);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(0, th_wait(pids[i]));
    for (long i = 0; i < 100000; i++)
        CHECK_EQ(2 * i, ((long *)mp_array_ptr(a))[i]);
    mp_array_destroy(a);
}

/* ---- SharedMemory -------------------------------------------------------- */

static void test_name(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "mptest-%d-%s", (int)getpid(), tag);
}

static bool shm_exists(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

TEST(shm_create_and_attach_share_bytes)
{
    char name[64];
    test_name(name, sizeof name, "a");
    mp_shared_memory *c, *a;
    CHECK_OK(
        mp_shared_memory_new(&c, name, &(mp_shared_memory_options){.create = true, .size = 10000}));
    CHECK_STR(name, mp_shared_memory_name(c));
    CHECK_EQ(10000, mp_shared_memory_size(c));
    unsigned char *buf = mp_shared_memory_buf(c);
    for (int i = 0; i < 10000; i++)
        CHECK(buf[i] == 0);
    memcpy(buf, "hello", 6);
    char slashed[80];
    snprintf(slashed, sizeof slashed, "/%s", name); /* the leading slash is optional */
    CHECK_OK(mp_shared_memory_new(&a, slashed, NULL));
    CHECK_STR(name, mp_shared_memory_name(a));
    CHECK_EQ(10000, mp_shared_memory_size(a));
    CHECK_STR("hello", mp_shared_memory_buf(a));
    ((char *)mp_shared_memory_buf(a))[0] = 'j';
    CHECK(buf[0] == 'j');
    CHECK_OK(mp_shared_memory_close(a));
    CHECK(mp_shared_memory_buf(a) == NULL);
    CHECK_OK(mp_shared_memory_close(a)); /* twice is fine */
    mp_shared_memory_destroy(a);
    CHECK_OK(mp_shared_memory_unlink(c));
    CHECK(!shm_exists(name));
    CHECK_RC(MP_ENOENT, mp_shared_memory_unlink(c));
    mp_shared_memory_destroy(c);
}

TEST(shm_create_existing_is_eexist_and_attach_missing_is_enoent)
{
    char name[64];
    test_name(name, sizeof name, "dup");
    mp_shared_memory *c, *d;
    CHECK_RC(MP_ENOENT, mp_shared_memory_new(&d, name, NULL));
    CHECK_OK(
        mp_shared_memory_new(&c, name, &(mp_shared_memory_options){.create = true, .size = 64}));
    CHECK_RC(MP_EEXIST, mp_shared_memory_new(
                            &d, name, &(mp_shared_memory_options){.create = true, .size = 64}));
    CHECK_OK(mp_shared_memory_unlink(c));
    mp_shared_memory_destroy(c);
    CHECK_RC(MP_ENOENT, mp_shared_memory_new(&d, name, NULL));
}

TEST(shm_rejects_bad_arguments)
{
    mp_shared_memory *s;
    char name[64];
    test_name(name, sizeof name, "bad");
    CHECK_RC(MP_EINVAL,
             mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true}));
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(&s, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(NULL, name, NULL));
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(
                            &s, "a/b", &(mp_shared_memory_options){.create = true, .size = 1}));
    CHECK_RC(MP_EINVAL,
             mp_shared_memory_new(&s, "", &(mp_shared_memory_options){.create = true, .size = 1}));
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(&s, "/", NULL));
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(&s, longname, NULL));
    CHECK_RC(MP_EINVAL, mp_shared_memory_close(NULL));
    CHECK_RC(MP_EINVAL, mp_shared_memory_unlink(NULL));
    CHECK(mp_shared_memory_buf(NULL) == NULL);
    mp_shared_memory_destroy(NULL);
    CHECK(!shm_exists(name));
}

TEST(shm_attach_to_an_empty_segment_is_einval)
{
    char name[64], path[80];
    test_name(name, sizeof name, "empty");
    snprintf(path, sizeof path, "/%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    mp_shared_memory *s;
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(&s, name, NULL));
    shm_unlink(path);
}

TEST(shm_without_name_gets_a_fresh_one)
{
    mp_shared_memory *a, *b;
    CHECK_OK(
        mp_shared_memory_new(&a, NULL, &(mp_shared_memory_options){.create = true, .size = 100}));
    CHECK_OK(
        mp_shared_memory_new(&b, NULL, &(mp_shared_memory_options){.create = true, .size = 100}));
    CHECK(strncmp(mp_shared_memory_name(a), "psm_", 4) == 0);
    CHECK(strcmp(mp_shared_memory_name(a), mp_shared_memory_name(b)) != 0);
    CHECK(shm_exists(mp_shared_memory_name(a)));
    CHECK_OK(mp_shared_memory_unlink(a));
    CHECK_OK(mp_shared_memory_unlink(b));
    mp_shared_memory_destroy(a);
    mp_shared_memory_destroy(b);
}

TEST(shm_unrelated_process_attaches_by_name)
{
    char name[64], helper[512];
    test_name(name, sizeof name, "exec");
    const char *dir = getenv("MPROC_TEST_HELPERS"), *slash = strrchr(th_argv0, '/');
    if (dir != NULL)
        snprintf(helper, sizeof helper, "%s/shared_attach", dir);
    else /* run by hand: the helper sits beside the test binary */
        snprintf(helper, sizeof helper, "%.*s/shared_attach", slash ? (int)(slash - th_argv0) : 1,
                 slash ? th_argv0 : ".");
    mp_shared_memory *s;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 4096}));
    strcpy(mp_shared_memory_buf(s), "ping");
    fflush(NULL);
    int pid = fork();
    if (pid == 0) {
        execl(helper, helper, name, "ping", "pong", (char *)NULL);
        _exit(127);
    }
    CHECK_EQ(0, th_wait(pid));
    CHECK_STR("pingpong", mp_shared_memory_buf(s));
    CHECK_OK(mp_shared_memory_unlink(s));
    mp_shared_memory_destroy(s);
}

static int create_and_exit(void *arg)
{
    const char *name = arg;
    mp_shared_memory *s;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 128}));
    CHECK(shm_exists(name));
    mp_shared_memory_destroy(s); /* destroy alone does not unlink: exit does */
    CHECK(shm_exists(name));
    return 0;
}

TEST(shm_creator_exit_unlinks_its_segments)
{
    char name[64];
    test_name(name, sizeof name, "exit");
    CHECK_EQ(0, th_wait(th_fork(create_and_exit, name)));
    CHECK(!shm_exists(name));
}

static int create_kept_and_exit(void *arg)
{
    mp_shared_memory *s;
    CHECK_OK(mp_shared_memory_new(
        &s, arg, &(mp_shared_memory_options){.create = true, .size = 128, .keep = true}));
    strcpy(mp_shared_memory_buf(s), "kept");
    mp_shared_memory_destroy(s);
    return 0;
}

TEST(shm_kept_segment_survives_its_creator)
{
    char name[64];
    test_name(name, sizeof name, "keep");
    CHECK_EQ(0, th_wait(th_fork(create_kept_and_exit, name)));
    mp_shared_memory *s;
    CHECK_OK(mp_shared_memory_new(&s, name, NULL));
    CHECK_STR("kept", mp_shared_memory_buf(s));
    CHECK_OK(mp_shared_memory_unlink(s));
    mp_shared_memory_destroy(s);
}

static int just_exit(void *arg)
{
    (void)arg;
    return 0;
}

TEST(shm_child_exit_leaves_the_parents_segment)
{
    char name[64];
    test_name(name, sizeof name, "parent");
    mp_shared_memory *s;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 128}));
    CHECK_EQ(0, th_wait(th_fork(just_exit, NULL))); /* the child runs exit() and its atexit list */
    CHECK(shm_exists(name));
    CHECK_OK(mp_shared_memory_unlink(s));
    mp_shared_memory_destroy(s);
}

static int create_and_unlink(void *arg)
{
    const char *name = arg;
    mp_shared_memory *s;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 128}));
    CHECK_OK(mp_shared_memory_unlink(s));
    mp_shared_memory_destroy(s);
    /* Someone else creates the name again; our exit must not remove it. */
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    return 0;
}

TEST(shm_unlinked_segment_is_forgotten_by_the_exit_cleanup)
{
    char name[64];
    test_name(name, sizeof name, "forget");
    CHECK_EQ(0, th_wait(th_fork(create_and_unlink, name)));
    CHECK(shm_exists(name));
    char path[80];
    snprintf(path, sizeof path, "/%s", name);
    shm_unlink(path);
}

TEST(shm_dot_names_are_einval)
{
    mp_shared_memory *s;
    const char *names[] = {".", "..", "/.", "/.."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK_RC(MP_EINVAL,
                 mp_shared_memory_new(&s, names[i],
                                      &(mp_shared_memory_options){.create = true, .size = 8}));
        CHECK_RC(MP_EINVAL, mp_shared_memory_new(&s, names[i], NULL));
    }
}

TEST(shm_name_of_250_bytes_is_the_longest)
{
    char name[260];
    int n = snprintf(name, sizeof name, "mptest-%d-", (int)getpid());
    memset(name + n, 'n', sizeof name - (size_t)n);
    name[250] = '\0';
    mp_shared_memory *s, *a;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 8}));
    CHECK_STR(name, mp_shared_memory_name(s));
    CHECK_OK(mp_shared_memory_new(&a, name, NULL));
    mp_shared_memory_destroy(a);
    name[250] = 'n';
    name[251] = '\0';
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(&a, name, NULL));
    CHECK_RC(MP_EINVAL, mp_shared_memory_new(
                            &a, name, &(mp_shared_memory_options){.create = true, .size = 8}));
    CHECK_OK(mp_shared_memory_unlink(s));
    mp_shared_memory_destroy(s);
}

TEST(shm_create_too_large_is_enomem)
{
    char name[64];
    test_name(name, sizeof name, "huge");
    mp_shared_memory *s;
    CHECK_RC(MP_ENOMEM,
             mp_shared_memory_new(&s, name,
                                  &(mp_shared_memory_options){.create = true, .size = SIZE_MAX}));
    CHECK_RC(MP_ENOMEM,
             mp_shared_memory_new(
                 &s, name, &(mp_shared_memory_options){.create = true, .size = SIZE_MAX / 2 + 1}));
    CHECK_RC(MP_ENOENT, mp_shared_memory_new(&s, name, NULL)); /* nothing left behind */
}

TEST(shm_attach_ignores_the_size_asked_for)
{
    char name[64];
    test_name(name, sizeof name, "size");
    mp_shared_memory *c, *a;
    CHECK_OK(
        mp_shared_memory_new(&c, name, &(mp_shared_memory_options){.create = true, .size = 5000}));
    CHECK_OK(mp_shared_memory_new(&a, name, &(mp_shared_memory_options){.size = 100}));
    CHECK_EQ(5000, mp_shared_memory_size(a));
    mp_shared_memory_destroy(a);
    CHECK_OK(mp_shared_memory_new(&a, name, &(mp_shared_memory_options){.size = 1 << 20}));
    CHECK_EQ(5000, mp_shared_memory_size(a));
    mp_shared_memory_destroy(a);
    CHECK_OK(mp_shared_memory_unlink(c));
    CHECK_RC(MP_ENOENT, mp_shared_memory_unlink(c));
    mp_shared_memory_destroy(c);
}

struct unlinker {
    mp_shared_memory *shm;
    _Atomic bool stop;
};

/* Walks the exit-cleanup list under its lock again and again. */
static void *unlink_again_and_again(void *arg)
{
    struct unlinker *u = arg;
    while (!atomic_load(&u->stop))
        mp_shared_memory_unlink(u->shm);
    return NULL;
}

/* A child forked while another thread held the exit-cleanup list's lock must
 * still be able to exit (its atexit handler takes that lock). */
TEST(shm_child_forked_during_a_list_update_can_exit)
{
    enum { SEGMENTS = 64, FORKS = 300 };
    char name[64];
    mp_shared_memory *segs[SEGMENTS];
    for (int i = 0; i < SEGMENTS; i++) { /* a long list: a long walk under the lock */
        char tag[16];
        snprintf(tag, sizeof tag, "fork%d", i);
        test_name(name, sizeof name, tag);
        CHECK_OK(mp_shared_memory_new(&segs[i], name,
                                      &(mp_shared_memory_options){.create = true, .size = 8}));
    }
    struct unlinker u = {.shm = segs[0]};
    CHECK_OK(mp_shared_memory_unlink(segs[0]));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, unlink_again_and_again, &u) == 0);
    int hung = 0;
    for (int i = 0; i < FORKS && hung == 0; i++) {
        int pid = th_fork(just_exit, NULL);
        int status;
        uint64_t t0 = th_now_ms();
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (th_now_ms() - t0 > 30000) { /* LeakSanitizer runs as it exits */
                hung = pid;
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                break;
            }
            th_sleep_ms(1);
        }
        CHECK(hung != 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    atomic_store(&u.stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    for (int i = 0; i < SEGMENTS; i++) {
        if (i > 0)
            CHECK_OK(mp_shared_memory_unlink(segs[i]));
        mp_shared_memory_destroy(segs[i]);
    }
    CHECK_EQ(0, hung);
}

/* Pid reuse, staged in a pid namespace of our own (as root): the creator C (pid
 * 2 there) vanishes without its exit cleanup, and E, forked later from C's
 * child D, is given pid 2 again. E inherited D's copy of the cleanup list: its
 * exit must not unlink C's segment. Where namespaces are not allowed there is
 * nothing to test: a skip. */
static void *create_segment_in_c(void *name)
{
    mp_shared_memory *s;
    CHECK_OK(
        mp_shared_memory_new(&s, name, &(mp_shared_memory_options){.create = true, .size = 64}));
    return s; /* the state: kept reachable (LeakSanitizer) by the harness */
}

static int segment_still_there(void *s)
{
    return shm_exists(mp_shared_memory_name(s)) ? 0 : 1;
}

TEST(shm_exit_of_a_process_given_the_creators_pid_leaves_the_segment)
{
    SKIP_UNDER_TSAN("pid-reuse staging");
    char name[64];
    test_name(name, sizeof name, "reuse");
    int rc = th_with_reused_pid(create_segment_in_c, just_exit, segment_still_there, name);
    char path[80];
    snprintf(path, sizeof path, "/%s", name);
    shm_unlink(path);
    if (rc == TH_NOT_STAGED)
        SKIP("%s", th_not_staged_why());
    CHECK_EQ(0, rc);
}
