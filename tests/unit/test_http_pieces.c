/*
 * test_http_pieces.c - the small parts of the HTTP listener that are
 * pure functions: JSON strings from hostile bytes (http_json.c), the
 * latency histogram's buckets and quantiles (histogram.c), the token file
 * and its constant-time check (http_tokens.c), and the http_listen
 * setting (config.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "config.h"
#include "histogram.h"
#include "http_json.h"
#include "http_tokens.h"

static char *json_of(const char *s, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    json_string(b, s, len);
    size_t n = evbuffer_get_length(b);
    char *out = malloc(n + 1);
    evbuffer_remove(b, out, n);
    out[n] = '\0';
    evbuffer_free(b);
    return out;
}

static void expect_json(const char *in, size_t len, const char *want)
{
    char *got = json_of(in, len);
    assert_string_equal(got, want);
    free(got);
}

static void test_json_strings(void **state)
{
    (void)state;
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    expect_json("\n\t\x01\x7f", 4, "\"\\u000a\\u0009\\u0001\\u007f\"");
    expect_json("nul\0x", 5, "\"nul\\u0000x\"");
    expect_json("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");                /* UTF-8 kept */
    expect_json("\xe2\x82\xac", 3, "\"\xe2\x82\xac\"");               /* 3 bytes */
    expect_json("\xf0\x9f\x90\xa6", 4, "\"\xf0\x9f\x90\xa6\"");       /* 4 bytes */
    expect_json("\xff", 1, "\"\\ufffd\"");                            /* never valid */
    expect_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");                  /* overlong */
    expect_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");       /* surrogate */
    expect_json("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");                  /* cut short */
    expect_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    expect_json("", 0, "\"\"");
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    struct histogram h;
    memset(&h, 0, sizeof h);
    histogram_observe_ns(&h, 0);          /* <= 1 us */
    histogram_observe_ns(&h, 1000);       /* 1 us: bucket 0 */
    histogram_observe_ns(&h, 1001);       /* just over: bucket 1 (4 us) */
    histogram_observe_ns(&h, 4000);       /* 4 us: bucket 1 */
    histogram_observe_ns(&h, 4001);       /* bucket 2 (16 us) */
    histogram_observe_ns(&h, 1000000);    /* 1 ms: bucket 5 (1.024 ms) */
    histogram_observe_ns(&h, 200ULL * 1000000000); /* 200 s: +Inf */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[5], 1);
    assert_int_equal(h.counts[HISTOGRAM_BUCKETS], 1);
    assert_int_equal(h.count, 7);
    assert_true(histogram_bound_seconds(0) == 1e-6);
    assert_true(histogram_bound_seconds(5) > 1.0e-3 && histogram_bound_seconds(5) < 1.1e-3);
    /* each observation lands in the bucket whose bound holds it */
    for (uint64_t ns = 1; ns < 100000000000ULL; ns = ns * 3 + 7) {
        struct histogram one;
        memset(&one, 0, sizeof one);
        histogram_observe_ns(&one, ns);
        size_t i = 0;
        while (i < HISTOGRAM_BUCKETS && one.counts[i] == 0)
            i++;
        double s = (double)((ns + 999) / 1000) * 1e-6;
        if (i < HISTOGRAM_BUCKETS) {
            assert_true(s <= histogram_bound_seconds(i) * 1.0000001);
            if (i > 0)
                assert_true(s > histogram_bound_seconds(i - 1));
        } else {
            assert_true(s > histogram_bound_seconds(HISTOGRAM_BUCKETS - 1));
        }
    }
}

static void test_histogram_quantiles(void **state)
{
    (void)state;
    struct histogram h;
    memset(&h, 0, sizeof h);
    assert_true(histogram_quantile_ms(&h, 0.5) == 0);
    for (int i = 0; i < 99; i++)
        histogram_observe_ns(&h, 10000); /* 10 us: bucket 2 (4..16 us) */
    histogram_observe_ns(&h, 50000000);  /* 50 ms: bucket 8 */
    double p50 = histogram_quantile_ms(&h, 0.5);
    assert_true(p50 > 0.004 && p50 <= 0.016);
    double p999 = histogram_quantile_ms(&h, 0.999);
    assert_true(p999 > 16.0 && p999 <= 66.0);
}

static char tmp_path[64];

static const char *write_file(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/petrel-tokens-XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return tmp_path;
}

static void test_tokens(void **state)
{
    (void)state;
    char err[600];
    const char *p = write_file("# tokens\n\nreader read 0123456789abcdef\n"
                               "  boss\tadmin   fedcba9876543210zz  \n");
    struct http_tokens *t = http_tokens_load(p, err, sizeof err);
    unlink(p);
    assert_non_null(t);
    assert_int_equal(http_tokens_count(t), 2);
    http_tokens_set(t);
    const char *name = NULL;
    assert_int_equal(http_tokens_check("0123456789abcdef", 16, &name), HTTP_ROLE_READ);
    assert_string_equal(name, "reader");
    assert_int_equal(http_tokens_check("fedcba9876543210zz", 18, &name), HTTP_ROLE_ADMIN);
    assert_string_equal(name, "boss");
    assert_int_equal(http_tokens_check("0123456789abcde", 15, &name), HTTP_ROLE_NONE);
    assert_int_equal(http_tokens_check("0123456789abcdef0", 17, &name), HTTP_ROLE_NONE);
    assert_int_equal(http_tokens_check("", 0, &name), HTTP_ROLE_NONE);
    char big[400];
    memset(big, 'a', sizeof big);
    assert_int_equal(http_tokens_check(big, sizeof big, &name), HTTP_ROLE_NONE);
    http_tokens_set(NULL);
    assert_int_equal(http_tokens_check("0123456789abcdef", 16, &name), HTTP_ROLE_NONE);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"a read short\n", ":1: token of a is 5 bytes"},
        {"a root 0123456789abcdef\n", ":1: role 'root'"},
        {"a read\n", ":1: expected"},
        {"a read 0123456789abcdef extra\n", ":1: expected"},
        {"a read 0123456789abcdef\na admin 0123456789abcdeX\n", ":2: name a is listed twice"},
        {"a read 0123456789abcdef\nb admin 0123456789abcdef\n", ":2: b has the same token"},
        {"bad\x01name read 0123456789abcdef\n", ":1: name"},
        {"a read 0123456789abcde\xc3\xa9\n", ":1: token of a holds a byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_file(bad[i].text);
        t = http_tokens_load(p, err, sizeof err);
        unlink(p);
        assert_null(t);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: got '%s'", bad[i].why, err);
    }
}

static void test_http_listen_setting(void **state)
{
    (void)state;
    struct config c;
    char err[CONFIG_ERR_LEN];
    config_defaults(&c);
    assert_false(c.http.enabled);
    assert_int_equal(config_set(&c, "http_listen", "127.0.0.1", err, sizeof err), 0);
    assert_true(c.http.enabled);
    assert_int_equal(c.http.port, 9883);
    assert_int_equal(c.http.anonymous, HTTP_ROLE_NONE);
    assert_int_equal(config_set(&c, "http_listen", "[::1]:0 anonymous=admin", err, sizeof err),
                     0);
    assert_string_equal(c.http.host, "::1");
    assert_int_equal(c.http.port, 0);
    assert_int_equal(c.http.anonymous, HTTP_ROLE_ADMIN);
    assert_int_equal(config_set(&c, "http_listen", "127.0.0.5:80 anonymous=read", err,
                                sizeof err), 0);
    assert_int_equal(config_set(&c, "http_listen", "0.0.0.0:80 anonymous=read", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "loopback"));
    assert_int_equal(config_set(&c, "http_listen", "10.0.0.1:80 tls certfile=a keyfile=b", err,
                                sizeof err), 0);
    assert_true(c.http.tls.enabled);
    assert_string_equal(c.http.tls.certfile, "a");
    assert_int_equal(config_set(&c, "http_listen", "127.0.0.1 keyfile=b", err, sizeof err), -1);
    assert_int_equal(config_set(&c, "http_listen", "127.0.0.1 bogus=1", err, sizeof err), -1);
    assert_int_equal(config_set(&c, "http_listen", "localhost:80", err, sizeof err), -1);
    assert_int_equal(config_set(&c, "http_listen", "127.0.0.1 use_identity_as_username=true",
                                err, sizeof err), -1);
    assert_int_equal(config_set(&c, "http_token_file", "/etc/petrel/t", err, sizeof err), 0);
    assert_string_equal(c.http_token_file, "/etc/petrel/t");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_histogram_quantiles),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_http_listen_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
