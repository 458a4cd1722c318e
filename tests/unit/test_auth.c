/*
 * test_auth.c - unit tests of the password hashes (format, salt, constant
 * verification, malformed input) and of the password file loader (good
 * files, every error with its line number, all-or-nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "password_hash.h"
#include "temp_file.h"

/* The minimum keeps the tests fast; the format is the same. */
#define FAST PW_HASH_MIN_ITERATIONS

static char *write_text(const char *text)
{
    return temp_file("auth", text, strlen(text));
}

static void make(const char *pw, char *out)
{
    assert_int_equal(pw_hash_make(pw, strlen(pw), FAST, out, PW_HASH_MAX_LEN), 0);
}

/* ---- hashes ---------------------------------------------------------------- */

static void test_hash_round_trip(void **state)
{
    (void)state;
    char h[PW_HASH_MAX_LEN];
    make("correct horse", h);
    assert_true(strncmp(h, "$pbkdf2-sha512$1000$", 20) == 0);
    assert_int_equal(pw_hash_parse_check(h, NULL, 0), 0);
    assert_int_equal(pw_hash_verify(h, "correct horse", 13), 1);
    assert_int_equal(pw_hash_verify(h, "correct horsE", 13), 0);
    assert_int_equal(pw_hash_verify(h, "correct hors", 12), 0);
    assert_int_equal(pw_hash_verify(h, "", 0), 0);
    /* the password is nowhere in the hash */
    assert_null(strstr(h, "correct"));

    /* MQTT passwords are binary: NUL bytes and all.  (As with any HMAC
     * key, trailing NUL bytes do not count: "x" and "x\0" are one.) */
    static const unsigned char bin[] = {0, 1, 0, 0xff, 7};
    static const unsigned char bin2[] = {0, 1, 1, 0xff, 7};
    assert_int_equal(pw_hash_make(bin, sizeof bin, FAST, h, sizeof h), 0);
    assert_int_equal(pw_hash_verify(h, bin, sizeof bin), 1);
    assert_int_equal(pw_hash_verify(h, bin2, sizeof bin2), 0);
    assert_int_equal(pw_hash_verify(h, bin, sizeof bin - 1), 0);

    /* the empty password is a password */
    assert_int_equal(pw_hash_make("", 0, FAST, h, sizeof h), 0);
    assert_int_equal(pw_hash_verify(h, "", 0), 1);
    assert_int_equal(pw_hash_verify(h, "x", 1), 0);
}

static void test_hash_salted(void **state)
{
    (void)state;
    char a[PW_HASH_MAX_LEN], b[PW_HASH_MAX_LEN];
    make("same", a);
    make("same", b);
    assert_string_not_equal(a, b); /* a fresh salt each time */
    assert_int_equal(pw_hash_verify(a, "same", 4), 1);
    assert_int_equal(pw_hash_verify(b, "same", 4), 1);
}

static void test_hash_iterations(void **state)
{
    (void)state;
    char h[PW_HASH_MAX_LEN];
    assert_int_equal(pw_hash_make("x", 1, PW_HASH_MIN_ITERATIONS - 1, h, sizeof h), -1);
    assert_int_equal(pw_hash_make("x", 1, PW_HASH_MAX_ITERATIONS + 1, h, sizeof h), -1);
    assert_int_equal(pw_hash_make("x", 1, FAST, h, 20), -1); /* no room */
    assert_int_equal(pw_hash_make("x", 1, 4321, h, sizeof h), 0);
    assert_true(strncmp(h, "$pbkdf2-sha512$4321$", 20) == 0);
    assert_int_equal(pw_hash_verify(h, "x", 1), 1);
    /* the count is part of the hash: changing it breaks the match */
    char other[PW_HASH_MAX_LEN];
    snprintf(other, sizeof other, "$pbkdf2-sha512$4322$%s", h + 20);
    assert_int_equal(pw_hash_verify(other, "x", 1), 0);
}

static void test_hash_malformed(void **state)
{
    (void)state;
    char h[PW_HASH_MAX_LEN];
    make("pw", h);
    const char *salt = h + strlen("$pbkdf2-sha512$1000$");
    char buf[2 * PW_HASH_MAX_LEN];
    const char *bad[] = {
        "",
        "plaintext",
        "$pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "$pbkdf2-sha512$$x$y",
        "$pbkdf2-sha512$999$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",   /* too few rounds */
        "$pbkdf2-sha512$01000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", /* leading zero */
        "$pbkdf2-sha512$-1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "$pbkdf2-sha512$1000",
        "$pbkdf2-sha512$1000$",
        "$pbkdf2-sha512$1000$AAAA$",
    };
    char why[96];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pw_hash_parse_check(bad[i], why, sizeof why) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(pw_hash_verify(bad[i], "pw", 2), -1);
    }
    /* a truncated or extended hash value, a salt of the wrong size */
    snprintf(buf, sizeof buf, "%.*s", (int)strlen(h) - 4, h);
    assert_int_equal(pw_hash_parse_check(buf, NULL, 0), -1);
    snprintf(buf, sizeof buf, "%sAAAA", h);
    assert_int_equal(pw_hash_parse_check(buf, NULL, 0), -1);
    snprintf(buf, sizeof buf, "$pbkdf2-sha512$1000$AAAA%s", salt);
    assert_int_equal(pw_hash_parse_check(buf, NULL, 0), -1);
    /* a character outside base64, padding in the middle */
    snprintf(buf, sizeof buf, "%s", h);
    buf[strlen(buf) - 5] = '*';
    assert_int_equal(pw_hash_parse_check(buf, why, sizeof why), -1);
    assert_string_equal(why, "bad hash value");
    snprintf(buf, sizeof buf, "%s", h);
    buf[strlen(buf) - 10] = '=';
    assert_int_equal(pw_hash_parse_check(buf, NULL, 0), -1);
}

/* ---- the password file ------------------------------------------------------ */

static void test_file_good(void **state)
{
    (void)state;
    char a[PW_HASH_MAX_LEN], b[PW_HASH_MAX_LEN], text[1024];
    make("alpha", a);
    make("beta", b);
    snprintf(text, sizeof text,
             "# users\n"
             "\n"
             "alice:%s\n"
             "  \t\n"
             "bob smith:%s\r\n"  /* blanks in names, CRLF */
             "u:%s",             /* no final newline */
             a, b, a);
    struct auth_table *t;
    LOAD_OK(t, auth_table_load, "auth", text);
    assert_int_equal(auth_table_count(t), 3);
    const char *h = auth_table_lookup(t, "alice", 5);
    assert_non_null(h);
    assert_int_equal(pw_hash_verify(h, "alpha", 5), 1);
    h = auth_table_lookup(t, "bob smith", 9);
    assert_non_null(h);
    assert_int_equal(pw_hash_verify(h, "beta", 4), 1);
    assert_non_null(auth_table_lookup(t, "u", 1));
    assert_null(auth_table_lookup(t, "ali", 3));
    assert_null(auth_table_lookup(t, "Alice", 5));
    assert_null(auth_table_lookup(NULL, "alice", 5));

    /* the table in force */
    auth_set(t);
    assert_ptr_equal(auth_current(), t);
    auth_set(NULL);
    assert_null(auth_current());
}

static void expect_error(const char *text, const char *suffix)
{
    EXPECT_LOAD_ERROR(auth_table_load, "auth", text, suffix);
}

static void test_file_errors(void **state)
{
    (void)state;
    char h[PW_HASH_MAX_LEN], text[1024];
    make("x", h);
    snprintf(text, sizeof text, "alice:%s\nbob\n", h);
    expect_error(text, ":2: expected 'user:hash'");
    expect_error(":nobody\n", ":1: expected 'user:hash'");
    expect_error("# c\nalice:secret\n",
                 ":2: user 'alice': not a $pbkdf2-sha512$ hash (create it with petrel passwd)");
    snprintf(text, sizeof text, "alice:%s\nalice:%s\n", h, h);
    expect_error(text, ":2: user 'alice' is listed twice");

    char err[256];
    assert_null(auth_table_load("/nonexistent/petrel-passwd", err, sizeof err));
    assert_string_equal(err, "/nonexistent/petrel-passwd: No such file or directory");
}

static void test_file_nul_byte(void **state)
{
    (void)state;
    char h[PW_HASH_MAX_LEN], text[1024];
    make("x", h);
    int n = snprintf(text, sizeof text, "alice:%s\nb", h);
    text[n] = '\0';
    text[n + 1] = 'b';
    text[n + 2] = '\n';
    char *path = write_text("");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(text, 1, (size_t)n + 3, f);
    fclose(f);
    char err[256];
    assert_null(auth_table_load(path, err, sizeof err));
    assert_non_null(strstr(err, ":2: line contains a NUL byte"));
    temp_file_remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_round_trip),
        cmocka_unit_test(test_hash_salted),
        cmocka_unit_test(test_hash_iterations),
        cmocka_unit_test(test_hash_malformed),
        cmocka_unit_test(test_file_good),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_nul_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
