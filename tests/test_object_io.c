/* test_object_io.c — objects on connections (with CPython's Connection.send/recv on
 * the other end) and on queues between processes. */
// TEST_TIMEOUT 120
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mproc.h"
#include "pypeer.h"

static void objects_with(const char *version)
{
    char python[1024];
    pypeer_find(version, python, sizeof python);
    mp_conn *c;
    int pid = pypeer_start(python, "pickle_peer.py", "objects", &c);
    const char *fmts[] = {"i", "s", "(si)", "[i i {s:d}]", "{s:[n b] s:y#}", "(ss(i){})"};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        mp_obj *o;
        switch (i) {
        case 0:
            CHECK_OK(mp_obj_build(&o, fmts[i], 1));
            break;
        case 1:
            CHECK_OK(mp_obj_build(&o, fmts[i], "hello"));
            break;
        case 2:
            CHECK_OK(mp_obj_build(&o, fmts[i], "put", 42));
            break;
        case 3:
            CHECK_OK(mp_obj_build(&o, fmts[i], 1, 2, "t", 0.5));
            break;
        case 4:
            CHECK_OK(mp_obj_build(&o, fmts[i], "l", 1, "b", "\x00\xff", (size_t)2));
            break;
        default:
            CHECK_OK(mp_obj_build(&o, fmts[i], "7f3802039be0", "put", 4242));
            break;
        }
        CHECK_OK(mp_conn_send(c, o));
        mp_obj *back;
        CHECK_OK(mp_conn_recv(c, &back));
        /* (x, repr(x)) as Python's conn.send made it */
        mp_obj *x, *r;
        CHECK_OK(mp_obj_parse(back, NULL, "(OO!)", &x, MP_OBJ_STR, &r));
        CHECK(mp_obj_equal(o, x));
        char *mine = mp_obj_repr(o);
        CHECK_STR(mine, mp_str_cstr(r));
        free(mine);
        mp_obj_unref(back);
        mp_obj_unref(o);
    }
    /* A large value goes beyond the stack buffers on both sides. */
    mp_obj *big = mp_list_new();
    for (int i = 0; i < 100000; i++)
        mp_list_append(big, mp_int(i));
    CHECK_OK(mp_conn_send(c, big));
    mp_obj *back;
    CHECK_OK(mp_conn_recv(c, &back));
    CHECK(mp_obj_equal(big, mp_seq_item(back, 0)));
    mp_obj_unref(back);
    mp_obj_unref(big);
    CHECK_OK(mp_conn_send(c, mp_none()));
    CHECK_OK(mp_conn_recv(c, &back));
    CHECK(mp_obj_is_none(back));
    CHECK_RC(MP_EEOF, mp_conn_recv(c, &back));
    mp_conn_destroy(c);
    CHECK_EQ(0, th_wait(pid));
}

TEST(conn_objects_with_python311)
{
    objects_with("3.11");
}
TEST(conn_objects_with_python312)
{
    objects_with("3.12");
}
TEST(conn_objects_with_python313)
{
    objects_with("3.13");
}

TEST(conn_recv_refuses_a_message_that_is_not_a_pickle)
{
    mp_conn *a, *b;
    CHECK_OK(mp_pipe(&a, &b, true));
    CHECK_OK(mp_conn_send_bytes(a, "\xffgarbage", 8));
    mp_obj *o = mp_int(1);
    CHECK_OK(mp_conn_send(a, o));
    mp_obj *got;
    mp_obj_error err;
    CHECK_RC(MP_EPROTO, mp_conn_recv_ex(b, &got, NULL, &err));
    CHECK(got == NULL);
    CHECK(strstr(err.text, "opcode 0xff at offset 0: unknown opcode") != NULL);
    CHECK_OK(mp_conn_recv(b, &got)); /* the next message is intact */
    CHECK(mp_obj_equal(o, got));
    /* A message over the size limit is refused and left unread. */
    mp_obj *s = mp_str_c("a string of some length, longer than the limit");
    CHECK_OK(mp_conn_send(a, s));
    mp_pickle_limits lim = {.max_size = 16};
    CHECK_RC(MP_EMSGSIZE, mp_conn_recv_ex(b, &got, &lim, NULL));
    CHECK_OK(mp_conn_recv(b, &got));
    CHECK(mp_obj_equal(s, got));
    mp_obj_unref(got);
    mp_obj_unref(s);
    CHECK_RC(MP_EINVAL, mp_conn_send(a, NULL));
    CHECK_RC(MP_EINVAL, mp_conn_recv(b, NULL));
    mp_conn_destroy(a);
    CHECK_RC(MP_EEOF, mp_conn_recv(b, &got));
    mp_conn_destroy(b);
}

static int queue_worker(void *arg)
{
    mp_queue **qs = arg;
    for (;;) {
        mp_obj *task;
        if (mp_queue_get_obj(qs[0], &task, 10000) < 0)
            return 1;
        if (mp_obj_is_none(task)) {
            mp_obj_unref(task);
            return 0;
        }
        const char *word;
        int n;
        if (mp_obj_parse(task, NULL, "(si)", &word, &n) < 0)
            return 2;
        mp_obj *reply;
        if (mp_obj_build(&reply, "{s:s s:i}", "word", word, "square", n * n) < 0)
            return 3;
        int rc = mp_queue_put_obj(qs[1], reply, 10000);
        mp_obj_unref(reply);
        mp_obj_unref(task);
        if (rc < 0)
            return 4;
    }
}

TEST(queue_objects_travel_between_processes)
{
    mp_queue *qs[2];
    CHECK_OK(mp_queue_new(&qs[0], 0, NULL));
    CHECK_OK(mp_queue_new(&qs[1], 0, NULL));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, queue_worker, qs, NULL));
    CHECK_OK(mp_process_start(p));
    for (int i = 0; i < 100; i++) {
        mp_obj *t;
        CHECK_OK(mp_obj_build(&t, "(si)", "w\xc3\xa9", i));
        CHECK_OK(mp_queue_put_obj(qs[0], t, -1));
        mp_obj_unref(t);
    }
    CHECK_OK(mp_queue_put_obj(qs[0], mp_none(), -1));
    for (int i = 0; i < 100; i++) {
        mp_obj *r;
        CHECK_OK(mp_queue_get_obj(qs[1], &r, 10000));
        const char *w;
        int sq;
        CHECK_OK(mp_obj_parse(r, NULL, "{s:s s:i}", "word", &w, "square", &sq));
        CHECK_STR("w\xc3\xa9", w);
        CHECK_EQ(i * i, sq);
        mp_obj_unref(r);
    }
    CHECK_OK(mp_process_join(p, 20000));
    int code;
    CHECK_OK(mp_process_exitcode(p, &code));
    CHECK_EQ(0, code);
    mp_process_destroy(p);
    mp_obj *none;
    CHECK_RC(MP_EEMPTY, mp_queue_get_obj_nowait(qs[1], &none));
    /* A value larger than the stack buffer. */
    mp_obj *big;
    CHECK_OK(mp_obj_build(&big, "[s#]", "x", (size_t)1));
    mp_obj *blob = mp_bytes(NULL, 0);
    mp_obj_unref(blob);
    char *text = malloc(50000);
    memset(text, 'z', 50000);
    CHECK_OK(mp_list_append(big, mp_str(text, 50000)));
    free(text);
    CHECK_OK(mp_queue_put_obj_nowait(qs[0], big));
    mp_obj *got;
    CHECK_OK(mp_queue_get_obj(qs[0], &got, 1000));
    CHECK(mp_obj_equal(big, got));
    mp_obj_unref(got);
    mp_obj_unref(big);
    /* Bytes that are not a pickle are taken and refused. */
    CHECK_OK(mp_queue_put(qs[0], "\x80\x04", 2, 0));
    CHECK_RC(MP_EPROTO, mp_queue_get_obj(qs[0], &got, 1000));
    CHECK(mp_queue_empty(qs[0]));
    mp_queue_destroy(qs[0]);
    mp_queue_destroy(qs[1]);
}

static int simple_echo(void *arg)
{
    mp_simple_queue **qs = arg;
    mp_obj *o;
    if (mp_simple_queue_get_obj(qs[0], &o) < 0)
        return 1;
    int rc = mp_simple_queue_put_obj(qs[1], o);
    mp_obj_unref(o);
    return rc < 0 ? 2 : 0;
}

TEST(simple_and_joinable_queues_carry_objects)
{
    mp_simple_queue *qs[2];
    CHECK_OK(mp_simple_queue_new(&qs[0], NULL));
    CHECK_OK(mp_simple_queue_new(&qs[1], NULL));
    mp_process *p;
    CHECK_OK(mp_process_new(&p, simple_echo, qs, NULL));
    CHECK_OK(mp_process_start(p));
    mp_obj *o;
    CHECK_OK(mp_obj_build(&o, "(s[i d] N)", "simple", 1, 2.5,
                          mp_exception_msg("builtins", "ValueError", "boom")));
    CHECK_OK(mp_simple_queue_put_obj(qs[0], o));
    mp_obj *back;
    CHECK_OK(mp_simple_queue_get_obj(qs[1], &back));
    CHECK(mp_obj_equal(o, back));
    CHECK(mp_obj_is_exception(mp_seq_item(back, 2), "builtins", "ValueError"));
    mp_obj_unref(back);
    CHECK_OK(mp_process_join(p, 20000));
    mp_process_destroy(p);
    mp_simple_queue_destroy(qs[0]);
    mp_simple_queue_destroy(qs[1]);

    mp_joinable_queue *jq;
    CHECK_OK(mp_joinable_queue_new(&jq, 2, NULL));
    CHECK_OK(mp_joinable_queue_put_obj(jq, o, 0));
    CHECK_OK(mp_joinable_queue_put_obj_nowait(jq, o));
    CHECK_RC(MP_EFULL, mp_joinable_queue_put_obj_nowait(jq, o));
    CHECK_OK(mp_joinable_queue_get_obj(jq, &back, 0));
    CHECK(mp_obj_equal(o, back));
    mp_obj_unref(back);
    CHECK_OK(mp_joinable_queue_get_obj_nowait(jq, &back));
    mp_obj_unref(back);
    CHECK_RC(MP_ETIMEDOUT, mp_joinable_queue_join(jq, 0));
    CHECK_OK(mp_joinable_queue_task_done(jq));
    CHECK_OK(mp_joinable_queue_task_done(jq));
    CHECK_OK(mp_joinable_queue_join(jq, 0));
    mp_joinable_queue_destroy(jq);
    mp_obj_unref(o);
    CHECK_RC(MP_EINVAL, mp_queue_put_obj(NULL, mp_none(), 0));
}
