/*
 * fuzz_decode.c - libFuzzer target for the MQTT codec.  The input is read as
 * a byte stream of packets, framed and decoded at both protocol levels, and
 * every packet that decodes is re-encoded and decoded again: the codec is
 * strict, so the bytes must come back identical and the fields equal.  The
 * one exception is 5.0's optional parts: an acknowledgement, DISCONNECT or
 * AUTH written in a longer form than needed (reason 0 and an empty property
 * block spelled out, or a DISCONNECT with a lone reason byte, which the
 * encoder writes with a property length) re-encodes to another length; for
 * those only the fields are compared.
 * Along the way the validators are cross-checked against slow, obviously
 * correct reference versions written here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"


#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------
 * Reference validators: decode code points one by one, as the spec words it.
 */

static bool ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t c = s[i];
        size_t k;
        uint32_t min;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            k = 1, c &= 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, c &= 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static bool ref_topic_name(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 65535)
        return false;
    return memchr(s, '+', n) == NULL && memchr(s, '#', n) == NULL && ref_utf8(s, n);
}

/* Split into levels and judge each level whole. */
static bool ref_topic_filter(const uint8_t *s, size_t n)
{
    size_t start = 0;

    if (n == 0 || n > 65535 || !ref_utf8(s, n))
        return false;
    while (start <= n) {
        const uint8_t *slash = memchr(s + start, '/', n - start);
        size_t end = slash ? (size_t)(slash - s) : n;
        size_t len = end - start;
        const uint8_t *lvl = s + start;

        if (memchr(lvl, '#', len) && !(len == 1 && end == n))
            return false;
        if (memchr(lvl, '+', len) && len != 1)
            return false;
        start = end + 1;
    }
    return true;
}

static void check_validators(const uint8_t *s, size_t n)
{
    CHECK(mqtt_utf8_valid(s, n) == ref_utf8(s, n));
    CHECK(mqtt_topic_name_valid(s, n) == ref_topic_name(s, n));
    CHECK(mqtt_topic_filter_valid(s, n) == ref_topic_filter(s, n));
}

/* ------------------------------------------------------------------------
 * Round trip
 */

static bool props_eq(struct mqtt_props a, struct mqtt_props b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* A validated block must iterate to its very end. */
static void check_props_walk(struct mqtt_props pr)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop p;

    mqtt_prop_iter_init(&it, &pr);
    while (mqtt_prop_next(&it, &p)) {
        CHECK(mqtt_prop_type(p.id) != 0);
        (void)mqtt_props_find(&pr, p.id, &p);
    }
    CHECK(pr.len == 0 || it.pos == it.end);
}

static bool bytes_eq(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* What a successful decode promises, whatever the input was. */
static void check_invariants(uint8_t level, const struct mqtt_packet *p)
{
    bool v5 = level == MQTT_LEVEL_5;

    switch (p->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *c = &p->u.connect;
        CHECK(c->level == MQTT_LEVEL_311 || c->level == MQTT_LEVEL_5);
        check_props_walk(c->props);
        check_props_walk(c->will_props);
        CHECK(mqtt_utf8_valid(c->client_id.data, c->client_id.len));
        CHECK(c->will_qos <= 2);
        if (c->will_flag)
            CHECK(mqtt_topic_name_valid(c->will_topic.data, c->will_topic.len));
        else
            CHECK(c->will_qos == 0 && !c->will_retain);
        CHECK(!c->has_password || c->has_username || c->level == MQTT_LEVEL_5);
        if (c->has_username)
            CHECK(mqtt_utf8_valid(c->username.data, c->username.len));
        break;
    }
    case MQTT_CONNACK:
        CHECK(v5 || p->u.connack.return_code <= 5);
        CHECK(!p->u.connack.session_present || p->u.connack.return_code == 0);
        check_props_walk(p->u.connack.props);
        break;
    case MQTT_PUBLISH: {
        struct mqtt_prop alias;
        CHECK(p->u.publish.qos <= 2);
        CHECK(!p->u.publish.dup || p->u.publish.qos > 0);
        CHECK((p->u.publish.packet_id != 0) == (p->u.publish.qos > 0));
        if (v5 && p->u.publish.topic.len == 0)
            CHECK(mqtt_props_find(&p->u.publish.props, MQTT_PROP_TOPIC_ALIAS, &alias) &&
                  alias.num != 0);
        else
            CHECK(mqtt_topic_name_valid(p->u.publish.topic.data, p->u.publish.topic.len));
        check_props_walk(p->u.publish.props);
        break;
    }
    case MQTT_UNSUBACK:
        if (v5) {
            CHECK(p->u.suback.packet_id != 0 && p->u.suback.codes.len >= 1);
            check_props_walk(p->u.suback.props);
            break;
        }
        /* fall through */
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        CHECK(p->u.ack.packet_id != 0);
        CHECK(v5 || (p->u.ack.reason_code == 0 && p->u.ack.props.len == 0));
        check_props_walk(p->u.ack.props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        CHECK(p->u.subscribe.packet_id != 0);
        CHECK(p->u.subscribe.count >= 1);
        CHECK(p->u.subscribe.entries == NULL);
        check_props_walk(p->u.subscribe.props);
        break;
    case MQTT_SUBACK:
        CHECK(p->u.suback.packet_id != 0 && p->u.suback.codes.len >= 1);
        for (uint32_t i = 0; i < p->u.suback.codes.len; i++) {
            uint8_t rc = p->u.suback.codes.data[i];
            CHECK(v5 || rc <= 2 || rc == MQTT_SUBACK_FAILURE);
        }
        check_props_walk(p->u.suback.props);
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        break;
    case MQTT_AUTH:
        CHECK(v5);
        /* fall through */
    case MQTT_DISCONNECT:
        CHECK(v5 || (p->u.disconnect.reason_code == 0 && p->u.disconnect.props.len == 0));
        check_props_walk(p->u.disconnect.props);
        (void)mqtt_reason_str(p->u.disconnect.reason_code);
        break;
    default:
        CHECK(!"decoded a type that should have been rejected");
    }
}

/* Field-by-field equality of two decoded packets of the same bytes. */
static void check_same(uint8_t level, const struct mqtt_packet *a, const struct mqtt_packet *b)
{
    CHECK(a->type == b->type && a->flags == b->flags);
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        CHECK(x->level == y->level && x->clean_session == y->clean_session);
        CHECK(x->keepalive == y->keepalive);
        CHECK(bytes_eq(x->client_id, y->client_id));
        CHECK(x->will_flag == y->will_flag && x->will_qos == y->will_qos);
        CHECK(x->will_retain == y->will_retain);
        CHECK(bytes_eq(x->will_topic, y->will_topic));
        CHECK(bytes_eq(x->will_payload, y->will_payload));
        CHECK(x->has_username == y->has_username && bytes_eq(x->username, y->username));
        CHECK(x->has_password == y->has_password && bytes_eq(x->password, y->password));
        CHECK(props_eq(x->props, y->props) && props_eq(x->will_props, y->will_props));
        break;
    }
    case MQTT_CONNACK:
        CHECK(a->u.connack.session_present == b->u.connack.session_present);
        CHECK(a->u.connack.return_code == b->u.connack.return_code);
        CHECK(props_eq(a->u.connack.props, b->u.connack.props));
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        CHECK(x->dup == y->dup && x->qos == y->qos && x->retain == y->retain);
        CHECK(x->packet_id == y->packet_id);
        CHECK(bytes_eq(x->topic, y->topic) && bytes_eq(x->payload, y->payload));
        CHECK(props_eq(x->props, y->props));
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_topic_iter i1, i2;
        struct mqtt_topic_entry e1, e2;
        CHECK(a->u.subscribe.packet_id == b->u.subscribe.packet_id);
        CHECK(a->u.subscribe.count == b->u.subscribe.count);
        CHECK(props_eq(a->u.subscribe.props, b->u.subscribe.props));
        mqtt_topic_iter_init(&i1, a);
        mqtt_topic_iter_init(&i2, b);
        for (;;) {
            bool more1 = mqtt_topic_iter_next(&i1, &e1);
            bool more2 = mqtt_topic_iter_next(&i2, &e2);
            CHECK(more1 == more2);
            if (!more1)
                break;
            CHECK(bytes_eq(e1.filter, e2.filter) && e1.options == e2.options);
        }
        break;
    }
    case MQTT_UNSUBACK:
        if (level != MQTT_LEVEL_5)
            goto ack;
        /* fall through */
    case MQTT_SUBACK:
        CHECK(a->u.suback.packet_id == b->u.suback.packet_id);
        CHECK(bytes_eq(a->u.suback.codes, b->u.suback.codes));
        CHECK(props_eq(a->u.suback.props, b->u.suback.props));
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        CHECK(a->u.disconnect.reason_code == b->u.disconnect.reason_code);
        CHECK(props_eq(a->u.disconnect.props, b->u.disconnect.props));
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        break;
    default:
    ack:
        CHECK(a->u.ack.packet_id == b->u.ack.packet_id);
        CHECK(a->u.ack.reason_code == b->u.ack.reason_code);
        CHECK(props_eq(a->u.ack.props, b->u.ack.props));
        break;
    }
}

/* Collects the entries of a decoded SUBSCRIBE/UNSUBSCRIBE into an array so
 * that the packet can be encoded again; checks them and the count on the
 * way.  Returns a malloc'd array or NULL for other types. */
static struct mqtt_topic_entry *collect_entries(uint8_t level, const struct mqtt_packet *p)
{
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e, *arr;
    uint32_t n = 0;

    if (p->type != MQTT_SUBSCRIBE && p->type != MQTT_UNSUBSCRIBE)
        return NULL;
    arr = malloc(sizeof *arr * p->u.subscribe.count);
    CHECK(arr != NULL);
    mqtt_topic_iter_init(&it, p);
    while (mqtt_topic_iter_next(&it, &e)) {
        CHECK(n < p->u.subscribe.count);
        CHECK(mqtt_utf8_valid(e.filter.data, e.filter.len));
        if (p->type == MQTT_SUBSCRIBE && level == MQTT_LEVEL_5)
            CHECK(!(e.options & 0xC0) && MQTT_SUBOPT_QOS(e.options) <= 2 &&
                  MQTT_SUBOPT_RETAIN_HANDLING(e.options) <= 2);
        else if (p->type == MQTT_SUBSCRIBE)
            CHECK(e.options <= 2);
        else
            CHECK(e.options == 0);
        /* The broker calls this on every filter; exercise it here too. */
        (void)mqtt_topic_filter_valid(e.filter.data, e.filter.len);
        arr[n++] = e;
    }
    CHECK(n == p->u.subscribe.count);
    return arr;
}

/* `packet` is the whole original packet (fixed header included), `p` its
 * decoding.  Re-encode, compare, decode again, compare. */
static void round_trip(uint8_t level, const uint8_t *packet, size_t packet_len,
                       const struct mqtt_packet *p)
{
    struct mqtt_packet copy = *p, again;
    struct mqtt_topic_entry *entries = collect_entries(level, p);
    const char *why = NULL;
    /* A CONNECT is written at its own level, and that becomes the level of
     * the connection for every later packet. */
    uint8_t enc_level = p->type == MQTT_CONNECT ? p->u.connect.level : level;

    if (entries)
        copy.u.subscribe.entries = entries;

    size_t need = mqtt_encode(enc_level, &copy, NULL, 0);
    if (need != packet_len) {
        /* Only 5.0's optional parts may change the length (see the top). */
        CHECK(level == MQTT_LEVEL_5 && need >= 2);
        CHECK((p->type >= MQTT_PUBACK && p->type <= MQTT_PUBCOMP) ||
              p->type == MQTT_DISCONNECT || p->type == MQTT_AUTH);
    }

    /* One byte short: must not write at all (ASan watches the end). */
    uint8_t *small = malloc(need - 1);
    CHECK(small != NULL);
    CHECK(mqtt_encode(enc_level, &copy, small, need - 1) == need);
    free(small);

    uint8_t *out = malloc(need);
    CHECK(out != NULL);
    CHECK(mqtt_encode(enc_level, &copy, out, need) == need);
    if (need == packet_len)
        CHECK(memcmp(out, packet, need) == 0);

    uint8_t first;
    uint32_t rem;
    size_t hlen;
    CHECK(mqtt_frame_header(out, need, (uint32_t)need, &first, &rem, &hlen) == MQTT_OK);
    CHECK(hlen + rem == need);
    CHECK(mqtt_decode(enc_level, first, out + hlen, rem, &again, &why) == MQTT_OK);
    check_same(enc_level, p, &again);

    free(out);
    free(entries);
}

/* Frames packets one after another, as a connection's read buffer would. */
static void walk(uint8_t level, const uint8_t *data, size_t size)
{
    size_t pos = 0;

    while (pos < size) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        enum mqtt_err err = mqtt_frame_header(data + pos, size - pos, 0, &first, &rem, &hlen);

        if (err == MQTT_INCOMPLETE) {
            CHECK(size - pos < MQTT_MAX_FIXED_HEADER);
            return;
        }
        if (err != MQTT_OK) {
            CHECK(err == MQTT_E_MALFORMED);
            return;     /* a broken length cannot be resynchronised */
        }
        CHECK(hlen >= 2 && hlen <= MQTT_MAX_FIXED_HEADER && rem <= MQTT_MAX_REMAINING_LENGTH);
        CHECK(first == data[pos]);

        /* The size limit is exact: the packet fits in hlen + rem, not one less. */
        uint8_t f2;
        uint32_t r2;
        size_t h2;
        CHECK(mqtt_frame_header(data + pos, size - pos, (uint32_t)(hlen + rem), &f2, &r2, &h2)
              == MQTT_OK);
        CHECK(mqtt_frame_header(data + pos, size - pos, (uint32_t)(hlen + rem - 1), &f2, &r2, &h2)
              == MQTT_E_TOO_LARGE);

        if (rem > size - pos - hlen)
            return;     /* body not all here yet */

        /* The body gets its own allocation so that ASan sees any read past
         * the Remaining Length; in the input it would hit the next packet. */
        uint8_t *body = malloc(rem ? rem : 1);
        CHECK(body != NULL);
        memcpy(body, data + pos + hlen, rem);

        struct mqtt_packet p;
        const char *why = NULL;
        err = mqtt_decode(level, first, body, rem, &p, &why);
        if (err == MQTT_OK) {
            check_invariants(level, &p);
            round_trip(level, data + pos, hlen + rem, &p);
        } else {
            CHECK(err == MQTT_E_MALFORMED || err == MQTT_E_PROTOCOL ||
                  err == MQTT_E_UNSUPPORTED_LEVEL);
            CHECK(why != NULL && why[0] != '\0');
        }
        (void)mqtt_type_name(p.type);
        (void)mqtt_err_str(err);
        free(body);
        pos += hlen + rem;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_validators(data, size);
    if (size > 1)
        check_validators(data + 1, size - 1);
    walk(MQTT_LEVEL_311, data, size);
    walk(MQTT_LEVEL_5, data, size);
    return 0;
}
