/* test_shlex.c — mp_shlex_split, mp_shlex_quote, mp_shlex_join against a corpus
 * of tricky inputs whose expected results come from CPython 3.11's shlex
 * (shlex.split(s, comments=..., posix=...), shlex.quote, shlex.join), byte for
 * byte; and,
 * where python3 is on the machine, against a live run of it as well. */
// TEST_TIMEOUT 120
#include <limits.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

struct split_case {
    const char *input;
    int flags; /* MP_SHLEX_COMMENTS (comments=True) | MP_SHLEX_NON_POSIX (posix=False) */
    const char *words[6];
    int n;             /* -1: ValueError */
    const char *error; /* Python's message */
};

static const struct split_case split_cases[] = {
    {"", 0, {NULL}, 0, NULL},
    {"", 1, {NULL}, 0, NULL},
    {"", 2, {NULL}, 0, NULL},
    {"", 3, {NULL}, 0, NULL},
    {"   ", 0, {NULL}, 0, NULL},
    {"   ", 1, {NULL}, 0, NULL},
    {"   ", 2, {NULL}, 0, NULL},
    {"   ", 3, {NULL}, 0, NULL},
    {"a", 0, {"a"}, 1, NULL},
    {"a", 1, {"a"}, 1, NULL},
    {"a", 2, {"a"}, 1, NULL},
    {"a", 3, {"a"}, 1, NULL},
    {"a b c", 0, {"a", "b", "c"}, 3, NULL},
    {"a b c", 1, {"a", "b", "c"}, 3, NULL},
    {"a b c", 2, {"a", "b", "c"}, 3, NULL},
    {"a b c", 3, {"a", "b", "c"}, 3, NULL},
    {"  leading and trailing  ", 0, {"leading", "and", "trailing"}, 3, NULL},
    {"  leading and trailing  ", 1, {"leading", "and", "trailing"}, 3, NULL},
    {"  leading and trailing  ", 2, {"leading", "and", "trailing"}, 3, NULL},
    {"  leading and trailing  ", 3, {"leading", "and", "trailing"}, 3, NULL},
    {"tab\tsep\nnewline\rcr", 0, {"tab", "sep", "newline", "cr"}, 4, NULL},
    {"tab\tsep\nnewline\rcr", 1, {"tab", "sep", "newline", "cr"}, 4, NULL},
    {"tab\tsep\nnewline\rcr", 2, {"tab", "sep", "newline", "cr"}, 4, NULL},
    {"tab\tsep\nnewline\rcr", 3, {"tab", "sep", "newline", "cr"}, 4, NULL},
    {"echo \"Hello World\"", 0, {"echo", "Hello World"}, 2, NULL},
    {"echo \"Hello World\"", 1, {"echo", "Hello World"}, 2, NULL},
    {"echo \"Hello World\"", 2, {"echo", "\"Hello World\""}, 2, NULL},
    {"echo \"Hello World\"", 3, {"echo", "\"Hello World\""}, 2, NULL},
    {"'single quoted'", 0, {"single quoted"}, 1, NULL},
    {"'single quoted'", 1, {"single quoted"}, 1, NULL},
    {"'single quoted'", 2, {"'single quoted'"}, 1, NULL},
    {"'single quoted'", 3, {"'single quoted'"}, 1, NULL},
    {"\"double quoted\"", 0, {"double quoted"}, 1, NULL},
    {"\"double quoted\"", 1, {"double quoted"}, 1, NULL},
    {"\"double quoted\"", 2, {"\"double quoted\""}, 1, NULL},
    {"\"double quoted\"", 3, {"\"double quoted\""}, 1, NULL},
    {"mixed'quo'tes\"here\"", 0, {"mixedquoteshere"}, 1, NULL},
    {"mixed'quo'tes\"here\"", 1, {"mixedquoteshere"}, 1, NULL},
    {"mixed'quo'tes\"here\"", 2, {"mixed'quo'tes\"here\""}, 1, NULL},
    {"mixed'quo'tes\"here\"", 3, {"mixed'quo'tes\"here\""}, 1, NULL},
    {"foo\"bar\"baz", 0, {"foobarbaz"}, 1, NULL},
    {"foo\"bar\"baz", 1, {"foobarbaz"}, 1, NULL},
    {"foo\"bar\"baz", 2, {"foo\"bar\"baz"}, 1, NULL},
    {"foo\"bar\"baz", 3, {"foo\"bar\"baz"}, 1, NULL},
    {"''", 0, {""}, 1, NULL},
    {"''", 1, {""}, 1, NULL},
    {"''", 2, {"''"}, 1, NULL},
    {"''", 3, {"''"}, 1, NULL},
    {"\"\"", 0, {""}, 1, NULL},
    {"\"\"", 1, {""}, 1, NULL},
    {"\"\"", 2, {"\"\""}, 1, NULL},
    {"\"\"", 3, {"\"\""}, 1, NULL},
    {"a '' b", 0, {"a", "", "b"}, 3, NULL},
    {"a '' b", 1, {"a", "", "b"}, 3, NULL},
    {"a '' b", 2, {"a", "''", "b"}, 3, NULL},
    {"a '' b", 3, {"a", "''", "b"}, 3, NULL},
    {"a \"\" b", 0, {"a", "", "b"}, 3, NULL},
    {"a \"\" b", 1, {"a", "", "b"}, 3, NULL},
    {"a \"\" b", 2, {"a", "\"\"", "b"}, 3, NULL},
    {"a \"\" b", 3, {"a", "\"\"", "b"}, 3, NULL},
    {"''\"\"", 0, {""}, 1, NULL},
    {"''\"\"", 1, {""}, 1, NULL},
    {"''\"\"", 2, {"''", "\"\""}, 2, NULL},
    {"''\"\"", 3, {"''", "\"\""}, 2, NULL},
    {"x''", 0, {"x"}, 1, NULL},
    {"x''", 1, {"x"}, 1, NULL},
    {"x''", 2, {"x''"}, 1, NULL},
    {"x''", 3, {"x''"}, 1, NULL},
    {"''x", 0, {"x"}, 1, NULL},
    {"''x", 1, {"x"}, 1, NULL},
    {"''x", 2, {"''", "x"}, 2, NULL},
    {"''x", 3, {"''", "x"}, 2, NULL},
    {"back\\ slash", 0, {"back slash"}, 1, NULL},
    {"back\\ slash", 1, {"back slash"}, 1, NULL},
    {"back\\ slash", 2, {"back\\", "slash"}, 2, NULL},
    {"back\\ slash", 3, {"back\\", "slash"}, 2, NULL},
    {"\\\\", 0, {"\\"}, 1, NULL},
    {"\\\\", 1, {"\\"}, 1, NULL},
    {"\\\\", 2, {"\\\\"}, 1, NULL},
    {"\\\\", 3, {"\\\\"}, 1, NULL},
    {"\\'", 0, {"'"}, 1, NULL},
    {"\\'", 1, {"'"}, 1, NULL},
    {"\\'", 2, {"\\'"}, 1, NULL},
    {"\\'", 3, {"\\'"}, 1, NULL},
    {"\\\"", 0, {"\""}, 1, NULL},
    {"\\\"", 1, {"\""}, 1, NULL},
    {"\\\"", 2, {"\\\""}, 1, NULL},
    {"\\\"", 3, {"\\\""}, 1, NULL},
    {"'\\'", 0, {"\\"}, 1, NULL},
    {"'\\'", 1, {"\\"}, 1, NULL},
    {"'\\'", 2, {"'\\'"}, 1, NULL},
    {"'\\'", 3, {"'\\'"}, 1, NULL},
    {"\"\\\"\"", 0, {"\""}, 1, NULL},
    {"\"\\\"\"", 1, {"\""}, 1, NULL},
    {"\"\\\"\"", 2, {NULL}, -1, "No closing quotation"},
    {"\"\\\"\"", 3, {NULL}, -1, "No closing quotation"},
    {"\"\\\\\"", 0, {"\\"}, 1, NULL},
    {"\"\\\\\"", 1, {"\\"}, 1, NULL},
    {"\"\\\\\"", 2, {"\"\\\\\""}, 1, NULL},
    {"\"\\\\\"", 3, {"\"\\\\\""}, 1, NULL},
    {"\"\\a\"", 0, {"\\a"}, 1, NULL},
    {"\"\\a\"", 1, {"\\a"}, 1, NULL},
    {"\"\\a\"", 2, {"\"\\a\""}, 1, NULL},
    {"\"\\a\"", 3, {"\"\\a\""}, 1, NULL},
    {"\"\\$HOME\"", 0, {"\\$HOME"}, 1, NULL},
    {"\"\\$HOME\"", 1, {"\\$HOME"}, 1, NULL},
    {"\"\\$HOME\"", 2, {"\"\\$HOME\""}, 1, NULL},
    {"\"\\$HOME\"", 3, {"\"\\$HOME\""}, 1, NULL},
    {"'It'\"'\"'s'", 0, {"It's"}, 1, NULL},
    {"'It'\"'\"'s'", 1, {"It's"}, 1, NULL},
    {"'It'\"'\"'s'", 2, {"'It'", "\"'\"", "'s'"}, 3, NULL},
    {"'It'\"'\"'s'", 3, {"'It'", "\"'\"", "'s'"}, 3, NULL},
    {"don\\'t", 0, {"don't"}, 1, NULL},
    {"don\\'t", 1, {"don't"}, 1, NULL},
    {"don\\'t", 2, {"don\\'t"}, 1, NULL},
    {"don\\'t", 3, {"don\\'t"}, 1, NULL},
    {"\"it's\"", 0, {"it's"}, 1, NULL},
    {"\"it's\"", 1, {"it's"}, 1, NULL},
    {"\"it's\"", 2, {"\"it's\""}, 1, NULL},
    {"\"it's\"", 3, {"\"it's\""}, 1, NULL},
    {"'say \"hi\"'", 0, {"say \"hi\""}, 1, NULL},
    {"'say \"hi\"'", 1, {"say \"hi\""}, 1, NULL},
    {"'say \"hi\"'", 2, {"'say \"hi\"'"}, 1, NULL},
    {"'say \"hi\"'", 3, {"'say \"hi\"'"}, 1, NULL},
    {"a\\\nb", 0, {"a\nb"}, 1, NULL},
    {"a\\\nb", 1, {"a\nb"}, 1, NULL},
    {"a\\\nb", 2, {"a\\", "b"}, 2, NULL},
    {"a\\\nb", 3, {"a\\", "b"}, 2, NULL},
    {"\"multi\nline\"", 0, {"multi\nline"}, 1, NULL},
    {"\"multi\nline\"", 1, {"multi\nline"}, 1, NULL},
    {"\"multi\nline\"", 2, {"\"multi\nline\""}, 1, NULL},
    {"\"multi\nline\"", 3, {"\"multi\nline\""}, 1, NULL},
    {"#comment", 0, {"#comment"}, 1, NULL},
    {"#comment", 1, {NULL}, 0, NULL},
    {"#comment", 2, {"#comment"}, 1, NULL},
    {"#comment", 3, {NULL}, 0, NULL},
    {"a #comment", 0, {"a", "#comment"}, 2, NULL},
    {"a #comment", 1, {"a"}, 1, NULL},
    {"a #comment", 2, {"a", "#comment"}, 2, NULL},
    {"a #comment", 3, {"a"}, 1, NULL},
    {"a#b c", 0, {"a#b", "c"}, 2, NULL},
    {"a#b c", 1, {"a"}, 1, NULL},
    {"a#b c", 2, {"a#b", "c"}, 2, NULL},
    {"a#b c", 3, {"a"}, 1, NULL},
    {"a # b\nc d", 0, {"a", "#", "b", "c", "d"}, 5, NULL},
    {"a # b\nc d", 1, {"a", "c", "d"}, 3, NULL},
    {"a # b\nc d", 2, {"a", "#", "b", "c", "d"}, 5, NULL},
    {"a # b\nc d", 3, {"a", "c", "d"}, 3, NULL},
    {"\"#notcomment\"", 0, {"#notcomment"}, 1, NULL},
    {"\"#notcomment\"", 1, {"#notcomment"}, 1, NULL},
    {"\"#notcomment\"", 2, {"\"#notcomment\""}, 1, NULL},
    {"\"#notcomment\"", 3, {"\"#notcomment\""}, 1, NULL},
    {"x \"\"#c\ny", 0, {"x", "#c", "y"}, 3, NULL},
    {"x \"\"#c\ny", 1, {"x", "", "y"}, 3, NULL},
    {"x \"\"#c\ny", 2, {"x", "\"\"", "#c", "y"}, 4, NULL},
    {"x \"\"#c\ny", 3, {"x", "\"\"", "y"}, 3, NULL},
    {"h\303\251llo w\303\266rld", 0, {"h\303\251llo", "w\303\266rld"}, 2, NULL},
    {"h\303\251llo w\303\266rld", 1, {"h\303\251llo", "w\303\266rld"}, 2, NULL},
    {"h\303\251llo w\303\266rld", 2, {"h\303\251llo", "w\303\266rld"}, 2, NULL},
    {"h\303\251llo w\303\266rld", 3, {"h\303\251llo", "w\303\266rld"}, 2, NULL},
    {"'\346\227\245\346\234\254\350\252\236' \343\203\206\343\202\271\343\203\210",
     0,
     {"\346\227\245\346\234\254\350\252\236", "\343\203\206\343\202\271\343\203\210"},
     2,
     NULL},
    {"'\346\227\245\346\234\254\350\252\236' \343\203\206\343\202\271\343\203\210",
     1,
     {"\346\227\245\346\234\254\350\252\236", "\343\203\206\343\202\271\343\203\210"},
     2,
     NULL},
    {"'\346\227\245\346\234\254\350\252\236' \343\203\206\343\202\271\343\203\210",
     2,
     {"'\346\227\245\346\234\254\350\252\236'", "\343\203\206\343\202\271\343\203\210"},
     2,
     NULL},
    {"'\346\227\245\346\234\254\350\252\236' \343\203\206\343\202\271\343\203\210",
     3,
     {"'\346\227\245\346\234\254\350\252\236'", "\343\203\206\343\202\271\343\203\210"},
     2,
     NULL},
    {"\"\303\274n\303\257\\\"c\303\266d\303\251\"",
     0,
     {"\303\274n\303\257\"c\303\266d\303\251"},
     1,
     NULL},
    {"\"\303\274n\303\257\\\"c\303\266d\303\251\"",
     1,
     {"\303\274n\303\257\"c\303\266d\303\251"},
     1,
     NULL},
    {"\"\303\274n\303\257\\\"c\303\266d\303\251\"",
     2,
     {"\"\303\274n\303\257\\\"", "c\303\266d\303\251\""},
     2,
     NULL},
    {"\"\303\274n\303\257\\\"c\303\266d\303\251\"",
     3,
     {"\"\303\274n\303\257\\\"", "c\303\266d\303\251\""},
     2,
     NULL},
    {"emoji \360\237\230\200 \"\360\237\230\200 \360\237\230\200\"",
     0,
     {"emoji", "\360\237\230\200", "\360\237\230\200 \360\237\230\200"},
     3,
     NULL},
    {"emoji \360\237\230\200 \"\360\237\230\200 \360\237\230\200\"",
     1,
     {"emoji", "\360\237\230\200", "\360\237\230\200 \360\237\230\200"},
     3,
     NULL},
    {"emoji \360\237\230\200 \"\360\237\230\200 \360\237\230\200\"",
     2,
     {"emoji", "\360\237\230\200", "\"\360\237\230\200 \360\237\230\200\""},
     3,
     NULL},
    {"emoji \360\237\230\200 \"\360\237\230\200 \360\237\230\200\"",
     3,
     {"emoji", "\360\237\230\200", "\"\360\237\230\200 \360\237\230\200\""},
     3,
     NULL},
    {"$VAR ${x} `cmd` $(sub)", 0, {"$VAR", "${x}", "`cmd`", "$(sub)"}, 4, NULL},
    {"$VAR ${x} `cmd` $(sub)", 1, {"$VAR", "${x}", "`cmd`", "$(sub)"}, 4, NULL},
    {"$VAR ${x} `cmd` $(sub)", 2, {"$VAR", "${x}", "`cmd`", "$(sub)"}, 4, NULL},
    {"$VAR ${x} `cmd` $(sub)", 3, {"$VAR", "${x}", "`cmd`", "$(sub)"}, 4, NULL},
    {"a;b|c&d", 0, {"a;b|c&d"}, 1, NULL},
    {"a;b|c&d", 1, {"a;b|c&d"}, 1, NULL},
    {"a;b|c&d", 2, {"a;b|c&d"}, 1, NULL},
    {"a;b|c&d", 3, {"a;b|c&d"}, 1, NULL},
    {"semi; colon", 0, {"semi;", "colon"}, 2, NULL},
    {"semi; colon", 1, {"semi;", "colon"}, 2, NULL},
    {"semi; colon", 2, {"semi;", "colon"}, 2, NULL},
    {"semi; colon", 3, {"semi;", "colon"}, 2, NULL},
    {"-o --opt=val", 0, {"-o", "--opt=val"}, 2, NULL},
    {"-o --opt=val", 1, {"-o", "--opt=val"}, 2, NULL},
    {"-o --opt=val", 2, {"-o", "--opt=val"}, 2, NULL},
    {"-o --opt=val", 3, {"-o", "--opt=val"}, 2, NULL},
    {"=", 0, {"="}, 1, NULL},
    {"=", 1, {"="}, 1, NULL},
    {"=", 2, {"="}, 1, NULL},
    {"=", 3, {"="}, 1, NULL},
    {"\\ ", 0, {" "}, 1, NULL},
    {"\\ ", 1, {" "}, 1, NULL},
    {"\\ ", 2, {"\\"}, 1, NULL},
    {"\\ ", 3, {"\\"}, 1, NULL},
    {"\\\t", 0, {"\t"}, 1, NULL},
    {"\\\t", 1, {"\t"}, 1, NULL},
    {"\\\t", 2, {"\\"}, 1, NULL},
    {"\\\t", 3, {"\\"}, 1, NULL},
    {"'a b'c\"d e\"f", 0, {"a bcd ef"}, 1, NULL},
    {"'a b'c\"d e\"f", 1, {"a bcd ef"}, 1, NULL},
    {"'a b'c\"d e\"f", 2, {"'a b'", "c\"d", "e\"f"}, 3, NULL},
    {"'a b'c\"d e\"f", 3, {"'a b'", "c\"d", "e\"f"}, 3, NULL},
    {"\"a'b\" 'c\"d'", 0, {"a'b", "c\"d"}, 2, NULL},
    {"\"a'b\" 'c\"d'", 1, {"a'b", "c\"d"}, 2, NULL},
    {"\"a'b\" 'c\"d'", 2, {"\"a'b\"", "'c\"d'"}, 2, NULL},
    {"\"a'b\" 'c\"d'", 3, {"\"a'b\"", "'c\"d'"}, 2, NULL},
    {"\"\\\n\"", 0, {"\\\n"}, 1, NULL},
    {"\"\\\n\"", 1, {"\\\n"}, 1, NULL},
    {"\"\\\n\"", 2, {"\"\\\n\""}, 1, NULL},
    {"\"\\\n\"", 3, {"\"\\\n\""}, 1, NULL},
    {"a\\ b\\ c", 0, {"a b c"}, 1, NULL},
    {"a\\ b\\ c", 1, {"a b c"}, 1, NULL},
    {"a\\ b\\ c", 2, {"a\\", "b\\", "c"}, 3, NULL},
    {"a\\ b\\ c", 3, {"a\\", "b\\", "c"}, 3, NULL},
    {"'\\\\'", 0, {"\\\\"}, 1, NULL},
    {"'\\\\'", 1, {"\\\\"}, 1, NULL},
    {"'\\\\'", 2, {"'\\\\'"}, 1, NULL},
    {"'\\\\'", 3, {"'\\\\'"}, 1, NULL},
    {"\"\\'\"", 0, {"\\'"}, 1, NULL},
    {"\"\\'\"", 1, {"\\'"}, 1, NULL},
    {"\"\\'\"", 2, {"\"\\'\""}, 1, NULL},
    {"\"\\'\"", 3, {"\"\\'\""}, 1, NULL},
    {"   \"\"   ", 0, {""}, 1, NULL},
    {"   \"\"   ", 1, {""}, 1, NULL},
    {"   \"\"   ", 2, {"\"\""}, 1, NULL},
    {"   \"\"   ", 3, {"\"\""}, 1, NULL},
    {"x \\# y", 0, {"x", "#", "y"}, 3, NULL},
    {"x \\# y", 1, {"x", "#", "y"}, 3, NULL},
    {"x \\# y", 2, {"x", "\\#", "y"}, 3, NULL},
    {"x \\# y", 3, {"x", "\\"}, 2, NULL},
    {"#", 0, {"#"}, 1, NULL},
    {"#", 1, {NULL}, 0, NULL},
    {"#", 2, {"#"}, 1, NULL},
    {"#", 3, {NULL}, 0, NULL},
    {"# only\n", 0, {"#", "only"}, 2, NULL},
    {"# only\n", 1, {NULL}, 0, NULL},
    {"# only\n", 2, {"#", "only"}, 2, NULL},
    {"# only\n", 3, {NULL}, 0, NULL},
    {"''#x", 0, {"#x"}, 1, NULL},
    {"''#x", 1, {""}, 1, NULL},
    {"''#x", 2, {"''", "#x"}, 2, NULL},
    {"''#x", 3, {"''"}, 1, NULL},
    {"a\\#b", 0, {"a#b"}, 1, NULL},
    {"a\\#b", 1, {"a#b"}, 1, NULL},
    {"a\\#b", 2, {"a\\#b"}, 1, NULL},
    {"a\\#b", 3, {"a\\"}, 1, NULL},
    {"a#b\nc", 0, {"a#b", "c"}, 2, NULL},
    {"a#b\nc", 1, {"a", "c"}, 2, NULL},
    {"a#b\nc", 2, {"a#b", "c"}, 2, NULL},
    {"a#b\nc", 3, {"ac"}, 1, NULL},
    {"a'b c'", 0, {"ab c"}, 1, NULL},
    {"a'b c'", 1, {"ab c"}, 1, NULL},
    {"a'b c'", 2, {"a'b", "c'"}, 2, NULL},
    {"a'b c'", 3, {"a'b", "c'"}, 2, NULL},
    {"'a'b", 0, {"ab"}, 1, NULL},
    {"'a'b", 1, {"ab"}, 1, NULL},
    {"'a'b", 2, {"'a'", "b"}, 2, NULL},
    {"'a'b", 3, {"'a'", "b"}, 2, NULL},
    {"x 'y'z", 0, {"x", "yz"}, 2, NULL},
    {"x 'y'z", 1, {"x", "yz"}, 2, NULL},
    {"x 'y'z", 2, {"x", "'y'", "z"}, 3, NULL},
    {"x 'y'z", 3, {"x", "'y'", "z"}, 3, NULL},
    {"\"a b\"\"c\"", 0, {"a bc"}, 1, NULL},
    {"\"a b\"\"c\"", 1, {"a bc"}, 1, NULL},
    {"\"a b\"\"c\"", 2, {"\"a b\"", "\"c\""}, 2, NULL},
    {"\"a b\"\"c\"", 3, {"\"a b\"", "\"c\""}, 2, NULL},
    {"a\\ 'b\\'", 0, {"a b\\"}, 1, NULL},
    {"a\\ 'b\\'", 1, {"a b\\"}, 1, NULL},
    {"a\\ 'b\\'", 2, {"a\\", "'b\\'"}, 2, NULL},
    {"a\\ 'b\\'", 3, {"a\\", "'b\\'"}, 2, NULL},
    {"'unclosed", 0, {NULL}, -1, "No closing quotation"},
    {"'unclosed", 1, {NULL}, -1, "No closing quotation"},
    {"'unclosed", 2, {NULL}, -1, "No closing quotation"},
    {"'unclosed", 3, {NULL}, -1, "No closing quotation"},
    {"\"unclosed", 0, {NULL}, -1, "No closing quotation"},
    {"\"unclosed", 1, {NULL}, -1, "No closing quotation"},
    {"\"unclosed", 2, {NULL}, -1, "No closing quotation"},
    {"\"unclosed", 3, {NULL}, -1, "No closing quotation"},
    {"trailing\\", 0, {NULL}, -1, "No escaped character"},
    {"trailing\\", 1, {NULL}, -1, "No escaped character"},
    {"trailing\\", 2, {"trailing\\"}, 1, NULL},
    {"trailing\\", 3, {"trailing\\"}, 1, NULL},
    {"\"in dq \\", 0, {NULL}, -1, "No escaped character"},
    {"\"in dq \\", 1, {NULL}, -1, "No escaped character"},
    {"\"in dq \\", 2, {NULL}, -1, "No closing quotation"},
    {"\"in dq \\", 3, {NULL}, -1, "No closing quotation"},
    {"a 'b", 0, {NULL}, -1, "No closing quotation"},
    {"a 'b", 1, {NULL}, -1, "No closing quotation"},
    {"a 'b", 2, {NULL}, -1, "No closing quotation"},
    {"a 'b", 3, {NULL}, -1, "No closing quotation"},
    {"ok \"", 0, {NULL}, -1, "No closing quotation"},
    {"ok \"", 1, {NULL}, -1, "No closing quotation"},
    {"ok \"", 2, {NULL}, -1, "No closing quotation"},
    {"ok \"", 3, {NULL}, -1, "No closing quotation"},
    {"\\", 0, {NULL}, -1, "No escaped character"},
    {"\\", 1, {NULL}, -1, "No escaped character"},
    {"\\", 2, {"\\"}, 1, NULL},
    {"\\", 3, {"\\"}, 1, NULL},
};

struct quote_case {
    const char *input, *quoted;
};

static const struct quote_case quote_cases[] = {
    {"", "''"},
    {"abc", "abc"},
    {"a b", "'a b'"},
    {"it's", "'it'\"'\"'s'"},
    {"safe@%+=:,./-_09", "safe@%+=:,./-_09"},
    {"\303\274n\303\257", "'\303\274n\303\257'"},
    {"$x", "'$x'"},
    {"a\"b", "'a\"b'"},
    {"\n", "'\n'"},
    {"'", "''\"'\"''"},
    {"--flag=1", "--flag=1"},
    {"*", "'*'"},
};

static void check_split(const struct split_case *c)
{
    char **argv = (char **)1;
    const char *why = "unset";
    int n = mp_shlex_split(c->input, c->flags, &argv, &why);
    if (c->n < 0) {
        if (n != MP_EINVAL || argv != NULL || why == NULL || strcmp(why, c->error) != 0)
            th_fail(__FILE__, __LINE__,
                    "split(\"%s\", flags=%d): expected ValueError(%s), got %d (%s)", c->input,
                    c->flags, c->error, n, why ? why : "(null)");
        return;
    }
    if (n != c->n)
        th_fail(__FILE__, __LINE__, "split(\"%s\", flags=%d): expected %d words, got %d", c->input,
                c->flags, c->n, n);
    CHECK(why == NULL);
    for (int i = 0; i < n; i++)
        if (strcmp(argv[i], c->words[i]) != 0)
            th_fail(__FILE__, __LINE__,
                    "split(\"%s\", flags=%d): word %d: expected \"%s\", got \"%s\"", c->input,
                    c->flags, i, c->words[i], argv[i]);
    CHECK(argv[n] == NULL);
    free(argv);
}

TEST(split_matches_python_on_the_corpus)
{
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
        if (split_cases[i].n >= 0 && !(split_cases[i].flags & MP_SHLEX_NON_POSIX))
            check_split(&split_cases[i]);
}

TEST(split_non_posix_matches_python_on_the_corpus)
{
    int n = 0;
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
        if (split_cases[i].n >= 0 && (split_cases[i].flags & MP_SHLEX_NON_POSIX)) {
            check_split(&split_cases[i]);
            n++;
        }
    CHECK(n >= 100);
}

TEST(split_reports_python_errors_for_unclosed_quotes_and_trailing_escapes)
{
    int errors = 0;
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
        if (split_cases[i].n < 0) {
            check_split(&split_cases[i]);
            errors++;
        }
    CHECK(errors >= 10);
}

TEST(split_of_the_docs_example)
{
    char **argv;
    CHECK_EQ(2, mp_shlex_split("echo \"Hello World\"", 0, &argv, NULL));
    CHECK_STR("echo", argv[0]);
    CHECK_STR("Hello World", argv[1]);
    CHECK(argv[2] == NULL);
    free(argv);
}

TEST(split_comments_only_with_the_flag)
{
    char **argv;
    CHECK_EQ(3, mp_shlex_split("a #b c", 0, &argv, NULL));
    CHECK_STR("#b", argv[1]);
    free(argv);
    CHECK_EQ(1, mp_shlex_split("a #b c", MP_SHLEX_COMMENTS, &argv, NULL));
    CHECK_STR("a", argv[0]);
    free(argv);
}

TEST(split_bad_arguments_are_einval)
{
    char **argv = (char **)1;
    CHECK_RC(MP_EINVAL, mp_shlex_split(NULL, 0, &argv, NULL));
    CHECK(argv == NULL);
    CHECK_RC(MP_EINVAL, mp_shlex_split("a", 0, NULL, NULL));
    CHECK_RC(MP_EINVAL, mp_shlex_split("a", 8, &argv, NULL));
    CHECK_RC(MP_EINVAL, mp_shlex_split("'a", 0, &argv, NULL)); /* why may be NULL */
}

TEST(quote_matches_python)
{
    for (size_t i = 0; i < sizeof quote_cases / sizeof quote_cases[0]; i++) {
        char *q = NULL;
        CHECK_OK(mp_shlex_quote(quote_cases[i].input, &q));
        CHECK_STR(quote_cases[i].quoted, q);
        free(q);
    }
    char *q = (char *)1;
    CHECK_RC(MP_EINVAL, mp_shlex_quote(NULL, &q));
    CHECK(q == NULL);
}

TEST(join_matches_python)
{
    const char *argv[] = {"echo", "Hello World", "it's", "", "x", NULL};
    char *j;
    CHECK_OK(mp_shlex_join(argv, &j));
    CHECK_STR("echo 'Hello World' 'it'\"'\"'s' '' x", j);
    free(j);
    const char *none[] = {NULL};
    CHECK_OK(mp_shlex_join(none, &j));
    CHECK_STR("", j);
    free(j);
    CHECK_RC(MP_EINVAL, mp_shlex_join(NULL, &j));
}

TEST(quote_then_split_round_trips)
{
    const char *words[] = {"",          "a b",       "it's", "\"dq\"", "back\\slash",
                           "tab\there", "new\nline", "ünï",  "$(x)",   NULL};
    char *line;
    CHECK_OK(mp_shlex_join(words, &line));
    char **argv;
    CHECK_EQ(9, mp_shlex_split(line, 0, &argv, NULL));
    for (int i = 0; i < 9; i++)
        CHECK_STR(words[i], argv[i]);
    free(argv);
    free(line);
}

/* Runs python3's shlex.split on s; returns its words, each followed by '\x01',
 * or "E:<message>" for a ValueError; NULL when python3 cannot be run. */
/* One python3 for every case (a python3 per case, twelve of them, took past the
 * test's 60 s on a loaded machine): stdin holds the cases, each a '0' or '1'
 * (comments) and the text, each ended by a NUL; stdout the answers, each ended by
 * a NUL: the words, each ended by \x01, or "E:" and ValueError's message. NULL
 * when python3 cannot be run here. */
static char *python_split_all(const char *const *inputs, size_t *out_len)
{
    const char *code = "import shlex,sys\n"
                       "out=[]\n"
                       "for c in sys.stdin.buffer.read().split(b'\\0')[:-1]:\n"
                       " s=c[1:].decode()\n"
                       " try:\n"
                       "  w=shlex.split(s, comments=c[:1]==b'1')\n"
                       "  out.append(b''.join(x.encode()+b'\\x01' for x in w))\n"
                       " except ValueError as e:\n"
                       "  out.append(b'E:'+str(e).encode())\n"
                       "sys.stdout.buffer.write(b''.join(o+b'\\0' for o in out))\n";
    size_t n = 0;
    for (int i = 0; inputs[i] != NULL; i++)
        n += 2 * (strlen(inputs[i]) + 2);
    char *in = malloc(n + 1), *at = in;
    CHECK(in != NULL);
    for (int i = 0; inputs[i] != NULL; i++)
        for (int comments = 0; comments < 2; comments++)
            at += sprintf(at, "%c%s", comments ? '1' : '0', inputs[i]) + 1;
    const char *argv[] = {"python3", "-c", code, NULL};
    mp_completed_process r;
    int rc = mp_run(
        &r, argv,
        &(mp_run_options){.input = in, .input_len = (size_t)(at - in), .capture_output = true});
    free(in);
    if (rc == MP_ENOENT)
        return NULL;
    CHECK_OK(rc);
    if (r.returncode != 0)
        th_fail(__FILE__, __LINE__, "python3 exited %d: %s", r.returncode,
                r.stderr_data ? r.stderr_data : "");
    char *res = r.stdout_data;
    *out_len = r.stdout_len;
    r.stdout_data = NULL;
    mp_completed_process_free(&r);
    return res;
}

TEST(split_matches_a_live_python3)
{
    const char *inputs[] = {
        "a 'b c' \"d\\\"e\" f\\ g", "x#y # z\nw", "''\"\"'' \"a\\\\b\"", "tail\\", "q'",
        "ünï \"cödé 😀\"",           NULL};
    size_t all_len = 0;
    char *all = python_split_all(inputs, &all_len);
    if (all == NULL)
        SKIP("python3 is not on PATH; the corpus tests still run");
    const char *want = all;
    for (int i = 0; inputs[i] != NULL; i++)
        for (int comments = 0; comments < 2; comments++) {
            CHECK(want < all + all_len); /* an answer for every case */
            char **argv;
            const char *why = NULL;
            int n = mp_shlex_split(inputs[i], comments ? MP_SHLEX_COMMENTS : 0, &argv, &why);
            char got[1024] = "";
            if (n < 0) {
                snprintf(got, sizeof got, "E:%s", why);
            } else {
                for (int k = 0; k < n; k++) {
                    strncat(got, argv[k], sizeof got - strlen(got) - 2);
                    strcat(got, "\x01");
                }
                free(argv);
            }
            CHECK_STR(want, got);
            want += strlen(want) + 1;
        }
    CHECK(want == all + all_len);
    free(all);
}

TEST(split_corner_cases_match_python)
{
    char **argv;
    /* In double quotes a backslash escapes only \ and " (not $, ` or a newline as
     * a shell would): Python keeps the backslash before the others. */
    CHECK_EQ(1, mp_shlex_split("\"a\\$b\\`c\\\nd\\\\e\\\"f\"", 0, &argv, NULL));
    CHECK_STR("a\\$b\\`c\\\nd\\e\"f", argv[0]);
    free(argv);
    /* No punctuation splitting: operators stay inside words. */
    CHECK_EQ(1, mp_shlex_split("a;b|c&&(d)>e", 0, &argv, NULL));
    CHECK_STR("a;b|c&&(d)>e", argv[0]);
    free(argv);
    /* A comment right after a word ends the word and the line. */
    CHECK_EQ(1, mp_shlex_split("a#b c", MP_SHLEX_COMMENTS, &argv, NULL));
    CHECK_STR("a", argv[0]);
    free(argv);
    CHECK_EQ(2, mp_shlex_split("a#b c\nd", MP_SHLEX_COMMENTS, &argv, NULL));
    CHECK_STR("a", argv[0]);
    CHECK_STR("d", argv[1]);
    free(argv);
    CHECK_EQ(1, mp_shlex_split("\"x\"#y z", MP_SHLEX_COMMENTS, &argv, NULL));
    CHECK_STR("x", argv[0]);
    free(argv);
    /* Empty quoted words survive a comment between them. */
    CHECK_EQ(2, mp_shlex_split("''#c\n''", MP_SHLEX_COMMENTS, &argv, NULL));
    CHECK_STR("", argv[0]);
    CHECK_STR("", argv[1]);
    CHECK(argv[2] == NULL);
    free(argv);
}

TEST(quote_of_empty_safe_and_unsafe_strings)
{
    const char *cases[][2] = {
        {"", "''"},     {"abc-_@%+=:,./", "abc-_@%+=:,./"}, {"a b", "'a b'"}, {"'", "''\"'\"''"},
        {"a!", "'a!'"}, {"\xc3\xa9", "'\xc3\xa9'"}, /* non-ASCII is not safe (re.ASCII) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = NULL;
        CHECK_OK(mp_shlex_quote(cases[i][0], &q));
        CHECK_STR(cases[i][1], q);
        free(q);
    }
}

/* A string of INT_MAX + 1 'a's without 2 GiB of memory: one 1 MiB page-cache
 * chunk of 'a's mapped again and again, then a zero page. (A memset of 2 GiB
 * took 12 s on a quiet machine and past the test's 60 s on a loaded one.) */
TEST(split_refuses_input_longer_than_int_max)
{
    size_t len = (size_t)INT_MAX + 1, chunk = (size_t)1 << 20, page = 4096;
    CHECK(len % chunk == 0);
    int fd = memfd_create("shlex-a", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)chunk) == 0);
    char *a = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(a != MAP_FAILED);
    memset(a, 'a', chunk);
    munmap(a, chunk);
    char *s = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(s != MAP_FAILED);
    for (size_t off = 0; off < len; off += chunk)
        CHECK(mmap(s + off, chunk, PROT_READ, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0) ==
              s + off);
    close(fd);
    CHECK(s[0] == 'a' && s[len - 1] == 'a' && s[len] == '\0');
    /* one word, but the count must fit the int returned */
    char **out = (char **)1;
    CHECK_RC(MP_E2BIG, mp_shlex_split(s, 0, &out, NULL));
    CHECK(out == NULL);
    munmap(s, len + page);
}
