/*
 * test_log_escape.c - the one escaper for network strings in log lines:
 * nothing a client sends can end a line, start an escape sequence or
 * imitate the quoting of a log line, and long strings are cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

static void test_plain_is_unchanged(void **state)
{
    (void)state;
    const char *s = "sensors/room-1/temp \xc3\xa9";
    assert_false(log_escape_needed(s, strlen(s)));
    assert_string_equal(log_str0(s), s);
}

static void test_controls_are_escaped(void **state)
{
    (void)state;
    const char s[] = "a\nb\rc\x1b[31md\x7f\\e'f";
    assert_true(log_escape_needed(s, sizeof s - 1));
    assert_string_equal(log_str(s, sizeof s - 1),
                        "a\\x0ab\\x0dc\\x1b[31md\\x7f\\x5ce\\x27f");
    /* C1 controls in UTF-8 (CSI is U+009B); other 2-byte characters stay */
    assert_string_equal(log_str0("x\xc2\x9b" "2J\xc2\xa0y"), "x\\u009b2J\xc2\xa0y");
}

static void test_nul_inside(void **state)
{
    (void)state;
    const char s[] = {'a', '\0', 'b'};
    assert_string_equal(log_str(s, 3), "a\\x00b");
}

static void test_long_is_cut(void **state)
{
    (void)state;
    size_t n = LOG_STR_MAX * 3;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, '\n', n);
    const char *e = log_str(s, n);
    assert_int_equal(strlen(e), LOG_STR_MAX * 4 + 3);
    assert_null(strchr(e, '\n'));
    assert_string_equal(e + strlen(e) - 3, "...");
    char *d = log_escape_dup(s, n);
    assert_string_equal(d, e);
    free(d);
    /* a small buffer is never overrun and stays terminated */
    char small[10];
    size_t w = log_escape(small, sizeof small, s, n);
    assert_true(w < sizeof small);
    assert_int_equal(strlen(small), w);
    free(s);
}

static void test_slots_last_one_line(void **state)
{
    (void)state;
    const char *p[LOG_STR_SLOTS];
    char in[LOG_STR_SLOTS][8];
    for (int i = 0; i < LOG_STR_SLOTS; i++) {
        snprintf(in[i], sizeof in[i], "t%d\n", i);
        p[i] = log_str0(in[i]);
    }
    for (int i = 0; i < LOG_STR_SLOTS; i++) {
        char want[16];
        snprintf(want, sizeof want, "t%d\\x0a", i);
        assert_string_equal(p[i], want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_is_unchanged),
        cmocka_unit_test(test_controls_are_escaped),
        cmocka_unit_test(test_nul_inside),
        cmocka_unit_test(test_long_is_cut),
        cmocka_unit_test(test_slots_last_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
