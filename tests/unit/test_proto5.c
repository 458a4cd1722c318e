/*
 * test_proto5.c - unit tests for the MQTT 5.0 side of the codec
 * (client-lib/proto): every property through builder, encoder, decoder and
 * iterator; one test per property rule, short form and reason code check.
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

/* ------------------------------------------------------------------------
 * Helpers
 */

/* Decodes body[0..n) of a packet with first byte `first` at level 5 and
 * checks the result; for an error, *why must contain why_part. */
static void expect5(enum mqtt_err want, const char *why_part, uint8_t first, const uint8_t *body,
                    size_t n, struct mqtt_packet *out)
{
    struct mqtt_packet tmp;
    const char *why = NULL;
    enum mqtt_err err = mqtt_decode(MQTT_LEVEL_5, first, body, (uint32_t)n, out ? out : &tmp,
                                    &why);

    if (err != want)
        fail_msg("decode gave %d (%s), wanted %d", err, why ? why : "-", want);
    if (want != MQTT_OK) {
        assert_non_null(why);
        if (!strstr(why, why_part))
            fail_msg("why \"%s\" lacks \"%s\"", why, why_part);
    }
}

/* Puts a property block on a minimal packet of type `ptype` (or in the will
 * properties for ptype 0) and decodes it at level 5. */
static void check_props(uint8_t ptype, const uint8_t *props, size_t n, enum mqtt_err want,
                        const char *why_part)
{
    uint8_t body[512];
    size_t k = 0;
    uint8_t first = (uint8_t)(ptype << 4);

    assert_true(n < 120);
#define PUT(...)                                                    \
    do {                                                            \
        const uint8_t b_[] = {__VA_ARGS__};                         \
        memcpy(body + k, b_, sizeof b_);                            \
        k += sizeof b_;                                             \
    } while (0)
#define PROPS()                                                     \
    do {                                                            \
        body[k++] = (uint8_t)n;                                     \
        memcpy(body + k, props, n);                                 \
        k += n;                                                     \
    } while (0)
    switch (ptype) {
    case 0:     /* will properties */
        first = MQTT_CONNECT << 4;
        PUT(0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 60, 0, 0, 1, 'c');
        PROPS();
        PUT(0, 1, 'w', 0, 0);
        break;
    case MQTT_CONNECT:
        PUT(0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60);
        PROPS();
        PUT(0, 1, 'c');
        break;
    case MQTT_CONNACK:
        PUT(0, 0);
        PROPS();
        break;
    case MQTT_PUBLISH:
        first = MQTT_PUBLISH << 4 | 0x02;
        PUT(0, 1, 't', 0, 7);
        PROPS();
        PUT('x');
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        if (ptype == MQTT_PUBREL)
            first |= 0x02;
        PUT(0, 7, 0);
        PROPS();
        break;
    case MQTT_SUBSCRIBE:
        first |= 0x02;
        PUT(0, 7);
        PROPS();
        PUT(0, 1, 'a', 0);
        break;
    case MQTT_UNSUBSCRIBE:
        first |= 0x02;
        PUT(0, 7);
        PROPS();
        PUT(0, 1, 'a');
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        PUT(0, 7);
        PROPS();
        PUT(0);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        PUT(0);
        PROPS();
        break;
    default:
        fail();
    }
#undef PUT
#undef PROPS
    expect5(want, why_part, first, body, k, NULL);
}

/* Encodes at level 5 with the snprintf contract checked (sizing with cap 0,
 * nothing written one byte short), frames and decodes the result. */
static size_t round5(const struct mqtt_packet *p, uint8_t *buf, size_t cap, struct mqtt_packet *out)
{
    size_t need = mqtt_encode(MQTT_LEVEL_5, p, NULL, 0);
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    const char *why = NULL;

    assert_true(need >= 2 && need <= cap);
    memset(buf, 0xA5, cap);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, p, buf, need - 1), need);
    for (size_t i = 0; i < cap; i++)
        assert_int_equal(buf[i], 0xA5);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, p, buf, cap), need);
    assert_int_equal(mqtt_frame_header(buf, need, 0, &first, &rem, &hlen), MQTT_OK);
    assert_int_equal(hlen + rem, need);
    if (mqtt_decode(MQTT_LEVEL_5, first, buf + hlen, rem, out, &why) != MQTT_OK)
        fail_msg("re-decode failed: %s", why);
    return need;
}

/* ------------------------------------------------------------------------
 * Properties: every id through builder -> encode -> decode -> iterator
 */

static const uint8_t all_ids[] = {
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
    0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
};

/* One packet type each id may travel on (0 = will properties). */
static uint8_t carrier(uint8_t id)
{
    switch (id) {
    case MQTT_PROP_WILL_DELAY:
        return 0;
    case MQTT_PROP_PAYLOAD_FORMAT: case MQTT_PROP_MESSAGE_EXPIRY: case MQTT_PROP_CONTENT_TYPE:
    case MQTT_PROP_RESPONSE_TOPIC: case MQTT_PROP_CORRELATION_DATA: case MQTT_PROP_TOPIC_ALIAS:
        return MQTT_PUBLISH;
    case MQTT_PROP_SUBSCRIPTION_ID:
        return MQTT_SUBSCRIBE;
    case MQTT_PROP_SESSION_EXPIRY: case MQTT_PROP_REQUEST_PROBLEM_INFO:
    case MQTT_PROP_REQUEST_RESPONSE_INFO: case MQTT_PROP_RECEIVE_MAXIMUM:
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM: case MQTT_PROP_MAXIMUM_PACKET_SIZE:
        return MQTT_CONNECT;
    case MQTT_PROP_AUTH_METHOD: case MQTT_PROP_AUTH_DATA:
        return MQTT_AUTH;
    case MQTT_PROP_SERVER_REFERENCE:
        return MQTT_DISCONNECT;
    case MQTT_PROP_REASON_STRING:
        return MQTT_PUBACK;
    case MQTT_PROP_USER_PROPERTY:
        return MQTT_UNSUBACK;
    default:
        return MQTT_CONNACK;
    }
}

static const uint8_t suback_codes[] = {0x00};
static const struct mqtt_topic_entry one_entry[] = {{{(const uint8_t *)"a/#", 3}, 0x01}};

/* A packet of type `ptype` carrying `pr` (0: in the will of a CONNECT). */
static struct mqtt_packet carry(uint8_t ptype, struct mqtt_props pr)
{
    struct mqtt_packet p;

    memset(&p, 0, sizeof p);
    p.type = ptype ? ptype : MQTT_CONNECT;
    switch (ptype) {
    case 0:
        p.u.connect.client_id = mqtt_str("c");
        p.u.connect.will_flag = true;
        p.u.connect.will_topic = mqtt_str("w");
        p.u.connect.will_props = pr;
        break;
    case MQTT_CONNECT:
        p.u.connect.client_id = mqtt_str("c");
        p.u.connect.props = pr;
        break;
    case MQTT_CONNACK:
        p.u.connack.props = pr;
        break;
    case MQTT_PUBLISH:
        p.u.publish.topic = mqtt_str("t");
        p.u.publish.qos = 1;
        p.u.publish.packet_id = 9;
        p.u.publish.payload = mqtt_str("payload");
        p.u.publish.props = pr;
        break;
    case MQTT_PUBACK:
        p.u.ack.packet_id = 9;
        p.u.ack.props = pr;
        break;
    case MQTT_SUBSCRIBE:
        p.u.subscribe.packet_id = 9;
        p.u.subscribe.count = 1;
        p.u.subscribe.entries = one_entry;
        p.u.subscribe.props = pr;
        break;
    case MQTT_UNSUBACK:
        p.u.suback.packet_id = 9;
        p.u.suback.codes.data = suback_codes;
        p.u.suback.codes.len = 1;
        p.u.suback.props = pr;
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        p.u.disconnect.props = pr;
        break;
    }
    return p;
}

static struct mqtt_props props_of(uint8_t ptype, const struct mqtt_packet *p)
{
    switch (ptype) {
    case 0: return p->u.connect.will_props;
    case MQTT_CONNECT: return p->u.connect.props;
    case MQTT_CONNACK: return p->u.connack.props;
    case MQTT_PUBLISH: return p->u.publish.props;
    case MQTT_PUBACK: return p->u.ack.props;
    case MQTT_SUBSCRIBE: return p->u.subscribe.props;
    case MQTT_UNSUBACK: return p->u.suback.props;
    default: return p->u.disconnect.props;
    }
}

static void test_each_property_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_ids; i++) {
        uint8_t id = all_ids[i], ptype = carrier(id);
        enum mqtt_prop_type t = mqtt_prop_type(id);
        uint8_t block[64], buf[256];
        struct mqtt_props_builder b;
        uint32_t num = 0;
        const char *text = id == MQTT_PROP_RESPONSE_TOPIC ? "reply/to" : "h\xC3\xA9llo";
        static const uint8_t binary[] = {0x00, 0xFF, 0x7F};

        mqtt_pb_init(&b, block, sizeof block);
        switch (t) {
        case MQTT_PT_BYTE: num = 1; mqtt_pb_num(&b, id, num); break;
        case MQTT_PT_U16: num = 0x1234; mqtt_pb_num(&b, id, num); break;
        case MQTT_PT_U32: num = 0x12345678; mqtt_pb_num(&b, id, num); break;
        case MQTT_PT_VARINT: num = 268435455; mqtt_pb_num(&b, id, num); break;
        case MQTT_PT_UTF8: mqtt_pb_bytes(&b, id, text, strlen(text)); break;
        case MQTT_PT_BINARY: mqtt_pb_bytes(&b, id, binary, sizeof binary); break;
        case MQTT_PT_PAIR: mqtt_pb_pair(&b, id, "key", 3, "value", 5); break;
        default: fail_msg("id 0x%02x has no type", id);
        }
        assert_false(b.overflow);

        struct mqtt_packet p = carry(ptype, mqtt_pb_props(&b)), q;
        round5(&p, buf, sizeof buf, &q);
        assert_int_equal(q.type, p.type);

        struct mqtt_props got = props_of(ptype, &q);
        assert_int_equal(got.len, b.len);
        assert_memory_equal(got.data, block, b.len);

        struct mqtt_prop_iter it;
        struct mqtt_prop pr;
        mqtt_prop_iter_init(&it, &got);
        assert_true(mqtt_prop_next(&it, &pr));
        assert_int_equal(pr.id, id);
        if (t == MQTT_PT_UTF8) {
            assert_int_equal(pr.str.len, strlen(text));
            assert_memory_equal(pr.str.data, text, pr.str.len);
        } else if (t == MQTT_PT_BINARY) {
            assert_int_equal(pr.str.len, sizeof binary);
            assert_memory_equal(pr.str.data, binary, sizeof binary);
        } else if (t == MQTT_PT_PAIR) {
            assert_int_equal(pr.str.len, 3);
            assert_memory_equal(pr.str.data, "key", 3);
            assert_int_equal(pr.value.len, 5);
            assert_memory_equal(pr.value.data, "value", 5);
        } else {
            assert_int_equal(pr.num, num);
        }
        assert_false(mqtt_prop_next(&it, &pr));

        struct mqtt_prop found;
        assert_true(mqtt_props_find(&got, id, &found));
        assert_int_equal(found.id, id);
        assert_false(mqtt_props_find(&got, id == 0x26 ? 0x1F : 0x26, &found));
    }
}

/* Several properties in one block come back in wire order, repeats too. */
static void test_iterator_order_and_repeats(void **state)
{
    (void)state;
    uint8_t block[128], buf[256];
    struct mqtt_props_builder b;
    struct mqtt_packet p, q;
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;

    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_num(&b, MQTT_PROP_SUBSCRIPTION_ID, 1);
    mqtt_pb_pair(&b, MQTT_PROP_USER_PROPERTY, "a", 1, "1", 1);
    mqtt_pb_num(&b, MQTT_PROP_SUBSCRIPTION_ID, 300);
    mqtt_pb_pair(&b, MQTT_PROP_USER_PROPERTY, "a", 1, "", 0);
    mqtt_pb_num(&b, MQTT_PROP_MESSAGE_EXPIRY, 0);
    assert_false(b.overflow);
    p = carry(MQTT_PUBLISH, mqtt_pb_props(&b));
    round5(&p, buf, sizeof buf, &q);

    static const uint8_t want_ids[] = {0x0B, 0x26, 0x0B, 0x26, 0x02};
    static const uint32_t want_num[] = {1, 0, 300, 0, 0};
    size_t n = 0;
    mqtt_prop_iter_init(&it, &q.u.publish.props);
    while (mqtt_prop_next(&it, &pr)) {
        assert_true(n < 5);
        assert_int_equal(pr.id, want_ids[n]);
        if (pr.id != 0x26)
            assert_int_equal(pr.num, want_num[n]);
        n++;
    }
    assert_int_equal(n, 5);
    assert_true(mqtt_props_find(&q.u.publish.props, MQTT_PROP_SUBSCRIPTION_ID, &pr));
    assert_int_equal(pr.num, 1);   /* the first one */

    /* An empty block iterates as nothing. */
    struct mqtt_props none = {NULL, 0};
    mqtt_prop_iter_init(&it, &none);
    assert_false(mqtt_prop_next(&it, &pr));
    assert_false(mqtt_props_find(&none, 0x26, &pr));
    /* A truncated block stops the iterator rather than reading on. */
    struct mqtt_props cut = {(const uint8_t *)"\x1F\x00\x05" "ab", 5};
    mqtt_prop_iter_init(&it, &cut);
    assert_false(mqtt_prop_next(&it, &pr));
}

static void test_builder_checks(void **state)
{
    (void)state;
    uint8_t block[16];
    struct mqtt_props_builder b;

    assert_int_equal(mqtt_prop_type(0x26), MQTT_PT_PAIR);
    assert_int_equal(mqtt_prop_type(0x0B), MQTT_PT_VARINT);
    assert_int_equal(mqtt_prop_type(0x00), 0);
    assert_int_equal(mqtt_prop_type(0x04), 0);
    assert_int_equal(mqtt_prop_type(0x2B), 0);
    assert_int_equal(mqtt_prop_type(0xFF), 0);

    static const struct { uint8_t id; uint32_t v; bool ok; } nums[] = {
        {MQTT_PROP_PAYLOAD_FORMAT, 255, true}, {MQTT_PROP_PAYLOAD_FORMAT, 256, false},
        {MQTT_PROP_RECEIVE_MAXIMUM, 65535, true}, {MQTT_PROP_RECEIVE_MAXIMUM, 65536, false},
        {MQTT_PROP_SESSION_EXPIRY, 0xFFFFFFFF, true},
        {MQTT_PROP_SUBSCRIPTION_ID, 268435455, true},
        {MQTT_PROP_SUBSCRIPTION_ID, 268435456, false},
        {MQTT_PROP_CONTENT_TYPE, 1, false}, {MQTT_PROP_USER_PROPERTY, 1, false},
        {0x04, 1, false},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        mqtt_pb_init(&b, block, sizeof block);
        mqtt_pb_num(&b, nums[i].id, nums[i].v);
        assert_int_equal(b.overflow, !nums[i].ok);
        if (!nums[i].ok)
            assert_int_equal(mqtt_pb_props(&b).len, 0);
    }

    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_bytes(&b, MQTT_PROP_RECEIVE_MAXIMUM, "x", 1);
    assert_true(b.overflow);
    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_bytes(&b, MQTT_PROP_USER_PROPERTY, "x", 1);
    assert_true(b.overflow);
    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_pair(&b, MQTT_PROP_REASON_STRING, "x", 1, "y", 1);
    assert_true(b.overflow);

    /* Capacity: 16 bytes hold "1F 00 0C" + 12, then nothing more. */
    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_bytes(&b, MQTT_PROP_REASON_STRING, "twelve bytes", 12);
    assert_false(b.overflow);
    assert_int_equal(b.len, 15);
    mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_QOS, 1);      /* 2 bytes: too many */
    assert_true(b.overflow);
    assert_int_equal(b.len, 15);
    mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_QOS, 1);      /* stays failed */
    assert_true(b.overflow);
    assert_int_equal(mqtt_pb_props(&b).len, 0);

    /* Raw copy of an existing block. */
    uint8_t block2[16];
    struct mqtt_props_builder b2;
    mqtt_pb_init(&b, block, sizeof block);
    mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS, 3);
    mqtt_pb_init(&b2, block2, sizeof block2);
    mqtt_pb_raw(&b2, block, b.len);
    mqtt_pb_num(&b2, MQTT_PROP_SUBSCRIPTION_ID, 200);
    assert_false(b2.overflow);
    assert_int_equal(b2.len, 3 + 3);
    assert_memory_equal(block2, ((const uint8_t[]){0x23, 0, 3, 0x0B, 0xC8, 0x01}), 6);
}

/* ------------------------------------------------------------------------
 * Property rules
 */

static void test_props_length(void **state)
{
    (void)state;
    /* Property length larger than what is left of the packet. */
    expect5(MQTT_E_MALFORMED, "property length", 0x40, BYTES(0, 1, 0x80, 10, 0x1F, 0, 1, 'x'),
            NULL);
    /* Block shorter than the packet: bytes after it are trailing. */
    expect5(MQTT_E_MALFORMED, "trailing", 0x40, BYTES(0, 1, 0x80, 0, 0x1F), NULL);
    /* A string running past the block (SUBACK: codes follow the block). */
    expect5(MQTT_E_MALFORMED, "runs past", 0x90, BYTES(0, 1, 3, 0x1F, 0, 5, 'a', 0, 0), NULL);
    /* The same with a pair whose value runs past. */
    expect5(MQTT_E_MALFORMED, "runs past", 0x90,
            BYTES(0, 1, 6, 0x26, 0, 1, 'k', 0, 4, 'v', 0), NULL);
    /* Numbers cut off by the end of the block. */
    check_props(MQTT_CONNECT, BYTES(0x11, 0, 0, 0), MQTT_E_MALFORMED, "runs past");
    check_props(MQTT_CONNECT, BYTES(0x21, 0), MQTT_E_MALFORMED, "runs past");
    check_props(MQTT_PUBLISH, BYTES(0x01), MQTT_E_MALFORMED, "runs past");
    check_props(MQTT_PUBLISH, BYTES(0x0B, 0x80), MQTT_E_MALFORMED, "");
    /* The property length itself cut off, or not minimal. */
    expect5(MQTT_E_MALFORMED, "truncated", 0x40, BYTES(0, 1, 0x80, 0x80), NULL);
    expect5(MQTT_E_MALFORMED, "varint", 0x40, BYTES(0, 1, 0x80, 0x80, 0x00), NULL);
    expect5(MQTT_E_MALFORMED, "varint", 0xE0, BYTES(0x80, 0x81, 0x80, 0x80, 0x80, 0x00), NULL);
    /* Absent where the packet has no short form. */
    expect5(MQTT_E_MALFORMED, "truncated", 0x20, BYTES(0, 0), NULL);
    expect5(MQTT_E_MALFORMED, "truncated", 0x90, BYTES(0, 1), NULL);
}

static void test_props_unknown_id(void **state)
{
    (void)state;
    check_props(MQTT_PUBACK, BYTES(0x04, 0), MQTT_E_MALFORMED, "unknown property");
    check_props(MQTT_PUBACK, BYTES(0x00), MQTT_E_MALFORMED, "unknown property");
    check_props(MQTT_PUBACK, BYTES(0x2B, 0), MQTT_E_MALFORMED, "unknown property");
    check_props(MQTT_PUBACK, BYTES(0x1F, 0, 0, 0x80, 0x01), MQTT_E_MALFORMED,
                "unknown property");
}

static void test_props_wrong_packet(void **state)
{
    (void)state;
    /* MQTT 5.0 2.2.2.2: an identifier not valid for the packet type is a
     * Malformed Packet, like an unknown one. */
    check_props(MQTT_PUBACK, BYTES(0x23, 0, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_CONNECT, BYTES(0x18, 0, 0, 0, 5), MQTT_E_MALFORMED, "not allowed");
    check_props(0, BYTES(0x18, 0, 0, 0, 5), MQTT_OK, "");
    check_props(0, BYTES(0x11, 0, 0, 0, 5), MQTT_E_MALFORMED, "will properties");
    check_props(MQTT_CONNACK, BYTES(0x17, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_CONNECT, BYTES(0x24, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_PUBLISH, BYTES(0x11, 0, 0, 0, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_SUBSCRIBE, BYTES(0x1F, 0, 0), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_UNSUBSCRIBE, BYTES(0x0B, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_UNSUBSCRIBE, BYTES(0x26, 0, 0, 0, 0), MQTT_OK, "");
    check_props(MQTT_AUTH, BYTES(0x15, 0, 1, 'm'), MQTT_OK, "");
    check_props(MQTT_AUTH, BYTES(0x11, 0, 0, 0, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_DISCONNECT, BYTES(0x11, 0, 0, 0, 1), MQTT_OK, "");
    check_props(MQTT_DISCONNECT, BYTES(0x15, 0, 1, 'm'), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_PUBREL, BYTES(0x1F, 0, 0), MQTT_OK, "");
    check_props(MQTT_SUBACK, BYTES(0x0B, 1), MQTT_E_MALFORMED, "not allowed");
    check_props(MQTT_UNSUBACK, BYTES(0x1F, 0, 0), MQTT_OK, "");
}

static void test_props_duplicates(void **state)
{
    (void)state;
    check_props(MQTT_PUBACK, BYTES(0x1F, 0, 0, 0x1F, 0, 0), MQTT_E_PROTOCOL, "twice");
    check_props(MQTT_CONNECT, BYTES(0x11, 0, 0, 0, 1, 0x21, 0, 1, 0x11, 0, 0, 0, 1),
                MQTT_E_PROTOCOL, "twice");
    check_props(MQTT_PUBACK, BYTES(0x26, 0, 0, 0, 0, 0x26, 0, 0, 0, 0), MQTT_OK, "");
    check_props(0, BYTES(0x26, 0, 0, 0, 0, 0x26, 0, 0, 0, 0), MQTT_OK, "");
    check_props(MQTT_PUBLISH, BYTES(0x0B, 1, 0x0B, 2), MQTT_OK, "");
    check_props(MQTT_SUBSCRIBE, BYTES(0x0B, 1, 0x0B, 2), MQTT_E_PROTOCOL, "twice");
    check_props(MQTT_PUBLISH, BYTES(0x23, 0, 1, 0x23, 0, 2), MQTT_E_PROTOCOL, "twice");
}

static void test_props_values(void **state)
{
    (void)state;
    /* Zero where forbidden. */
    check_props(MQTT_CONNECT, BYTES(0x21, 0, 0), MQTT_E_PROTOCOL, "value 0");
    check_props(MQTT_CONNACK, BYTES(0x27, 0, 0, 0, 0), MQTT_E_PROTOCOL, "value 0");
    check_props(MQTT_PUBLISH, BYTES(0x23, 0, 0), MQTT_E_PROTOCOL, "value 0");
    check_props(MQTT_PUBLISH, BYTES(0x0B, 0), MQTT_E_PROTOCOL, "value 0");
    check_props(MQTT_SUBSCRIBE, BYTES(0x0B, 0), MQTT_E_PROTOCOL, "value 0");
    check_props(MQTT_CONNECT, BYTES(0x22, 0, 0), MQTT_OK, "");   /* alias max 0 is fine */
    check_props(MQTT_CONNECT, BYTES(0x11, 0, 0, 0, 0), MQTT_OK, "");
    /* Byte properties are 0 or 1. */
    check_props(MQTT_PUBLISH, BYTES(0x01, 2), MQTT_E_PROTOCOL, "0 or 1");
    check_props(MQTT_CONNACK, BYTES(0x24, 2), MQTT_E_PROTOCOL, "0 or 1");
    check_props(MQTT_CONNACK, BYTES(0x2A, 0), MQTT_OK, "");
    check_props(MQTT_CONNECT, BYTES(0x17, 0xFF), MQTT_E_PROTOCOL, "0 or 1");
    /* Non-minimal varint in a subscription identifier; the biggest ok. */
    check_props(MQTT_PUBLISH, BYTES(0x0B, 0x81, 0x00), MQTT_E_MALFORMED, "varint");
    check_props(MQTT_PUBLISH, BYTES(0x0B, 0xFF, 0xFF, 0xFF, 0x7F), MQTT_OK, "");
    check_props(MQTT_PUBLISH, BYTES(0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MQTT_E_MALFORMED,
                "varint");
    /* Bad UTF-8 in a string, in a pair's key and in its value. */
    check_props(MQTT_PUBACK, BYTES(0x1F, 0, 2, 0xC0, 0xAF), MQTT_E_MALFORMED, "UTF-8");
    check_props(MQTT_PUBLISH, BYTES(0x03, 0, 1, 0x00), MQTT_E_MALFORMED, "UTF-8");
    check_props(MQTT_PUBACK, BYTES(0x26, 0, 1, 0xFF, 0, 1, 'v'), MQTT_E_MALFORMED, "UTF-8");
    check_props(MQTT_PUBACK, BYTES(0x26, 0, 1, 'k', 0, 3, 0xED, 0xA0, 0x80), MQTT_E_MALFORMED,
                "UTF-8");
    /* Binary data is not UTF-8-checked. */
    check_props(MQTT_PUBLISH, BYTES(0x09, 0, 2, 0x00, 0xFF), MQTT_OK, "");
    /* A response topic is a topic name. */
    check_props(MQTT_PUBLISH, BYTES(0x08, 0, 3, 'a', '/', '#'), MQTT_E_PROTOCOL, "response");
    check_props(MQTT_PUBLISH, BYTES(0x08, 0, 0), MQTT_E_PROTOCOL, "response");
}

/* ------------------------------------------------------------------------
 * Packets
 */

static void test_connect5(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[256];

    /* Will properties sit before the will topic, CONNECT's after keep alive. */
    expect5(MQTT_OK, "", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0xC6, 0, 30, 3, 0x21, 0, 5, 0, 1, 'c',
                  5, 0x18, 0, 0, 0, 9, 0, 1, 'w', 0, 2, 'h', 'i', 0, 1, 'u', 0, 1, 'p'), &p);
    assert_int_equal(p.u.connect.level, 5);
    assert_int_equal(p.u.connect.props.len, 3);
    assert_int_equal(p.u.connect.will_props.len, 5);
    assert_int_equal(p.u.connect.will_payload.len, 2);
    assert_int_equal(p.u.connect.password.len, 1);

    /* 5.0: a password without a user name is legal, both ways. */
    expect5(MQTT_OK, "", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 0, 0, 0, 0, 0, 1, 't'), &p);
    assert_true(p.u.connect.has_password && !p.u.connect.has_username);
    p.u.connect.level = 0;   /* ignored by the encoder */
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 18);
    assert_true(q.u.connect.has_password && !q.u.connect.has_username);
    assert_int_equal(q.u.connect.level, 5);
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);

    /* Level 5 CONNECT decodes whatever the connection's level says. */
    const char *why;
    assert_int_equal(mqtt_decode(MQTT_LEVEL_311, 0x10,
                                 BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 0, 0, 0), &p,
                                 &why), MQTT_OK);
    /* Truncated inside the will properties / their length missing. */
    expect5(MQTT_E_MALFORMED, "", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 0, 0, 0, 0), NULL);
    expect5(MQTT_E_MALFORMED, "", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 0, 0, 0, 0, 5, 0x18, 0), NULL);
    /* The 3.1.1 rules still hold: reserved flag, will QoS 3. */
    expect5(MQTT_E_MALFORMED, "reserved", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x03, 0, 0, 0, 0, 0), NULL);
    expect5(MQTT_E_MALFORMED, "QoS 3", 0x10,
            BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x1E, 0, 0, 0, 0, 0, 0, 0, 1, 'w', 0, 0), NULL);
}

static void test_connack5(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];

    expect5(MQTT_OK, "", 0x20, BYTES(1, 0, 0), &p);
    assert_true(p.u.connack.session_present);
    expect5(MQTT_OK, "", 0x20, BYTES(0, 0x87, 4, 0x24, 0, 0x25, 0), NULL);
    expect5(MQTT_E_PROTOCOL, "reason code", 0x20, BYTES(0, 0x01, 0), NULL);
    expect5(MQTT_E_PROTOCOL, "reason code", 0x20, BYTES(0, 0x8E, 0), NULL);
    expect5(MQTT_E_MALFORMED, "session present", 0x20, BYTES(1, 0x87, 0), NULL);
    expect5(MQTT_E_MALFORMED, "flags", 0x20, BYTES(2, 0, 0), NULL);

    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.return_code = MQTT_RC_BANNED;
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 5);
    assert_int_equal(q.u.connack.return_code, 0x8A);
    p.u.connack.return_code = 0x01;   /* a 3.1.1 code, not a 5.0 one */
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    p.u.connack.return_code = 0x87;
    p.u.connack.session_present = true;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    /* The encoder refuses a property the packet may not carry. */
    p.u.connack.session_present = false;
    p.u.connack.props.data = (const uint8_t *)"\x23\x00\x01";
    p.u.connack.props.len = 3;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
}

static void test_publish5_topic_alias(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];

    /* Empty topic with an alias: fine; without: protocol error. */
    expect5(MQTT_OK, "", 0x30, BYTES(0, 0, 3, 0x23, 0, 4, 'x'), &p);
    assert_int_equal(p.u.publish.topic.len, 0);
    assert_int_equal(p.u.publish.payload.len, 1);
    expect5(MQTT_E_PROTOCOL, "alias", 0x30, BYTES(0, 0, 0, 'x'), NULL);
    expect5(MQTT_E_PROTOCOL, "alias", 0x30, BYTES(0, 0, 2, 0x01, 1, 'x'), NULL);
    /* Topic and alias together are fine (it sets the alias). */
    expect5(MQTT_OK, "", 0x32, BYTES(0, 1, 'a', 0, 5, 3, 0x23, 0, 4), &p);
    assert_int_equal(p.u.publish.packet_id, 5);
    assert_int_equal(p.u.publish.payload.len, 0);
    /* Wildcards remain forbidden. */
    expect5(MQTT_E_MALFORMED, "wildcard", 0x30, BYTES(0, 1, '+', 0), NULL);

    /* The encoder follows the same rule. */
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.u.publish.payload = mqtt_str("x");
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    p.u.publish.props.data = (const uint8_t *)"\x23\x00\x04";
    p.u.publish.props.len = 3;
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 2 + 2 + 4 + 1);
    assert_int_equal(q.u.publish.topic.len, 0);
    /* At level 4 an empty topic stays impossible. */
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);
}

static void test_acks5_short_forms(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};

    for (size_t i = 0; i < sizeof types; i++) {
        uint8_t t = types[i];
        uint8_t first = (uint8_t)(t << 4 | (t == MQTT_PUBREL ? 2 : 0));
        uint8_t ok_rc = t == MQTT_PUBREL || t == MQTT_PUBCOMP ? 0x92 : 0x10;
        uint8_t bad_rc = t == MQTT_PUBREL || t == MQTT_PUBCOMP ? 0x10 : 0x92;

        expect5(MQTT_OK, "", first, BYTES(0, 7), &p);
        assert_int_equal(p.u.ack.packet_id, 7);
        assert_int_equal(p.u.ack.reason_code, 0);
        assert_int_equal(p.u.ack.props.len, 0);
        expect5(MQTT_OK, "", first, (const uint8_t[]){0, 7, ok_rc}, 3, &p);
        assert_int_equal(p.u.ack.reason_code, ok_rc);
        expect5(MQTT_OK, "", first, (const uint8_t[]){0, 7, 0, 0}, 4, &p);
        expect5(MQTT_OK, "", first, (const uint8_t[]){0, 7, ok_rc, 3, 0x1F, 0, 0}, 7, &p);
        assert_int_equal(p.u.ack.props.len, 3);
        expect5(MQTT_E_PROTOCOL, "reason code", first, (const uint8_t[]){0, 7, bad_rc}, 3, NULL);
        expect5(MQTT_E_PROTOCOL, "reason code", first, (const uint8_t[]){0, 7, 0x01}, 3, NULL);
        expect5(MQTT_E_PROTOCOL, "identifier 0", first, BYTES(0, 0), NULL);
        expect5(MQTT_E_MALFORMED, "truncated", first, BYTES(0), NULL);

        /* Encoding picks the shortest form. */
        memset(&p, 0, sizeof p);
        p.type = t;
        p.u.ack.packet_id = 7;
        assert_int_equal(round5(&p, buf, sizeof buf, &q), 4);
        p.u.ack.reason_code = ok_rc;
        assert_int_equal(round5(&p, buf, sizeof buf, &q), 5);
        assert_int_equal(q.u.ack.reason_code, ok_rc);
        p.u.ack.props.data = (const uint8_t *)"\x1F\x00\x00";
        p.u.ack.props.len = 3;
        assert_int_equal(round5(&p, buf, sizeof buf, &q), 9);
        assert_int_equal(q.u.ack.props.len, 3);
        p.u.ack.reason_code = bad_rc;
        assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    }
}

static void test_disconnect_auth5(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];

    expect5(MQTT_OK, "", 0xE0, NULL, 0, &p);
    assert_int_equal(p.u.disconnect.reason_code, 0);
    expect5(MQTT_OK, "", 0xE0, BYTES(0x04), &p);          /* reason only */
    assert_int_equal(p.u.disconnect.reason_code, 4);
    expect5(MQTT_OK, "", 0xE0, BYTES(0x8E, 0), &p);
    expect5(MQTT_OK, "", 0xE0, BYTES(0x00, 5, 0x11, 0, 0, 0, 0), &p);
    assert_int_equal(p.u.disconnect.props.len, 5);
    expect5(MQTT_E_PROTOCOL, "DISCONNECT reason", 0xE0, BYTES(0x18), NULL);
    expect5(MQTT_E_PROTOCOL, "DISCONNECT reason", 0xE0, BYTES(0x01, 0), NULL);
    expect5(MQTT_E_MALFORMED, "flags", 0xE1, NULL, 0, NULL);

    expect5(MQTT_OK, "", 0xF0, NULL, 0, &p);
    expect5(MQTT_OK, "", 0xF0, BYTES(0x18, 4, 0x15, 0, 1, 'm'), &p);
    assert_int_equal(p.u.disconnect.reason_code, 0x18);
    expect5(MQTT_E_MALFORMED, "truncated", 0xF0, BYTES(0x18), NULL);  /* no 1-byte form */
    expect5(MQTT_E_PROTOCOL, "AUTH reason", 0xF0, BYTES(0x04, 0), NULL);
    expect5(MQTT_E_MALFORMED, "flags set on AUTH", 0xF2, NULL, 0, NULL);

    for (uint8_t t = MQTT_DISCONNECT; t <= MQTT_AUTH; t++) {
        memset(&p, 0, sizeof p);
        p.type = t;
        assert_int_equal(round5(&p, buf, sizeof buf, &q), 2);
        p.u.disconnect.reason_code = t == MQTT_AUTH ? 0x19 : 0x04;
        assert_int_equal(round5(&p, buf, sizeof buf, &q), 4);
        assert_int_equal(q.u.disconnect.reason_code, p.u.disconnect.reason_code);
        p.u.disconnect.reason_code = t == MQTT_AUTH ? 0x04 : 0x19;
        assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    }
    /* AUTH cannot be written in 3.1.1. */
    p.u.disconnect.reason_code = 0;
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);
}

static void test_ping5(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[8];

    expect5(MQTT_OK, "", 0xC0, NULL, 0, NULL);
    expect5(MQTT_OK, "", 0xD0, NULL, 0, NULL);
    expect5(MQTT_E_MALFORMED, "trailing", 0xC0, BYTES(0), NULL);
    memset(&p, 0, sizeof p);
    p.type = MQTT_PINGRESP;
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 2);
}

static void test_subscribe5_options(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;

    /* QoS 1 + No Local + Retain As Published + Retain Handling 2. */
    expect5(MQTT_OK, "", 0x82, BYTES(0, 1, 2, 0x0B, 7, 0, 1, 'a', 0x2D), &p);
    assert_int_equal(p.u.subscribe.count, 1);
    assert_int_equal(p.u.subscribe.props.len, 2);
    mqtt_topic_iter_init(&it, &p);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(MQTT_SUBOPT_QOS(e.options), 1);
    assert_true(e.options & MQTT_SUBOPT_NO_LOCAL);
    assert_true(e.options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED);
    assert_int_equal(MQTT_SUBOPT_RETAIN_HANDLING(e.options), 2);
    assert_false(mqtt_topic_iter_next(&it, &e));

    expect5(MQTT_E_MALFORMED, "reserved", 0x82, BYTES(0, 1, 0, 0, 1, 'a', 0x40), NULL);
    expect5(MQTT_E_MALFORMED, "reserved", 0x82, BYTES(0, 1, 0, 0, 1, 'a', 0x80), NULL);
    expect5(MQTT_E_MALFORMED, "QoS 3", 0x82, BYTES(0, 1, 0, 0, 1, 'a', 0x03), NULL);
    expect5(MQTT_E_PROTOCOL, "retain handling", 0x82, BYTES(0, 1, 0, 0, 1, 'a', 0x30), NULL);
    expect5(MQTT_E_PROTOCOL, "no topic filters", 0x82, BYTES(0, 1, 0), NULL);
    expect5(MQTT_E_MALFORMED, "truncated", 0x82, BYTES(0, 1, 0, 0, 1, 'a'), NULL);
    /* UNSUBSCRIBE: properties, then filters without options. */
    expect5(MQTT_OK, "", 0xA2, BYTES(0, 1, 0, 0, 1, 'a', 0, 1, 'b'), &p);
    assert_int_equal(p.u.subscribe.count, 2);
    expect5(MQTT_E_PROTOCOL, "no topic filters", 0xA2, BYTES(0, 1, 0), NULL);

    static const struct mqtt_topic_entry entries[] = {
        {{(const uint8_t *)"a/+", 3}, 0x2E}, {{(const uint8_t *)"b", 1}, 0x10}};
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 3;
    p.u.subscribe.count = 2;
    p.u.subscribe.entries = entries;
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 2 + 2 + 1 + 6 + 4);
    assert_int_equal(q.u.subscribe.count, 2);
    mqtt_topic_iter_init(&it, &q);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.options, 0x2E);
    /* 3.1.1 allows only the QoS bits. */
    assert_int_equal(mqtt_encode(MQTT_LEVEL_311, &p, buf, sizeof buf), 0);

    static const uint8_t bad_opts[] = {0x03, 0x30, 0x40, 0x80};
    for (size_t i = 0; i < sizeof bad_opts; i++) {
        struct mqtt_topic_entry one = {{(const uint8_t *)"a", 1}, bad_opts[i]};
        p.u.subscribe.count = 1;
        p.u.subscribe.entries = &one;
        assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
    }
}

static void test_suback_unsuback5(void **state)
{
    (void)state;
    struct mqtt_packet p, q;
    uint8_t buf[64];

    expect5(MQTT_OK, "", 0x90, BYTES(0, 1, 0, 0x00, 0x01, 0x02, 0x97, 0xA2), &p);
    assert_int_equal(p.u.suback.codes.len, 5);
    expect5(MQTT_E_PROTOCOL, "SUBACK reason", 0x90, BYTES(0, 1, 0, 0x11), NULL);
    expect5(MQTT_E_PROTOCOL, "SUBACK reason", 0x90, BYTES(0, 1, 0, 0x00, 0x03), NULL);
    expect5(MQTT_E_MALFORMED, "no return codes", 0x90, BYTES(0, 1, 0), NULL);

    /* UNSUBACK carries reason codes in 5.0 and decodes into u.suback. */
    expect5(MQTT_OK, "", 0xB0, BYTES(0, 4, 0, 0x00, 0x11, 0x87), &p);
    assert_int_equal(p.u.suback.packet_id, 4);
    assert_int_equal(p.u.suback.codes.len, 3);
    assert_int_equal(p.u.suback.codes.data[1], 0x11);
    expect5(MQTT_E_PROTOCOL, "UNSUBACK reason", 0xB0, BYTES(0, 4, 0, 0x01), NULL);
    expect5(MQTT_E_MALFORMED, "UNSUBACK with no", 0xB0, BYTES(0, 4, 0), NULL);
    expect5(MQTT_E_PROTOCOL, "identifier 0", 0xB0, BYTES(0, 0, 0, 0), NULL);

    static const uint8_t codes[] = {0x11, 0x8F};
    memset(&p, 0, sizeof p);
    p.type = MQTT_UNSUBACK;
    p.u.suback.packet_id = 4;
    p.u.suback.codes.data = codes;
    p.u.suback.codes.len = 2;
    assert_int_equal(round5(&p, buf, sizeof buf, &q), 2 + 2 + 1 + 2);
    assert_memory_equal(q.u.suback.codes.data, codes, 2);
    p.type = MQTT_SUBACK;   /* 0x11 is not a SUBACK code */
    assert_int_equal(mqtt_encode(MQTT_LEVEL_5, &p, buf, sizeof buf), 0);
}

static void test_reason_str(void **state)
{
    (void)state;
    assert_string_equal(mqtt_reason_str(MQTT_RC_NOT_AUTHORIZED), "not authorized");
    assert_string_equal(mqtt_reason_str(0x00), "success");
    assert_string_equal(mqtt_reason_str(0xA2), "wildcard subscriptions not supported");
    assert_string_equal(mqtt_reason_str(0x03), "unknown reason code");
    assert_string_equal(mqtt_reason_str(0xFF), "unknown reason code");
    for (unsigned rc = 0; rc < 256; rc++)
        assert_non_null(mqtt_reason_str((uint8_t)rc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_property_round_trip),
        cmocka_unit_test(test_iterator_order_and_repeats),
        cmocka_unit_test(test_builder_checks),
        cmocka_unit_test(test_props_length),
        cmocka_unit_test(test_props_unknown_id),
        cmocka_unit_test(test_props_wrong_packet),
        cmocka_unit_test(test_props_duplicates),
        cmocka_unit_test(test_props_values),
        cmocka_unit_test(test_connect5),
        cmocka_unit_test(test_connack5),
        cmocka_unit_test(test_publish5_topic_alias),
        cmocka_unit_test(test_acks5_short_forms),
        cmocka_unit_test(test_disconnect_auth5),
        cmocka_unit_test(test_ping5),
        cmocka_unit_test(test_subscribe5_options),
        cmocka_unit_test(test_suback_unsuback5),
        cmocka_unit_test(test_reason_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
