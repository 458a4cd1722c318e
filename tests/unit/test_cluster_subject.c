/*
 * test_cluster_subject.c - the MQTT topic <-> NATS subject mapping of the
 * cluster (broker/cluster_subject.c): the documented forms, the round trip
 * of every topic form, what cannot be mapped, and the '#' parent level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_subject.h"

static char out[CLUSTER_SUBJECT_MAX];

static const char *topic_subject(const char *topic, bool filter)
{
    long n = cluster_subject_from_topic("petrel", topic, strlen(topic), filter, out, sizeof out);
    return n < 0 ? NULL : out;
}

static void test_documented_forms(void **state)
{
    (void)state;
    /* The same forms as nats-server's MQTT support, under the prefix. */
    assert_string_equal(topic_subject("a/b", false), "petrel.a.b");
    assert_string_equal(topic_subject("foo.bar", false), "petrel.foo//bar");
    assert_string_equal(topic_subject("/foo", false), "petrel./.foo");
    assert_string_equal(topic_subject("foo//bar", false), "petrel.foo./.bar");
    assert_string_equal(topic_subject("foo/", false), "petrel.foo./");
    assert_string_equal(topic_subject("/", false), "petrel././");
    assert_string_equal(topic_subject("$SYS/x", false), "petrel.$SYS.x");
    assert_string_equal(topic_subject("a/+/c", true), "petrel.a.*.c");
    assert_string_equal(topic_subject("a/#", true), "petrel.a.>");
    assert_string_equal(topic_subject("#", true), "petrel.>");
    assert_string_equal(topic_subject("+", true), "petrel.*");
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *topics[] = {
        "a", "a/b/c", "a.b", "a./b", "a/.b", ".", "./", "/.", "..", "a..b",
        "/", "//", "///", "/a", "a/", "a//", "//a", "a//b", "a///b/",
        "$SYS/broker/x", "$foo", "sensors/room-1",
        "ü/日本/€", "a/b/c/d/e/f/g/h/i/j/k", "x.y.z/w", "a/./b", "a/../b",
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        const char *t = topics[i];
        long n = cluster_subject_from_topic("petrel", t, strlen(t), false, out, sizeof out);
        assert_true(n > 0);
        assert_int_equal((size_t)n, strlen(out));
        /* Levels in the subject: a '/' is never alone, so a NATS token is
         * never empty. */
        assert_null(strstr(out, ".."));
        assert_true(out[strlen(out) - 1] != '.');
        char back[512];
        long m = cluster_topic_from_subject("petrel", out, (size_t)n, back, sizeof back);
        assert_true(m > 0);
        assert_string_equal(back, t);
    }
}

static void test_distinct_topics_distinct_subjects(void **state)
{
    (void)state;
    const char *topics[] = {"a/b", "a.b", "a//b", "a/./b", "a/b/", "/a/b", "a/b//"};
    char seen[7][64];
    for (size_t i = 0; i < 7; i++) {
        assert_non_null(topic_subject(topics[i], false));
        assert_true(strlen(out) < sizeof seen[i]);
        memcpy(seen[i], out, strlen(out) + 1);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

static void test_unmappable(void **state)
{
    (void)state;
    assert_null(topic_subject("a b", false));
    assert_null(topic_subject("a\tb", false));
    assert_null(topic_subject("a\nb", false));
    assert_null(topic_subject("a\rb", false));
    assert_null(topic_subject("a\x7f", false));
    assert_null(topic_subject("", false));
    /* Wildcards in a topic name. */
    assert_null(topic_subject("a/+", false));
    assert_null(topic_subject("a/#", false));
    /* Too small a buffer fails rather than truncates. */
    char small[10];
    assert_int_equal(cluster_subject_from_topic("petrel", "abcdef", 6, false, small, sizeof small),
                     -1);
    assert_int_equal(cluster_subject_from_topic("petrel", "ab", 2, false, small, sizeof small), 9);
    assert_string_equal(small, "petrel.ab");
}

static void test_subject_to_topic_refuses(void **state)
{
    (void)state;
    char t[64];
    /* Not under the prefix, the prefix alone, wildcards. */
    assert_int_equal(cluster_topic_from_subject("petrel", "other.a", 7, t, sizeof t), -1);
    assert_int_equal(cluster_topic_from_subject("petrel", "petrelx.a", 9, t, sizeof t), -1);
    assert_int_equal(cluster_topic_from_subject("petrel", "petrel.", 7, t, sizeof t), -1);
    assert_int_equal(cluster_topic_from_subject("petrel", "petrel", 6, t, sizeof t), -1);
    assert_int_equal(cluster_topic_from_subject("petrel", "petrel.a.*", 10, t, sizeof t), -1);
    assert_int_equal(cluster_topic_from_subject("petrel", "petrel.>", 8, t, sizeof t), -1);
    /* A native NATS subject maps to a topic. */
    assert_int_equal(cluster_topic_from_subject("petrel", "petrel.sensors.t1", 17, t, sizeof t),
                     10);
    assert_string_equal(t, "sensors/t1");
}

static void test_hash_parent(void **state)
{
    (void)state;
    char p[64];
    assert_int_equal(cluster_subject_parent("petrel", "a/#", 3, p, sizeof p), 8);
    assert_string_equal(p, "petrel.a");
    assert_true(cluster_subject_parent("petrel", "a/+/#", 5, p, sizeof p) > 0);
    assert_string_equal(p, "petrel.a.*");
    assert_int_equal(cluster_subject_parent("petrel", "#", 1, p, sizeof p), 0);
    assert_int_equal(cluster_subject_parent("petrel", "a/b", 3, p, sizeof p), 0);
    /* "/#": its parent is the empty topic, which no message has. */
    assert_int_equal(cluster_subject_parent("petrel", "/#", 2, p, sizeof p), 0);
}

static void test_tokens(void **state)
{
    (void)state;
    assert_true(cluster_token_valid("petrel"));
    assert_true(cluster_token_valid("node-1_a"));
    assert_false(cluster_token_valid(""));
    assert_false(cluster_token_valid("a.b"));
    assert_false(cluster_token_valid("a*"));
    assert_false(cluster_token_valid("a>"));
    assert_false(cluster_token_valid("a b"));
    char long_name[70];
    memset(long_name, 'x', 65);
    long_name[65] = 0;
    assert_false(cluster_token_valid(long_name));
    long_name[64] = 0;
    assert_true(cluster_token_valid(long_name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_forms),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_distinct_topics_distinct_subjects),
        cmocka_unit_test(test_unmappable),
        cmocka_unit_test(test_subject_to_topic_refuses),
        cmocka_unit_test(test_hash_parent),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
