/*
 * mqtt_props.c - MQTT 5.0 properties: the table of identifiers (wire type and
 * the packets each may appear on), the validator the decoder runs over every
 * property block, the iterator and lookup over validated blocks, and the
 * builder that writes blocks for the encoder.
 */
#include <string.h>

#include "mqtt_props_check.h"

/* Allowed-on masks: bit n is packet type n; bit 0 (a reserved type) stands
 * for the will properties of CONNECT. */
#define ON(t) (1u << (t))
#define WILL ON(MQTT_PROPS_WILL)
#define CONNECT ON(MQTT_CONNECT)
#define CONNACK ON(MQTT_CONNACK)
#define PUBLISH ON(MQTT_PUBLISH)
#define PUBACKS (ON(MQTT_PUBACK) | ON(MQTT_PUBREC) | ON(MQTT_PUBREL) | ON(MQTT_PUBCOMP))
#define SUBSCRIBE ON(MQTT_SUBSCRIBE)
#define SUBACK ON(MQTT_SUBACK)
#define UNSUBSCRIBE ON(MQTT_UNSUBSCRIBE)
#define UNSUBACK ON(MQTT_UNSUBACK)
#define DISCONNECT ON(MQTT_DISCONNECT)
#define AUTH ON(MQTT_AUTH)

struct prop_info {
    uint8_t type;       /* enum mqtt_prop_type, 0 = not defined */
    uint16_t allowed;   /* ON() mask */
};

/* MQTT 5.0 section 2.2.2.2, table 2-4, column by column. */
static const struct prop_info props_table[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {MQTT_PT_BYTE, PUBLISH | WILL},
    [MQTT_PROP_MESSAGE_EXPIRY] = {MQTT_PT_U32, PUBLISH | WILL},
    [MQTT_PROP_CONTENT_TYPE] = {MQTT_PT_UTF8, PUBLISH | WILL},
    [MQTT_PROP_RESPONSE_TOPIC] = {MQTT_PT_UTF8, PUBLISH | WILL},
    [MQTT_PROP_CORRELATION_DATA] = {MQTT_PT_BINARY, PUBLISH | WILL},
    [MQTT_PROP_SUBSCRIPTION_ID] = {MQTT_PT_VARINT, PUBLISH | SUBSCRIBE},
    [MQTT_PROP_SESSION_EXPIRY] = {MQTT_PT_U32, CONNECT | CONNACK | DISCONNECT},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {MQTT_PT_UTF8, CONNACK},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {MQTT_PT_U16, CONNACK},
    [MQTT_PROP_AUTH_METHOD] = {MQTT_PT_UTF8, CONNECT | CONNACK | AUTH},
    [MQTT_PROP_AUTH_DATA] = {MQTT_PT_BINARY, CONNECT | CONNACK | AUTH},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {MQTT_PT_BYTE, CONNECT},
    [MQTT_PROP_WILL_DELAY] = {MQTT_PT_U32, WILL},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {MQTT_PT_BYTE, CONNECT},
    [MQTT_PROP_RESPONSE_INFO] = {MQTT_PT_UTF8, CONNACK},
    [MQTT_PROP_SERVER_REFERENCE] = {MQTT_PT_UTF8, CONNACK | DISCONNECT},
    [MQTT_PROP_REASON_STRING] = {MQTT_PT_UTF8, CONNACK | PUBACKS | SUBACK | UNSUBACK |
                                                   DISCONNECT | AUTH},
    [MQTT_PROP_RECEIVE_MAXIMUM] = {MQTT_PT_U16, CONNECT | CONNACK},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {MQTT_PT_U16, CONNECT | CONNACK},
    [MQTT_PROP_TOPIC_ALIAS] = {MQTT_PT_U16, PUBLISH},
    [MQTT_PROP_MAXIMUM_QOS] = {MQTT_PT_BYTE, CONNACK},
    [MQTT_PROP_RETAIN_AVAILABLE] = {MQTT_PT_BYTE, CONNACK},
    [MQTT_PROP_USER_PROPERTY] = {MQTT_PT_PAIR, WILL | CONNECT | CONNACK | PUBLISH | PUBACKS |
                                                   SUBSCRIBE | SUBACK | UNSUBSCRIBE |
                                                   UNSUBACK | DISCONNECT | AUTH},
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {MQTT_PT_U32, CONNECT | CONNACK},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {MQTT_PT_BYTE, CONNACK},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {MQTT_PT_BYTE, CONNACK},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {MQTT_PT_BYTE, CONNACK},
};

enum mqtt_prop_type mqtt_prop_type(uint8_t id)
{
    return id < sizeof props_table / sizeof props_table[0] ? props_table[id].type : 0;
}

int mqtt_varint_read(const uint8_t *p, size_t avail, uint32_t *value)
{
    uint32_t v = 0;

    for (size_t i = 0; i < 4; i++) {
        if (i == avail)
            return 0;
        v |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            /* A trailing 0 byte adds nothing: the shorter form was possible. */
            if (i > 0 && p[i] == 0)
                return -1;
            *value = v;
            return (int)i + 1;
        }
    }
    return -1;
}

static enum mqtt_err bad(const char **why, enum mqtt_err err, const char *msg)
{
    if (why)
        *why = msg;
    return err;
}

/* The length-prefixed string or binary at p[0..avail), or false. */
static bool take_bytes(const uint8_t *p, size_t avail, struct mqtt_bytes *out)
{
    if (avail < 2)
        return false;
    size_t n = (size_t)(p[0] << 8 | p[1]);
    if (avail - 2 < n)
        return false;
    out->data = p + 2;
    out->len = (uint32_t)n;
    return true;
}

/*
 * Parses one property at pos (before end) without judging it: the shared
 * core of the validator and the iterator.  Returns the bytes used, 0 when
 * the value runs past `end`, -1 for an unknown id or a bad varint.
 */
static long parse_one(const uint8_t *pos, const uint8_t *end, struct mqtt_prop *out)
{
    const uint8_t *p = pos + 1;
    size_t avail = (size_t)(end - p);
    int n;

    memset(out, 0, sizeof *out);
    out->id = pos[0];
    switch (mqtt_prop_type(out->id)) {
    case MQTT_PT_BYTE:
        if (avail < 1)
            return 0;
        out->num = p[0];
        p += 1;
        break;
    case MQTT_PT_U16:
        if (avail < 2)
            return 0;
        out->num = (uint32_t)(p[0] << 8 | p[1]);
        p += 2;
        break;
    case MQTT_PT_U32:
        if (avail < 4)
            return 0;
        out->num = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        break;
    case MQTT_PT_VARINT:
        n = mqtt_varint_read(p, avail, &out->num);
        if (n <= 0)
            return n;
        p += n;
        break;
    case MQTT_PT_UTF8:
    case MQTT_PT_BINARY:
        if (!take_bytes(p, avail, &out->str))
            return 0;
        p += 2 + out->str.len;
        break;
    case MQTT_PT_PAIR:
        if (!take_bytes(p, avail, &out->str))
            return 0;
        p += 2 + out->str.len;
        if (!take_bytes(p, (size_t)(end - p), &out->value))
            return 0;
        p += 2 + out->value.len;
        break;
    default:
        return -1;
    }
    return (long)(p - pos);
}

enum mqtt_err mqtt_props_validate(uint8_t ptype, const uint8_t *block, uint32_t len,
                                  const char **why)
{
    uint64_t seen = 0;  /* ids met so far; every defined id is below 64 */

    /* Before any pointer arithmetic: an empty block may have data NULL. */
    if (len == 0)
        return MQTT_OK;
    const uint8_t *pos = block, *end = block + len;
    while (pos < end) {
        struct mqtt_prop pr;
        long used = parse_one(pos, end, &pr);

        if (used < 0) {
            if (mqtt_prop_type(pos[0]) == 0)
                return bad(why, MQTT_E_MALFORMED, "unknown property identifier");
            return bad(why, MQTT_E_MALFORMED, "subscription identifier is not a valid varint");
        }
        if (used == 0)
            return bad(why, MQTT_E_MALFORMED, "property value runs past the property block");
        pos += used;

        const struct prop_info *info = &props_table[pr.id];
        /* MQTT 5.0 2.2.2.2: an identifier not valid for its packet type
         * makes a Malformed Packet (0x81), whatever the packet, like an
         * unknown one; only repeats and values out of range are Protocol
         * Errors (0x82), as each property's own section says. */
        if (!(info->allowed & ON(ptype)))
            return bad(why, MQTT_E_MALFORMED,
                       ptype == MQTT_PROPS_WILL ? "property not allowed in will properties"
                                                : "property not allowed on this packet type");
        bool may_repeat = pr.id == MQTT_PROP_USER_PROPERTY ||
                          (pr.id == MQTT_PROP_SUBSCRIPTION_ID && ptype == MQTT_PUBLISH);
        if (!may_repeat && (seen & (UINT64_C(1) << pr.id)))
            return bad(why, MQTT_E_PROTOCOL, "property included twice");
        seen |= UINT64_C(1) << pr.id;

        switch (info->type) {
        case MQTT_PT_BYTE:
            /* Every byte property of 5.0 is a 0/1 flag (Maximum QoS too). */
            if (pr.num > 1)
                return bad(why, MQTT_E_PROTOCOL, "byte property not 0 or 1");
            break;
        case MQTT_PT_UTF8:
            if (!mqtt_utf8_valid(pr.str.data, pr.str.len))
                return bad(why, MQTT_E_MALFORMED, "invalid UTF-8 in string property");
            /* [MQTT-3.3.2-14]: a response topic is a topic name. */
            if (pr.id == MQTT_PROP_RESPONSE_TOPIC &&
                !mqtt_topic_name_valid(pr.str.data, pr.str.len))
                return bad(why, MQTT_E_PROTOCOL, "response topic is empty or has wildcards");
            break;
        case MQTT_PT_PAIR:
            if (!mqtt_utf8_valid(pr.str.data, pr.str.len) ||
                !mqtt_utf8_valid(pr.value.data, pr.value.len))
                return bad(why, MQTT_E_MALFORMED, "invalid UTF-8 in user property");
            break;
        default:
            break;
        }
        if (pr.num == 0 &&
            (pr.id == MQTT_PROP_RECEIVE_MAXIMUM || pr.id == MQTT_PROP_MAXIMUM_PACKET_SIZE ||
             pr.id == MQTT_PROP_TOPIC_ALIAS || pr.id == MQTT_PROP_SUBSCRIPTION_ID))
            return bad(why, MQTT_E_PROTOCOL, "property value 0 where it is forbidden");
    }
    return MQTT_OK;
}

/* Reason codes each packet may carry (MQTT 5.0 section 2.4 and the Reason
 * Code sections of each packet). */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
                                     0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C,
                                     0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                                    0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B,
                                        0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
                                        0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
                                        0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

bool mqtt_reason_allowed(uint8_t ptype, uint8_t rc)
{
    const uint8_t *list;
    size_t n;

#define USE(a) (list = (a), n = sizeof(a))
    switch (ptype) {
    case MQTT_CONNACK: USE(rc_connack); break;
    case MQTT_PUBACK:
    case MQTT_PUBREC: USE(rc_puback); break;
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: USE(rc_pubrel); break;
    case MQTT_SUBACK: USE(rc_suback); break;
    case MQTT_UNSUBACK: USE(rc_unsuback); break;
    case MQTT_DISCONNECT: USE(rc_disconnect); break;
    case MQTT_AUTH: USE(rc_auth); break;
    default: return false;
    }
#undef USE
    return memchr(list, rc, n) != NULL;
}

/* ---- iterator ---------------------------------------------------------- */

void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *props)
{
    if (props->data && props->len) {
        it->pos = props->data;
        it->end = props->data + props->len;
    } else {
        it->pos = it->end = NULL;
    }
}

bool mqtt_prop_next(struct mqtt_prop_iter *it, struct mqtt_prop *out)
{
    if (it->pos == NULL || it->pos >= it->end)
        return false;
    long used = parse_one(it->pos, it->end, out);
    if (used <= 0) {
        it->pos = it->end;      /* never walk on past garbage */
        return false;
    }
    it->pos += used;
    return true;
}

bool mqtt_props_find(const struct mqtt_props *props, uint8_t id, struct mqtt_prop *out)
{
    struct mqtt_prop_iter it;

    mqtt_prop_iter_init(&it, props);
    while (mqtt_prop_next(&it, out)) {
        if (out->id == id)
            return true;
    }
    return false;
}

/* ---- builder ----------------------------------------------------------- */

void mqtt_pb_init(struct mqtt_props_builder *b, uint8_t *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
}

/* Reserves n bytes, or marks the builder failed. */
static uint8_t *reserve(struct mqtt_props_builder *b, size_t n)
{
    if (b->overflow || b->cap - b->len < n) {
        b->overflow = true;
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    b->len += n;
    return p;
}

void mqtt_pb_num(struct mqtt_props_builder *b, uint8_t id, uint32_t value)
{
    uint8_t tmp[1 + 4];
    size_t n = 1;

    tmp[0] = id;
    switch (mqtt_prop_type(id)) {
    case MQTT_PT_BYTE:
        if (value > 0xFF)
            goto refuse;
        tmp[n++] = (uint8_t)value;
        break;
    case MQTT_PT_U16:
        if (value > 0xFFFF)
            goto refuse;
        tmp[n++] = (uint8_t)(value >> 8);
        tmp[n++] = (uint8_t)value;
        break;
    case MQTT_PT_U32:
        tmp[n++] = (uint8_t)(value >> 24);
        tmp[n++] = (uint8_t)(value >> 16);
        tmp[n++] = (uint8_t)(value >> 8);
        tmp[n++] = (uint8_t)value;
        break;
    case MQTT_PT_VARINT: {
        size_t k = mqtt_encode_varint(value, tmp + 1);
        if (k == 0)
            goto refuse;
        n += k;
        break;
    }
    default:
        goto refuse;
    }
    uint8_t *p = reserve(b, n);
    if (p)
        memcpy(p, tmp, n);
    return;
refuse:
    b->overflow = true;
}

static void put_field(uint8_t *p, const void *data, size_t len)
{
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    if (len)
        memcpy(p + 2, data, len);
}

void mqtt_pb_bytes(struct mqtt_props_builder *b, uint8_t id, const void *data, size_t len)
{
    enum mqtt_prop_type t = mqtt_prop_type(id);

    if ((t != MQTT_PT_UTF8 && t != MQTT_PT_BINARY) || len > 0xFFFF) {
        b->overflow = true;
        return;
    }
    uint8_t *p = reserve(b, 3 + len);
    if (p) {
        p[0] = id;
        put_field(p + 1, data, len);
    }
}

void mqtt_pb_pair(struct mqtt_props_builder *b, uint8_t id, const void *key, size_t key_len,
                  const void *value, size_t value_len)
{
    if (mqtt_prop_type(id) != MQTT_PT_PAIR || key_len > 0xFFFF || value_len > 0xFFFF) {
        b->overflow = true;
        return;
    }
    uint8_t *p = reserve(b, 5 + key_len + value_len);
    if (p) {
        p[0] = id;
        put_field(p + 1, key, key_len);
        put_field(p + 3 + key_len, value, value_len);
    }
}

void mqtt_pb_raw(struct mqtt_props_builder *b, const uint8_t *data, size_t len)
{
    uint8_t *p = reserve(b, len);
    if (p && len)
        memcpy(p, data, len);
}

struct mqtt_props mqtt_pb_props(const struct mqtt_props_builder *b)
{
    struct mqtt_props pr = {b->buf, (uint32_t)b->len};
    if (b->overflow)
        pr.len = 0;
    return pr;
}
