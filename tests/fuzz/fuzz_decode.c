/*
 * fuzz_decode.c - libFuzzer target for the MQTT codec.  The input is read as
 * a byte stream of packets, framed and decoded at both protocol levels, and
 * every packet that decodes is re-encoded and decoded again: the codec is
 * strict, so the bytes must come back identical and the fields equal.
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

static bool bytes_eq(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* What a successful decode promises, whatever the input was. */
static void check_invariants(const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *c = &p->u.connect;
        CHECK(c->level == MQTT_LEVEL_311);
        CHECK(mqtt_utf8_valid(c->client_id.data, c->client_id.len));
        CHECK(c->will_qos <= 2);
        if (c->will_flag)
            CHECK(mqtt_topic_name_valid(c->will_topic.data, c->will_topic.len));
        else
            CHECK(c->will_qos == 0 && !c->will_retain);
        CHECK(!c->has_password || c->has_username);
        if (c->has_username)
            CHECK(mqtt_utf8_valid(c->username.data, c->username.len));
        break;
    }
    case MQTT_CONNACK:
        CHECK(p->u.connack.return_code <= 5);
        CHECK(!p->u.connack.session_present || p->u.connack.return_code == 0);
        break;
    case MQTT_PUBLISH:
        CHECK(p->u.publish.qos <= 2);
        CHECK(!p->u.publish.dup || p->u.publish.qos > 0);
        CHECK((p->u.publish.packet_id != 0) == (p->u.publish.qos > 0));
        CHECK(mqtt_topic_name_valid(p->u.publish.topic.data, p->u.publish.topic.len));
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        CHECK(p->u.ack.packet_id != 0);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        CHECK(p->u.subscribe.packet_id != 0);
        CHECK(p->u.subscribe.count >= 1);
        CHECK(p->u.subscribe.entries == NULL);
        break;
    case MQTT_SUBACK:
        CHECK(p->u.suback.packet_id != 0 && p->u.suback.codes.len >= 1);
        for (uint32_t i = 0; i < p->u.suback.codes.len; i++) {
            uint8_t rc = p->u.suback.codes.data[i];
            CHECK(rc <= 2 || rc == MQTT_SUBACK_FAILURE);
        }
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        break;
    default:
        CHECK(!"decoded a type that should have been rejected");
    }
}

/* Field-by-field equality of two decoded packets of the same bytes. */
static void check_same(const struct mqtt_packet *a, const struct mqtt_packet *b)
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
        break;
    }
    case MQTT_CONNACK:
        CHECK(a->u.connack.session_present == b->u.connack.session_present);
        CHECK(a->u.connack.return_code == b->u.connack.return_code);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        CHECK(x->dup == y->dup && x->qos == y->qos && x->retain == y->retain);
        CHECK(x->packet_id == y->packet_id);
        CHECK(bytes_eq(x->topic, y->topic) && bytes_eq(x->payload, y->payload));
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_topic_iter i1, i2;
        struct mqtt_topic_entry e1, e2;
        CHECK(a->u.subscribe.packet_id == b->u.subscribe.packet_id);
        CHECK(a->u.subscribe.count == b->u.subscribe.count);
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
    case MQTT_SUBACK:
        CHECK(a->u.suback.packet_id == b->u.suback.packet_id);
        CHECK(bytes_eq(a->u.suback.codes, b->u.suback.codes));
        break;
    default:
        CHECK(a->u.ack.packet_id == b->u.ack.packet_id);
        break;
    }
}

/* Collects the entries of a decoded SUBSCRIBE/UNSUBSCRIBE into an array so
 * that the packet can be encoded again; checks them and the count on the
 * way.  Returns a malloc'd array or NULL for other types. */
static struct mqtt_topic_entry *collect_entries(const struct mqtt_packet *p)
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
        if (p->type == MQTT_SUBSCRIBE)
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
static void round_trip(const uint8_t *packet, size_t packet_len, const struct mqtt_packet *p)
{
    struct mqtt_packet copy = *p, again;
    struct mqtt_topic_entry *entries = collect_entries(p);
    const char *why = NULL;

    if (entries)
        copy.u.subscribe.entries = entries;

    size_t need = mqtt_encode(MQTT_LEVEL_311, &copy, NULL, 0);
    CHECK(need == packet_len);

    /* One byte short: must not write at all (ASan watches the end). */
    uint8_t *small = malloc(need - 1);
    CHECK(small != NULL);
    CHECK(mqtt_encode(MQTT_LEVEL_311, &copy, small, need - 1) == need);
    free(small);

    uint8_t *out = malloc(need);
    CHECK(out != NULL);
    CHECK(mqtt_encode(MQTT_LEVEL_311, &copy, out, need) == need);
    CHECK(memcmp(out, packet, need) == 0);

    uint8_t first;
    uint32_t rem;
    size_t hlen;
    CHECK(mqtt_frame_header(out, need, (uint32_t)need, &first, &rem, &hlen) == MQTT_OK);
    CHECK(hlen + rem == need);
    CHECK(mqtt_decode(MQTT_LEVEL_311, first, out + hlen, rem, &again, &why) == MQTT_OK);
    check_same(p, &again);

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
            check_invariants(&p);
            round_trip(data + pos, hlen + rem, &p);
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
