/* test_object.c — the object model: constructors, accessors, containers, ownership,
 * equality and hashing, repr, and the format builder and parser. */
// TEST_TIMEOUT 120
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mproc.h"

#define check_repr(expected, o) check_repr_at(__LINE__, expected, o)

static void check_repr_at(int line, const char *expected, mp_obj *o)
{
    if (o == NULL)
        th_fail(__FILE__, line, "NULL value where %s was expected", expected);
    char *r = mp_obj_repr(o);
    CHECK_STR(expected, r);
    free(r);
    mp_obj_unref(o);
}

TEST(object_scalars_have_kinds_and_values)
{
    CHECK_EQ(MP_OBJ_NONE, mp_obj_kind_of(mp_none()));
    CHECK(mp_obj_is_bool(mp_bool(true)) && !mp_obj_is_int(mp_bool(true)));
    int64_t ints[] = {0,
                      1,
                      -1,
                      ((int64_t)1 << 62) - 1,
                      (int64_t)1 << 62,
                      -((int64_t)1 << 62),
                      -((int64_t)1 << 62) - 1,
                      INT64_MAX,
                      INT64_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        mp_obj *o = mp_int(ints[i]);
        int64_t v = 0;
        CHECK(mp_obj_is_int(o));
        CHECK_OK(mp_int_value(o, &v));
        CHECK_EQ(ints[i], v);
        mp_obj_unref(o);
    }
    mp_obj *u = mp_uint(UINT64_MAX);
    int64_t v;
    uint64_t uv;
    CHECK_RC(MP_ERANGE, mp_int_value(u, &v));
    CHECK_OK(mp_uint_value(u, &uv));
    CHECK(uv == UINT64_MAX);
    check_repr("18446744073709551615", u);
    mp_obj *f = mp_float(2.5);
    double d;
    CHECK_OK(mp_float_value(f, &d));
    CHECK(d == 2.5);
    CHECK_RC(MP_ETYPE, mp_int_value(f, &v));
    CHECK_RC(MP_EINVAL, mp_int_value(NULL, &v));
    CHECK_RC(MP_EINVAL, mp_int_value(f, NULL));
    mp_obj_unref(f);
    CHECK_OK(mp_float_value(mp_int(3), &d));
    CHECK(d == 3.0);
    mp_obj *c = mp_complex(1, -2);
    double re, im;
    CHECK_OK(mp_complex_value(c, &re, &im));
    CHECK(re == 1 && im == -2);
    mp_obj_unref(c);
    mp_obj *s = mp_str("a\0b", 3);
    const char *p;
    size_t n;
    CHECK_OK(mp_str_value(s, &p, &n));
    CHECK_EQ(3, n);
    CHECK(memcmp(p, "a\0b", 4) == 0);
    CHECK_EQ(3, mp_obj_len(s));
    const void *bp;
    CHECK_RC(MP_ETYPE, mp_bytes_value(s, &bp, &n));
    mp_obj_unref(s);
    CHECK(mp_str("\xff", 1) == NULL);             /* invalid UTF-8 */
    CHECK(mp_str("\xc0\x80", 2) == NULL);         /* overlong */
    CHECK(mp_str("\xf4\x90\x80\x80", 4) == NULL); /* beyond U+10FFFF */
    s = mp_str("\xed\xa0\x80", 3);                /* a lone surrogate: surrogatepass */
    CHECK(s != NULL);
    check_repr("'\\ud800'", s);
    mp_obj *b = mp_bytes("\x00\xff", 2);
    CHECK_OK(mp_bytes_value(b, &bp, &n));
    CHECK_EQ(2, n);
    CHECK_STR("bytes", mp_obj_type_name(b));
    mp_obj_unref(b);
}

TEST(object_big_ints_are_lossless)
{
    uint8_t le[300] = {0};
    le[262] = 0x10; /* 2**2100 */
    mp_obj *big = mp_int_from_bytes(le, 264);
    CHECK(mp_obj_is_int(big));
    int64_t v;
    CHECK_RC(MP_ERANGE, mp_int_value(big, &v));
    uint8_t out[300];
    size_t n;
    CHECK_RC(MP_ETOOSHORT, mp_int_to_bytes(big, out, 10, &n));
    CHECK_EQ(263, n);
    CHECK_OK(mp_int_to_bytes(big, out, sizeof out, &n));
    CHECK(memcmp(out, le, 263) == 0);
    char *r = mp_obj_repr(big);
    CHECK_EQ(633, strlen(r)); /* len(str(2**2100)) */
    CHECK(strncmp(r, "1455", 4) == 0);
    mp_obj *again = mp_int_from_str(r);
    CHECK(mp_obj_equal(big, again));
    free(r);
    mp_obj_unref(again);
    mp_obj_unref(big);
    /* Normalisation: redundant sign bytes vanish, small values become plain ints. */
    uint8_t m1[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    mp_obj *o = mp_int_from_bytes(m1, sizeof m1);
    CHECK_OK(mp_int_value(o, &v));
    CHECK_EQ(-1, v);
    uint8_t p256[] = {0x00, 0x01, 0x00, 0x00};
    o = mp_int_from_bytes(p256, sizeof p256);
    CHECK_OK(mp_int_value(o, &v));
    CHECK_EQ(256, v);
    CHECK_OK(mp_int_to_bytes(o, out, sizeof out, &n));
    CHECK_EQ(2, n);
    check_repr("-1267650600228229401496703205376",
               mp_int_from_str("-1267650600228229401496703205376"));
    check_repr("1000000", mp_int_from_str(" 1_000_000 "));
    CHECK(mp_int_from_str("1__0") == NULL);
    CHECK(mp_int_from_str("") == NULL);
    CHECK(mp_int_from_str("12a") == NULL);
    check_repr("-9223372036854775809", mp_int_from_str("-9223372036854775809"));
    check_repr("-9223372036854775808", mp_int(INT64_MIN));
}

TEST(object_containers_take_references_even_on_failure)
{
    mp_obj *l = mp_list_new();
    CHECK_OK(mp_list_append(l, mp_str_c("a")));
    CHECK_RC(MP_ENOMEM, mp_list_append(l, NULL));
    CHECK_RC(MP_EINVAL, mp_list_append(l, l));
    CHECK_RC(MP_ETYPE, mp_list_append(mp_none(), mp_str_c("leak?"))); /* taken and freed */
    CHECK_EQ(1, mp_obj_len(l));
    CHECK_OK(mp_list_set(l, 0, mp_int(5)));
    CHECK_RC(MP_ERANGE, mp_list_set(l, 3, mp_str_c("x")));
    mp_obj *t = mp_tuple_new(2);
    CHECK_OK(mp_tuple_set(t, 0, mp_obj_ref(l)));
    CHECK_OK(mp_tuple_set(t, 1, mp_float(1.5)));
    CHECK_RC(MP_ERANGE, mp_tuple_set(t, 2, mp_float(1.5)));
    mp_obj_unref(l);
    check_repr("([5], 1.5)", t);
    mp_obj *d = mp_dict_new();
    CHECK_RC(MP_ETYPE, mp_dict_set(d, mp_list_new(), mp_int(1))); /* unhashable key */
    CHECK_RC(MP_ENOMEM, mp_dict_set(d, mp_str_c("k"), NULL));
    CHECK_OK(mp_dict_set_str(d, "k", mp_str_c("v")));
    mp_obj *k = mp_str_c("k2"), *val = mp_int(2);
    CHECK_OK(mp_dict_set_ref(d, k, val));
    mp_obj_unref(k);
    check_repr("{'k': 'v', 'k2': 2}", d);
    mp_obj *popped;
    l = mp_list_new();
    mp_list_append(l, mp_str_c("p"));
    CHECK_OK(mp_list_pop(l, 0, &popped));
    CHECK_EQ(0, mp_obj_len(l));
    check_repr("'p'", popped);
    mp_obj_unref(l);
    CHECK(mp_tuple2(mp_str_c("a"), NULL) == NULL); /* "a" freed */
}

TEST(object_dict_keeps_order_and_scales_to_a_million)
{
    mp_obj *d = mp_dict_new();
    const size_t n = 1000000;
    uint64_t t0 = th_now_ms();
    for (size_t i = 0; i < n; i++)
        CHECK_OK(mp_dict_set(d, mp_int((int64_t)(i * 7919)), mp_int((int64_t)i)));
    CHECK_EQ(n, mp_obj_len(d));
    for (size_t i = 0; i < n; i += 7) {
        mp_obj *key = mp_int((int64_t)(i * 7919));
        mp_obj *got = mp_dict_get(d, key);
        int64_t v;
        CHECK(got != NULL);
        CHECK_OK(mp_int_value(got, &v));
        CHECK_EQ(i, v);
    }
    /* Insertion order, also after deleting and re-adding. */
    for (size_t i = 0; i < n; i += 2) {
        mp_obj *key = mp_int((int64_t)(i * 7919));
        CHECK_OK(mp_dict_del(d, key));
    }
    CHECK_RC(MP_ENOENT, mp_dict_del(d, mp_int(0)));
    CHECK_EQ(n / 2, mp_obj_len(d));
    CHECK_OK(mp_dict_set(d, mp_int(0), mp_str_c("zero")));
    size_t it = 0, seen = 0;
    mp_obj *key, *value;
    int64_t prev = -1;
    while (mp_dict_next(d, &it, &key, &value)) {
        int64_t kv;
        CHECK_OK(mp_int_value(key, &kv));
        if (seen < n / 2) {
            CHECK(kv > prev);
            prev = kv;
        } else {
            CHECK_EQ(0, kv);
        }
        seen++;
    }
    CHECK_EQ(n / 2 + 1, seen);
    mp_obj_unref(d);
    /* str keys */
    d = mp_dict_new();
    char buf[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(buf, sizeof buf, "key-%d", i);
        CHECK_OK(mp_dict_set_str(d, buf, mp_int(i)));
    }
    CHECK(mp_dict_get_str(d, "key-199999") != NULL);
    CHECK(mp_dict_get_str(d, "key-200000") == NULL);
    mp_obj_unref(d);
    printf("1M int keys + 200k str keys: %llu ms\n", (unsigned long long)(th_now_ms() - t0));
}

TEST(object_equality_and_hash_follow_python)
{
    mp_obj *one = mp_int(1), *onef = mp_float(1.0), *t = mp_bool(true);
    int64_t h1, h2, h3;
    CHECK(mp_obj_equal(one, onef) && mp_obj_equal(onef, t) && mp_obj_equal(one, t));
    CHECK_OK(mp_obj_hash(one, &h1));
    CHECK_OK(mp_obj_hash(onef, &h2));
    CHECK_OK(mp_obj_hash(t, &h3));
    CHECK(h1 == 1 && h2 == 1 && h3 == 1);
    mp_obj_unref(onef);
    /* int == float: integral and in range (3 == 3.0, 3 != 3.5, 0 != -0.5,
     * -2**63 == float(-2**63), 2**63-1 != float(2**63)) */
    mp_obj *ints[] = {mp_int(3), mp_int(3), mp_int(0), mp_int(INT64_MIN), mp_int(INT64_MAX)};
    mp_obj *fl[] = {mp_float(3.0), mp_float(3.5), mp_float(-0.5), mp_float(-9223372036854775808.0),
                    mp_float(9223372036854775808.0)};
    const bool eq[] = {true, false, false, true, false};
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ(eq[i], mp_obj_equal(ints[i], fl[i]));
        CHECK_EQ(eq[i], mp_obj_equal(fl[i], ints[i]));
        mp_obj_unref(ints[i]);
        mp_obj_unref(fl[i]);
    }
    struct {
        double v;
        int64_t h;
    } floats[] = {{1.5, 1152921504606846977LL},
                  {-1.0, -2},
                  {0.1, 230584300921369408LL},
                  {1e300, 1224995262755759164LL},
                  {INFINITY, 314159}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        mp_obj *f = mp_float(floats[i].v);
        CHECK_OK(mp_obj_hash(f, &h1));
        CHECK_EQ(floats[i].h, h1);
        mp_obj_unref(f);
    }
    CHECK_OK(mp_obj_hash(mp_int(-1), &h1));
    CHECK_EQ(-2, h1);
    mp_obj *p61 = mp_uint((uint64_t)1 << 61);
    CHECK_OK(mp_obj_hash(p61, &h1));
    CHECK_EQ(1, h1);
    mp_obj_unref(p61);
    mp_obj *big = mp_int_from_str("1267650600228229401496703205376"); /* 2**100 */
    mp_obj *bigf = mp_float(1267650600228229401496703205376.0);
    CHECK(mp_obj_equal(big, bigf));
    CHECK_OK(mp_obj_hash(big, &h1));
    CHECK_OK(mp_obj_hash(bigf, &h2));
    CHECK_EQ(h1, h2);
    CHECK_EQ(549755813888LL, h1); /* hash(2**100) */
    mp_obj_unref(bigf);
    bigf = mp_float(1267650600228229401496703205376.0 * 2);
    CHECK(!mp_obj_equal(big, bigf));
    mp_obj_unref(bigf);
    mp_obj_unref(big);
    mp_obj *nan = mp_float(NAN);
    CHECK(!mp_obj_equal(nan, nan));
    mp_obj *ln = mp_list_new();
    mp_list_append(ln, mp_obj_ref(nan));
    CHECK(mp_obj_equal(ln, ln)); /* containers compare items by identity first */
    mp_obj_unref(ln);
    mp_obj_unref(nan);
    mp_obj *b = mp_bytes("ab", 2), *ba = mp_bytearray("ab", 2), *s = mp_str_c("ab");
    CHECK(mp_obj_equal(b, ba) && !mp_obj_equal(b, s));
    CHECK_RC(MP_ETYPE, mp_obj_hash(ba, &h1));
    mp_obj_unref(b);
    mp_obj_unref(ba);
    mp_obj_unref(s);
    mp_obj *set = mp_set_new(), *fs = mp_frozenset_new();
    mp_set_add(set, mp_int(1));
    mp_set_add(set, mp_int(2));
    mp_set_add(fs, mp_int(2));
    mp_set_add(fs, mp_float(1.0));
    CHECK(mp_obj_equal(set, fs));
    CHECK(mp_set_contains(fs, mp_bool(true)));
    CHECK_RC(MP_ETYPE, mp_obj_hash(set, &h1));
    CHECK_OK(mp_obj_hash(fs, &h1));
    mp_obj_unref(set);
    mp_obj *tup;
    CHECK_OK(mp_obj_build(&tup, "(iii)", 1, 2, 3));
    CHECK_OK(mp_obj_hash(tup, &h1));
    CHECK_EQ(529344067295497451LL, h1); /* hash((1, 2, 3)) */
    mp_obj *tl;
    CHECK_OK(mp_obj_build(&tl, "(i[])", 1));
    CHECK_RC(MP_ETYPE, mp_obj_hash(tl, &h1));
    mp_obj *d = mp_dict_new();
    CHECK_RC(MP_ETYPE, mp_dict_set(d, mp_obj_ref(tl), mp_none()));
    CHECK_OK(mp_dict_set(d, mp_obj_ref(fs), mp_none())); /* frozenset keys are fine */
    CHECK(mp_dict_get(d, fs) != NULL);
    mp_obj_unref(d);
    mp_obj_unref(fs);
    mp_obj_unref(tl);
    mp_obj_unref(tup);
}

TEST(object_repr_matches_python)
{
    check_repr("None", mp_none());
    check_repr("True", mp_bool(true));
    check_repr("-5", mp_int(-5));
    const struct {
        double v;
        const char *r;
    } floats[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {1e16, "1e+16"},
        {1e15, "1000000000000000.0"},
        {123456789012345.6, "123456789012345.6"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1.5e-10, "1.5e-10"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
        {NAN, "nan"},
        {9007199254740993.0, "9007199254740992.0"},
        {2.5e100, "2.5e+100"},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        check_repr(floats[i].r, mp_float(floats[i].v));
    check_repr("(1+2j)", mp_complex(1, 2));
    check_repr("2j", mp_complex(0, 2));
    check_repr("(-0+1j)", mp_complex(-0.0, 1));
    check_repr("-0j", mp_complex(0, -0.0));
    check_repr("(1-0j)", mp_complex(1, -0.0));
    check_repr("(nan+infj)", mp_complex(NAN, INFINITY));
    check_repr("(1e+20+1e-20j)", mp_complex(1e20, 1e-20));
    check_repr("\"it's\"", mp_str_c("it's"));
    check_repr("'say \"hi\"'", mp_str_c("say \"hi\""));
    check_repr("'it\\'s \"x\"'", mp_str_c("it's \"x\""));
    check_repr("'\\t\\n\\r\\\\ \\x00 \\x1f \\x7f'", mp_str("\t\n\r\\ \0 \x1f \x7f", 10));
    check_repr("'caf\xc3\xa9 \\xa0 \\xad \xc3\xbf'",
               mp_str_c("caf\xc3\xa9 \xc2\xa0 \xc2\xad \xc3\xbf"));
    check_repr("'\xe6\x97\xa5 \\u2028 \\u200b \\ufeff'",
               mp_str_c("\xe6\x97\xa5 \xe2\x80\xa8 \xe2\x80\x8b \xef\xbb\xbf"));
    check_repr("'\xf0\x9f\x98\x80 \\U000e0001'", mp_str_c("\xf0\x9f\x98\x80 \xf3\xa0\x80\x81"));
    check_repr("b'\\x00\\xff\\'\"'", mp_bytes("\x00\xff'\"", 4));
    check_repr("b\"it's\"", mp_bytes("it's", 4));
    check_repr("bytearray(b'ab')", mp_bytearray("ab", 2));
    check_repr("bytearray(b'')", mp_bytearray(NULL, 0));
    check_repr("()", mp_tuple_new(0));
    check_repr("(1,)", mp_tuple1(mp_int(1)));
    check_repr("[]", mp_list_new());
    check_repr("{}", mp_dict_new());
    check_repr("set()", mp_set_new());
    check_repr("frozenset()", mp_frozenset_new());
    mp_obj *o;
    CHECK_OK(mp_obj_build(&o, "<i i>", 1, 2));
    check_repr("{1, 2}", o);
    mp_obj *fs = mp_frozenset_new();
    mp_set_add(fs, mp_int(3));
    check_repr("frozenset({3})", fs);
    check_repr("ValueError('boom')", mp_exception_msg("builtins", "ValueError", "boom"));
    check_repr("Empty()", mp_exception_new("_queue", "Empty", NULL));
    CHECK_OK(mp_obj_build(&o, "(si)", "a", 1));
    check_repr("RuntimeError('a', 1)", mp_exception_new("builtins", "RuntimeError", o));
    check_repr("mymod.Thing(1, state={'a': 2})",
               mp_object_new("mymod", "Thing", mp_tuple1(mp_int(1)),
                             (mp_obj_build(&o, "{s:i}", "a", 2), o)));
    char *r = mp_obj_repr(NULL);
    CHECK_STR("NULL", r);
    free(r);
}

TEST(object_build_makes_values)
{
    mp_obj *o;
    CHECK_OK(mp_obj_build(&o, "(si{s:d})", "put", 42, "timeout", 1.5));
    char *r = mp_obj_repr(o);
    CHECK_STR("('put', 42, {'timeout': 1.5})", r);
    free(r);
    mp_obj_unref(o);
    CHECK_OK(mp_obj_build(&o, "s, i", "a", 1)); /* several items: a tuple */
    check_repr("('a', 1)", o);
    CHECK_OK(mp_obj_build(&o, ""));
    check_repr("None", o);
    mp_obj *mine = mp_str_c("mine");
    CHECK_OK(mp_obj_build(&o, "[n b I l L K z D s# y# Y# O N s]", 1, 7u, -3L, -4LL,
                          18446744073709551615ULL, (size_t)9, 1.0, -1.0, "xyz", (size_t)2, "ab",
                          (size_t)2, "cd", (size_t)2, mine, mp_int(5), (const char *)NULL));
    check_repr("[None, True, 7, -3, -4, 18446744073709551615, 9, (1-1j), 'xy', b'ab', "
               "bytearray(b'cd'), 'mine', 5, None]",
               o);
    check_repr("'mine'", mine); /* O added a reference; ours is still valid */
}

TEST(object_build_errors_say_where)
{
    mp_obj *o = (mp_obj *)1;
    mp_obj_error err;
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "(i", 1));
    CHECK(o == NULL);
    CHECK_STR("format: missing ')'", err.text);
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "(iq)", 1));
    CHECK_STR("format: unexpected 'q' at offset 2", err.text);
    CHECK_EQ(2, err.position);
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "s#", "\xff", (size_t)1));
    CHECK_STR("format 's': invalid UTF-8", err.text);
    CHECK_RC(MP_ETYPE, mp_obj_build_err(&o, &err, "{[]:i}", 1));
    CHECK_STR("unhashable key or item", err.text);
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "{s}", "k"));
    CHECK_STR("format: dict key without a value", err.text);
    CHECK_RC(MP_ENOMEM, mp_obj_build_err(&o, &err, "N", (mp_obj *)NULL));
    /* N references after the failure point are taken too: nothing leaks. */
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "(s# N N)", "\xff", (size_t)1, mp_str_c("a"),
                                         mp_str_c("b")));
    CHECK_RC(MP_EINVAL, mp_obj_build_err(&o, &err, "i)", 1));
    CHECK_STR("format: unbalanced ')'", err.text);
}

TEST(object_parse_reads_values)
{
    mp_obj *o;
    CHECK_OK(mp_obj_build(&o, "(ss(i){s:d s:b})", "7f38", "get", 7, "timeout", 2.5, "block", 1));
    const char *ident, *method;
    int arg;
    double timeout = 0;
    bool block = false;
    int64_t missing = 99;
    CHECK_OK(mp_obj_parse(o, NULL, "(ss(i){s:d ?s:L s:b})", &ident, &method, &arg, "timeout",
                          &timeout, "nope", &missing, "block", &block));
    CHECK_STR("7f38", ident);
    CHECK_STR("get", method);
    CHECK_EQ(7, arg);
    CHECK(timeout == 2.5 && block);
    CHECK_EQ(99, missing);
    mp_obj *args, *kw;
    CHECK_OK(mp_obj_parse(o, NULL, "(ssO!O)", &ident, &method, MP_OBJ_TUPLE, &args, &kw));
    CHECK(mp_obj_is_tuple(args) && mp_obj_is_dict(kw));
    int a = 0, b = 5;
    CHECK_OK(mp_obj_parse(args, NULL, "(i|i)", &a, &b));
    CHECK_EQ(7, a);
    CHECK_EQ(5, b);
    mp_obj_unref(o);
    CHECK_OK(mp_obj_build(&o, "[y# D n]", "xy", (size_t)2, 1.0, 2.0));
    const void *bytes;
    size_t n;
    double re, im;
    CHECK_OK(mp_obj_parse(o, NULL, "[y# D n]", &bytes, &n, &re, &im));
    CHECK_EQ(2, n);
    CHECK(re == 1.0 && im == 2.0);
    mp_obj_unref(o);
}

TEST(object_parse_errors_name_the_path)
{
    mp_obj *o;
    mp_obj_error err;
    CHECK_OK(mp_obj_build(&o, "(ss(i){s:s})", "id", "put", 1, "timeout", "soon"));
    const char *s1;
    int i1, i2;
    double d;
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(si(i){s:d})", &s1, &i1, &i2, "timeout", &d));
    CHECK_STR("item 1: expected int, got str", err.text);
    const char *s2;
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(ss(i){s:d})", &s1, &s2, &i2, "timeout", &d));
    CHECK_STR("item 3: key 'timeout': expected float, got str", err.text);
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(ss(s){s:s})", &s1, &s2, &s1, "timeout", &s1));
    CHECK_STR("item 2: item 0: expected str, got int", err.text);
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(ss(i){s:s s:i})", &s1, &s2, &i1, "timeout", &s1,
                                    "block", &i2));
    CHECK_STR("item 3: missing key 'block'", err.text);
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(ss)", &s1, &s2));
    CHECK_STR("expected a tuple of 2 items, got 4", err.text);
    mp_obj *s3;
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "(ssOOO)", &s1, &s2, &s3, &s3, &s3));
    CHECK_STR("expected a tuple of 5 items, got 4", err.text);
    CHECK_RC(MP_ETYPE, mp_obj_parse(o, &err, "[ss]", &s1, &s2));
    CHECK_STR("expected list, got tuple", err.text);
    CHECK_RC(MP_EINVAL, mp_obj_parse(o, &err, "(ssOO)x", &s1, &s2, &s1, &s1));
    mp_obj_unref(o);
    o = mp_int(1LL << 40);
    CHECK_RC(MP_ERANGE, mp_obj_parse(o, &err, "i", &i1));
    CHECK_STR("int 1099511627776 does not fit int", err.text);
    mp_obj_unref(o);
    CHECK_RC(MP_ETYPE, mp_obj_parse(mp_none(), &err, "O!", MP_OBJ_DICT, &o));
    CHECK_STR("expected dict, got NoneType", err.text);
    mp_obj *ex = mp_exception_msg("builtins", "KeyError", "k");
    CHECK_RC(MP_ETYPE, mp_obj_parse(ex, &err, "s", &s1));
    CHECK_STR("expected str, got KeyError", err.text);
    mp_obj_unref(ex);
}

TEST(object_nodes_keep_what_pickle_said)
{
    mp_obj *ex = mp_exception_msg("builtins", "KeyError", "k");
    CHECK(mp_obj_is_exception(ex, "builtins", "KeyError"));
    CHECK(!mp_obj_is_exception(ex, "builtins", "ValueError"));
    CHECK_STR("builtins", mp_object_module(ex));
    CHECK_STR("KeyError", mp_object_name(ex));
    CHECK_EQ(MP_OBJECT_REDUCE, mp_object_form_of(ex));
    CHECK_STR("k", mp_str_cstr(mp_seq_item(mp_object_args(ex), 0)));
    CHECK(mp_object_state(ex) == NULL);
    CHECK_OK(mp_object_set_state(ex, mp_dict_new()));
    CHECK(mp_obj_is_dict(mp_object_state(ex)));
    CHECK_RC(MP_ETYPE, mp_object_set_state(mp_none(), mp_dict_new()));
    mp_obj *same = mp_exception_msg("builtins", "KeyError", "k");
    CHECK(!mp_obj_equal(ex, same)); /* the state differs */
    mp_object_set_state(same, mp_dict_new());
    CHECK(mp_obj_equal(ex, same));
    mp_obj_unref(same);
    mp_obj_unref(ex);
    CHECK(mp_object_new("m", "n", mp_list_new(), NULL) == NULL); /* args must be a tuple */
    CHECK(mp_object_new(NULL, "n", NULL, NULL) == NULL);
    CHECK(mp_object_module(mp_none()) == NULL);
}

TEST(object_deep_nesting_frees_without_recursion)
{
    mp_obj *root = mp_list_new();
    mp_obj *cur = root;
    for (int i = 0; i < 1000000; i++) {
        mp_obj *next = mp_list_new();
        CHECK_OK(mp_list_append(cur, next));
        cur = next;
    }
    CHECK(mp_obj_repr(root) == NULL); /* too deep to print: NULL, not a crash */
    void *buf;
    size_t len;
    CHECK_RC(MP_EINVAL, mp_pickle_dumps(root, 4, &buf, &len));
    mp_obj_unref(root);
}

TEST(object_hash_of_any_names_is_defined)
{
    /* The hash of an object node combines its module's and name's hashes: any
     * 64-bit pair must combine without signed overflow (UBSan: make sanitize). */
    static const char *const names[] = {"a", "b", "Token", "Queue", "x1", "zz", "Empty", "q"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
            mp_obj *o = mp_object_new_form(names[i], names[j], MP_OBJECT_NEWOBJ, NULL, NULL, NULL);
            CHECK(o != NULL);
            int64_t h;
            CHECK_OK(mp_obj_hash(o, &h));
            CHECK(h != -1);
            mp_obj_unref(o);
        }
    }
}

/* An object node's hash mixes its module's and name's 64-bit str hashes: without
 * overflow (UBSan's signed-overflow check runs this under make sanitize). */
TEST(object_node_hash_is_defined_for_any_name)
{
    const char *names[] = {"array", "collections", "OrderedDict", "datetime", "x", "zz"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
            mp_obj *a = mp_object_new(names[i], names[j], mp_tuple_new(0), NULL);
            mp_obj *b = mp_object_new(names[i], names[j], mp_tuple_new(0), NULL);
            CHECK(a != NULL && b != NULL);
            int64_t ha, hb;
            int rc = mp_obj_hash(a, &ha);
            if (rc == 0) {
                CHECK_OK(mp_obj_hash(b, &hb));
                CHECK_EQ(ha, hb);
                CHECK(ha != -1);
            }
            mp_obj_unref(a);
            mp_obj_unref(b);
        }
    }
}

/* mp_str reads exactly len bytes: every length, with ASCII, multi-byte and cut-off
 * sequences at the very end of an exactly-sized heap buffer (ASan under make
 * sanitize catches a read past it). */
TEST(object_str_reads_only_its_length)
{
    const char *tails[] = {"",     "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
                           "\xc3", "\xe6\x97", "\xf0\x9f\x98"};
    for (size_t n = 0; n < 40; n++) {
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            size_t tl = strlen(tails[t]), len = n + tl;
            char *buf = malloc(len > 0 ? len : 1);
            CHECK(buf != NULL);
            memset(buf, 'a', n);
            memcpy(buf + n, tails[t], tl);
            mp_obj *s = mp_str(buf, len);
            CHECK((s != NULL) == (t < 4)); /* the last three end mid-sequence */
            mp_obj_unref(s);
            free(buf);
        }
    }
}
