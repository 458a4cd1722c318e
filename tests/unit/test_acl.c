/*
 * test_acl.c - unit tests of the ACL: the filter algebra (match, cover,
 * intersect, with the '$' rule), the file parser and its errors, and the
 * decisions for users, anonymous clients and %c/%u patterns, including ids
 * that try to widen a pattern.
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

#include "acl.h"
#include "mqtt_codec.h"
#include "temp_file.h"

static bool m(const char *f, const char *t)
{
    return mqtt_topic_matches(f, strlen(f), t, strlen(t));
}

static bool cov(const char *outer, const char *inner)
{
    return acl_filter_covers(outer, strlen(outer), inner, strlen(inner));
}

static bool isect(const char *a, const char *b)
{
    bool r = acl_filter_intersects(a, strlen(a), b, strlen(b));
    /* symmetric by definition */
    assert_int_equal(r, acl_filter_intersects(b, strlen(b), a, strlen(a)));
    return r;
}

static void test_matches(void **state)
{
    (void)state;
    assert_true(m("a/b", "a/b"));
    assert_false(m("a/b", "a/c"));
    assert_false(m("a/b", "a/b/c"));
    assert_false(m("a/b/c", "a/b"));
    assert_true(m("a/+", "a/b"));
    assert_false(m("a/+", "a"));
    assert_false(m("a/+", "a/b/c"));
    assert_true(m("a/+", "a/"));        /* an empty level is a level */
    assert_true(m("+/+", "/x"));
    assert_true(m("a/#", "a"));         /* '#' includes the parent */
    assert_true(m("a/#", "a/b/c"));
    assert_false(m("a/#", "ab"));
    assert_true(m("#", "a/b"));
    assert_true(m("#", "/"));
    assert_true(m("+/b/#", "x/b"));
    assert_false(m("ab", "a"));
    /* '$' topics are not matched by a leading wildcard */
    assert_false(m("#", "$SYS/uptime"));
    assert_false(m("+/uptime", "$SYS/uptime"));
    assert_true(m("$SYS/#", "$SYS/uptime"));
    assert_true(m("$SYS/+", "$SYS/uptime"));
    assert_true(m("a/#", "a/$b"));
}

static void test_covers(void **state)
{
    (void)state;
    assert_true(cov("#", "a/b/#"));
    assert_true(cov("#", "+"));
    assert_true(cov("#", "#"));
    assert_true(cov("a/#", "a"));
    assert_true(cov("a/#", "a/#"));
    assert_true(cov("a/#", "a/+/c"));
    assert_true(cov("a/+", "a/b"));
    assert_true(cov("a/+", "a/+"));
    assert_true(cov("+/+", "a/+"));
    assert_true(cov("a/b", "a/b"));
    assert_false(cov("a/b", "a/+"));
    assert_false(cov("a/+", "a/#"));    /* "a/#" also matches "a" and "a/b/c" */
    assert_false(cov("a/+", "a"));
    assert_false(cov("a/+/#", "a/#"));  /* "a" is not under a/+/# */
    assert_false(cov("a/b/#", "a/#"));
    assert_false(cov("a", "a/b"));
    assert_false(cov("a/b", "a"));
    assert_false(cov("a/+", "a/b/c"));
    assert_false(cov("b/#", "a/#"));
    /* '$' */
    assert_false(cov("#", "$SYS/#"));
    assert_false(cov("+/#", "$SYS/x"));
    assert_true(cov("$SYS/#", "$SYS/broker/+"));
    assert_true(cov("#", "+/x"));       /* neither matches '$' topics */
}

static void test_intersects(void **state)
{
    (void)state;
    assert_true(isect("a/#", "a/b"));
    assert_true(isect("a/#", "a"));
    assert_true(isect("a/+", "+/b"));
    assert_true(isect("#", "x/y/z"));
    assert_true(isect("a/b", "a/b"));
    assert_true(isect("a", "a/#"));
    assert_true(isect("+/+/c", "a/#"));
    assert_false(isect("a/b", "a/c"));
    assert_false(isect("a", "a/b"));
    assert_false(isect("a/+", "a"));
    assert_false(isect("a/+", "a/b/c"));
    assert_false(isect("a/b/#", "a/c/#"));
    assert_false(isect("#", "$SYS/x"));
    assert_false(isect("+/x", "$SYS/x"));
    assert_true(isect("$SYS/#", "$SYS/x"));
}

/* ---- files ---------------------------------------------------------------- */

static struct acl_file *load(const char *text)
{
    struct acl_file *f;
    LOAD_OK(f, acl_file_load, "acl", text);
    return f;
}

static void load_bad(const char *text, const char *suffix)
{
    EXPECT_LOAD_ERROR(acl_file_load, "acl", text, suffix);
}

static void test_file_errors(void **state)
{
    (void)state;
    load_bad("topic read a\nbogus x\n",
             ":2: unknown keyword 'bogus' (expected user, topic or pattern)");
    load_bad("user\n", ":1: user: missing user name");
    load_bad("\n\ntopic\n", ":3: topic: missing topic filter");
    load_bad("pattern   \n", ":1: pattern: missing topic filter");
    load_bad("topic read a/#/b\n", ":1: 'a/#/b' is not a valid topic filter");
    load_bad("topic write a+\n", ":1: 'a+' is not a valid topic filter");
    load_bad("pattern read %c#\n", ":1: '%c#' is not a valid topic filter");
    char err[256];
    assert_null(acl_file_load("/nonexistent/petrel-acl", err, sizeof err));
    assert_string_equal(err, "/nonexistent/petrel-acl: No such file or directory");
}

/* ---- decisions ------------------------------------------------------------ */

static struct acl_client *client(const struct acl_file *f, const char *user, const char *id)
{
    struct acl_client *c =
        acl_client_compile(f, user, user ? strlen(user) : 0, id, strlen(id));
    assert_non_null(c);
    return c;
}

static bool rd(const struct acl_client *c, const char *t)
{
    return acl_client_may(c, ACL_READ, t, strlen(t));
}

static bool wr(const struct acl_client *c, const char *t)
{
    return acl_client_may(c, ACL_WRITE, t, strlen(t));
}

static bool sub(const struct acl_client *c, const char *f)
{
    return acl_client_may_subscribe(c, f, strlen(f));
}

static bool all(const struct acl_client *c, const char *f)
{
    return acl_client_covers_read(c, f, strlen(f));
}

static const char *const FILE_TEXT =
    "# anonymous clients\n"
    "topic read public/#\n"
    "topic  public/chat\n"          /* no access word: readwrite */
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic deny alice/secret/#\n"
    "topic read shared/+/status\n"
    "topic subscribe firehose/#\n"
    "topic read firehose/alice/#\n"
    "topic write log/ with blanks\n"  /* the filter is the rest of the line */
    "user bob\n"
    "topic read $SYS/#\n"
    "topic deny #\n"
    "user alice\n"                   /* sections may continue */
    "topic write outbox/alice\n"
    "pattern readwrite clients/%c/#\n"
    "pattern read users/%u/inbox\n"
    "pattern deny private/%c/%u/#\n";

static void test_user_rules(void **state)
{
    (void)state;
    struct acl_file *f = load(FILE_TEXT);
    assert_int_equal(acl_file_user_count(f), 2);
    assert_int_equal(acl_file_rule_count(f), 14);
    struct acl_client *a = client(f, "alice", "dev-1");

    assert_true(rd(a, "alice/x"));
    assert_true(wr(a, "alice/x/y"));
    assert_true(wr(a, "alice"));
    assert_false(rd(a, "alice/secret/x"));    /* deny wins */
    assert_false(wr(a, "alice/secret"));
    assert_true(rd(a, "shared/k/status"));
    assert_false(wr(a, "shared/k/status"));
    assert_true(wr(a, "outbox/alice"));        /* from the continued section */
    assert_true(wr(a, "log/ with blanks"));
    assert_false(rd(a, "public/news"));        /* anonymous rules are not alice's */
    assert_false(rd(a, "bob/x"));
    assert_false(rd(a, "$SYS/broker/uptime"));

    /* subscribe: a covering read, readwrite or subscribe rule */
    assert_true(sub(a, "alice/#"));
    assert_true(sub(a, "alice/+/z"));
    assert_true(sub(a, "shared/+/status"));
    assert_false(sub(a, "shared/#"));
    assert_false(sub(a, "alice/secret/#"));    /* wholly denied */
    assert_true(sub(a, "firehose/#"));         /* subscribe rule ... */
    assert_true(rd(a, "firehose/alice/1"));    /* ... but reads only what read allows */
    assert_false(rd(a, "firehose/bob/1"));
    assert_false(sub(a, "#"));
    assert_false(sub(a, "outbox/alice"));      /* write only */

    /* wholly readable filters need no check per message */
    assert_true(all(a, "shared/x/status"));
    assert_true(all(a, "alice/public/+"));
    assert_false(all(a, "alice/#"));           /* the deny lies inside */
    assert_false(all(a, "firehose/#"));
    assert_true(all(a, "firehose/alice/#"));
    acl_client_free(a);

    struct acl_client *b = client(f, "bob", "b");
    assert_false(rd(b, "anything"));
    assert_false(sub(b, "#"));
    assert_true(rd(b, "$SYS/broker/uptime"));  /* '#' does not match '$' topics */
    assert_true(sub(b, "$SYS/broker/#"));
    assert_true(all(b, "$SYS/#"));
    assert_false(rd(b, "users/bob/inbox"));    /* deny # wins over the pattern */
    acl_client_free(b);

    acl_file_free(f);
}

static void test_anonymous_and_unknown(void **state)
{
    (void)state;
    struct acl_file *f = load(FILE_TEXT);
    struct acl_client *anon = client(f, NULL, "x");
    assert_true(rd(anon, "public/news"));
    assert_false(wr(anon, "public/news"));
    assert_true(rd(anon, "public/chat"));
    assert_true(wr(anon, "public/chat"));
    assert_true(sub(anon, "public/#"));
    assert_false(rd(anon, "alice/x"));
    assert_false(rd(anon, "users//inbox"));    /* %u patterns skip anonymous clients */
    assert_true(wr(anon, "clients/x/y"));      /* %c patterns do not */
    acl_client_free(anon);

    /* a user with no section gets the patterns only, not the anonymous rules */
    struct acl_client *carol = client(f, "carol", "c1");
    assert_false(rd(carol, "public/news"));
    assert_true(rd(carol, "users/carol/inbox"));
    assert_false(wr(carol, "users/carol/inbox"));
    assert_false(rd(carol, "users/alice/inbox"));
    assert_true(rd(carol, "clients/c1/z"));
    assert_false(rd(carol, "clients/c2/z"));
    assert_false(rd(carol, "private/c1/carol/x")); /* deny pattern */
    assert_false(wr(carol, "private/c1/carol"));
    acl_client_free(carol);
    acl_file_free(f);
}

static void test_patterns_cannot_widen(void **state)
{
    (void)state;
    struct acl_file *f = load("pattern readwrite clients/%c/#\n"
                              "pattern read users/%u/#\n"
                              "pattern deny secret/%c/#\n"
                              "topic read open/#\n");
    /* wildcard and separator characters in ids and user names */
    const char *ids[] = {"+", "#", "a/b", "x+", "/"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct acl_client *c = client(f, NULL, ids[i]);
        assert_false(wr(c, "clients/a/x"));
        assert_false(wr(c, "clients/a/b/x"));
        assert_false(rd(c, "clients/+/x"));
        assert_false(sub(c, "clients/#"));
        /* the deny pattern that names the id denies everything */
        assert_false(rd(c, "open/x"));
        assert_false(all(c, "open/#"));
        acl_client_free(c);
    }
    struct acl_client *u = client(f, "+", "fine");
    assert_false(rd(u, "users/alice/x"));
    assert_false(sub(u, "users/#"));
    assert_true(wr(u, "clients/fine/x"));      /* %c patterns still work */
    acl_client_free(u);
    u = client(f, "a/b", "fine");
    assert_false(rd(u, "users/a/b/x"));
    acl_client_free(u);

    /* ordinary ids */
    struct acl_client *c = client(f, "ann", "dev7");
    assert_true(wr(c, "clients/dev7/x"));
    assert_true(wr(c, "clients/dev7"));
    assert_false(wr(c, "clients/dev8/x"));
    assert_true(rd(c, "users/ann/q"));
    assert_false(rd(c, "open/x"));             /* anonymous rules are not ann's */
    assert_false(rd(c, "secret/dev7/x"));
    assert_true(sub(c, "clients/dev7/#"));
    assert_true(all(c, "users/ann/#"));
    assert_false(all(c, "#"));
    acl_client_free(c);
    c = client(f, NULL, "dev7");
    assert_true(rd(c, "open/x"));
    assert_true(all(c, "open/+"));
    assert_false(all(c, "clients/#"));
    assert_false(rd(c, "secret/dev7/x"));
    assert_false(rd(c, "secret/dev8/x"));    /* no rule grants it */
    acl_client_free(c);
    acl_file_free(f);
}

static void test_empty_file_denies(void **state)
{
    (void)state;
    struct acl_file *f = load("# nothing allowed\n");
    struct acl_client *c = client(f, "u", "c");
    assert_false(rd(c, "a"));
    assert_false(wr(c, "a"));
    assert_false(sub(c, "a"));
    assert_false(all(c, "a"));
    acl_client_free(c);
    acl_file_free(f);
}

/* `share` rules: a name, a prefix with '*', patterns with %u, and names
 * that could widen a pattern grant nothing. */
static bool shr(const struct acl_client *c, const char *name)
{
    return acl_client_may_share(c, name, strlen(name));
}

static void test_share_rules(void **state)
{
    (void)state;
    struct acl_file *open_f = load("user a\ntopic read x/#\n");
    assert_false(acl_file_governs_shares(open_f));
    acl_file_free(open_f);

    struct acl_file *f = load("user alice\ntopic share ops\ntopic read x/#\n"
                              "user root\ntopic share *\n"
                              "pattern share %u-*\npattern share dev-%c\n");
    assert_true(acl_file_governs_shares(f));
    struct acl_client *alice = client(f, "alice", "c1");
    assert_true(shr(alice, "ops"));
    assert_true(shr(alice, "alice-workers"));
    assert_true(shr(alice, "alice-"));
    assert_true(shr(alice, "dev-c1"));
    assert_false(shr(alice, "op"));
    assert_false(shr(alice, "opsx"));
    assert_false(shr(alice, "bob-workers"));
    assert_false(shr(alice, "dev-c2"));
    /* a share rule grants no topic */
    assert_false(rd(alice, "ops"));
    assert_false(sub(alice, "ops"));
    assert_true(rd(alice, "x/1"));
    struct acl_client *root = client(f, "root", "r");
    assert_true(shr(root, "anything"));
    /* a user name holding '*' cannot widen "%u-*" */
    struct acl_client *star = client(f, "*", "s");
    assert_false(shr(star, "alice-workers"));
    assert_false(shr(star, "*-x"));
    struct acl_client *anon = client(f, NULL, "dev-x");
    assert_false(shr(anon, "ops"));
    acl_client_free(alice);
    acl_client_free(root);
    acl_client_free(star);
    acl_client_free(anon);
    acl_file_free(f);

    load_bad("topic share a/b\n", ":1: 'a/b' is not a share name (a name or a prefix ending "
                                 "in '*', without '/', '+', '#' or blanks)");
    load_bad("topic share a*b\n", ":1: 'a*b' is not a share name (a name or a prefix ending "
                                 "in '*', without '/', '+', '#' or blanks)");
    load_bad("pattern share %u/x\n", ":1: '%u/x' is not a share name (a name or a prefix "
                                    "ending in '*', without '/', '+', '#' or blanks)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_intersects),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_user_rules),
        cmocka_unit_test(test_anonymous_and_unknown),
        cmocka_unit_test(test_patterns_cannot_widen),
        cmocka_unit_test(test_empty_file_denies),
        cmocka_unit_test(test_share_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
