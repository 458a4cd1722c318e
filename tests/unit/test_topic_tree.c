/*
 * test_topic_tree.c - unit tests of the topic tree: MQTT matching rules,
 * subscription bookkeeping, retained messages, pruning and large shapes
 * (wide and deep trees), plus a randomized cross-check against a naive
 * reference matcher.
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

#include "topic_tree.h"

/* ---- heap accounting: proves that pruning really frees nodes ------------ */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

/* ASan counts live bytes exactly.  glibc's mallinfo2() counts chunks parked
 * in its per-thread cache as still in use, so without ASan only a leak of
 * more than HEAP_SLACK bytes is visible: enough for the large tests, where
 * unpruned nodes would weigh megabytes. */
#if defined(HAVE_ASAN)
/* from <sanitizer/allocator_interface.h>, which not every compiler ships */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }
#define HEAP_SLACK 0
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
static size_t heap_in_use(void) { return mallinfo2().uordblks; }
#define HEAP_SLACK (64 * 1024)
#else
static size_t heap_in_use(void) { return 0; }
#define HEAP_SLACK SIZE_MAX
#endif

/* The heap holds no more than it did when `base` was measured. */
#define assert_heap_back_to(base) \
    assert_true(heap_in_use() <= (base) || heap_in_use() - (base) <= HEAP_SLACK)

/* ---- helpers ------------------------------------------------------------- */

#define MAX_HITS 64

struct hit {
    void *sub;
    uint8_t opts;
};

struct hits {
    size_t n;
    size_t total; /* may exceed MAX_HITS; only the first are recorded */
    struct hit h[MAX_HITS];
};

static void on_match(void *sub, uint8_t opts, void *arg)
{
    struct hits *r = arg;
    if (r->n < MAX_HITS)
        r->h[r->n++] = (struct hit){sub, opts};
    r->total++;
}

static struct hits match(struct topic_tree *t, const char *topic)
{
    struct hits r;
    memset(&r, 0, sizeof(r));
    topic_tree_match(t, topic, strlen(topic), on_match, &r);
    return r;
}

static size_t count_sub(const struct hits *r, const void *sub)
{
    size_t c = 0;
    for (size_t i = 0; i < r->n; i++)
        c += r->h[i].sub == sub;
    return c;
}

static int sub(struct topic_tree *t, const char *filter, void *s, uint8_t opts)
{
    return topic_tree_subscribe(t, filter, strlen(filter), s, opts);
}

static int unsub(struct topic_tree *t, const char *filter, void *s)
{
    return topic_tree_unsubscribe(t, filter, strlen(filter), s);
}

/* Whether `filter` alone matches `topic`, checked through a fresh tree. */
static bool matches(const char *filter, const char *topic)
{
    static int s;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    assert_int_equal(sub(t, filter, &s, 1), 1);
    struct hits r = match(t, topic);
    topic_tree_free(t);
    assert_true(r.total <= 1);
    return r.total == 1;
}

#define MATCH(f, tp) assert_true(matches((f), (tp)))
#define NO_MATCH(f, tp) assert_false(matches((f), (tp)))

struct rhit {
    void *value;
    char topic[256];
    size_t len;
};

struct rhits {
    size_t n;
    size_t total;
    struct rhit h[MAX_HITS];
};

static void on_retained(void *value, const char *topic, size_t len, void *arg)
{
    struct rhits *r = arg;
    if (r->n < MAX_HITS) {
        struct rhit *h = &r->h[r->n++];
        h->value = value;
        h->len = len;
        memcpy(h->topic, topic, len < sizeof(h->topic) ? len : sizeof(h->topic));
    }
    r->total++;
}

static struct rhits rmatch(struct topic_tree *t, const char *filter)
{
    struct rhits r;
    memset(&r, 0, sizeof(r));
    topic_tree_match_retained(t, filter, strlen(filter), on_retained, &r);
    return r;
}

/* Whether the retained hits contain `topic` exactly once, with its value. */
static bool rhas(const struct rhits *r, const char *topic, void *value)
{
    size_t found = 0;
    size_t len = strlen(topic);
    for (size_t i = 0; i < r->n; i++)
        if (r->h[i].len == len && memcmp(r->h[i].topic, topic, len) == 0)
            found += r->h[i].value == value ? 1 : 100;
    return found == 1;
}

static void *retain(struct topic_tree *t, const char *topic, void *value)
{
    return topic_tree_set_retained(t, topic, strlen(topic), value);
}

/* ---- matching rules ------------------------------------------------------ */

static void test_exact(void **state)
{
    (void)state;
    MATCH("a", "a");
    MATCH("a/b/c", "a/b/c");
    MATCH("sport/tennis/player1", "sport/tennis/player1");
    NO_MATCH("a/b", "a");
    NO_MATCH("a", "a/b");
    NO_MATCH("a/b", "a/bc");
    NO_MATCH("a/b", "a/B");
    NO_MATCH("ab", "a/b");
    NO_MATCH("a/b/c", "a/b/d");
}

static void test_plus(void **state)
{
    (void)state;
    MATCH("+", "a");
    MATCH("+/b/c", "a/b/c");
    MATCH("a/+/c", "a/b/c");
    MATCH("a/b/+", "a/b/c");
    MATCH("+/+/+", "a/b/c");
    MATCH("+/+", "x/y");
    NO_MATCH("+", "a/b");
    NO_MATCH("+/+", "a");
    NO_MATCH("a/+", "a");
    NO_MATCH("a/+", "a/b/c");
    NO_MATCH("+/b/c", "a/x/c");
    NO_MATCH("a/+/c", "a/b/d");
    NO_MATCH("+/+/+", "a/b");
    NO_MATCH("+/+/+", "a/b/c/d");
    /* several branches must be tried: the literal one fails late */
    MATCH("a/+/c", "a/b/c");
    struct topic_tree *t = topic_tree_new();
    int s1, s2, s3, s4;
    assert_int_equal(sub(t, "a/b/x", &s1, 0), 1);
    assert_int_equal(sub(t, "a/+/c", &s2, 0), 1);
    assert_int_equal(sub(t, "+/b/c", &s3, 0), 1);
    assert_int_equal(sub(t, "+/+/+", &s4, 0), 1);
    struct hits r = match(t, "a/b/c");
    assert_int_equal(r.total, 3);
    assert_int_equal(count_sub(&r, &s1), 0);
    assert_int_equal(count_sub(&r, &s2), 1);
    assert_int_equal(count_sub(&r, &s3), 1);
    assert_int_equal(count_sub(&r, &s4), 1);
    topic_tree_free(t);
}

static void test_hash(void **state)
{
    (void)state;
    MATCH("#", "a");
    MATCH("#", "a/b/c");
    MATCH("#", "/");
    MATCH("a/#", "a");
    MATCH("a/#", "a/b");
    MATCH("a/#", "a/b/c");
    MATCH("a/b/#", "a/b");
    MATCH("a/+/#", "a/b");
    MATCH("a/+/#", "a/b/c/d");
    MATCH("+/#", "a");
    NO_MATCH("a/#", "b");
    NO_MATCH("a/#", "ab");
    NO_MATCH("a/#", "ab/c");
    NO_MATCH("a/b/#", "a");
    NO_MATCH("a/+/#", "a");
}

static void test_empty_levels(void **state)
{
    (void)state;
    MATCH("a//b", "a//b");
    MATCH("a/+/b", "a//b");
    MATCH("/a", "/a");
    MATCH("+/a", "/a");
    MATCH("/+", "/a");
    MATCH("#", "/a");
    MATCH("/#", "/a");
    MATCH("a/", "a/");
    MATCH("a/+", "a/");
    MATCH("a/#", "a/");
    MATCH("/", "/");
    MATCH("+/+", "/");
    MATCH("//", "//");
    MATCH("+/+/+", "//");
    NO_MATCH("a", "a/");
    NO_MATCH("a/", "a");
    NO_MATCH("a/b", "a//b");
    NO_MATCH("a//b", "a/b");
    NO_MATCH("/a", "a");
    NO_MATCH("a", "/a");
    NO_MATCH("+", "/a");
    NO_MATCH("+", "/");
    NO_MATCH("/", "//");
}

static void test_dollar(void **state)
{
    (void)state;
    /* wildcards at the first level do not reach '$' topics */
    NO_MATCH("#", "$SYS/broker/uptime");
    NO_MATCH("#", "$SYS");
    NO_MATCH("+/broker/uptime", "$SYS/broker/uptime");
    NO_MATCH("+/#", "$SYS/broker");
    NO_MATCH("+", "$x");
    /* but explicit '$' levels do */
    MATCH("$SYS/#", "$SYS/broker/uptime");
    MATCH("$SYS/#", "$SYS");
    MATCH("$SYS/+/uptime", "$SYS/broker/uptime");
    MATCH("$SYS/broker/uptime", "$SYS/broker/uptime");
    /* the rule applies to the first level only */
    MATCH("a/+", "a/$b");
    MATCH("a/#", "a/$b/c");
    MATCH("#", "a/$b");
    MATCH("+/$b", "a/$b");
    /* and to a leading '$' only */
    MATCH("#", "x$");
    MATCH("+", "S$YS");
    /* the other direction: '$' filters do not match ordinary topics */
    NO_MATCH("$SYS/#", "SYS/broker");
    NO_MATCH("$SYS/#", "a/$SYS/b");
    NO_MATCH("$SYS/+", "$SYSTEM/x");

    /* in a tree where both kinds of filters coexist */
    struct topic_tree *t = topic_tree_new();
    int all, sys, plus;
    assert_int_equal(sub(t, "#", &all, 0), 1);
    assert_int_equal(sub(t, "$SYS/#", &sys, 0), 1);
    assert_int_equal(sub(t, "+/broker/#", &plus, 0), 1);
    struct hits r = match(t, "$SYS/broker/uptime");
    assert_int_equal(r.total, 1);
    assert_ptr_equal(r.h[0].sub, &sys);
    r = match(t, "SYS/broker/uptime");
    assert_int_equal(r.total, 2);
    assert_int_equal(count_sub(&r, &all), 1);
    assert_int_equal(count_sub(&r, &plus), 1);
    topic_tree_free(t);
}

static void test_overlapping_filters(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int a, b;
    assert_int_equal(sub(t, "a/b", &a, 0), 1);
    assert_int_equal(sub(t, "a/+", &a, 1), 1);
    assert_int_equal(sub(t, "#", &a, 2), 1);
    assert_int_equal(sub(t, "a/#", &a, 0x11), 1);
    assert_int_equal(sub(t, "+/+", &a, 0x12), 1);
    assert_int_equal(sub(t, "a/b", &b, 2), 1);
    assert_int_equal(topic_tree_subscription_count(t), 6);

    struct hits r = match(t, "a/b");
    assert_int_equal(r.total, 6);
    assert_int_equal(count_sub(&r, &a), 5);
    assert_int_equal(count_sub(&r, &b), 1);
    /* each report carries the options of its own filter */
    unsigned seen = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (r.h[i].sub != &a)
            continue;
        switch (r.h[i].opts) {
        case 0: seen |= 1; break;
        case 1: seen |= 2; break;
        case 2: seen |= 4; break;
        case 0x11: seen |= 8; break;
        case 0x12: seen |= 16; break;
        default: fail_msg("unexpected options %u", r.h[i].opts);
        }
    }
    assert_int_equal(seen, 31);

    r = match(t, "a");
    assert_int_equal(r.total, 2); /* "#" and "a/#" */
    assert_int_equal(count_sub(&r, &a), 2);
    topic_tree_free(t);
}

static void test_resubscribe_replaces(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int a, b;
    assert_int_equal(sub(t, "x/+", &a, 0), 1);
    assert_int_equal(sub(t, "x/+", &b, 1), 1);
    assert_int_equal(sub(t, "x/+", &a, 2), 0);
    assert_int_equal(sub(t, "x/+", &a, 2), 0);
    assert_int_equal(topic_tree_subscription_count(t), 2);
    struct hits r = match(t, "x/y");
    assert_int_equal(r.total, 2);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.h[i].opts, r.h[i].sub == (void *)&a ? 2 : 1);
    topic_tree_free(t);
}

static void test_unsubscribe_and_prune(void **state)
{
    (void)state;
    int a, b;
    size_t before = heap_in_use();
    struct topic_tree *t = topic_tree_new();
    size_t empty = heap_in_use();

    assert_int_equal(sub(t, "a/b/c/d", &a, 0), 1);
    assert_int_equal(sub(t, "a/b", &a, 0), 1);
    assert_int_equal(sub(t, "a/+/c/#", &b, 0), 1);
    assert_int_equal(sub(t, "a/b/c/d", &b, 0), 1);
    assert_int_equal(topic_tree_subscription_count(t), 4);

    assert_int_equal(unsub(t, "a/b/c/d", &a), 1);
    assert_int_equal(unsub(t, "a/b/c/d", &a), 0);
    assert_int_equal(unsub(t, "a/b/c", &a), 0);     /* interior node, no sub */
    assert_int_equal(unsub(t, "nothing/here", &a), 0);
    assert_int_equal(unsub(t, "a/+/c/#", &a), 0);   /* exists, other subscriber */
    assert_int_equal(topic_tree_subscription_count(t), 3);

    struct hits r = match(t, "a/b/c/d");
    assert_int_equal(r.total, 2);
    assert_int_equal(count_sub(&r, &a), 0);
    r = match(t, "a/b");
    assert_int_equal(r.total, 1);

    assert_int_equal(unsub(t, "a/b/c/d", &b), 1);
    assert_int_equal(unsub(t, "a/b", &a), 1);
    assert_int_equal(unsub(t, "a/+/c/#", &b), 1);
    assert_int_equal(topic_tree_subscription_count(t), 0);
    assert_int_equal(match(t, "a/b/c/d").total, 0);
    assert_int_equal(match(t, "a/b").total, 0);
    assert_int_equal(match(t, "a/x/c").total, 0);
    assert_heap_back_to(empty);

    /* pruning stops at nodes still in use */
    assert_int_equal(sub(t, "p/q", &a, 0), 1);
    assert_int_equal(sub(t, "p/q/r/s", &a, 0), 1);
    assert_null(retain(t, "p/q/r", &b));
    assert_int_equal(unsub(t, "p/q/r/s", &a), 1);
    assert_int_equal(match(t, "p/q").total, 1);
    assert_ptr_equal(topic_tree_get_retained(t, "p/q/r", 5), &b);
    assert_ptr_equal(retain(t, "p/q/r", NULL), &b);
    assert_int_equal(unsub(t, "p/q", &a), 1);
    assert_heap_back_to(empty);

    topic_tree_free(t);
    assert_heap_back_to(before);
}

/* ---- retained messages --------------------------------------------------- */

static void test_retained_basic(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int v1, v2, v3;
    assert_null(retain(t, "a/b", &v1));
    assert_int_equal(topic_tree_retained_count(t), 1);
    assert_ptr_equal(topic_tree_get_retained(t, "a/b", 3), &v1);
    assert_null(topic_tree_get_retained(t, "a", 1));
    assert_null(topic_tree_get_retained(t, "a/b/c", 5));
    assert_null(topic_tree_get_retained(t, "a/+", 3));

    /* replace: the old value comes back to be released */
    assert_ptr_equal(retain(t, "a/b", &v2), &v1);
    assert_int_equal(topic_tree_retained_count(t), 1);
    assert_ptr_equal(topic_tree_get_retained(t, "a/b", 3), &v2);

    assert_null(retain(t, "a", &v3));
    assert_int_equal(topic_tree_retained_count(t), 2);

    /* clear */
    assert_null(retain(t, "a/c", NULL)); /* absent */
    assert_null(retain(t, "a/b/c", NULL));
    assert_ptr_equal(retain(t, "a/b", NULL), &v2);
    assert_null(retain(t, "a/b", NULL));
    assert_int_equal(topic_tree_retained_count(t), 1);
    assert_null(topic_tree_get_retained(t, "a/b", 3));
    assert_ptr_equal(topic_tree_get_retained(t, "a", 1), &v3);

    /* retained values and subscriptions share nodes without interfering */
    assert_int_equal(sub(t, "a", &v1, 0), 1);
    assert_ptr_equal(retain(t, "a", NULL), &v3);
    assert_int_equal(match(t, "a").total, 1);
    assert_int_equal(unsub(t, "a", &v1), 1);
    assert_int_equal(topic_tree_retained_count(t), 0);
    assert_int_equal(topic_tree_subscription_count(t), 0);

    /* topic names are literal: "+" and "#" levels are ordinary here */
    assert_null(retain(t, "w/+", &v1));
    assert_int_equal(sub(t, "w/x", &v2, 0), 1);
    assert_ptr_equal(topic_tree_get_retained(t, "w/+", 3), &v1);
    assert_int_equal(rmatch(t, "w/x").total, 0);
    assert_ptr_equal(retain(t, "w/+", NULL), &v1);
    topic_tree_free(t);
}

static void test_retained_match(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int v[10];
    assert_null(retain(t, "a", &v[0]));
    assert_null(retain(t, "a/b", &v[1]));
    assert_null(retain(t, "a/b/c", &v[2]));
    assert_null(retain(t, "a/x/c", &v[3]));
    assert_null(retain(t, "b", &v[4]));
    assert_null(retain(t, "$SYS/broker/uptime", &v[5]));
    assert_null(retain(t, "$SYS", &v[6]));
    assert_null(retain(t, "/lead", &v[7]));
    assert_null(retain(t, "a//c", &v[8]));
    assert_null(retain(t, "a/", &v[9]));

    struct rhits r = rmatch(t, "a/b");
    assert_int_equal(r.total, 1);
    assert_true(rhas(&r, "a/b", &v[1]));

    r = rmatch(t, "a/+/c");
    assert_int_equal(r.total, 3);
    assert_true(rhas(&r, "a/b/c", &v[2]));
    assert_true(rhas(&r, "a/x/c", &v[3]));
    assert_true(rhas(&r, "a//c", &v[8]));

    r = rmatch(t, "a/#");
    assert_int_equal(r.total, 6);
    assert_true(rhas(&r, "a", &v[0]));
    assert_true(rhas(&r, "a/b", &v[1]));
    assert_true(rhas(&r, "a/b/c", &v[2]));
    assert_true(rhas(&r, "a/x/c", &v[3]));
    assert_true(rhas(&r, "a//c", &v[8]));
    assert_true(rhas(&r, "a/", &v[9]));

    r = rmatch(t, "a/+");
    assert_int_equal(r.total, 2);
    assert_true(rhas(&r, "a/b", &v[1]));
    assert_true(rhas(&r, "a/", &v[9]));

    r = rmatch(t, "#");
    assert_int_equal(r.total, 8);
    for (size_t j = 0; j < r.n; j++)
        assert_true(r.h[j].value != &v[5] && r.h[j].value != &v[6]);

    r = rmatch(t, "+");
    assert_int_equal(r.total, 2);
    assert_true(rhas(&r, "a", &v[0]));
    assert_true(rhas(&r, "b", &v[4]));

    r = rmatch(t, "+/+");
    assert_int_equal(r.total, 3);
    assert_true(rhas(&r, "a/b", &v[1]));
    assert_true(rhas(&r, "/lead", &v[7]));
    assert_true(rhas(&r, "a/", &v[9]));

    r = rmatch(t, "+/broker/uptime");
    assert_int_equal(r.total, 0);
    r = rmatch(t, "$SYS/#");
    assert_int_equal(r.total, 2);
    assert_true(rhas(&r, "$SYS", &v[6]));
    assert_true(rhas(&r, "$SYS/broker/uptime", &v[5]));
    r = rmatch(t, "$SYS/+/uptime");
    assert_int_equal(r.total, 1);
    assert_true(rhas(&r, "$SYS/broker/uptime", &v[5]));

    r = rmatch(t, "nothing/#");
    assert_int_equal(r.total, 0);
    r = rmatch(t, "a/b/c/d");
    assert_int_equal(r.total, 0);

    /* clearing removes the value from later walks */
    assert_ptr_equal(retain(t, "a/b", NULL), &v[1]);
    r = rmatch(t, "a/#");
    assert_int_equal(r.total, 5);
    assert_int_equal(topic_tree_retained_count(t), 9);
    topic_tree_free(t);
}

/* Only '$' topics at the first level: wildcards there must find nothing,
 * whichever slot of the root's table the '$' levels land in. */
static void test_retained_dollar_only(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int v1, v2;
    assert_null(retain(t, "$SYS/x", &v1));
    assert_null(retain(t, "$other", &v2));
    assert_int_equal(rmatch(t, "+/x").total, 0);
    assert_int_equal(rmatch(t, "+").total, 0);
    assert_int_equal(rmatch(t, "#").total, 0);
    assert_int_equal(rmatch(t, "+/#").total, 0);
    struct rhits r = rmatch(t, "$SYS/+");
    assert_int_equal(r.total, 1);
    assert_true(rhas(&r, "$SYS/x", &v1));
    r = rmatch(t, "$other/#");
    assert_int_equal(r.total, 1);
    assert_true(rhas(&r, "$other", &v2));
    topic_tree_free(t);
}

static void test_retained_foreach(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    int v[5];
    struct rhits r;
    memset(&r, 0, sizeof(r));
    topic_tree_foreach_retained(t, on_retained, &r);
    assert_int_equal(r.total, 0);

    assert_null(retain(t, "a", &v[0]));
    assert_null(retain(t, "a/b/c", &v[1]));
    assert_null(retain(t, "$SYS/x", &v[2]));
    assert_null(retain(t, "/", &v[3]));
    assert_null(retain(t, "z/+", &v[4]));
    assert_int_equal(sub(t, "a/b/#", &v[0], 0), 1); /* wildcard nodes hold no values */
    topic_tree_foreach_retained(t, on_retained, &r);
    assert_int_equal(r.total, 5);
    assert_true(rhas(&r, "a", &v[0]));
    assert_true(rhas(&r, "a/b/c", &v[1]));
    assert_true(rhas(&r, "$SYS/x", &v[2]));
    assert_true(rhas(&r, "/", &v[3]));
    assert_true(rhas(&r, "z/+", &v[4]));
    topic_tree_free(t);
}

static void test_retained_prune(void **state)
{
    (void)state;
    int v;
    struct topic_tree *t = topic_tree_new();
    size_t empty = heap_in_use();
    assert_null(retain(t, "r/s/t/u", &v));
    assert_null(retain(t, "r/s", &v));
    assert_ptr_equal(retain(t, "r/s/t/u", NULL), &v);
    assert_ptr_equal(retain(t, "r/s", NULL), &v);
    assert_int_equal(topic_tree_retained_count(t), 0);
    assert_int_equal(rmatch(t, "#").total, 0);
    assert_heap_back_to(empty);
    topic_tree_free(t);
}

/* ---- large shapes -------------------------------------------------------- */

#define SIBLINGS 100000

static void test_many_siblings(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    static int subs[SIBLINGS];
    char buf[64];
    size_t empty = heap_in_use();

    for (int i = 0; i < SIBLINGS; i++) {
        int n = snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        assert_int_equal(topic_tree_subscribe(t, buf, (size_t)n, &subs[i], 1), 1);
        n = snprintf(buf, sizeof(buf), "dev/%d", i);
        assert_null(topic_tree_set_retained(t, buf, (size_t)n, &subs[i]));
    }
    assert_int_equal(topic_tree_subscription_count(t), SIBLINGS);
    assert_int_equal(topic_tree_retained_count(t), SIBLINGS);

    for (int i = 0; i < SIBLINGS; i += 7) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        struct hits r = match(t, buf);
        assert_int_equal(r.total, 1);
        assert_ptr_equal(r.h[0].sub, &subs[i]);
        snprintf(buf, sizeof(buf), "dev/%d", i);
        assert_ptr_equal(topic_tree_get_retained(t, buf, strlen(buf)), &subs[i]);
    }
    assert_int_equal(match(t, "dev/100000000/temp").total, 0);

    /* "+" over all siblings reports every retained value with its topic */
    struct rhits r = rmatch(t, "dev/+");
    assert_int_equal(r.total, SIBLINGS);
    for (size_t j = 0; j < r.n; j++) {
        int i = (int)((int *)r.h[j].value - subs);
        int n = snprintf(buf, sizeof(buf), "dev/%d", i);
        assert_int_equal(r.h[j].len, (size_t)n);
        assert_memory_equal(r.h[j].topic, buf, (size_t)n);
    }
    assert_int_equal(rmatch(t, "dev/#").total, SIBLINGS);
    assert_int_equal(rmatch(t, "dev/+/temp").total, 0);

    for (int i = 0; i < SIBLINGS; i++) {
        int n = snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        assert_int_equal(topic_tree_unsubscribe(t, buf, (size_t)n, &subs[i]), 1);
        n = snprintf(buf, sizeof(buf), "dev/%d", i);
        assert_ptr_equal(topic_tree_set_retained(t, buf, (size_t)n, NULL), &subs[i]);
    }
    assert_int_equal(topic_tree_subscription_count(t), 0);
    assert_int_equal(topic_tree_retained_count(t), 0);
    assert_int_equal(match(t, "dev/5/temp").total, 0);
    assert_heap_back_to(empty);
    topic_tree_free(t);
}

#define MANY_SUBSCRIBERS 50000

static void test_many_subscribers_one_filter(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    static char subs[MANY_SUBSCRIBERS];
    struct hits r;
    for (int i = 0; i < MANY_SUBSCRIBERS; i++)
        assert_int_equal(sub(t, "news", &subs[i], 0), 1);
    for (int i = 0; i < MANY_SUBSCRIBERS; i += 3)
        assert_int_equal(sub(t, "news", &subs[i], 1), 0);
    assert_int_equal(topic_tree_subscription_count(t), MANY_SUBSCRIBERS);
    r = match(t, "news");
    assert_int_equal(r.total, MANY_SUBSCRIBERS);
    for (int i = 1; i < MANY_SUBSCRIBERS; i += 2)
        assert_int_equal(unsub(t, "news", &subs[i]), 1);
    r = match(t, "news");
    assert_int_equal(r.total, MANY_SUBSCRIBERS / 2);
    for (int i = 0; i < MANY_SUBSCRIBERS; i += 2)
        assert_int_equal(unsub(t, "news", &subs[i]), 1);
    assert_int_equal(match(t, "news").total, 0);
    topic_tree_free(t);
}

/* "x/x/.../x" with `levels` levels; the caller frees it */
static char *deep_topic(size_t levels, const char *level, size_t *len)
{
    size_t ll = strlen(level);
    char *s = malloc(levels * (ll + 1));
    assert_non_null(s);
    size_t p = 0;
    for (size_t i = 0; i < levels; i++) {
        if (i > 0)
            s[p++] = '/';
        memcpy(s + p, level, ll);
        p += ll;
    }
    *len = p;
    return s;
}

struct seen {
    size_t n;
    size_t len;
};

/* When set, every retained report must carry exactly this topic. */
static const char *deep_expected;
static size_t deep_expected_len;

static void on_deep(void *value, const char *tp, size_t len, void *arg)
{
    struct seen *seen = arg;
    (void)value;
    seen->n++;
    seen->len = len;
    if (deep_expected != NULL) {
        assert_int_equal(len, deep_expected_len);
        assert_memory_equal(tp, deep_expected, len);
    }
}

static void test_deep(void **state)
{
    (void)state;
    enum { LEVELS = 5000 };
    struct topic_tree *t = topic_tree_new();
    int exact, plus, all, first, v;
    size_t tlen, plen;
    char *topic = deep_topic(LEVELS, "lv", &tlen);
    char *pluses = deep_topic(LEVELS, "+", &plen);
    size_t empty = heap_in_use();

    assert_int_equal(topic_tree_subscribe(t, topic, tlen, &exact, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, pluses, plen, &plus, 0), 1);
    assert_int_equal(sub(t, "#", &all, 0), 1);
    assert_int_equal(sub(t, "lv/#", &first, 0), 1);

    struct hits r;
    memset(&r, 0, sizeof(r));
    topic_tree_match(t, topic, tlen, on_match, &r);
    assert_int_equal(r.total, 4);
    memset(&r, 0, sizeof(r));
    topic_tree_match(t, topic, tlen - 3, on_match, &r); /* one level less */
    assert_int_equal(r.total, 2);

    assert_null(topic_tree_set_retained(t, topic, tlen, &v));
    struct seen seen = {0, 0};
    /* the full 14999-byte name must come back */
    deep_expected = topic;
    deep_expected_len = tlen;
    topic_tree_match_retained(t, pluses, plen, on_deep, &seen);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.len, tlen);
    seen.n = 0;
    topic_tree_match_retained(t, "#", 1, on_deep, &seen);
    assert_int_equal(seen.n, 1);
    deep_expected = NULL;
    assert_ptr_equal(topic_tree_get_retained(t, topic, tlen), &v);

    assert_ptr_equal(topic_tree_set_retained(t, topic, tlen, NULL), &v);
    assert_int_equal(topic_tree_unsubscribe(t, topic, tlen, &exact), 1);
    assert_int_equal(topic_tree_unsubscribe(t, pluses, plen, &plus), 1);
    assert_int_equal(unsub(t, "#", &all), 1);
    assert_int_equal(unsub(t, "lv/#", &first), 1);
    assert_heap_back_to(empty);

    /* leave a deep tree behind: topic_tree_free must not recurse either */
    assert_int_equal(topic_tree_subscribe(t, topic, tlen, &exact, 0), 1);
    topic_tree_free(t);
    free(topic);
    free(pluses);
}

/* 65535 bytes of '/' are 65536 empty levels: far beyond what recursion
 * on an 8 MiB stack (let alone a thread's) could be trusted with. */
static void test_very_deep_empty_levels(void **state)
{
    (void)state;
    enum { LEN = 65535 };
    char *topic = malloc(LEN);
    assert_non_null(topic);
    memset(topic, '/', LEN);
    struct topic_tree *t = topic_tree_new();
    int s1, s2, v;
    assert_int_equal(topic_tree_subscribe(t, topic, LEN, &s1, 0), 1);
    assert_int_equal(sub(t, "/#", &s2, 0), 1);
    struct hits r;
    memset(&r, 0, sizeof(r));
    topic_tree_match(t, topic, LEN, on_match, &r);
    assert_int_equal(r.total, 2);
    memset(&r, 0, sizeof(r));
    topic_tree_match(t, topic, LEN - 1, on_match, &r);
    assert_int_equal(r.total, 1);
    assert_ptr_equal(r.h[0].sub, &s2);

    assert_null(topic_tree_set_retained(t, topic, LEN, &v));
    deep_expected = topic;
    deep_expected_len = LEN;
    struct seen seen = {0, 0};
    topic_tree_match_retained(t, "#", 1, on_deep, &seen);
    assert_int_equal(seen.n, 1);
    seen.n = 0;
    topic_tree_match_retained(t, "/#", 2, on_deep, &seen);
    assert_int_equal(seen.n, 1);
    seen.n = 0;
    topic_tree_match_retained(t, topic, LEN, on_deep, &seen);
    assert_int_equal(seen.n, 1);
    deep_expected = NULL;
    topic_tree_free(t);
    free(topic);
}

/* ---- randomized cross-check against a naive matcher --------------------- */

#define MAXLV 8

static size_t split(const char *s, const char *lv[MAXLV], size_t ll[MAXLV])
{
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        lv[n] = p;
        ll[n] = l;
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

static bool lv_is(const char *lv, size_t ll, const char *w)
{
    return ll == strlen(w) && memcmp(lv, w, ll) == 0;
}

static bool ref_match(const char *filter, const char *topic)
{
    const char *fl[MAXLV], *tl[MAXLV];
    size_t fll[MAXLV], tll[MAXLV];
    size_t nf = split(filter, fl, fll), nt = split(topic, tl, tll);
    if (topic[0] == '$' && (lv_is(fl[0], fll[0], "+") || lv_is(fl[0], fll[0], "#")))
        return false;
    for (size_t i = 0; i < nf; i++) {
        if (lv_is(fl[i], fll[i], "#"))
            return true;
        if (i >= nt)
            return false;
        if (lv_is(fl[i], fll[i], "+"))
            continue;
        if (fll[i] != tll[i] || memcmp(fl[i], tl[i], fll[i]) != 0)
            return false;
    }
    return nf == nt;
}

static uint32_t rng_state = 12345;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

static void random_name(char *out, bool filter)
{
    static const char *const levels[] = {"a", "b", "", "$s", "ab"};
    size_t n = 1 + rnd(4);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, "/");
        uint32_t k = rnd(filter ? 8 : 5);
        if (k == 5 || k == 6)
            strcat(out, "+");
        else if (k == 7)
            strcat(out, "#");
        else
            strcat(out, levels[k]);
        if (k == 7)
            break; /* '#' only as the last level */
    }
}

#define NFILTERS 300
#define NTOPICS 200

static void test_random_cross_check(void **state)
{
    (void)state;
    static char filters[NFILTERS][32], topics[NTOPICS][32];
    static bool subscribed[NFILTERS];
    static int subs[NFILTERS], vals[NTOPICS];
    static bool retained[NTOPICS];
    struct topic_tree *t = topic_tree_new();
    size_t empty = heap_in_use();

    for (int round = 0; round < 20; round++) {
        /* Each filter i gets its own subscriber &subs[i]; duplicated filter
         * strings are distinct pairs, which the tree must keep apart. */
        for (int i = 0; i < NFILTERS; i++) {
            if (round == 0)
                random_name(filters[i], true);
            bool want = rnd(3) != 0 && round < 19;
            if (want && !subscribed[i])
                assert_int_equal(sub(t, filters[i], &subs[i], (uint8_t)i), 1);
            else if (!want && subscribed[i])
                assert_int_equal(unsub(t, filters[i], &subs[i]), 1);
            subscribed[i] = want;
        }
        for (int i = 0; i < NTOPICS; i++) {
            if (round == 0)
                random_name(topics[i], false);
            bool want = rnd(2) != 0 && round < 19;
            void *old = retain(t, topics[i], want ? &vals[i] : NULL);
            /* duplicate topic strings share one retained slot */
            if (old != NULL)
                for (int j = 0; j < NTOPICS; j++)
                    if (old == &vals[j])
                        retained[j] = false;
            if (want)
                for (int j = 0; j < NTOPICS; j++)
                    if (strcmp(topics[j], topics[i]) == 0)
                        retained[j] = false;
            retained[i] = want;
        }

        size_t nsubs = 0, nret = 0;
        for (int i = 0; i < NFILTERS; i++)
            nsubs += subscribed[i];
        for (int i = 0; i < NTOPICS; i++)
            nret += retained[i];
        assert_int_equal(topic_tree_subscription_count(t), nsubs);
        assert_int_equal(topic_tree_retained_count(t), nret);

        for (int i = 0; i < NTOPICS; i++) {
            struct hits r = match(t, topics[i]);
            size_t expect = 0;
            for (int f = 0; f < NFILTERS; f++) {
                bool m = subscribed[f] && ref_match(filters[f], topics[i]);
                expect += m;
                if (r.total <= MAX_HITS && count_sub(&r, &subs[f]) != (m ? 1u : 0u))
                    fail_msg("filter '%s' vs topic '%s': expected %d", filters[f],
                             topics[i], m);
            }
            assert_int_equal(r.total, expect);
        }
        for (int f = 0; f < NFILTERS; f++) {
            struct rhits r = rmatch(t, filters[f]);
            size_t expect = 0;
            for (int i = 0; i < NTOPICS; i++) {
                if (!retained[i] || !ref_match(filters[f], topics[i]))
                    continue;
                expect++;
                if (r.total <= MAX_HITS && !rhas(&r, topics[i], &vals[i]))
                    fail_msg("retained '%s' not reported for filter '%s'", topics[i],
                             filters[f]);
            }
            assert_int_equal(r.total, expect);
        }
    }
    /* the last round removed everything */
    assert_int_equal(topic_tree_subscription_count(t), 0);
    assert_int_equal(topic_tree_retained_count(t), 0);
    assert_heap_back_to(empty);
    topic_tree_free(t);
}

static void test_free_with_content(void **state)
{
    (void)state;
    /* under ASan/LSan a node left behind by topic_tree_free fails the run */
    struct topic_tree *t = topic_tree_new();
    int s, v;
    assert_int_equal(sub(t, "a/+/c/#", &s, 0), 1);
    assert_int_equal(sub(t, "#", &s, 0), 1);
    assert_int_equal(sub(t, "a/b", &s, 0), 1);
    assert_null(retain(t, "a/b/c", &v));
    assert_null(retain(t, "", &v));
    topic_tree_free(t);
    topic_tree_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_plus),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_empty_levels),
        cmocka_unit_test(test_dollar),
        cmocka_unit_test(test_overlapping_filters),
        cmocka_unit_test(test_resubscribe_replaces),
        cmocka_unit_test(test_unsubscribe_and_prune),
        cmocka_unit_test(test_retained_basic),
        cmocka_unit_test(test_retained_match),
        cmocka_unit_test(test_retained_dollar_only),
        cmocka_unit_test(test_retained_foreach),
        cmocka_unit_test(test_retained_prune),
        cmocka_unit_test(test_many_siblings),
        cmocka_unit_test(test_many_subscribers_one_filter),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_very_deep_empty_levels),
        cmocka_unit_test(test_random_cross_check),
        cmocka_unit_test(test_free_with_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
