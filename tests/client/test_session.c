/*
 * test_session.c - unit tests of libpetrel's client state machine
 * (client-lib/client_session.c) without sockets or clocks: a fake transport
 * records what the session writes, the tests play the server by feeding
 * encoded packets, and time is a number the tests advance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "mqtt_codec.h"
#include "options.h"
#include "packet_ids.h"
#include "client_session.h"

/* ------------------------------------------------------------------------
 * The fake environment
 */

#define MAX_EVENTS 64

struct fake {
    struct petrel_options o;
    struct sess *s;
    int64_t now;

    /* transport */
    uint8_t out[1 << 16];
    size_t out_len, out_pos;
    int opens;
    int open_rc;
    bool open;                /* a transport is open (or opening) */
    int graceful_closes;
    int abort_closes;
    bool writable;
    bool fail_writes;
    uint32_t rnd;

    /* events */
    int connected;
    bool session_present;
    int disconnected;
    int reason;
    bool reconnecting;
    int messages;
    char topic[128];
    char payload[128];
    int qos;
    bool dup;
    int published;
    uint64_t published_id[MAX_EVENTS];
    int published_result[MAX_EVENTS];
    int subscribed;
    uint64_t subscribed_id;
    size_t granted_count;
    int granted[8];
    int unsubscribed;
    uint64_t unsubscribed_id;

    /* reentrant behaviour of the "application" */
    bool stop_in_message;
    bool refuse_messages;     /* the glue ran out of memory */
    const char *publish_in_connected;

    /* MQTT 5.0: the reason context seen inside the hooks */
    int pub_reason;
    int disc_reason_code;
    char disc_reason_string[64];
    char msg_props_ct[32];
};

static struct fake F;
/* Protocol level the fake server speaks (tests of MQTT 5.0 set 5). */
static uint8_t LEVEL = MQTT_LEVEL_311;

static int io_open(void *ctx)
{
    struct fake *f = ctx;
    f->opens++;
    if (f->open_rc == 0)
        f->open = true;
    return f->open_rc;
}

static int io_write(void *ctx, const uint8_t *data, size_t len)
{
    struct fake *f = ctx;
    assert_true(f->open);
    if (f->fail_writes)
        return -1;
    assert_true(f->out_len + len <= sizeof f->out);
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    return 0;
}

static bool io_can_write(void *ctx)
{
    struct fake *f = ctx;
    return f->writable;
}

static void io_close(void *ctx, bool graceful)
{
    struct fake *f = ctx;
    if (graceful) {
        f->graceful_closes++;
    } else {
        f->abort_closes++;
        f->open = false;
    }
}

static void io_connected(void *ctx, bool sp)
{
    struct fake *f = ctx;
    f->connected++;
    f->session_present = sp;
    if (f->publish_in_connected) {
        uint64_t id;
        assert_int_equal(sess_publish(f->s, f->now, f->publish_in_connected,
                                      strlen(f->publish_in_connected), "new", 3, 1, false, &id),
                         0);
    }
}

static void io_disconnected(void *ctx, int reason, bool reconnecting)
{
    struct fake *f = ctx;
    f->disconnected++;
    f->reason = reason;
    f->reconnecting = reconnecting;
    struct mqtt_props props;
    struct mqtt_prop pr;
    f->disc_reason_code = sess_reason(f->s, &props);
    f->disc_reason_string[0] = '\0';
    if (mqtt_props_find(&props, MQTT_PROP_REASON_STRING, &pr))
        snprintf(f->disc_reason_string, sizeof f->disc_reason_string, "%.*s", (int)pr.str.len,
                 (const char *)pr.str.data);
}

static bool io_message(void *ctx, const struct mqtt_publish *p)
{
    struct fake *f = ctx;
    if (f->refuse_messages)
        return false;
    f->messages++;
    snprintf(f->topic, sizeof f->topic, "%.*s", (int)p->topic.len, (const char *)p->topic.data);
    snprintf(f->payload, sizeof f->payload, "%.*s", (int)p->payload.len,
             (const char *)p->payload.data);
    f->qos = p->qos;
    f->dup = p->dup;
    struct mqtt_prop pr;
    f->msg_props_ct[0] = '\0';
    if (mqtt_props_find(&p->props, MQTT_PROP_CONTENT_TYPE, &pr))
        snprintf(f->msg_props_ct, sizeof f->msg_props_ct, "%.*s", (int)pr.str.len,
                 (const char *)pr.str.data);
    if (f->stop_in_message)
        sess_stop(f->s, f->now);
    return true;
}

static void io_published(void *ctx, uint64_t id, int result)
{
    struct fake *f = ctx;
    assert_true(f->published < MAX_EVENTS);
    f->published_id[f->published] = id;
    f->published_result[f->published] = result;
    f->published++;
    f->pub_reason = sess_reason(f->s, NULL);
}

static void io_subscribed(void *ctx, uint64_t id, size_t count, const int *granted)
{
    struct fake *f = ctx;
    f->subscribed++;
    f->subscribed_id = id;
    f->granted_count = count;
    for (size_t i = 0; i < count && i < 8; i++)
        f->granted[i] = granted[i];
}

static void io_unsubscribed(void *ctx, uint64_t id)
{
    struct fake *f = ctx;
    f->unsubscribed++;
    f->unsubscribed_id = id;
}

static uint32_t io_random(void *ctx)
{
    struct fake *f = ctx;
    return f->rnd;
}

static const struct sess_io fake_io = {
    .ctx = &F,
    .open = io_open,
    .write = io_write,
    .can_write = io_can_write,
    .close = io_close,
    .connected = io_connected,
    .disconnected = io_disconnected,
    .message = io_message,
    .published = io_published,
    .subscribed = io_subscribed,
    .unsubscribed = io_unsubscribed,
    .trace = NULL,
    .random = io_random,
};

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    LEVEL = MQTT_LEVEL_311;
    assert_int_equal(options_init(&F.o), 0);
    F.o.reconnect_min_ms = 1000;
    F.o.reconnect_max_ms = 8000;
    F.o.keepalive = 10;
    F.writable = true;
    F.now = 1000000;
    return 0;
}

static void start(void)
{
    F.s = sess_new(&F.o, &fake_io);
    assert_non_null(F.s);
}

static int teardown(void **state)
{
    (void)state;
    sess_free(F.s);
    options_clear(&F.o);
    return 0;
}

/* Pops the next packet the session wrote; decoded fields point into F.out,
 * which is only reset once everything written has been read. */
static bool next_packet(struct mqtt_packet *p)
{
    if (F.out_pos == F.out_len) {
        F.out_pos = F.out_len = 0;
        return false;
    }
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    assert_int_equal(mqtt_frame_header(F.out + F.out_pos, F.out_len - F.out_pos, 0, &first, &rem,
                                       &hlen),
                     MQTT_OK);
    /* The session's packets are decoded by the broker's rules. */
    const char *why = NULL;
    assert_int_equal(mqtt_decode(LEVEL, first, F.out + F.out_pos + hlen, rem, p, &why), MQTT_OK);
    F.out_pos += hlen + rem;
    return true;
}

static void expect_packet(struct mqtt_packet *p, uint8_t type)
{
    assert_true(next_packet(p));
    assert_int_equal(p->type, type);
}

static void expect_ack(uint8_t type, uint16_t id)
{
    struct mqtt_packet p;
    expect_packet(&p, type);
    assert_int_equal(p.u.ack.packet_id, id);
}

static void expect_nothing_sent(void)
{
    struct mqtt_packet p;
    assert_false(next_packet(&p));
}

static void feed(const struct mqtt_packet *p)
{
    uint8_t buf[4096];
    size_t n = mqtt_encode(LEVEL, p, buf, sizeof buf);
    assert_true(n > 0 && n <= sizeof buf);
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    assert_int_equal(mqtt_frame_header(buf, n, 0, &first, &rem, &hlen), MQTT_OK);
    sess_packet(F.s, F.now, first, buf + hlen, rem);
}

static void feed_raw(const uint8_t *buf, size_t n)
{
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    assert_int_equal(mqtt_frame_header(buf, n, 0, &first, &rem, &hlen), MQTT_OK);
    sess_packet(F.s, F.now, first, buf + hlen, rem);
}

static void feed_connack(bool sp, uint8_t rc)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK};
    p.u.connack.session_present = sp;
    p.u.connack.return_code = rc;
    feed(&p);
}

static void feed_ack(uint8_t type, uint16_t id)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    feed(&p);
}

static void feed_publish(const char *topic, const char *payload, uint8_t qos, uint16_t id,
                         bool dup)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = mqtt_str(topic);
    p.u.publish.payload = mqtt_str(payload);
    p.u.publish.qos = qos;
    p.u.publish.packet_id = id;
    p.u.publish.dup = dup;
    feed(&p);
}

static void feed_suback(uint16_t id, const uint8_t *codes, uint32_t n)
{
    struct mqtt_packet p = {.type = MQTT_SUBACK};
    p.u.suback.packet_id = id;
    p.u.suback.codes = (struct mqtt_bytes){codes, n};
    feed(&p);
}

/* Starts the session and completes the transport and CONNECT/CONNACK. */
static void connect_ok(bool sp)
{
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    feed_connack(sp, 0);
    assert_int_equal(sess_state(F.s), SESS_CONNECTED);
}

/* From BACKOFF: waits for the retry and completes the handshake. */
static void reconnect_ok(bool sp)
{
    assert_int_equal(sess_state(F.s), SESS_BACKOFF);
    F.now = sess_deadline(F.s);
    sess_tick(F.s, F.now);
    assert_int_equal(sess_state(F.s), SESS_OPENING);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    feed_connack(sp, 0);
    assert_int_equal(sess_state(F.s), SESS_CONNECTED);
}

static void lose_connection(void)
{
    F.open = false;
    sess_transport_down(F.s, F.now, PETREL_ECONNLOST);
}

static uint64_t publish(const char *topic, const char *payload, int qos)
{
    uint64_t id = 0;
    assert_int_equal(sess_publish(F.s, F.now, topic, strlen(topic), payload, strlen(payload), qos,
                                  false, &id),
                     PETREL_OK);
    assert_true(id != 0);
    return id;
}

static uint16_t expect_publish(const char *topic, uint8_t qos, bool dup)
{
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PUBLISH);
    assert_int_equal(p.u.publish.topic.len, strlen(topic));
    assert_memory_equal(p.u.publish.topic.data, topic, strlen(topic));
    assert_int_equal(p.u.publish.qos, qos);
    assert_int_equal(p.u.publish.dup, dup);
    return p.u.publish.packet_id;
}

/* ------------------------------------------------------------------------
 * Connecting
 */

static void test_connect_packet(void **state)
{
    (void)state;
    free(F.o.client_id);
    F.o.client_id = strdup("dev-7");
    F.o.clean_session = false;
    F.o.username = strdup("alice");
    F.o.password = (uint8_t *)strdup("s3cret");
    F.o.password_len = 6;
    F.o.will_topic = strdup("dev/7/status");
    F.o.will_payload = (uint8_t *)strdup("gone");
    F.o.will_payload_len = 4;
    F.o.will_qos = 1;
    F.o.will_retain = true;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    assert_int_equal(F.opens, 1);
    assert_int_equal(sess_state(F.s), SESS_OPENING);
    assert_int_equal(sess_start(F.s, F.now), PETREL_ESTATE);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    const struct mqtt_connect *c = &p.u.connect;
    assert_int_equal(c->level, 4);
    assert_false(c->clean_session);
    assert_int_equal(c->keepalive, 10);
    assert_memory_equal(c->client_id.data, "dev-7", 5);
    assert_true(c->will_flag);
    assert_int_equal(c->will_qos, 1);
    assert_true(c->will_retain);
    assert_memory_equal(c->will_topic.data, "dev/7/status", 12);
    assert_memory_equal(c->will_payload.data, "gone", 4);
    assert_true(c->has_username && c->has_password);
    assert_memory_equal(c->password.data, "s3cret", 6);
    assert_int_equal(sess_state(F.s), SESS_HANDSHAKE);
    feed_connack(true, 0);
    assert_int_equal(F.connected, 1);
    assert_true(F.session_present);
}

static void test_session_present_ignored_with_clean_session(void **state)
{
    (void)state;
    start();
    connect_ok(true); /* a server bug; a clean session has nothing to resume */
    assert_false(F.session_present);
}

static void test_refusal_not_authorized_stops(void **state)
{
    (void)state;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    feed_connack(false, MQTT_CONNACK_NOT_AUTHORIZED);
    assert_int_equal(F.disconnected, 1);
    assert_int_equal(F.reason, PETREL_ENOT_AUTHORIZED);
    assert_false(F.reconnecting);
    assert_int_equal(F.abort_closes, 1);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
    assert_int_equal(sess_deadline(F.s), -1);
}

static void test_refusal_unavailable_retries(void **state)
{
    (void)state;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    feed_connack(false, MQTT_CONNACK_UNAVAILABLE);
    assert_int_equal(F.reason, PETREL_EUNAVAILABLE);
    assert_true(F.reconnecting);
    assert_int_equal(sess_state(F.s), SESS_BACKOFF);
    int64_t d = sess_deadline(F.s) - F.now;
    assert_true(d >= 500 && d <= 1000);
    sess_tick(F.s, F.now + d - 1);
    assert_int_equal(F.opens, 1);
    sess_tick(F.s, F.now + d);
    assert_int_equal(F.opens, 2);
    assert_int_equal(sess_state(F.s), SESS_OPENING);
}

static void test_backoff_grows_and_caps(void **state)
{
    (void)state;
    F.open_rc = PETREL_ECONNREFUSED; /* every attempt fails at once */
    F.rnd = 0xFFFFFFFFu;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    int64_t expect_max[] = {1000, 2000, 4000, 8000, 8000, 8000};
    for (size_t i = 0; i < sizeof expect_max / sizeof expect_max[0]; i++) {
        assert_int_equal(sess_state(F.s), SESS_BACKOFF);
        assert_int_equal(F.reason, PETREL_ECONNREFUSED);
        int64_t d = sess_deadline(F.s) - F.now;
        assert_true(d >= expect_max[i] / 2 && d <= expect_max[i]);
        F.now += d;
        sess_tick(F.s, F.now);
    }
    assert_int_equal(F.opens, 7);
    /* A success resets the count. */
    F.open_rc = 0;
    F.now = sess_deadline(F.s);
    sess_tick(F.s, F.now);
    sess_transport_up(F.s, F.now);
    feed_connack(false, 0);
    lose_connection();
    int64_t d = sess_deadline(F.s) - F.now;
    assert_true(d >= 500 && d <= 1000);
}

static void test_backoff_delay_function(void **state)
{
    (void)state;
    assert_int_equal(backoff_delay_ms(100, 1000, 0, 0), 50);
    assert_int_equal(backoff_delay_ms(100, 1000, 0, 50), 100);
    assert_int_equal(backoff_delay_ms(100, 1000, 0, 51), 50);
    assert_int_equal(backoff_delay_ms(100, 1000, 3, 0), 400);
    assert_int_equal(backoff_delay_ms(100, 1000, 4, 0), 500);  /* capped at 1000 */
    assert_int_equal(backoff_delay_ms(100, 1000, 200, 0), 500); /* no overflow */
    for (uint32_t r = 0; r < 5000; r += 7) {
        uint32_t d = backoff_delay_ms(1000, 30000, 2, r * 2654435761u);
        assert_true(d >= 2000 && d <= 4000);
    }
}

static void test_no_reconnect_when_disabled(void **state)
{
    (void)state;
    F.o.reconnect = false;
    start();
    connect_ok(false);
    lose_connection();
    assert_int_equal(F.reason, PETREL_ECONNLOST);
    assert_false(F.reconnecting);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    F.o.connect_timeout_ms = 3000;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    assert_int_equal(sess_deadline(F.s), F.now + 3000);
    sess_tick(F.s, F.now + 2999);
    assert_int_equal(F.disconnected, 0);
    sess_tick(F.s, F.now + 3000);
    assert_int_equal(F.reason, PETREL_ETIMEDOUT);
    assert_int_equal(F.abort_closes, 1);
    /* Also when TCP works but no CONNACK comes. */
    F.now += 3000;
    F.now = sess_deadline(F.s);
    sess_tick(F.s, F.now);
    sess_transport_up(F.s, F.now);
    F.now += 3000;
    sess_tick(F.s, F.now);
    assert_int_equal(F.disconnected, 2);
    assert_int_equal(F.reason, PETREL_ETIMEDOUT);
}

static void test_open_failure_is_reported(void **state)
{
    (void)state;
    F.open_rc = PETREL_ERESOLVE;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    assert_int_equal(F.disconnected, 1);
    assert_int_equal(F.reason, PETREL_ERESOLVE);
    assert_true(F.reconnecting);
}

/* ------------------------------------------------------------------------
 * Publishing
 */

static void test_publish_qos0(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    uint64_t id = publish("a/b", "hi", 0);
    expect_publish("a/b", 0, false);
    assert_int_equal(F.published, 1);
    assert_int_equal(F.published_id[0], id);
    assert_int_equal(F.published_result[0], PETREL_OK);
    assert_int_equal(sess_pending(F.s), 0);
}

static void test_publish_qos1(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    uint64_t id = publish("a/b", "hi", 1);
    uint16_t pid = expect_publish("a/b", 1, false);
    assert_true(pid != 0);
    assert_int_equal(F.published, 0);
    assert_int_equal(sess_inflight(F.s), 1);
    feed_ack(MQTT_PUBACK, (uint16_t)(pid + 1)); /* unknown: ignored */
    assert_int_equal(F.published, 0);
    assert_int_equal(sess_state(F.s), SESS_CONNECTED);
    feed_ack(MQTT_PUBACK, pid);
    assert_int_equal(F.published, 1);
    assert_int_equal(F.published_id[0], id);
    assert_int_equal(sess_pending(F.s), 0);
    feed_ack(MQTT_PUBACK, pid); /* duplicate: ignored */
    assert_int_equal(F.published, 1);
}

static void test_publish_qos2(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    uint64_t id = publish("a/b", "hi", 2);
    uint16_t pid = expect_publish("a/b", 2, false);
    feed_ack(MQTT_PUBACK, pid); /* wrong ack for QoS 2: ignored */
    assert_int_equal(F.published, 0);
    feed_ack(MQTT_PUBREC, pid);
    expect_ack(MQTT_PUBREL, pid);
    assert_int_equal(F.published, 0);
    feed_ack(MQTT_PUBREC, pid); /* repeated PUBREC: PUBREL again */
    expect_ack(MQTT_PUBREL, pid);
    feed_ack(MQTT_PUBCOMP, pid);
    assert_int_equal(F.published, 1);
    assert_int_equal(F.published_id[0], id);
    assert_int_equal(sess_pending(F.s), 0);
}

static void test_publish_validation(void **state)
{
    (void)state;
    start();
    uint64_t id;
    assert_int_equal(sess_publish(F.s, F.now, "a/+", 3, "x", 1, 0, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a/#", 3, "x", 1, 0, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "", 0, "x", 1, 0, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, "x", 1, 3, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, "x", 1, -1, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a\xff", 2, "x", 1, 0, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, NULL, 1, 0, false, &id), PETREL_EINVAL);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, "x", (size_t)MQTT_MAX_REMAINING_LENGTH, 0,
                                  false, &id),
                     PETREL_ETOO_LARGE);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, NULL, 0, 0, false, &id), PETREL_OK);
    assert_int_equal(sess_pending(F.s), 1);
}

static void test_offline_queue_bounded_and_ordered(void **state)
{
    (void)state;
    F.o.max_queued = 3;
    F.o.max_queued_bytes = 1000;
    start();
    publish("q/1", "one", 1);
    publish("q/2", "two", 0);
    publish("q/3", "three", 2);
    uint64_t id;
    assert_int_equal(sess_publish(F.s, F.now, "q/4", 3, "x", 1, 0, false, &id),
                     PETREL_EQUEUE_FULL);
    assert_int_equal(sess_pending(F.s), 3);
    expect_nothing_sent();
    connect_ok(false);
    expect_publish("q/1", 1, false);
    expect_publish("q/2", 0, false);
    expect_publish("q/3", 2, false);
    assert_int_equal(F.published, 1); /* the QoS 0 one */
    /* Room again. */
    assert_int_equal(sess_publish(F.s, F.now, "q/4", 3, "x", 1, 0, false, &id), PETREL_OK);
}

static void test_queue_byte_limit(void **state)
{
    (void)state;
    F.o.max_queued_bytes = 10;
    start();
    uint64_t id;
    assert_int_equal(sess_publish(F.s, F.now, "abc", 3, "1234567", 7, 1, false, &id), PETREL_OK);
    assert_int_equal(sess_publish(F.s, F.now, "a", 1, "", 0, 1, false, &id), PETREL_EQUEUE_FULL);
}

static void test_inflight_window(void **state)
{
    (void)state;
    F.o.max_inflight = 2;
    start();
    connect_ok(false);
    publish("w/1", "", 1);
    publish("w/2", "", 1);
    publish("w/3", "", 1);
    publish("w/4", "", 0); /* behind w/3, keeps its place in line */
    uint16_t p1 = expect_publish("w/1", 1, false);
    expect_publish("w/2", 1, false);
    expect_nothing_sent();
    assert_int_equal(sess_inflight(F.s), 2);
    assert_int_equal(sess_pending(F.s), 4);
    feed_ack(MQTT_PUBACK, p1);
    expect_publish("w/3", 1, false);
    expect_publish("w/4", 0, false);
    expect_nothing_sent();
}

static void test_backpressure_from_transport(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    F.writable = false;
    publish("b/1", "x", 0);
    expect_nothing_sent();
    assert_int_equal(sess_pending(F.s), 1);
    F.writable = true;
    sess_writable(F.s, F.now);
    expect_publish("b/1", 0, false);
    assert_int_equal(sess_pending(F.s), 0);
}

static void test_resend_with_dup_when_session_resumes(void **state)
{
    (void)state;
    free(F.o.client_id);
    F.o.client_id = strdup("persist");
    F.o.clean_session = false;
    start();
    connect_ok(false);
    publish("r/1", "a", 1);
    publish("r/2", "b", 2);
    uint16_t p1 = expect_publish("r/1", 1, false);
    uint16_t p2 = expect_publish("r/2", 2, false);
    feed_ack(MQTT_PUBREC, p2);
    expect_ack(MQTT_PUBREL, p2);
    publish("r/3", "c", 1); /* goes out after the resends */
    uint16_t p3 = expect_publish("r/3", 1, false);
    lose_connection();
    assert_true(F.reconnecting);
    publish("r/4", "d", 1); /* offline */
    reconnect_ok(true);
    /* Same identifiers, DUP set, in the original order; PUBREL for the
     * QoS 2 message the server already has. */
    assert_int_equal(expect_publish("r/1", 1, true), p1);
    expect_ack(MQTT_PUBREL, p2);
    assert_int_equal(expect_publish("r/3", 1, true), p3);
    expect_publish("r/4", 1, false);
    expect_nothing_sent();
    feed_ack(MQTT_PUBACK, p1);
    feed_ack(MQTT_PUBCOMP, p2);
    assert_int_equal(F.published, 2);
    assert_int_equal(sess_pending(F.s), 2);
}

static void test_resend_when_session_is_gone(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    publish("n/1", "a", 1);
    publish("n/2", "b", 2);
    uint16_t p1 = expect_publish("n/1", 1, false);
    uint16_t p2 = expect_publish("n/2", 2, false);
    feed_ack(MQTT_PUBREC, p2);
    expect_ack(MQTT_PUBREL, p2);
    lose_connection();
    reconnect_ok(false);
    /* n/2 reached the server (PUBREC), whose session is gone: complete.
     * n/1 may never have arrived: sent again rather than lost. */
    assert_int_equal(F.published, 1);
    assert_int_equal(expect_publish("n/1", 1, true), p1);
    expect_nothing_sent();
}

static void test_publish_in_connected_callback_keeps_order(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    publish("o/old", "x", 1);
    expect_publish("o/old", 1, false);
    lose_connection();
    F.publish_in_connected = "o/new";
    reconnect_ok(false);
    expect_publish("o/old", 1, true);
    expect_publish("o/new", 1, false);
    expect_nothing_sent();
}

static void test_write_failure_is_a_lost_connection(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    F.fail_writes = true;
    publish("f/1", "x", 1);
    assert_int_equal(F.reason, PETREL_ENETWORK);
    assert_true(F.reconnecting);
    assert_int_equal(F.abort_closes, 1);
    assert_int_equal(sess_pending(F.s), 1);
    F.fail_writes = false;
    reconnect_ok(false);
    expect_publish("f/1", 1, false); /* never went out: no DUP */
}

static void test_packet_ids_unique_and_wrap(void **state)
{
    (void)state;
    static struct packet_ids ids;
    packet_ids_init(&ids);
    assert_int_equal(packet_ids_alloc(&ids), 1);
    assert_int_equal(packet_ids_alloc(&ids), 2);
    assert_true(packet_ids_remove(&ids, 1));
    assert_false(packet_ids_remove(&ids, 1));
    assert_int_equal(packet_ids_alloc(&ids), 3); /* not reused at once */
    for (int i = 4; i <= 65535; i++)
        assert_int_equal(packet_ids_alloc(&ids), i);
    assert_int_equal(packet_ids_alloc(&ids), 1); /* wraps, skipping 0 */
    assert_int_equal(packet_ids_alloc(&ids), 0); /* all in use */
    assert_false(packet_ids_has(&ids, 0));
    assert_false(packet_ids_add(&ids, 0));
}

/* ------------------------------------------------------------------------
 * Receiving
 */

static void test_receive_qos0_and_qos1(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    feed_publish("in/0", "zero", 0, 0, false);
    assert_int_equal(F.messages, 1);
    assert_string_equal(F.topic, "in/0");
    assert_string_equal(F.payload, "zero");
    expect_nothing_sent();
    feed_publish("in/1", "one", 1, 42, false);
    assert_int_equal(F.messages, 2);
    assert_int_equal(F.qos, 1);
    expect_ack(MQTT_PUBACK, 42);
}

static void test_receive_qos2_exactly_once(void **state)
{
    (void)state;
    free(F.o.client_id);
    F.o.client_id = strdup("q2");
    F.o.clean_session = false;
    start();
    connect_ok(false);
    feed_publish("in/2", "two", 2, 7, false);
    assert_int_equal(F.messages, 1);
    expect_ack(MQTT_PUBREC, 7);
    feed_publish("in/2", "two", 2, 7, true); /* PUBREC lost: resent */
    assert_int_equal(F.messages, 1);
    expect_ack(MQTT_PUBREC, 7);
    /* Across a resumed session too. */
    lose_connection();
    reconnect_ok(true);
    feed_publish("in/2", "two", 2, 7, true);
    assert_int_equal(F.messages, 1);
    expect_ack(MQTT_PUBREC, 7);
    feed_ack(MQTT_PUBREL, 7);
    expect_ack(MQTT_PUBCOMP, 7);
    feed_publish("in/2", "again", 2, 7, false); /* identifier reused: new */
    assert_int_equal(F.messages, 2);
    expect_ack(MQTT_PUBREC, 7);
}

static void test_stop_inside_message_callback_acks_first(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    F.stop_in_message = true;
    feed_publish("in/1", "last", 1, 5, false);
    expect_ack(MQTT_PUBACK, 5);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_DISCONNECT);
    assert_int_equal(F.graceful_closes, 1);
    assert_int_equal(sess_state(F.s), SESS_CLOSING);
    sess_transport_down(F.s, F.now, PETREL_OK);
    assert_int_equal(F.reason, PETREL_OK);
    assert_false(F.reconnecting);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
}

static void test_undeliverable_message_is_not_acknowledged(void **state)
{
    (void)state;
    free(F.o.client_id);
    F.o.client_id = strdup("oom");
    F.o.clean_session = false;
    start();
    connect_ok(false);
    F.refuse_messages = true;
    feed_publish("in/2", "two", 2, 8, false);
    expect_nothing_sent(); /* no PUBREC */
    assert_int_equal(F.reason, PETREL_ENOMEM);
    assert_true(F.reconnecting);
    F.refuse_messages = false;
    reconnect_ok(true);
    feed_publish("in/2", "two", 2, 8, true); /* the server's resend */
    assert_int_equal(F.messages, 1);
    expect_ack(MQTT_PUBREC, 8);
}

static void test_bad_packets_close_the_connection(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    /* PUBLISH with QoS 3. */
    static const uint8_t bad_qos[] = {0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01};
    feed_raw(bad_qos, sizeof bad_qos);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);
    assert_true(F.reconnecting);
    assert_int_equal(F.abort_closes, 1);

    /* Something other than CONNACK first. */
    F.now = sess_deadline(F.s);
    sess_tick(F.s, F.now);
    sess_transport_up(F.s, F.now);
    feed_ack(MQTT_PUBACK, 1);
    assert_int_equal(F.disconnected, 2);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);

    /* A packet only clients send. */
    reconnect_ok(false);
    static const uint8_t pingreq[] = {0xC0, 0x00};
    feed_raw(pingreq, sizeof pingreq);
    assert_int_equal(F.disconnected, 3);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);

    /* A second CONNACK. */
    reconnect_ok(false);
    feed_connack(false, 0);
    assert_int_equal(F.disconnected, 4);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);

    /* Truncated PUBACK. */
    reconnect_ok(false);
    static const uint8_t short_puback[] = {0x40, 0x01, 0x00};
    feed_raw(short_puback, sizeof short_puback);
    assert_int_equal(F.disconnected, 5);
}

/* ------------------------------------------------------------------------
 * Subscriptions
 */

static void test_subscribe_before_connect(void **state)
{
    (void)state;
    start();
    const char *filters[] = {"s/+", "s/#"};
    int qos[] = {1, 2};
    uint64_t id;
    assert_int_equal(sess_subscribe(F.s, F.now, filters, qos, 2, &id), PETREL_OK);
    expect_nothing_sent();
    connect_ok(false);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_SUBSCRIBE);
    assert_int_equal(p.u.subscribe.count, 2);
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &p);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_memory_equal(e.filter.data, "s/+", 3);
    assert_int_equal(e.options, 1);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.options, 2);
    uint16_t pid = p.u.subscribe.packet_id;
    static const uint8_t codes[] = {1, 0x80};
    feed_suback(pid, codes, 2);
    assert_int_equal(F.subscribed, 1);
    assert_int_equal(F.subscribed_id, id);
    assert_int_equal(F.granted_count, 2);
    assert_int_equal(F.granted[0], 1);
    assert_int_equal(F.granted[1], 0x80);
}

static void test_subscribe_validation(void **state)
{
    (void)state;
    start();
    const char *bad[] = {"a/#/b"};
    const char *good[] = {"a/#"};
    int q3[] = {3};
    int q0[] = {0};
    uint64_t id;
    assert_int_equal(sess_subscribe(F.s, F.now, bad, q0, 1, &id), PETREL_EINVAL);
    assert_int_equal(sess_subscribe(F.s, F.now, good, q3, 1, &id), PETREL_EINVAL);
    assert_int_equal(sess_subscribe(F.s, F.now, good, q0, 0, &id), PETREL_EINVAL);
    assert_int_equal(sess_unsubscribe(F.s, F.now, bad, 1, &id), PETREL_EINVAL);
}

static void test_suback_count_mismatch_is_protocol_error(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    const char *filters[] = {"x"};
    int qos[] = {0};
    assert_int_equal(sess_subscribe(F.s, F.now, filters, qos, 1, NULL), PETREL_OK);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_SUBSCRIBE);
    static const uint8_t codes[] = {0, 0};
    feed_suback(p.u.subscribe.packet_id, codes, 2);
    assert_int_equal(F.subscribed, 0);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);
}

static void test_subscriptions_renewed_without_session(void **state)
{
    (void)state;
    free(F.o.client_id);
    F.o.client_id = strdup("renew");
    F.o.clean_session = false;
    start();
    connect_ok(false);
    const char *filters[] = {"keep/#", "drop/#"};
    int qos[] = {2, 0};
    assert_int_equal(sess_subscribe(F.s, F.now, filters, qos, 2, NULL), PETREL_OK);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_SUBSCRIBE);
    static const uint8_t codes[] = {1, 0}; /* keep/# downgraded by the server */
    feed_suback(p.u.subscribe.packet_id, codes, 2);
    uint64_t uid;
    assert_int_equal(sess_unsubscribe(F.s, F.now, &filters[1], 1, &uid), PETREL_OK);
    expect_packet(&p, MQTT_UNSUBSCRIBE);
    feed_ack(MQTT_UNSUBACK, p.u.subscribe.packet_id);
    assert_int_equal(F.unsubscribed, 1);
    assert_int_equal(F.unsubscribed_id, uid);

    /* Session lost: only keep/# comes back, at the QoS asked for. */
    lose_connection();
    reconnect_ok(false);
    expect_packet(&p, MQTT_SUBSCRIBE);
    assert_int_equal(p.u.subscribe.count, 1);
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &p);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.filter.len, 6);
    assert_memory_equal(e.filter.data, "keep/#", 6);
    assert_int_equal(e.options, 2);
    static const uint8_t one[] = {2};
    feed_suback(p.u.subscribe.packet_id, one, 1);
    assert_int_equal(F.subscribed, 2);
    assert_int_equal(F.subscribed_id, 0);

    /* Session kept: nothing to renew. */
    lose_connection();
    reconnect_ok(true);
    expect_nothing_sent();
}

static void test_unacknowledged_subscribe_is_resent(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    const char *filters[] = {"u/1"};
    int qos[] = {1};
    uint64_t id;
    assert_int_equal(sess_subscribe(F.s, F.now, filters, qos, 1, &id), PETREL_OK);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_SUBSCRIBE);
    lose_connection();
    reconnect_ok(false);
    expect_packet(&p, MQTT_SUBSCRIBE);
    static const uint8_t codes[] = {1};
    feed_suback(p.u.subscribe.packet_id, codes, 1);
    assert_int_equal(F.subscribed, 1);
    assert_int_equal(F.subscribed_id, id);
}

/* ------------------------------------------------------------------------
 * Keep alive
 */

static void test_ping_when_idle_and_dead_link(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    int64_t t0 = F.now;
    assert_int_equal(sess_deadline(F.s), t0 + 10000);
    sess_tick(F.s, t0 + 9999);
    expect_nothing_sent();
    F.now = t0 + 10000;
    sess_tick(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PINGREQ);
    static const uint8_t pingresp[] = {0xD0, 0x00};
    F.now += 100;
    feed_raw(pingresp, sizeof pingresp);
    /* Answered: next ping one keep alive after the last exchange. */
    assert_int_equal(sess_deadline(F.s), t0 + 10000 + 10000);
    F.now = t0 + 20000;
    sess_tick(F.s, F.now);
    expect_packet(&p, MQTT_PINGREQ);
    /* No answer: dead after half a keep alive, 1.5 keep alives after the
     * server last spoke. */
    assert_int_equal(sess_deadline(F.s), t0 + 25000);
    sess_tick(F.s, t0 + 24999);
    assert_int_equal(F.disconnected, 0);
    F.now = t0 + 25000;
    sess_tick(F.s, F.now);
    assert_int_equal(F.disconnected, 1);
    assert_int_equal(F.reason, PETREL_EKEEPALIVE);
    assert_true(F.reconnecting);
    assert_int_equal(F.abort_closes, 1);
}

static void test_ping_when_only_sending(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    int64_t t0 = F.now;
    /* Publishing QoS 0 every second: the server says nothing, so a ping is
     * still due after one keep alive. */
    for (int i = 1; i < 10; i++) {
        F.now = t0 + i * 1000;
        publish("t", "x", 0);
        expect_publish("t", 0, false);
        sess_tick(F.s, F.now);
        expect_nothing_sent();
    }
    F.now = t0 + 10000;
    sess_tick(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PINGREQ);
}

static void test_any_packet_answers_a_ping(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    F.now += 10000;
    sess_tick(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PINGREQ);
    F.now += 4000;
    feed_publish("t", "alive", 0, 0, false);
    F.now += 1000;
    sess_tick(F.s, F.now);
    assert_int_equal(F.disconnected, 0);
}

static void test_no_dead_link_while_not_reading(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    F.now += 10000;
    sess_tick(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PINGREQ);
    sess_set_reading(F.s, F.now, false);
    assert_int_equal(sess_deadline(F.s), -1);
    F.now += 60000;
    sess_tick(F.s, F.now);
    assert_int_equal(F.disconnected, 0);
    sess_set_reading(F.s, F.now, true);
    assert_int_equal(sess_deadline(F.s), F.now + 5000);
}

static void test_keepalive_zero_never_pings(void **state)
{
    (void)state;
    F.o.keepalive = 0;
    start();
    connect_ok(false);
    assert_int_equal(sess_deadline(F.s), -1);
}

/* ------------------------------------------------------------------------
 * Stopping
 */

static void test_graceful_stop(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    sess_stop(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_DISCONNECT);
    assert_int_equal(F.graceful_closes, 1);
    assert_int_equal(F.disconnected, 0);
    sess_transport_down(F.s, F.now, PETREL_OK);
    assert_int_equal(F.disconnected, 1);
    assert_int_equal(F.reason, PETREL_OK);
    assert_false(F.reconnecting);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
    assert_int_equal(sess_start(F.s, F.now), PETREL_OK); /* can start again */
}

static void test_stop_flush_timeout(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    sess_stop(F.s, F.now);
    F.now = sess_deadline(F.s);
    sess_tick(F.s, F.now);
    assert_int_equal(F.abort_closes, 1);
    assert_int_equal(F.reason, PETREL_OK);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
}

static void test_stop_while_waiting_to_retry(void **state)
{
    (void)state;
    start();
    connect_ok(false);
    lose_connection();
    sess_stop(F.s, F.now);
    assert_int_equal(F.disconnected, 2);
    assert_int_equal(F.reason, PETREL_OK);
    assert_false(F.reconnecting);
    assert_int_equal(sess_deadline(F.s), -1);
    sess_stop(F.s, F.now); /* idempotent */
    assert_int_equal(F.disconnected, 2);
}

static void test_stop_while_opening(void **state)
{
    (void)state;
    start();
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_stop(F.s, F.now);
    assert_int_equal(F.abort_closes, 1);
    assert_int_equal(F.reason, PETREL_OK);
    assert_int_equal(sess_state(F.s), SESS_IDLE);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* ------------------------------------------------------------------------
 * MQTT 5.0
 */

static void start5(void)
{
    LEVEL = MQTT_LEVEL_5;
    F.o.protocol = MQTT_LEVEL_5;
    start();
}

/* CONNACK 0 with properties built by the caller. */
static void connect5(const struct mqtt_props *props)
{
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    struct mqtt_packet ca = {.type = MQTT_CONNACK};
    if (props)
        ca.u.connack.props = *props;
    feed(&ca);
    assert_int_equal(sess_state(F.s), SESS_CONNECTED);
}

static void test_v5_connect_properties(void **state)
{
    (void)state;
    /* A persistent session without an explicit expiry lasts forever, as in
     * 3.1.1; our max packet size goes along; the user's properties first. */
    uint8_t user[64];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, user, sizeof user);
    mqtt_pb_pair(&b, MQTT_PROP_USER_PROPERTY, "k", 1, "v", 1);
    F.o.connect_props = malloc(b.len);
    memcpy(F.o.connect_props, user, b.len);
    F.o.connect_props_len = b.len;
    F.o.clean_session = false;
    free(F.o.client_id);
    F.o.client_id = strdup("me");
    F.o.max_packet_size = 1000;
    start5();
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    assert_int_equal(p.u.connect.level, 5);
    assert_false(p.u.connect.clean_session);
    struct mqtt_prop pr;
    assert_true(mqtt_props_find(&p.u.connect.props, MQTT_PROP_SESSION_EXPIRY, &pr));
    assert_int_equal(pr.num, 0xFFFFFFFFu);
    assert_true(mqtt_props_find(&p.u.connect.props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &pr));
    assert_int_equal(pr.num, 1000);
    assert_true(mqtt_props_find(&p.u.connect.props, MQTT_PROP_USER_PROPERTY, &pr));
    assert_int_equal(pr.value.len, 1);
}

static void test_v5_server_limits(void **state)
{
    (void)state;
    start5();
    uint8_t buf[32];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, buf, sizeof buf);
    mqtt_pb_num(&b, MQTT_PROP_SERVER_KEEP_ALIVE, 4);
    mqtt_pb_num(&b, MQTT_PROP_RECEIVE_MAXIMUM, 2);
    mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_PACKET_SIZE, 64);
    struct mqtt_props props = mqtt_pb_props(&b);
    connect5(&props);
    /* Receive Maximum 2: the third QoS 1 message waits. */
    uint64_t id;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sess_publish(F.s, F.now, "t", 1, "x", 1, 1, false, &id), 0);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PUBLISH);
    expect_packet(&p, MQTT_PUBLISH);
    expect_nothing_sent();
    assert_int_equal(sess_inflight(F.s), 2);
    feed_ack(MQTT_PUBACK, 1);
    expect_packet(&p, MQTT_PUBLISH);
    /* Maximum Packet Size 64: a bigger message is refused at once. */
    char big[100];
    memset(big, 'a', sizeof big);
    assert_int_equal(sess_publish(F.s, F.now, "t", 1, big, sizeof big, 0, false, &id),
                     PETREL_ETOO_LARGE);
    /* Server Keep Alive 4 s replaces our 10 s. */
    assert_int_equal(sess_deadline(F.s), F.now + 4000);
}

static void test_v5_puback_failure(void **state)
{
    (void)state;
    start5();
    connect5(NULL);
    uint64_t id;
    assert_int_equal(sess_publish(F.s, F.now, "t", 1, "x", 1, 1, false, &id), 0);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_PUBLISH);
    struct mqtt_packet ack = {.type = MQTT_PUBACK};
    ack.u.ack.packet_id = p.u.publish.packet_id;
    ack.u.ack.reason_code = MQTT_RC_NOT_AUTHORIZED;
    feed(&ack);
    assert_int_equal(F.published, 1);
    assert_int_equal(F.published_result[0], PETREL_EREJECTED);
    assert_int_equal(F.pub_reason, 0x87);
    /* PUBREC failure ends a QoS 2 exchange without PUBREL. */
    assert_int_equal(sess_publish(F.s, F.now, "t", 1, "x", 1, 2, false, &id), 0);
    expect_packet(&p, MQTT_PUBLISH);
    struct mqtt_packet rec = {.type = MQTT_PUBREC};
    rec.u.ack.packet_id = p.u.publish.packet_id;
    rec.u.ack.reason_code = MQTT_RC_QUOTA_EXCEEDED;
    feed(&rec);
    expect_nothing_sent();
    assert_int_equal(F.published, 2);
    assert_int_equal(F.published_result[1], PETREL_EREJECTED);
    assert_int_equal(F.pub_reason, 0x97);
    /* Success codes below 0x80 (no matching subscribers) are a success. */
    assert_int_equal(sess_publish(F.s, F.now, "t", 1, "x", 1, 1, false, &id), 0);
    expect_packet(&p, MQTT_PUBLISH);
    ack.u.ack.packet_id = p.u.publish.packet_id;
    ack.u.ack.reason_code = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    feed(&ack);
    assert_int_equal(F.published_result[2], PETREL_OK);
    assert_int_equal(F.pub_reason, 0x10);
}

static void test_v5_server_disconnect(void **state)
{
    (void)state;
    start5();
    connect5(NULL);
    uint8_t buf[32];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, buf, sizeof buf);
    mqtt_pb_bytes(&b, MQTT_PROP_REASON_STRING, "bye", 3);
    struct mqtt_packet d = {.type = MQTT_DISCONNECT};
    d.u.disconnect.reason_code = MQTT_RC_SERVER_SHUTTING_DOWN;
    d.u.disconnect.props = mqtt_pb_props(&b);
    feed(&d);
    assert_int_equal(F.disconnected, 1);
    assert_int_equal(F.reason, PETREL_ESERVER_DISCONNECT);
    assert_true(F.reconnecting);
    assert_int_equal(F.disc_reason_code, 0x8B);
    assert_string_equal(F.disc_reason_string, "bye");
}

static void test_v5_connack_refusal(void **state)
{
    (void)state;
    start5();
    assert_int_equal(sess_start(F.s, F.now), 0);
    sess_transport_up(F.s, F.now);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_CONNECT);
    feed_connack(false, MQTT_RC_BANNED);
    assert_int_equal(F.reason, PETREL_EREFUSED);
    assert_false(F.reconnecting); /* retrying would not help */
    assert_int_equal(F.disc_reason_code, 0x8A);
}

static void test_v5_topic_alias(void **state)
{
    (void)state;
    uint8_t cp[8];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, cp, sizeof cp);
    mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 3);
    F.o.connect_props = malloc(b.len);
    memcpy(F.o.connect_props, cp, b.len);
    F.o.connect_props_len = b.len;
    start5();
    connect5(NULL);
    uint8_t pb[32];
    mqtt_pb_init(&b, pb, sizeof pb);
    mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS, 2);
    mqtt_pb_bytes(&b, MQTT_PROP_CONTENT_TYPE, "text/plain", 10);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"long/topic", 10};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"one", 3};
    p.u.publish.props = mqtt_pb_props(&b);
    feed(&p);
    assert_string_equal(F.topic, "long/topic");
    assert_string_equal(F.msg_props_ct, "text/plain");
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"", 0};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"two", 3};
    feed(&p);
    assert_int_equal(F.messages, 2);
    assert_string_equal(F.topic, "long/topic");
    assert_string_equal(F.payload, "two");
    /* An alias beyond what we announced is a protocol error: DISCONNECT
     * 0x94, then close. */
    mqtt_pb_init(&b, pb, sizeof pb);
    mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS, 4);
    p.u.publish.props = mqtt_pb_props(&b);
    feed(&p);
    struct mqtt_packet d;
    expect_packet(&d, MQTT_DISCONNECT);
    assert_int_equal(d.u.disconnect.reason_code, MQTT_RC_TOPIC_ALIAS_INVALID);
    assert_int_equal(F.reason, PETREL_EPROTOCOL);
}

static void test_v5_subscribe_options_and_suback(void **state)
{
    (void)state;
    start5();
    connect5(NULL);
    const char *filters[] = {"a/#", "b"};
    int opts[] = {1 | MQTT_SUBOPT_NO_LOCAL | 0x20, 2 | MQTT_SUBOPT_RETAIN_AS_PUBLISHED};
    uint8_t pb[16];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, pb, sizeof pb);
    mqtt_pb_num(&b, MQTT_PROP_SUBSCRIPTION_ID, 9);
    uint64_t id;
    assert_int_equal(sess_subscribe_props(F.s, F.now, filters, opts, 2, pb, b.len, &id), 0);
    struct mqtt_packet p;
    expect_packet(&p, MQTT_SUBSCRIBE);
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &p);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.options, opts[0]);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.options, opts[1]);
    struct mqtt_prop pr;
    assert_true(mqtt_props_find(&p.u.subscribe.props, MQTT_PROP_SUBSCRIPTION_ID, &pr));
    assert_int_equal(pr.num, 9);
    /* Retain handling 3 and option bits with 3.1.1 semantics are refused. */
    int bad = 0x30;
    assert_int_equal(sess_subscribe_props(F.s, F.now, filters, &bad, 1, NULL, 0, &id),
                     PETREL_EINVAL);
    uint8_t codes[] = {1, MQTT_RC_NOT_AUTHORIZED};
    feed_suback(p.u.subscribe.packet_id, codes, 2);
    assert_int_equal(F.subscribed, 1);
    assert_int_equal(F.granted[0], 1);
    assert_int_equal(F.granted[1], 0x87);
}

static void test_v5_props_refused_with_311(void **state)
{
    (void)state;
    start();
    uint8_t pb[16];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, pb, sizeof pb);
    mqtt_pb_bytes(&b, MQTT_PROP_CONTENT_TYPE, "x", 1);
    uint64_t id;
    assert_int_equal(sess_publish_props(F.s, F.now, "t", 1, "x", 1, 0, false, pb, b.len, &id),
                     PETREL_EINVAL);
    const char *f = "t";
    int opt = MQTT_SUBOPT_NO_LOCAL;
    assert_int_equal(sess_subscribe_props(F.s, F.now, &f, &opt, 1, NULL, 0, &id), PETREL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_connect_packet),
        T(test_session_present_ignored_with_clean_session),
        T(test_refusal_not_authorized_stops),
        T(test_refusal_unavailable_retries),
        T(test_backoff_grows_and_caps),
        T(test_backoff_delay_function),
        T(test_no_reconnect_when_disabled),
        T(test_connect_timeout),
        T(test_open_failure_is_reported),
        T(test_publish_qos0),
        T(test_publish_qos1),
        T(test_publish_qos2),
        T(test_publish_validation),
        T(test_offline_queue_bounded_and_ordered),
        T(test_queue_byte_limit),
        T(test_inflight_window),
        T(test_backpressure_from_transport),
        T(test_resend_with_dup_when_session_resumes),
        T(test_resend_when_session_is_gone),
        T(test_publish_in_connected_callback_keeps_order),
        T(test_write_failure_is_a_lost_connection),
        T(test_packet_ids_unique_and_wrap),
        T(test_receive_qos0_and_qos1),
        T(test_receive_qos2_exactly_once),
        T(test_stop_inside_message_callback_acks_first),
        T(test_undeliverable_message_is_not_acknowledged),
        T(test_bad_packets_close_the_connection),
        T(test_subscribe_before_connect),
        T(test_subscribe_validation),
        T(test_suback_count_mismatch_is_protocol_error),
        T(test_subscriptions_renewed_without_session),
        T(test_unacknowledged_subscribe_is_resent),
        T(test_ping_when_idle_and_dead_link),
        T(test_ping_when_only_sending),
        T(test_any_packet_answers_a_ping),
        T(test_no_dead_link_while_not_reading),
        T(test_keepalive_zero_never_pings),
        T(test_graceful_stop),
        T(test_stop_flush_timeout),
        T(test_stop_while_waiting_to_retry),
        T(test_stop_while_opening),
        T(test_v5_connect_properties),
        T(test_v5_server_limits),
        T(test_v5_puback_failure),
        T(test_v5_server_disconnect),
        T(test_v5_connack_refusal),
        T(test_v5_topic_alias),
        T(test_v5_subscribe_options_and_suback),
        T(test_v5_props_refused_with_311),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
