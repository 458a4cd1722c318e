/*
 * test_proto.c - unit tests for the MQTT codec (client-lib/proto): framing,
 * round trips of every packet type, packets written out by hand from the
 * 3.1.1 spec, one test per rejection rule, encoder refusals and validators.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"

/* A byte array literal and its length, for functions taking (buf, len). */
#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static struct mqtt_bytes bin(const void *p, uint32_t n)
{
    struct mqtt_bytes b = {(const uint8_t *)p, n};
    return b;
}

/* ------------------------------------------------------------------------
 * Helpers
 */

/* Frames and decodes one whole packet held in buf[0..n).  The test data must
 * be exactly one packet, so a framing mismatch is a bug in the test. */
static enum mqtt_err decode_level(uint8_t level, const uint8_t *buf, size_t n,
                                  struct mqtt_packet *out, const char **why)
{
    uint8_t first;
    uint32_t remaining;
    size_t hlen;
    enum mqtt_err err = mqtt_frame_header(buf, n, 0, &first, &remaining, &hlen);

    assert_int_equal(err, MQTT_OK);
    assert_int_equal(hlen + remaining, n);
    *why = NULL;
    err = mqtt_decode(level, first, buf + hlen, remaining, out, why);
    if (err != MQTT_OK) {
        /* Every rejection must explain itself for the log. */
        assert_non_null(*why);
        assert_true(strlen(*why) > 0);
    }
    return err;
}

static enum mqtt_err decode(const uint8_t *buf, size_t n, struct mqtt_packet *out,
                            const char **why)
{
    return decode_level(MQTT_LEVEL_311, buf, n, out, why);
}

static void expect_ok(const uint8_t *buf, size_t n)
{
    struct mqtt_packet p;
    const char *why;
    enum mqtt_err err = decode(buf, n, &p, &why);

    if (err != MQTT_OK)
        fail_msg("expected OK, got %d (%s)", err, why);
}

/* Decodes buf and checks the error and that `why` mentions `why_part`, so
 * that the test proves which rule fired, not just that something did. */
static void expect_err(enum mqtt_err want, const char *why_part, const uint8_t *buf, size_t n)
{
    struct mqtt_packet p;
    const char *why;
    enum mqtt_err err = decode(buf, n, &p, &why);

    if (err != want)
        fail_msg("expected %d, got %d (%s)", want, err, why ? why : "-");
    if (why_part && strstr(why, why_part) == NULL)
        fail_msg("why \"%s\" does not mention \"%s\"", why, why_part);
}

/* The core of the rule tests: `valid` decodes fine, and setting one byte to
 * `value` makes it fail with `want` for the reason `why_part`. */
static void check_rule(const uint8_t *valid, size_t n, size_t at, uint8_t value,
                       enum mqtt_err want, const char *why_part)
{
    uint8_t buf[256];

    assert_true(n <= sizeof buf && at < n);
    memcpy(buf, valid, n);
    expect_ok(buf, n);
    buf[at] = value;
    if (want == MQTT_OK)
        expect_ok(buf, n);     /* proves a rule is NOT enforced here */
    else
        expect_err(want, why_part, buf, n);
}

/* Encodes p and checks the snprintf contract on the way: sizing with cap 0,
 * nothing written with cap one short, then the real write. */
static size_t encode(const struct mqtt_packet *p, uint8_t *buf, size_t cap)
{
    size_t need = mqtt_encode(MQTT_LEVEL_311, p, NULL, 0);

    assert_true(need >= 2);
    assert_true(need <= cap);
    memset(buf, 0xA5, cap);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, p, buf, need - 1), need);
    for (size_t i = 0; i < cap; i++)
        assert_int_equal(buf[i], 0xA5);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, p, buf, cap), need);
    return need;
}

static void assert_bytes_eq(struct mqtt_bytes a, struct mqtt_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

static void assert_no_props(struct mqtt_props p)
{
    assert_int_equal(p.len, 0);
}

/* Compares every field that `type` uses.  `want` may come from a caller
 * (SUBSCRIBE with entries) and `got` from the decoder (with wire). */
static void assert_packet_eq(const struct mqtt_packet *want, const struct mqtt_packet *got)
{
    assert_int_equal(want->type, got->type);
    switch (want->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *a = &want->u.connect, *b = &got->u.connect;
        assert_int_equal(b->level, MQTT_LEVEL_311);
        assert_int_equal(a->clean_session, b->clean_session);
        assert_int_equal(a->keepalive, b->keepalive);
        assert_bytes_eq(a->client_id, b->client_id);
        assert_int_equal(a->will_flag, b->will_flag);
        if (a->will_flag) {
            assert_int_equal(a->will_qos, b->will_qos);
            assert_int_equal(a->will_retain, b->will_retain);
            assert_bytes_eq(a->will_topic, b->will_topic);
            assert_bytes_eq(a->will_payload, b->will_payload);
        } else {
            assert_int_equal(b->will_qos, 0);
            assert_false(b->will_retain);
            assert_int_equal(b->will_topic.len, 0);
            assert_int_equal(b->will_payload.len, 0);
        }
        assert_int_equal(a->has_username, b->has_username);
        if (a->has_username)
            assert_bytes_eq(a->username, b->username);
        assert_int_equal(a->has_password, b->has_password);
        if (a->has_password)
            assert_bytes_eq(a->password, b->password);
        assert_no_props(b->props);
        assert_no_props(b->will_props);
        break;
    }
    case MQTT_CONNACK:
        assert_int_equal(want->u.connack.session_present, got->u.connack.session_present);
        assert_int_equal(want->u.connack.return_code, got->u.connack.return_code);
        assert_no_props(got->u.connack.props);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *a = &want->u.publish, *b = &got->u.publish;
        assert_int_equal(a->dup, b->dup);
        assert_int_equal(a->qos, b->qos);
        assert_int_equal(a->retain, b->retain);
        assert_bytes_eq(a->topic, b->topic);
        assert_int_equal(a->qos ? a->packet_id : 0, b->packet_id);
        assert_bytes_eq(a->payload, b->payload);
        assert_no_props(b->props);
        assert_int_equal(got->flags, (a->dup ? 8 : 0) | a->qos << 1 | (a->retain ? 1 : 0));
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        assert_int_equal(want->u.ack.packet_id, got->u.ack.packet_id);
        assert_int_equal(got->u.ack.reason_code, 0);
        assert_no_props(got->u.ack.props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *a = &want->u.subscribe, *b = &got->u.subscribe;
        struct mqtt_topic_iter it;
        struct mqtt_topic_entry e;
        uint32_t i = 0;

        assert_int_equal(a->packet_id, b->packet_id);
        assert_int_equal(a->count, b->count);
        assert_null(b->entries);
        mqtt_topic_iter_init(&it, got);
        while (mqtt_topic_iter_next(&it, &e)) {
            assert_true(i < a->count);
            assert_bytes_eq(a->entries[i].filter, e.filter);
            assert_int_equal(want->type == MQTT_SUBSCRIBE ? a->entries[i].options : 0, e.options);
            i++;
        }
        assert_int_equal(i, a->count);
        assert_no_props(b->props);
        break;
    }
    case MQTT_SUBACK:
        assert_int_equal(want->u.suback.packet_id, got->u.suback.packet_id);
        assert_bytes_eq(want->u.suback.codes, got->u.suback.codes);
        assert_no_props(got->u.suback.props);
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        break;
    default:
        fail_msg("unexpected type %d", want->type);
    }
}

/* Encode, decode, compare; then encode the decoded packet and check the
 * bytes are identical, which proves the encoding is canonical. */
static void round_trip(const struct mqtt_packet *p)
{
    size_t cap = 70000;
    uint8_t *buf = malloc(cap), *again = malloc(cap);
    struct mqtt_packet got;
    const char *why;

    assert_non_null(buf);
    assert_non_null(again);
    size_t n = encode(p, buf, cap);
    enum mqtt_err err = decode(buf, n, &got, &why);
    if (err != MQTT_OK)
        fail_msg("decode of encoded %s failed: %s", mqtt_type_name(p->type), why);
    assert_packet_eq(p, &got);

    /* SUBSCRIBE comes back as wire + iterator; rebuild entries to re-encode. */
    struct mqtt_topic_entry entries[16];
    if (got.type == MQTT_SUBSCRIBE || got.type == MQTT_UNSUBSCRIBE) {
        struct mqtt_topic_iter it;
        uint32_t i = 0;
        mqtt_topic_iter_init(&it, &got);
        while (i < 16 && mqtt_topic_iter_next(&it, &entries[i]))
            i++;
        got.u.subscribe.entries = entries;
    }
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &got, again, cap), n);
    assert_memory_equal(buf, again, n);
    free(buf);
    free(again);
}

/* ------------------------------------------------------------------------
 * Framing
 */

static void test_frame_lengths(void **state)
{
    (void)state;
    static const struct {
        uint32_t value;
        size_t nbytes;
        uint8_t bytes[4];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {127, 1, {0x7F}},
        {128, 2, {0x80, 0x01}},
        {16383, 2, {0xFF, 0x7F}},
        {16384, 3, {0x80, 0x80, 0x01}},
        {2097151, 3, {0xFF, 0xFF, 0x7F}},
        {2097152, 4, {0x80, 0x80, 0x80, 0x01}},
        {268435455, 4, {0xFF, 0xFF, 0xFF, 0x7F}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[4], hdr[5];
        uint8_t first;
        uint32_t rem;
        size_t hlen;

        assert_int_equal(mqtt_encode_varint(cases[i].value, out), cases[i].nbytes);
        assert_memory_equal(out, cases[i].bytes, cases[i].nbytes);

        hdr[0] = 0x30;
        memcpy(hdr + 1, cases[i].bytes, cases[i].nbytes);
        assert_int_equal(mqtt_frame_header(hdr, 1 + cases[i].nbytes, 0, &first, &rem, &hlen),
                         MQTT_OK);
        assert_int_equal(first, 0x30);
        assert_int_equal(rem, cases[i].value);
        assert_int_equal(hlen, 1 + cases[i].nbytes);

        /* Every strict prefix of the header is incomplete, never an error. */
        for (size_t k = 0; k < 1 + cases[i].nbytes; k++)
            assert_int_equal(mqtt_frame_header(hdr, k, 0, &first, &rem, &hlen), MQTT_INCOMPLETE);
    }
    uint8_t out[4];
    assert_int_equal(mqtt_encode_varint(268435456u, out), 0);
    assert_int_equal(mqtt_encode_varint(UINT32_MAX, out), 0);
}

static void test_frame_five_bytes_rejected(void **state)
{
    (void)state;
    uint8_t first;
    uint32_t rem;
    size_t hlen;

    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), 0, &first, &rem,
                                       &hlen), MQTT_E_MALFORMED);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), 0, &first, &rem,
                                       &hlen), MQTT_E_MALFORMED);
    /* Proven by the 4th length byte alone, before a 5th has arrived. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x80, 0x80, 0x80), 0, &first, &rem,
                                       &hlen), MQTT_E_MALFORMED);
}

static void test_frame_overlong_rejected(void **state)
{
    (void)state;
    uint8_t first;
    uint32_t rem;
    size_t hlen;

    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x00), 0, &first, &rem, &hlen),
                     MQTT_E_MALFORMED);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0x00), 0, &first, &rem, &hlen),
                     MQTT_E_MALFORMED);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x80, 0x00), 0, &first, &rem, &hlen),
                     MQTT_E_MALFORMED);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x81, 0x80, 0x80, 0x00), 0, &first, &rem,
                                       &hlen), MQTT_E_MALFORMED);
    /* The minimal forms of the same kind of value are fine. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x00), 0, &first, &rem, &hlen), MQTT_OK);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x7F), 0, &first, &rem, &hlen), MQTT_OK);
}

static void test_frame_incomplete(void **state)
{
    (void)state;
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    static const uint8_t one[1] = {0x30};

    assert_int_equal(mqtt_frame_header(one, 0, 0, &first, &rem, &hlen), MQTT_INCOMPLETE);
    assert_int_equal(mqtt_frame_header(one, 1, 0, &first, &rem, &hlen), MQTT_INCOMPLETE);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80), 0, &first, &rem, &hlen),
                     MQTT_INCOMPLETE);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0xFF), 0, &first, &rem, &hlen),
                     MQTT_INCOMPLETE);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0xFF, 0xFF), 0, &first, &rem, &hlen),
                     MQTT_INCOMPLETE);
    /* The header is complete even if the body is not: framing says how much
     * to wait for, so a missing body is not INCOMPLETE here. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x10), 0, &first, &rem, &hlen), MQTT_OK);
    assert_int_equal(rem, 16);
}

static void test_frame_max_packet(void **state)
{
    (void)state;
    uint8_t first;
    uint32_t rem;
    size_t hlen;

    /* 2 + 100 = 102 bytes in all. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 100), 102, &first, &rem, &hlen), MQTT_OK);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 100), 101, &first, &rem, &hlen),
                     MQTT_E_TOO_LARGE);
    /* The limit counts the whole header: 1 + 3 + 16384. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x80, 0x01), 16388, &first, &rem, &hlen),
                     MQTT_OK);
    first = 0;
    rem = 0;
    hlen = 0;
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0x80, 0x80, 0x01), 16387, &first, &rem, &hlen),
                     MQTT_E_TOO_LARGE);
    /* An oversized packet's header is still reported, for the caller's
     * message and its look at the packet. */
    assert_int_equal(first, 0x30);
    assert_int_equal(rem, 16384);
    assert_int_equal(hlen, 4);
    /* 0 = only the protocol's limit. */
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 0, &first, &rem,
                                       &hlen), MQTT_OK);
    assert_int_equal(rem, MQTT_MAX_REMAINING_LENGTH);
    assert_int_equal(mqtt_frame_header(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 1024, &first, &rem,
                                       &hlen), MQTT_E_TOO_LARGE);
    /* Framing does not judge the type byte; mqtt_decode does. */
    assert_int_equal(mqtt_frame_header(BYTES(0x00, 0x00), 0, &first, &rem, &hlen), MQTT_OK);
}

/* ------------------------------------------------------------------------
 * Round trips, every type
 */

static void test_rt_connect(void **state)
{
    (void)state;
    static const uint8_t pw_bin[] = {0x00, 0xFF, 0x01, 0x00};
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &p.u.connect;

    /* Minimal: empty client id, clean session, no keep alive. */
    c->clean_session = true;
    round_trip(&p);

    c->clean_session = false;
    c->keepalive = 60;
    c->client_id = mqtt_str("sensor-17");
    round_trip(&p);

    c->keepalive = 65535;
    c->client_id = mqtt_str("caf\xc3\xa9-\xf0\x9f\x90\xa6");   /* UTF-8, incl. 4 bytes */
    round_trip(&p);

    for (uint8_t q = 0; q <= 2; q++) {
        c->will_flag = true;
        c->will_qos = q;
        c->will_retain = q == 1;
        c->will_topic = mqtt_str("dev/17/status");
        c->will_payload = mqtt_str("offline");
        round_trip(&p);
    }
    c->will_payload = bin(NULL, 0);     /* empty will message */
    round_trip(&p);

    c->has_username = true;
    c->username = mqtt_str("alice");
    round_trip(&p);

    c->has_password = true;
    c->password = mqtt_str("s3cret");
    round_trip(&p);

    c->password = bin(pw_bin, sizeof pw_bin);   /* binary, with zero bytes */
    round_trip(&p);

    c->password = bin(NULL, 0);
    c->username = bin(NULL, 0);
    round_trip(&p);

    /* Username and password but no will. */
    c->will_flag = false;
    c->will_qos = 0;
    c->will_retain = false;
    c->will_topic = c->will_payload = bin(NULL, 0);
    c->username = mqtt_str("bob");
    c->password = mqtt_str("pw");
    round_trip(&p);
}

static void test_rt_connack(void **state)
{
    (void)state;
    struct mqtt_packet p = {.type = MQTT_CONNACK};

    round_trip(&p);
    p.u.connack.session_present = true;
    round_trip(&p);
    p.u.connack.session_present = false;
    for (uint8_t rc = 1; rc <= 5; rc++) {
        p.u.connack.return_code = rc;
        round_trip(&p);
    }
}

static void test_rt_publish(void **state)
{
    (void)state;
    static uint8_t big[20000];
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    struct mqtt_publish *m = &p.u.publish;

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);

    m->topic = mqtt_str("a/b");
    m->payload = mqtt_str("hello");
    round_trip(&p);                     /* QoS 0 */

    m->retain = true;
    round_trip(&p);                     /* QoS 0 retained */

    m->qos = 1;
    m->packet_id = 1;
    round_trip(&p);

    m->dup = true;
    m->retain = false;
    m->packet_id = 65535;
    round_trip(&p);                     /* QoS 1 redelivery */

    m->qos = 2;
    m->retain = true;
    m->packet_id = 0x1234;
    round_trip(&p);                     /* QoS 2 dup retain */

    m->dup = false;
    m->payload = bin(NULL, 0);
    round_trip(&p);                     /* empty payload: clears a retained message */

    m->qos = 0;
    m->packet_id = 0;
    m->retain = false;
    m->topic = mqtt_str("/caf\xc3\xa9/\xe2\x82\xac//$SYS");   /* empty levels, UTF-8 */
    round_trip(&p);

    m->payload = bin(big, 200);         /* 2-byte remaining length */
    round_trip(&p);
    m->payload = bin(big, sizeof big);  /* 3-byte remaining length */
    m->qos = 1;
    m->packet_id = 9;
    round_trip(&p);
}

static void test_rt_acks(void **state)
{
    (void)state;
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                    MQTT_UNSUBACK};
    static const uint16_t ids[] = {1, 10, 0x1234, 65535};

    for (size_t t = 0; t < sizeof types; t++) {
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            struct mqtt_packet p = {.type = types[t]};
            p.u.ack.packet_id = ids[i];
            round_trip(&p);
        }
    }
}

static void test_rt_subscribe(void **state)
{
    (void)state;
    struct mqtt_topic_entry e[] = {
        {mqtt_str("a/b"), 0},
        {mqtt_str("sensors/+/temp"), 1},
        {mqtt_str("#"), 2},
        {mqtt_str("+/a/+"), 1},
        {mqtt_str("+"), 0},
        {mqtt_str("\xe2\x82\xac/+/#"), 2},
    };
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE};

    p.u.subscribe.packet_id = 1;
    p.u.subscribe.entries = e;
    p.u.subscribe.count = 1;
    round_trip(&p);
    for (uint8_t q = 1; q <= 2; q++) {
        e[0].options = q;
        round_trip(&p);
    }
    p.u.subscribe.packet_id = 65535;
    p.u.subscribe.count = 3;
    round_trip(&p);
    p.u.subscribe.count = sizeof e / sizeof e[0];
    round_trip(&p);
}

static void test_rt_suback(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 1, 2, 0x80, 1};
    struct mqtt_packet p = {.type = MQTT_SUBACK};

    p.u.suback.packet_id = 7;
    for (uint32_t n = 1; n <= sizeof codes; n++) {
        p.u.suback.codes = bin(codes, n);
        round_trip(&p);
    }
    p.u.suback.codes = bin(codes + 3, 1);   /* only a failure */
    round_trip(&p);
}

static void test_rt_unsubscribe(void **state)
{
    (void)state;
    struct mqtt_topic_entry e[] = {
        {mqtt_str("a/b"), 0},
        {mqtt_str("+/+"), 0},
        {mqtt_str("x/#"), 0},
    };
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE};

    p.u.subscribe.packet_id = 300;
    p.u.subscribe.entries = e;
    p.u.subscribe.count = 1;
    round_trip(&p);
    p.u.subscribe.count = 3;
    round_trip(&p);
}

static void test_rt_empty_packets(void **state)
{
    (void)state;
    static const uint8_t types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};

    for (size_t i = 0; i < sizeof types; i++) {
        struct mqtt_packet p = {.type = types[i]};
        uint8_t buf[2];
        round_trip(&p);
        assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 2);
        assert_int_equal(buf[0], types[i] << 4);
        assert_int_equal(buf[1], 0);
    }
}

/* ------------------------------------------------------------------------
 * Packets written out by hand from the 3.1.1 specification's examples
 */

/* The variable header of Figure 3.6 (flags 0xCE: username, password, will
 * QoS 1, will, clean session; keep alive 10) with a matching payload. */
static const uint8_t spec_connect[] = {
    0x10, 37,
    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A,
    0x00, 0x03, 'c', 'i', 'd',
    0x00, 0x03, 'w', '/', 't',
    0x00, 0x03, 'b', 'y', 'e',
    0x00, 0x04, 'u', 's', 'e', 'r',
    0x00, 0x04, 'p', 'a', 's', 's',
};

static void test_spec_connect(void **state)
{
    (void)state;
    struct mqtt_packet p;
    const char *why;
    uint8_t buf[64];

    assert_int_equal(decode(spec_connect, sizeof spec_connect, &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(p.u.connect.level, 4);
    assert_true(p.u.connect.clean_session);
    assert_int_equal(p.u.connect.keepalive, 10);
    assert_true(p.u.connect.will_flag);
    assert_int_equal(p.u.connect.will_qos, 1);
    assert_false(p.u.connect.will_retain);
    assert_true(p.u.connect.has_username);
    assert_true(p.u.connect.has_password);
    assert_bytes_eq(p.u.connect.client_id, mqtt_str("cid"));
    assert_bytes_eq(p.u.connect.will_topic, mqtt_str("w/t"));
    assert_bytes_eq(p.u.connect.will_payload, mqtt_str("bye"));
    assert_bytes_eq(p.u.connect.username, mqtt_str("user"));
    assert_bytes_eq(p.u.connect.password, mqtt_str("pass"));
    /* Zero-copy: fields point into the input. */
    assert_ptr_equal(p.u.connect.client_id.data, spec_connect + 14);

    assert_int_equal(encode(&p, buf, sizeof buf), sizeof spec_connect);
    assert_memory_equal(buf, spec_connect, sizeof spec_connect);
}

static void test_spec_publish(void **state)
{
    (void)state;
    /* 3.3.2.3: topic "a/b", packet identifier 10, then the payload. */
    static const uint8_t bytes[] = {0x3B, 9, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
    struct mqtt_packet p;
    const char *why;
    uint8_t buf[16];

    assert_int_equal(decode(bytes, sizeof bytes, &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_PUBLISH);
    assert_int_equal(p.flags, 0x0B);
    assert_true(p.u.publish.dup);
    assert_int_equal(p.u.publish.qos, 1);
    assert_true(p.u.publish.retain);
    assert_bytes_eq(p.u.publish.topic, mqtt_str("a/b"));
    assert_int_equal(p.u.publish.packet_id, 10);
    assert_bytes_eq(p.u.publish.payload, mqtt_str("hi"));
    assert_int_equal(encode(&p, buf, sizeof buf), sizeof bytes);
    assert_memory_equal(buf, bytes, sizeof bytes);
}

static void test_spec_subscribe(void **state)
{
    (void)state;
    /* Figure 3.22 (payload), packet identifier 10. */
    static const uint8_t bytes[] = {0x82, 14, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01,
                                    0x00, 0x03, 'c', '/', 'd', 0x02};
    struct mqtt_packet p;
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    const char *why;

    assert_int_equal(decode(bytes, sizeof bytes, &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_SUBSCRIBE);
    assert_int_equal(p.u.subscribe.packet_id, 10);
    assert_int_equal(p.u.subscribe.count, 2);
    assert_int_equal(p.u.subscribe.wire.len, 12);
    mqtt_topic_iter_init(&it, &p);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_bytes_eq(e.filter, mqtt_str("a/b"));
    assert_int_equal(e.options, 1);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_bytes_eq(e.filter, mqtt_str("c/d"));
    assert_int_equal(e.options, 2);
    assert_false(mqtt_topic_iter_next(&it, &e));
    assert_false(mqtt_topic_iter_next(&it, &e));
}

static void test_spec_small_packets(void **state)
{
    (void)state;
    struct mqtt_packet p;
    const char *why;

    /* Figure 3.26: SUBACK codes 0, 1, 2 and failure. */
    assert_int_equal(decode(BYTES(0x90, 6, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80), &p, &why),
                     MQTT_OK);
    assert_int_equal(p.u.suback.packet_id, 10);
    assert_bytes_eq(p.u.suback.codes, bin("\x00\x01\x02\x80", 4));

    /* Figure 3.30: UNSUBSCRIBE "a/b", "c/d". */
    assert_int_equal(decode(BYTES(0xA2, 12, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b',
                                  0x00, 0x03, 'c', '/', 'd'), &p, &why), MQTT_OK);
    assert_int_equal(p.u.subscribe.count, 2);

    assert_int_equal(decode(BYTES(0x20, 0x02, 0x01, 0x00), &p, &why), MQTT_OK);
    assert_true(p.u.connack.session_present);
    assert_int_equal(p.u.connack.return_code, 0);
    assert_int_equal(decode(BYTES(0x20, 0x02, 0x00, 0x05), &p, &why), MQTT_OK);
    assert_int_equal(p.u.connack.return_code, MQTT_CONNACK_NOT_AUTHORIZED);

    assert_int_equal(decode(BYTES(0x40, 0x02, 0x12, 0x34), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_PUBACK);
    assert_int_equal(p.u.ack.packet_id, 0x1234);
    assert_int_equal(decode(BYTES(0x62, 0x02, 0x00, 0x01), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_PUBREL);
    assert_int_equal(decode(BYTES(0xB0, 0x02, 0x00, 0x01), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_UNSUBACK);

    assert_int_equal(decode(BYTES(0xC0, 0x00), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_PINGREQ);
    assert_int_equal(decode(BYTES(0xD0, 0x00), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_PINGRESP);
    assert_int_equal(decode(BYTES(0xE0, 0x00), &p, &why), MQTT_OK);
    assert_int_equal(p.type, MQTT_DISCONNECT);

    /* QoS 0 PUBLISH has no packet identifier: "a" then payload "xy". */
    assert_int_equal(decode(BYTES(0x30, 0x05, 0x00, 0x01, 'a', 'x', 'y'), &p, &why), MQTT_OK);
    assert_int_equal(p.u.publish.packet_id, 0);
    assert_bytes_eq(p.u.publish.payload, mqtt_str("xy"));

    /* A bodiless packet may be decoded from a NULL body. */
    assert_int_equal(mqtt_decode(MQTT_LEVEL_311, 0xC0, NULL, 0, &p, &why), MQTT_OK);
}

/* ------------------------------------------------------------------------
 * Rejection rules: fixed header
 */

static void test_reject_reserved_flags(void **state)
{
    (void)state;
    /* A valid body for each type; only the flags nibble varies. */
    static const struct {
        uint8_t type;
        uint8_t good_flags;
        uint8_t body[8];
        uint8_t len;
    } cases[] = {
        {MQTT_CONNECT, 0, {0, 4, 'M', 'Q', 'T', 'T', 4, 2}, 0},  /* body set below */
        {MQTT_CONNACK, 0, {0, 0}, 2},
        {MQTT_PUBACK, 0, {0, 1}, 2},
        {MQTT_PUBREC, 0, {0, 1}, 2},
        {MQTT_PUBREL, 2, {0, 1}, 2},
        {MQTT_PUBCOMP, 0, {0, 1}, 2},
        {MQTT_SUBSCRIBE, 2, {0, 1, 0, 1, 'a', 0}, 6},
        {MQTT_SUBACK, 0, {0, 1, 0}, 3},
        {MQTT_UNSUBSCRIBE, 2, {0, 1, 0, 1, 'a'}, 5},
        {MQTT_UNSUBACK, 0, {0, 1}, 2},
        {MQTT_PINGREQ, 0, {0}, 0},
        {MQTT_PINGRESP, 0, {0}, 0},
        {MQTT_DISCONNECT, 0, {0}, 0},
    };
    static const uint8_t connect_body[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *body = cases[i].body;
        uint32_t len = cases[i].len;
        if (cases[i].type == MQTT_CONNECT) {
            body = connect_body;
            len = sizeof connect_body;
        }
        for (uint8_t f = 0; f < 16; f++) {
            struct mqtt_packet p;
            const char *why = NULL;
            enum mqtt_err err = mqtt_decode(MQTT_LEVEL_311, (uint8_t)(cases[i].type << 4 | f),
                                            body, len, &p, &why);
            if (f == cases[i].good_flags) {
                assert_int_equal(err, MQTT_OK);
            } else {
                assert_int_equal(err, MQTT_E_MALFORMED);
                assert_non_null(strstr(why, "reserved flags"));
                assert_non_null(strstr(why, mqtt_type_name(cases[i].type)));
            }
        }
    }
    /* The SUBSCRIBE flags a 3.1 client library might get wrong. */
    check_rule(BYTES(0x82, 6, 0, 1, 0, 1, 'a', 0), 0, 0x80, MQTT_E_MALFORMED,
               "reserved flags not 0010 on SUBSCRIBE");
    check_rule(BYTES(0xC0, 0), 0, 0xC1, MQTT_E_MALFORMED, "reserved flags set on PINGREQ");
}

static void test_reject_publish_qos3(void **state)
{
    (void)state;
    check_rule(BYTES(0x32, 7, 0, 1, 'a', 0, 1, 'x', 'y'), 0, 0x36, MQTT_E_MALFORMED, "QoS 3");
}

static void test_reject_publish_dup_qos0(void **state)
{
    (void)state;
    check_rule(BYTES(0x30, 5, 0, 1, 'a', 'x', 'y'), 0, 0x38, MQTT_E_MALFORMED, "DUP");
    /* DUP with QoS 1 and 2 is fine. */
    expect_ok(BYTES(0x3A, 5, 0, 1, 'a', 0, 1));
    expect_ok(BYTES(0x3C, 5, 0, 1, 'a', 0, 1));
}

static void test_reject_type_0(void **state)
{
    (void)state;
    check_rule(BYTES(0xC0, 0), 0, 0x00, MQTT_E_MALFORMED, "type 0");
}

static void test_reject_auth_in_311(void **state)
{
    (void)state;
    check_rule(BYTES(0xE0, 0), 0, 0xF0, MQTT_E_MALFORMED, "AUTH");
}

static void test_reject_level5_packets(void **state)
{
    (void)state;
    struct mqtt_packet p;
    const char *why;

    /* 5.0 is implemented (test_proto5.c has the details): PINGREQ and an
     * empty AUTH decode at level 5; a level the codec does not speak is
     * still refused for every packet. */
    assert_int_equal(decode_level(MQTT_LEVEL_5, BYTES(0xC0, 0), &p, &why), MQTT_OK);
    assert_int_equal(decode_level(MQTT_LEVEL_5, BYTES(0xF0, 0), &p, &why), MQTT_OK);
    assert_int_equal(decode_level(6, BYTES(0xC0, 0), &p, &why), MQTT_E_UNSUPPORTED_LEVEL);
    assert_int_equal(decode_level(6, BYTES(0xF0, 0), &p, &why), MQTT_E_UNSUPPORTED_LEVEL);
    /* CONNECT ignores the connection's level. */
    assert_int_equal(decode_level(MQTT_LEVEL_5, spec_connect, sizeof spec_connect, &p, &why),
                     MQTT_OK);
}

/* ------------------------------------------------------------------------
 * Rejection rules: lengths
 */

static void test_reject_trailing_bytes(void **state)
{
    (void)state;
    expect_ok(BYTES(0x40, 2, 0, 1));
    expect_err(MQTT_E_MALFORMED, "trailing", BYTES(0x40, 3, 0, 1, 0));
    expect_err(MQTT_E_MALFORMED, "trailing", BYTES(0x20, 3, 0, 0, 0));
    expect_err(MQTT_E_MALFORMED, "trailing", BYTES(0xC0, 1, 0));
    expect_err(MQTT_E_MALFORMED, "trailing", BYTES(0xD0, 1, 0));
    expect_err(MQTT_E_MALFORMED, "trailing", BYTES(0xE0, 1, 0));
    /* CONNECT with one byte after the (flag-less) client id. */
    expect_ok(BYTES(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 'c'));
    expect_err(MQTT_E_MALFORMED, "trailing",
               BYTES(0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 'c', 'x'));
    /* A username without the username flag is trailing bytes too. */
    expect_err(MQTT_E_MALFORMED, "trailing",
               BYTES(0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 'c', 0, 1, 'u'));
    /* UNSUBSCRIBE: half an entry left over. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0xA2, 6, 0, 1, 0, 1, 'a', 0));
}

static void test_reject_missing_bytes(void **state)
{
    (void)state;
    uint8_t t;

    for (t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
        uint8_t first = (uint8_t)(t << 4 | (t == MQTT_PUBREL ? 2 : 0));
        uint8_t one[3] = {first, 1, 0}, none[2] = {first, 0};
        expect_err(MQTT_E_MALFORMED, "truncated", one, sizeof one);
        expect_err(MQTT_E_MALFORMED, "truncated", none, sizeof none);
    }
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0xB0, 1, 0));
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x20, 1, 0));
    /* Topic length says 5, body has 3. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x30, 5, 0, 5, 'a', 'b', 'c'));
    /* QoS 1 PUBLISH cut in the packet identifier. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x32, 4, 0, 1, 'a', 0));
    /* CONNECT: client id length runs past the end. */
    expect_err(MQTT_E_MALFORMED, "truncated",
               BYTES(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 2, 'c'));
    /* CONNECT: no keep alive. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x10, 8, 0, 4, 'M', 'Q', 'T', 'T', 4, 2));
    /* CONNECT: will flag set, will fields missing. */
    expect_err(MQTT_E_MALFORMED, "truncated",
               BYTES(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 1, 'c'));
    /* CONNECT: username + password flags, password missing. */
    expect_err(MQTT_E_MALFORMED, "truncated",
               BYTES(0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 0, 0, 1, 'c', 0, 1, 'u'));
    /* SUBSCRIBE: entry without its options byte. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x82, 5, 0, 1, 0, 1, 'a'));
    /* SUBACK: no packet identifier. */
    expect_err(MQTT_E_MALFORMED, "truncated", BYTES(0x90, 1, 0));
    /* A body pointer of NULL with a length is refused, not read. */
    struct mqtt_packet p;
    const char *why;
    assert_int_equal(mqtt_decode(MQTT_LEVEL_311, 0x40, NULL, 2, &p, &why), MQTT_E_MALFORMED);
}

static void test_reject_packet_id_zero(void **state)
{
    (void)state;
    check_rule(BYTES(0x32, 5, 0, 1, 'a', 0, 1), 6, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x34, 5, 0, 1, 'a', 0, 1), 6, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x40, 2, 0, 1), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x50, 2, 0, 1), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x62, 2, 0, 1), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x70, 2, 0, 1), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x82, 6, 0, 1, 0, 1, 'a', 0), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0x90, 3, 0, 1, 0), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0xA2, 5, 0, 1, 0, 1, 'a'), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    check_rule(BYTES(0xB0, 2, 0, 1), 3, 0, MQTT_E_PROTOCOL, "packet identifier 0");
    /* The high byte alone is enough to make it non-zero. */
    expect_ok(BYTES(0x40, 2, 1, 0));
}

/* ------------------------------------------------------------------------
 * Rejection rules: CONNECT
 */

/* A valid CONNECT with will, username and password, for mutation. */
static const uint8_t full_connect[] = {
    0x10, 29,
    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEE, 0x00, 0x3C,   /* will QoS 1, retain */
    0x00, 0x01, 'c',
    0x00, 0x03, 'w', '/', 't',
    0x00, 0x01, 'x',
    0x00, 0x02, 'u', 'u',
    0x00, 0x02, 'p', 'p',
};
enum {
    AT_NAME = 4, AT_LEVEL = 8, AT_FLAGS = 9, AT_CID = 14, AT_WTOPIC = 17, AT_USER = 25
};

static void test_reject_connect_protocol(void **state)
{
    (void)state;
    struct mqtt_packet p;
    const char *why;

    /* Level 5 is spoken now: the same bytes read as a 5.0 CONNECT lack
     * their property lengths, so they are malformed, not refused. */
    check_rule(full_connect, sizeof full_connect, AT_LEVEL, 5, MQTT_E_MALFORMED, "");
    check_rule(full_connect, sizeof full_connect, AT_LEVEL, 3, MQTT_E_UNSUPPORTED_LEVEL, "level");
    check_rule(full_connect, sizeof full_connect, AT_LEVEL, 6, MQTT_E_UNSUPPORTED_LEVEL, "level");
    check_rule(full_connect, sizeof full_connect, AT_LEVEL, 0, MQTT_E_UNSUPPORTED_LEVEL, "level");
    check_rule(full_connect, sizeof full_connect, AT_NAME + 3, 'X', MQTT_E_PROTOCOL,
               "protocol name");
    check_rule(full_connect, sizeof full_connect, AT_NAME, 'm', MQTT_E_PROTOCOL, "protocol name");

    /* The requested level is reported so the broker can log it. */
    assert_int_equal(decode(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 0, 0, 0), &p,
                            &why), MQTT_E_UNSUPPORTED_LEVEL);
    assert_int_equal(p.u.connect.level, 6);
    /* A minimal 5.0 CONNECT (property length 0) decodes at level 5. */
    assert_int_equal(decode(BYTES(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 0, 0, 0), &p,
                            &why), MQTT_OK);
    assert_int_equal(p.u.connect.level, 5);
    assert_false(p.u.connect.bridge);

    /* Mosquitto's bridge flag (try_private): level 0x84 is 3.1.1 from a
     * bridge; 0x80 and 0x83 are still not levels we speak. */
    assert_int_equal(decode(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0x84, 2, 0, 0, 0, 0), &p,
                            &why), MQTT_OK);
    assert_int_equal(p.u.connect.level, 4);
    assert_true(p.u.connect.bridge);
    assert_int_equal(decode(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0), &p,
                            &why), MQTT_OK);
    assert_false(p.u.connect.bridge);
    assert_int_equal(decode(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0x83, 2, 0, 0, 0, 0), &p,
                            &why), MQTT_E_UNSUPPORTED_LEVEL);
    assert_int_equal(decode(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0x80, 2, 0, 0, 0, 0), &p,
                            &why), MQTT_E_UNSUPPORTED_LEVEL);
    /* And back: the encoder sets the bit for a bridge (round trip). */
    {
        struct mqtt_packet c = {.type = MQTT_CONNECT};
        c.u.connect.bridge = true;
        c.u.connect.clean_session = true;
        uint8_t out[32];
        size_t n = mqtt_encode(MQTT_LEVEL_311, &c, out, sizeof out);
        assert_int_equal(n, 14);
        assert_int_equal(out[8], 0x84);
        c.u.connect.bridge = false;
        assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &c, out, sizeof out), 14);
        assert_int_equal(out[8], 4);
    }

    /* MQTT 3.1: "MQIsdp" level 3, as mosquitto_pub -V mqttv31 sends it. */
    assert_int_equal(decode(BYTES(0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 0,
                                  0, 0), &p, &why), MQTT_E_UNSUPPORTED_LEVEL);
    assert_non_null(strstr(why, "3.1"));
    assert_int_equal(p.u.connect.level, 3);

    /* An empty name or a longer one is just an unknown protocol. */
    expect_err(MQTT_E_PROTOCOL, "protocol name",
               BYTES(0x10, 8, 0, 0, 4, 2, 0, 0, 0, 0));
    expect_err(MQTT_E_PROTOCOL, "protocol name",
               BYTES(0x10, 13, 0, 5, 'M', 'Q', 'T', 'T', 'X', 4, 2, 0, 0, 0, 0));
}

static void test_reject_connect_flags(void **state)
{
    (void)state;
    /* A CONNECT without will, username or password, for the will rules. */
    static const uint8_t plain[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'c'};
    /* With a username only: turning its flag into the password flag leaves
     * every byte in place, so only the flag rule can fire. */
    static const uint8_t user[] = {0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0,
                                   0, 1, 'c', 0, 2, 'u', 'u'};

    check_rule(full_connect, sizeof full_connect, AT_FLAGS, 0xEF, MQTT_E_MALFORMED,
               "reserved connect flag");
    check_rule(plain, sizeof plain, AT_FLAGS, 0x03, MQTT_E_MALFORMED, "reserved connect flag");
    check_rule(plain, sizeof plain, AT_FLAGS, 0x0A, MQTT_E_MALFORMED, "without will flag");
    check_rule(plain, sizeof plain, AT_FLAGS, 0x12, MQTT_E_MALFORMED, "without will flag");
    check_rule(plain, sizeof plain, AT_FLAGS, 0x22, MQTT_E_MALFORMED, "without will flag");
    check_rule(full_connect, sizeof full_connect, AT_FLAGS, 0xFE, MQTT_E_MALFORMED, "will QoS 3");
    check_rule(user, sizeof user, AT_FLAGS, 0x42, MQTT_E_MALFORMED,
               "password flag without username");
}

static void test_reject_connect_strings(void **state)
{
    (void)state;
    const uint8_t *c = full_connect;
    size_t n = sizeof full_connect;

    check_rule(c, n, AT_CID, 0xFF, MQTT_E_MALFORMED, "UTF-8 in client identifier");
    check_rule(c, n, AT_CID, 0x00, MQTT_E_MALFORMED, "UTF-8 in client identifier");
    check_rule(c, n, AT_WTOPIC, 0xC0, MQTT_E_MALFORMED, "UTF-8 in will topic");
    check_rule(c, n, AT_WTOPIC, '+', MQTT_E_MALFORMED, "will topic");
    check_rule(c, n, AT_WTOPIC + 2, '#', MQTT_E_MALFORMED, "will topic");
    check_rule(c, n, AT_USER, 0x80, MQTT_E_MALFORMED, "UTF-8 in username");
    /* The password and will message are binary: anything goes. */
    static const uint8_t bin_pw[] = {
        0x10, 29, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xEE, 0, 0x3C, 0, 1, 'c',
        0, 3, 'w', '/', 't', 0, 1, 0x00, 0, 2, 'u', 'u', 0, 2, 0xFF, 0x00,
    };
    expect_ok(bin_pw, sizeof bin_pw);
    /* An empty will topic is not a topic name. */
    expect_err(MQTT_E_MALFORMED, "will topic",
               BYTES(0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 0, 0, 0, 0, 0));
    /* An empty client id is the broker's business (CONNACK 0x02), not ours. */
    expect_ok(BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 0, 0, 0));
}

/* ------------------------------------------------------------------------
 * Rejection rules: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, acks
 */

static void test_reject_publish_topic(void **state)
{
    (void)state;
    /* Topic "a/b" at offsets 4..6. */
    static const uint8_t pub[] = {0x32, 9, 0, 3, 'a', '/', 'b', 0, 7, 'h', 'i'};

    check_rule(pub, sizeof pub, 4, 0xFF, MQTT_E_MALFORMED, "invalid UTF-8 in topic");
    check_rule(pub, sizeof pub, 4, 0x00, MQTT_E_MALFORMED, "invalid UTF-8 in topic");
    check_rule(pub, sizeof pub, 5, 0xC0, MQTT_E_MALFORMED, "invalid UTF-8 in topic");
    check_rule(pub, sizeof pub, 6, '+', MQTT_E_MALFORMED, "wildcard");
    check_rule(pub, sizeof pub, 6, '#', MQTT_E_MALFORMED, "wildcard");
    expect_err(MQTT_E_MALFORMED, "empty topic", BYTES(0x30, 4, 0, 0, 'h', 'i'));
    /* Encoded surrogate U+D800 (ED A0 80). */
    expect_err(MQTT_E_MALFORMED, "invalid UTF-8 in topic", BYTES(0x30, 5, 0, 3, 0xED, 0xA0, 0x80));
}

static void test_reject_subscribe(void **state)
{
    (void)state;
    /* Two entries: "a/b" QoS 1 (options at 9), "c" QoS 0 (options at 13). */
    static const uint8_t sub[] = {0x82, 12, 0, 5, 0, 3, 'a', '/', 'b', 1, 0, 1, 'c', 0};

    check_rule(sub, sizeof sub, 9, 3, MQTT_E_MALFORMED, "QoS 3");
    check_rule(sub, sizeof sub, 13, 3, MQTT_E_MALFORMED, "QoS 3");
    check_rule(sub, sizeof sub, 9, 0x04, MQTT_E_MALFORMED, "reserved subscription option");
    check_rule(sub, sizeof sub, 13, 0x80, MQTT_E_MALFORMED, "reserved subscription option");
    check_rule(sub, sizeof sub, 13, 0x41, MQTT_E_MALFORMED, "reserved subscription option");
    check_rule(sub, sizeof sub, 6, 0xFE, MQTT_E_MALFORMED, "UTF-8 in topic filter");
    check_rule(sub, sizeof sub, 12, 0x00, MQTT_E_MALFORMED, "UTF-8 in topic filter");
    /* Bad wildcard syntax makes the packet malformed [MQTT-4.7.1-1/2]; an
     * empty filter too [MQTT-4.7.3-1]. */
    check_rule(sub, sizeof sub, 7, '#', MQTT_E_MALFORMED, "wildcard rules");
    check_rule(sub, sizeof sub, 7, '+', MQTT_E_MALFORMED, "wildcard rules");
    check_rule(sub, sizeof sub, 8, '+', MQTT_OK, NULL); /* "a/+" */
    expect_err(MQTT_E_MALFORMED, "empty topic filter", BYTES(0x82, 5, 0, 1, 0, 0, 0));
    expect_err(MQTT_E_PROTOCOL, "no topic filters", BYTES(0x82, 2, 0, 1));
}

static void test_reject_unsubscribe(void **state)
{
    (void)state;
    static const uint8_t unsub[] = {0xA2, 10, 0, 5, 0, 3, 'a', '/', 'b', 0, 1, 'c'};

    check_rule(unsub, sizeof unsub, 8, 0xC1, MQTT_E_MALFORMED, "UTF-8 in topic filter");
    check_rule(unsub, sizeof unsub, 11, 0x00, MQTT_E_MALFORMED, "UTF-8 in topic filter");
    check_rule(unsub, sizeof unsub, 7, '#', MQTT_E_MALFORMED, "wildcard rules");
    check_rule(unsub, sizeof unsub, 8, '#', MQTT_OK, NULL); /* "a/#" */
    expect_err(MQTT_E_MALFORMED, "empty topic filter", BYTES(0xA2, 4, 0, 1, 0, 0));
    expect_err(MQTT_E_PROTOCOL, "no topic filters", BYTES(0xA2, 2, 0, 1));
}

static void test_reject_suback(void **state)
{
    (void)state;
    static const uint8_t suback[] = {0x90, 5, 0, 1, 0, 0x80, 2};

    check_rule(suback, sizeof suback, 4, 3, MQTT_E_MALFORMED, "SUBACK return code");
    check_rule(suback, sizeof suback, 5, 0x81, MQTT_E_MALFORMED, "SUBACK return code");
    check_rule(suback, sizeof suback, 6, 0xFF, MQTT_E_MALFORMED, "SUBACK return code");
    expect_err(MQTT_E_MALFORMED, "no return codes", BYTES(0x90, 2, 0, 1));
}

static void test_reject_connack(void **state)
{
    (void)state;
    static const uint8_t connack[] = {0x20, 2, 0, 0};

    check_rule(connack, sizeof connack, 2, 0x02, MQTT_E_MALFORMED, "reserved CONNACK flags");
    check_rule(connack, sizeof connack, 2, 0x80, MQTT_E_MALFORMED, "reserved CONNACK flags");
    check_rule(connack, sizeof connack, 3, 6, MQTT_E_MALFORMED, "return code");
    check_rule(connack, sizeof connack, 3, 0x80, MQTT_E_MALFORMED, "return code");
    /* Session present on a refusal. */
    check_rule(BYTES(0x20, 2, 1, 0), 3, 1, MQTT_E_MALFORMED, "session present");
    check_rule(BYTES(0x20, 2, 0, 5), 2, 1, MQTT_E_MALFORMED, "session present");
}

/* ------------------------------------------------------------------------
 * Encoder refusals and the snprintf contract
 */

static void test_encode_refusals(void **state)
{
    (void)state;
    static uint8_t big[65536];
    uint8_t buf[64];
    struct mqtt_packet p = {.type = MQTT_PUBLISH};

    memset(big, 'a', sizeof big);
    p.u.publish.topic = bin(big, 65535);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0), 1 + 3 + 2 + 65535);
    p.u.publish.topic = bin(big, 65536);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0), 0);

    p.u.publish.topic = mqtt_str("t");
    p.u.publish.qos = 3;
    p.u.publish.packet_id = 1;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 0;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);
    p.u.publish.qos = 0;
    p.u.publish.dup = true;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);
    p.u.publish.dup = false;
    p.u.publish.topic = bin(NULL, 0);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);

    /* Body over 256 MiB: refused from the lengths alone, data not read. */
    p.u.publish.topic = mqtt_str("t");
    p.u.publish.payload = bin(big, MQTT_MAX_REMAINING_LENGTH - 3);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0), 1 + 4 + MQTT_MAX_REMAINING_LENGTH);
    p.u.publish.payload = bin(big, MQTT_MAX_REMAINING_LENGTH - 2);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0), 0);
    p.u.publish.payload = bin(big, UINT32_MAX);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0), 0);

    struct mqtt_topic_entry e = {mqtt_str("a"), 3};
    struct mqtt_packet s = {.type = MQTT_SUBSCRIBE};
    s.u.subscribe.packet_id = 1;
    s.u.subscribe.entries = &e;
    s.u.subscribe.count = 0;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 0);
    s.u.subscribe.count = 1;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 0);   /* QoS 3 */
    e.options = 2;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 8);
    e.filter = bin(big, 65536);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 0);
    e.filter = mqtt_str("a");
    s.u.subscribe.packet_id = 0;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 0);
    s.type = MQTT_UNSUBSCRIBE;
    s.u.subscribe.packet_id = 1;
    s.u.subscribe.count = 0;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &s, buf, sizeof buf), 0);

    struct mqtt_packet a = {.type = MQTT_PUBACK};
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &a, buf, sizeof buf), 0);   /* id 0 */

    struct mqtt_packet sa = {.type = MQTT_SUBACK};
    sa.u.suback.packet_id = 1;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &sa, buf, sizeof buf), 0);  /* no codes */
    sa.u.suback.codes = bin("\x03", 1);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &sa, buf, sizeof buf), 0);

    struct mqtt_packet ca = {.type = MQTT_CONNACK};
    ca.u.connack.return_code = 6;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &ca, buf, sizeof buf), 0);
    ca.u.connack.return_code = 1;
    ca.u.connack.session_present = true;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &ca, buf, sizeof buf), 0);

    struct mqtt_packet c = {.type = MQTT_CONNECT};
    c.u.connect.has_password = true;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &c, buf, sizeof buf), 0);
    c.u.connect.has_password = false;
    c.u.connect.will_flag = true;
    c.u.connect.will_topic = mqtt_str("w");
    c.u.connect.will_qos = 3;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &c, buf, sizeof buf), 0);
    c.u.connect.will_qos = 0;
    c.u.connect.client_id = bin(big, 65536);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &c, buf, sizeof buf), 0);

    /* Types that cannot be written in 3.1.1, and levels other than 4 and 5. */
    struct mqtt_packet other = {.type = 0};
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &other, buf, sizeof buf), 0);
    other.type = MQTT_AUTH;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &other, buf, sizeof buf), 0);
    other.type = 16;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &other, buf, sizeof buf), 0);
    other.type = MQTT_PINGREQ;
    assert_int_equal(mqtt_encode(6, &other, buf, sizeof buf), 0);
    assert_int_equal(mqtt_encode(3, &other, buf, sizeof buf), 0);
}

static void test_encode_flags_derived(void **state)
{
    (void)state;
    uint8_t buf[32];
    struct mqtt_packet p = {.type = MQTT_PUBREL, .flags = 0x0F};

    p.u.ack.packet_id = 1;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 4);
    assert_int_equal(buf[0], 0x62);
    p.type = MQTT_PUBACK;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 4);
    assert_int_equal(buf[0], 0x40);

    struct mqtt_packet m = {.type = MQTT_PUBLISH, .flags = 0};
    m.u.publish.topic = mqtt_str("t");
    m.u.publish.qos = 2;
    m.u.publish.dup = true;
    m.u.publish.retain = true;
    m.u.publish.packet_id = 0x0102;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &m, buf, sizeof buf), 7);
    assert_memory_equal(buf, "\x3D\x05\x00\x01t\x01\x02", 7);

    /* CONNECT writes the level it is asked for, whatever the struct says. */
    struct mqtt_packet c = {.type = MQTT_CONNECT};
    c.u.connect.level = 99;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &c, buf, sizeof buf), 14);
    assert_memory_equal(buf, "\x10\x0C\x00\x04MQTT\x04\x00\x00\x00\x00\x00", 14);
}

/* ------------------------------------------------------------------------
 * Validation primitives
 */

#define UTF8(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static void test_utf8(void **state)
{
    (void)state;
    assert_true(mqtt_utf8_valid(NULL, 0));
    assert_true(mqtt_utf8_valid(UTF8("plain ascii /+#")));
    assert_true(mqtt_utf8_valid(UTF8("\x01\x1f\x7f")));              /* controls: SHOULD NOT only */
    assert_true(mqtt_utf8_valid(UTF8("\xc2\x80")));                  /* U+0080 */
    assert_true(mqtt_utf8_valid(UTF8("caf\xc3\xa9")));               /* é */
    assert_true(mqtt_utf8_valid(UTF8("\xdf\xbf")));                  /* U+07FF */
    assert_true(mqtt_utf8_valid(UTF8("\xe0\xa0\x80")));              /* U+0800 */
    assert_true(mqtt_utf8_valid(UTF8("\xe2\x82\xac")));              /* € */
    assert_true(mqtt_utf8_valid(UTF8("\xed\x9f\xbf")));              /* U+D7FF */
    assert_true(mqtt_utf8_valid(UTF8("\xee\x80\x80")));              /* U+E000 */
    assert_true(mqtt_utf8_valid(UTF8("\xef\xbb\xbf")));              /* BOM: kept, legal */
    assert_true(mqtt_utf8_valid(UTF8("\xef\xbf\xbf")));              /* U+FFFF non-character */
    assert_true(mqtt_utf8_valid(UTF8("\xf0\x90\x80\x80")));          /* U+10000 */
    assert_true(mqtt_utf8_valid(UTF8("\xf0\x9f\x90\xa6")));          /* bird, 4 bytes */
    assert_true(mqtt_utf8_valid(UTF8("\xf4\x8f\xbf\xbf")));          /* U+10FFFF */

    assert_false(mqtt_utf8_valid(UTF8("\x00")));                     /* U+0000 */
    assert_false(mqtt_utf8_valid(UTF8("a\x00" "b")));
    assert_false(mqtt_utf8_valid(UTF8("\xed\xa0\x80")));             /* U+D800 */
    assert_false(mqtt_utf8_valid(UTF8("\xed\xbf\xbf")));             /* U+DFFF */
    assert_false(mqtt_utf8_valid(UTF8("\xc0\x80")));                 /* overlong U+0000 */
    assert_false(mqtt_utf8_valid(UTF8("\xc0\xaf")));                 /* overlong '/' */
    assert_false(mqtt_utf8_valid(UTF8("\xc1\xbf")));
    assert_false(mqtt_utf8_valid(UTF8("\xe0\x80\x80")));             /* overlong, 3 bytes */
    assert_false(mqtt_utf8_valid(UTF8("\xe0\x9f\xbf")));
    assert_false(mqtt_utf8_valid(UTF8("\xf0\x80\x80\x80")));         /* overlong, 4 bytes */
    assert_false(mqtt_utf8_valid(UTF8("\xf0\x8f\xbf\xbf")));
    assert_false(mqtt_utf8_valid(UTF8("\xf4\x90\x80\x80")));         /* U+110000 */
    assert_false(mqtt_utf8_valid(UTF8("\xf5\x80\x80\x80")));
    assert_false(mqtt_utf8_valid(UTF8("\xf8\x88\x80\x80\x80")));     /* old 5-byte form */
    assert_false(mqtt_utf8_valid(UTF8("\xff")));
    assert_false(mqtt_utf8_valid(UTF8("\xc3")));                     /* truncated */
    assert_false(mqtt_utf8_valid(UTF8("\xe2\x82")));
    assert_false(mqtt_utf8_valid(UTF8("\xf0\x9f\x90")));
    assert_false(mqtt_utf8_valid(UTF8("ab\xf0")));
    assert_false(mqtt_utf8_valid(UTF8("\x80")));                     /* stray continuation */
    assert_false(mqtt_utf8_valid(UTF8("a\xbf" "b")));
    assert_false(mqtt_utf8_valid(UTF8("\xc3\xa9\xa9")));
    assert_false(mqtt_utf8_valid(UTF8("\xc3" "a")));                 /* lead, no continuation */
    assert_false(mqtt_utf8_valid(UTF8("\xe2\x82" "a")));
    assert_false(mqtt_utf8_valid(UTF8("\xf0\x9f\x90" "a")));
    /* The length is respected both ways: an invalid byte beyond it does not
     * count, and neither do the continuation bytes a cut sequence needs. */
    assert_true(mqtt_utf8_valid((const uint8_t *)"ab\xff", 2));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xc3\xa9", 1));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xe2\x82\xac", 2));
    assert_false(mqtt_utf8_valid((const uint8_t *)"a\xf0\x9f\x90\xa6", 4));
}

static void test_topic_names(void **state)
{
    (void)state;
    static uint8_t big[65536];

    assert_true(mqtt_topic_name_valid(UTF8("a")));
    assert_true(mqtt_topic_name_valid(UTF8("a/b/c")));
    assert_true(mqtt_topic_name_valid(UTF8("/")));
    assert_true(mqtt_topic_name_valid(UTF8("//a//")));
    assert_true(mqtt_topic_name_valid(UTF8("$SYS/broker")));
    assert_true(mqtt_topic_name_valid(UTF8(" spaces ok ")));
    assert_true(mqtt_topic_name_valid(UTF8("caf\xc3\xa9/\xf0\x9f\x90\xa6")));
    assert_false(mqtt_topic_name_valid(UTF8("")));
    assert_false(mqtt_topic_name_valid(UTF8("+")));
    assert_false(mqtt_topic_name_valid(UTF8("#")));
    assert_false(mqtt_topic_name_valid(UTF8("a/+/b")));
    assert_false(mqtt_topic_name_valid(UTF8("a/#")));
    assert_false(mqtt_topic_name_valid(UTF8("a+b")));
    assert_false(mqtt_topic_name_valid(UTF8("a\x00" "b")));
    assert_false(mqtt_topic_name_valid(UTF8("a\xff")));
    memset(big, 'x', sizeof big);
    assert_true(mqtt_topic_name_valid(big, 65535));
    assert_false(mqtt_topic_name_valid(big, 65536));
}

static void test_topic_filters(void **state)
{
    (void)state;
    static uint8_t big[65536];

    assert_true(mqtt_topic_filter_valid(UTF8("a")));
    assert_true(mqtt_topic_filter_valid(UTF8("a/b")));
    assert_true(mqtt_topic_filter_valid(UTF8("#")));
    assert_true(mqtt_topic_filter_valid(UTF8("a/#")));
    assert_true(mqtt_topic_filter_valid(UTF8("/#")));
    assert_true(mqtt_topic_filter_valid(UTF8("+")));
    assert_true(mqtt_topic_filter_valid(UTF8("+/a/+")));
    assert_true(mqtt_topic_filter_valid(UTF8("+/+")));
    assert_true(mqtt_topic_filter_valid(UTF8("/+")));
    assert_true(mqtt_topic_filter_valid(UTF8("+/")));
    assert_true(mqtt_topic_filter_valid(UTF8("a//+/#")));
    assert_true(mqtt_topic_filter_valid(UTF8("+/#")));
    assert_true(mqtt_topic_filter_valid(UTF8("/")));
    assert_true(mqtt_topic_filter_valid(UTF8("\xe2\x82\xac/+")));

    assert_false(mqtt_topic_filter_valid(UTF8("")));
    assert_false(mqtt_topic_filter_valid(UTF8("a#")));
    assert_false(mqtt_topic_filter_valid(UTF8("#a")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/#/b")));
    assert_false(mqtt_topic_filter_valid(UTF8("#/")));
    assert_false(mqtt_topic_filter_valid(UTF8("##")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/b#")));
    assert_false(mqtt_topic_filter_valid(UTF8("a+")));
    assert_false(mqtt_topic_filter_valid(UTF8("+a")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/+b/c")));
    assert_false(mqtt_topic_filter_valid(UTF8("++")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/b+")));
    assert_false(mqtt_topic_filter_valid(UTF8("+#")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/\xc0\xaf")));
    assert_false(mqtt_topic_filter_valid(UTF8("a/\x00")));
    memset(big, 'x', sizeof big);
    big[65534] = '#';
    big[65533] = '/';
    assert_true(mqtt_topic_filter_valid(big, 65535));
    assert_false(mqtt_topic_filter_valid(big, 65536));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mqtt_type_name(MQTT_CONNECT), "CONNECT");
    assert_string_equal(mqtt_type_name(MQTT_SUBSCRIBE), "SUBSCRIBE");
    assert_string_equal(mqtt_type_name(MQTT_DISCONNECT), "DISCONNECT");
    assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
    assert_non_null(mqtt_type_name(0));
    assert_non_null(mqtt_type_name(200));
    assert_string_equal(mqtt_err_str(MQTT_OK), "success");
    assert_string_equal(mqtt_err_str(MQTT_E_MALFORMED), "malformed packet");
    assert_non_null(mqtt_err_str((enum mqtt_err)42));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_frame_five_bytes_rejected),
        cmocka_unit_test(test_frame_overlong_rejected),
        cmocka_unit_test(test_frame_incomplete),
        cmocka_unit_test(test_frame_max_packet),
        cmocka_unit_test(test_rt_connect),
        cmocka_unit_test(test_rt_connack),
        cmocka_unit_test(test_rt_publish),
        cmocka_unit_test(test_rt_acks),
        cmocka_unit_test(test_rt_subscribe),
        cmocka_unit_test(test_rt_suback),
        cmocka_unit_test(test_rt_unsubscribe),
        cmocka_unit_test(test_rt_empty_packets),
        cmocka_unit_test(test_spec_connect),
        cmocka_unit_test(test_spec_publish),
        cmocka_unit_test(test_spec_subscribe),
        cmocka_unit_test(test_spec_small_packets),
        cmocka_unit_test(test_reject_reserved_flags),
        cmocka_unit_test(test_reject_publish_qos3),
        cmocka_unit_test(test_reject_publish_dup_qos0),
        cmocka_unit_test(test_reject_type_0),
        cmocka_unit_test(test_reject_auth_in_311),
        cmocka_unit_test(test_reject_level5_packets),
        cmocka_unit_test(test_reject_trailing_bytes),
        cmocka_unit_test(test_reject_missing_bytes),
        cmocka_unit_test(test_reject_packet_id_zero),
        cmocka_unit_test(test_reject_connect_protocol),
        cmocka_unit_test(test_reject_connect_flags),
        cmocka_unit_test(test_reject_connect_strings),
        cmocka_unit_test(test_reject_publish_topic),
        cmocka_unit_test(test_reject_subscribe),
        cmocka_unit_test(test_reject_unsubscribe),
        cmocka_unit_test(test_reject_suback),
        cmocka_unit_test(test_reject_connack),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_encode_flags_derived),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_topic_filters),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
