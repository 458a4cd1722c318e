/*
 * test_subscriptions.c - unit tests of the subscription side of the broker
 * through its real modules (session.c, router.c, shared_subs.c) without
 * sockets: sessions stay offline and persistent, so every QoS 1 delivery
 * waits in their queues where the tests can read it.  Covers share names,
 * round-robin over share groups, handoff, No Local, Retain As Published and
 * subscription identifiers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "message.h"
#include "mqtt_codec.h"
#include "router.h"
#include "session.h"
#include "shared_subs.h"

static int setup(void **state)
{
    (void)state;
    static struct config cfg;
    config_defaults(&cfg);
    return broker_init(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    broker_free();
    return 0;
}

/* An offline session that keeps QoS 1/2 messages in memory (persistent,
 * but with no store row). */
static struct session *offline(const char *id)
{
    struct session *s = session_create(id, strlen(id), false);
    assert_non_null(s);
    s->persistent = true;
    return s;
}

static void sub(struct session *s, const char *filter, uint8_t options, uint32_t id)
{
    assert_true(session_subscribe(s, filter, strlen(filter), options, id) >= 0);
}

static void publish(const char *topic, const char *payload, uint8_t qos, bool retain,
                    const struct session *origin)
{
    struct message *m = message_new(topic, strlen(topic), (const uint8_t *)payload,
                                    strlen(payload), qos, retain);
    assert_non_null(m);
    router_publish(m, origin);
    message_unref(m);
}

/* The payloads queued on s, concatenated ("abc" for messages a, b, c). */
static const char *queued(const struct session *s)
{
    static char buf[256];
    size_t n = 0;
    for (const struct delivery *d = s->queued.head; d && n + 1 < sizeof buf; d = d->next)
        for (uint32_t i = 0; i < d->msg->payload_len && n + 1 < sizeof buf; i++)
            buf[n++] = (char)d->msg->payload[i];
    buf[n] = '\0';
    return buf;
}

static void test_share_parse(void **state)
{
    (void)state;
    static const struct {
        const char *f;
        int rc;
        size_t inner;
    } cases[] = {
        {"a/b", 0, 0},          {"$share", 0, 0},        {"$sharex/g/a", 0, 0},
        {"$SHARE/g/a", 0, 0},   {"$share/g/a", 1, 9},    {"$share/grp/#", 1, 11},
        {"$share/g//", 1, 9},   {"$share/", -1, 0},      {"$share/g", -1, 0},
        {"$share/g/", -1, 0},   {"$share//a", -1, 0},    {"$share/+/a", -1, 0},
        {"$share/#", -1, 0},    {"$share/g+/a", -1, 0},  {"$share/a#/b", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t inner = 0;
        int rc = share_parse(cases[i].f, strlen(cases[i].f), &inner);
        if (rc != cases[i].rc || (rc == 1 && inner != cases[i].inner))
            fail_msg("share_parse(\"%s\") = %d (inner %zu), expected %d (%zu)", cases[i].f, rc,
                     inner, cases[i].rc, cases[i].inner);
    }
}

static void test_round_robin_and_ordinary_subscribers(void **state)
{
    (void)state;
    struct session *a = offline("a"), *b = offline("b"), *c = offline("c");
    struct session *all = offline("all");
    sub(a, "$share/g/job/+", 1, 0);
    sub(b, "$share/g/job/+", 1, 0);
    sub(c, "$share/g/job/+", 1, 0);
    sub(all, "job/#", 1, 0);
    assert_int_equal(a->n_shared, 1);
    const char *msgs[] = {"0", "1", "2", "3", "4", "5", "6"};
    for (size_t i = 0; i < 7; i++)
        publish("job/x", msgs[i], 1, false, NULL);
    assert_string_equal(queued(a), "036");
    assert_string_equal(queued(b), "14");
    assert_string_equal(queued(c), "25");
    assert_string_equal(queued(all), "0123456");
    for (const struct delivery *d = a->queued.head; d; d = d->next)
        assert_true(d->shared);
    for (const struct delivery *d = all->queued.head; d; d = d->next)
        assert_false(d->shared);

    /* b, next in turn, leaves: the turn passes to c, then a. */
    assert_int_equal(session_unsubscribe(b, "$share/g/job/+", 14), 1);
    assert_int_equal(b->n_shared, 0);
    publish("job/y", "7", 1, false, NULL);
    publish("job/y", "8", 1, false, NULL);
    assert_string_equal(queued(a), "0368");
    assert_string_equal(queued(c), "257");
    /* Not persistent: neither is chosen while offline; QoS 0 is not kept. */
    a->persistent = c->persistent = false;
    publish("job/y", "9", 1, false, NULL);
    assert_string_equal(queued(a), "0368");
    assert_string_equal(queued(c), "257");
    assert_int_equal(broker.stats.shared_dropped, 1);
    a->persistent = c->persistent = true;
}

static void test_groups_and_filters_are_distinct(void **state)
{
    (void)state;
    struct session *a = offline("a"), *b = offline("b"), *c = offline("c");
    sub(a, "$share/one/t", 1, 0);
    sub(b, "$share/two/t", 1, 0);
    sub(c, "$share/one/+", 1, 0);   /* same share name, another filter */
    publish("t", "x", 1, false, NULL);
    assert_string_equal(queued(a), "x");
    assert_string_equal(queued(b), "x");
    assert_string_equal(queued(c), "x");
    /* resubscribing replaces, does not join twice */
    assert_int_equal(session_subscribe(a, "$share/one/t", 12, 1, 0), 0);
    assert_int_equal(a->n_subs, 1);
    publish("t", "y", 1, false, NULL);
    publish("t", "z", 1, false, NULL);
    assert_string_equal(queued(a), "xyz");
}

static void test_handoff_when_a_member_is_destroyed(void **state)
{
    (void)state;
    struct session *a = offline("a"), *b = offline("b"), *plain = offline("p");
    sub(a, "$share/g/t", 1, 0);
    sub(a, "t", 1, 0);          /* its ordinary copy is not handed on */
    sub(b, "$share/g/t", 1, 0);
    sub(plain, "t", 1, 0);
    publish("t", "1", 1, false, NULL);
    publish("t", "2", 1, false, NULL);
    publish("t", "3", 1, false, NULL);
    assert_string_equal(queued(a), "11233");  /* shared 1 and 3, ordinary 1 2 3 */
    assert_string_equal(queued(b), "2");
    session_destroy(a);
    assert_string_equal(queued(b), "213");
    assert_string_equal(queued(plain), "123");
    assert_int_equal(broker.stats.shared_redistributed, 2);
    /* The group lives on with b alone. */
    publish("t", "4", 1, false, NULL);
    assert_string_equal(queued(b), "2134");
}

struct offers {
    char offered[16], taken[16];
};

/* A take() for session_move_shared that takes odd payloads. */
static bool take_odd(struct session *s, struct message *msg, void *arg)
{
    (void)s;
    struct offers *o = arg;
    strncat(o->offered, (const char *)msg->payload, 1);
    if ((msg->payload[0] - '0') % 2 == 0)
        return false;
    strncat(o->taken, (const char *)msg->payload, 1);
    return true;
}

static void test_move_shared_offers_shared_ones_in_order(void **state)
{
    (void)state;
    struct session *a = offline("a");
    sub(a, "$share/g/t", 1, 0);
    sub(a, "u", 1, 0);
    publish("t", "1", 1, false, NULL);
    publish("u", "2", 1, false, NULL);   /* not shared: never offered */
    publish("t", "3", 1, false, NULL);
    publish("t", "4", 1, false, NULL);
    publish("t", "5", 1, false, NULL);
    assert_int_equal(a->n_queued, 5);
    struct offers o = {{0}, {0}};
    assert_int_equal(session_move_shared(a, true, take_odd, &o), 3);
    assert_string_equal(o.offered, "1345");
    assert_string_equal(o.taken, "135");
    assert_string_equal(queued(a), "24");  /* the rest stays, in order */
    assert_int_equal(a->n_queued, 2);
    assert_int_equal(a->queued.count, 2);
    assert_ptr_equal(a->queued.tail->next, NULL);
    publish("t", "7", 1, false, NULL);      /* the list is still sound */
    assert_string_equal(queued(a), "247");
}

static void test_no_local_and_retain_as_published(void **state)
{
    (void)state;
    struct session *me = offline("me"), *other = offline("other");
    sub(me, "t/#", 1 | MQTT_SUBOPT_NO_LOCAL, 0);
    sub(other, "t/#", 1, 0);
    publish("t/a", "own", 1, false, me);
    publish("t/a", "will", 1, false, NULL);   /* no origin: delivered */
    assert_string_equal(queued(me), "will");
    assert_string_equal(queued(other), "ownwill");
    /* An overlapping filter without No Local still delivers. */
    sub(me, "t/a", 1, 0);
    publish("t/a", "X", 1, false, me);
    assert_string_equal(queued(me), "willX");

    /* Retain flag: cleared unless a matching filter asks to keep it. */
    struct session *rap = offline("rap"), *plain = offline("plain");
    sub(rap, "r/+", 1 | MQTT_SUBOPT_RETAIN_AS_PUBLISHED, 0);
    sub(plain, "r/+", 1, 0);
    publish("r/1", "k", 1, true, NULL);
    publish("r/1", "n", 1, false, NULL);
    assert_true(rap->queued.head->retain);
    assert_false(rap->queued.head->next->retain);
    assert_false(plain->queued.head->retain);
}

static void test_subscription_ids(void **state)
{
    (void)state;
    struct session *s = offline("s");
    uint32_t ids[4];
    assert_int_equal(session_subscription_ids(s, "a/b", 3, ids, 4), 0);
    sub(s, "a/#", 1, 7);
    sub(s, "a/+", 1, 0);
    sub(s, "$share/g/a/b", 1, 9);
    sub(s, "x/#", 1, 11);
    assert_int_equal(s->n_sub_ids, 3);
    size_t n = session_subscription_ids(s, "a/b", 3, ids, 4);
    assert_int_equal(n, 2);
    assert_true((ids[0] == 7 && ids[1] == 9) || (ids[0] == 9 && ids[1] == 7));
    assert_int_equal(session_subscription_ids(s, "a/b", 3, ids, 1), 1); /* no more than max */
    assert_int_equal(session_subscription_ids(s, "b", 1, ids, 4), 0);
    /* Replacing without an identifier removes it. */
    sub(s, "a/#", 1, 0);
    assert_int_equal(s->n_sub_ids, 2);
    n = session_subscription_ids(s, "a/b", 3, ids, 4);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 9);
    assert_int_equal(session_unsubscribe(s, "x/#", 3), 1);
    assert_int_equal(s->n_sub_ids, 1);
    /* '$' topics are not matched by leading wildcards. */
    sub(s, "#", 0, 5);
    assert_int_equal(session_subscription_ids(s, "$SYS/x", 6, ids, 4), 0);
}

/* The session's filter table: lookups, replacement and removal in any order
 * while it grows past its first sizes, list and table agreeing. */
static void test_filter_table(void **state)
{
    (void)state;
    struct session *s = offline("many");
    char f[32];
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "t/%d/#", i);
        assert_int_equal(session_subscribe(s, f, strlen(f), 1, 0), 1);
    }
    assert_int_equal(s->n_subs, N);
    assert_int_equal(session_subscribe(s, "t/7/#", 5, 0, 0), 0); /* replaced */
    assert_int_equal(session_subscription(s, "t/7/#", 5)->qos, 0);
    assert_null(session_subscription(s, "t/7/", 4));
    /* remove every other one */
    for (int i = 1; i < N; i += 2) {
        snprintf(f, sizeof f, "t/%d/#", i);
        assert_int_equal(session_unsubscribe(s, f, strlen(f)), 1);
        assert_int_equal(session_unsubscribe(s, f, strlen(f)), 0);
    }
    assert_int_equal(s->n_subs, N / 2);
    size_t listed = 0;
    for (const struct subscription *x = s->subs; x; x = x->next) {
        assert_ptr_equal(session_subscription(s, x->filter, x->len), x);
        listed++;
    }
    assert_int_equal(listed, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "t/%d/#", i);
        assert_true((session_subscription(s, f, strlen(f)) != NULL) == (i % 2 == 0));
    }
    /* a message reaches it once through all of them */
    publish("t/4/x", "a", 1, false, NULL);
    assert_string_equal(queued(s), "a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_parse),
        cmocka_unit_test_setup_teardown(test_move_shared_offers_shared_ones_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_and_ordinary_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups_and_filters_are_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handoff_when_a_member_is_destroyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_local_and_retain_as_published, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
