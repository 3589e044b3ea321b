/* 25_value_array.c — Python's docs example: a child changes a shared Value('d') and negates an
 * Array('i') */
#include <stdio.h>

#include "mproc.h"

struct shared {
    mp_value *num;
    mp_array *arr;
};

static int f(void *arg)
{
    struct shared *s = arg;
    double pi = 3.1415927;
    mp_value_set(s->num, &pi);
    mp_rlock_acquire(mp_array_get_lock(s->arr), -1);
    int *a = mp_array_ptr(s->arr);
    for (size_t i = 0; i < mp_array_len(s->arr); i++)
        a[i] = -a[i];
    mp_rlock_release(mp_array_get_lock(s->arr));
    return 0;
}

int main(void)
{
    struct shared s;
    int init[10];
    for (int i = 0; i < 10; i++)
        init[i] = i;
    if (mp_value_new(&s.num, 'd', &(double){0.0}, NULL) != 0 ||
        mp_array_new(&s.arr, 'i', 10, init, NULL) != 0)
        return 1;
    mp_process *p;
    if (mp_process_new(&p, f, &s, NULL) != 0 || mp_process_start(p) != 0)
        return 1;
    mp_process_join(p, -1);
    mp_process_destroy(p);
    double num;
    int out[10];
    mp_value_get(s.num, &num);
    mp_array_read(s.arr, 0, 10, out);
    printf("%.7f\n[", num);
    for (int i = 0; i < 10; i++)
        printf("%d%s", out[i], i < 9 ? ", " : "]\n");
    mp_value_destroy(s.num);
    mp_array_destroy(s.arr);
    return 0;
}
