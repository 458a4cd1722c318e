/*
 * mqtt_encode.c - writes a struct mqtt_packet as MQTT 3.1.1 or 5.0 bytes.
 * Sizing and writing are separate passes so that the buffer is never touched
 * when it is too small, and PUBLISH, which the broker encodes for every
 * delivery, has a direct path of its own.
 */
#include <string.h>

#include "mqtt_props_check.h"

/*
 * What the encoder refuses: anything that cannot be represented (a string
 * over 65535 bytes, a body over 256 MiB) and anything the decoder at the
 * other end would reject on sight (QoS 3, packet identifier 0, no entries),
 * since sending it would only get our own connection closed.  The content
 * of strings (UTF-8, wildcards) is NOT checked: that costs a pass over every
 * topic, and the broker only re-encodes topics it has already validated.
 * Callers encoding user input validate it first with mqtt_topic_name_valid()
 * and friends.
 */

#define MAX_STRING 65535u

/*
 * 5.0 property blocks.  Blocks on packets other than PUBLISH are validated
 * for their packet type (they are small and rare, and a wrong property
 * would get the connection closed by the peer); PUBLISH blocks are not, to
 * keep the delivery path cheap: the broker forwards blocks it decoded (and
 * so validated) itself, plus what it built with mqtt_pb_*.
 */
static size_t varint_len(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Bytes the property section (length prefix + block) takes, or 0 when the
 * block is unusable for `ptype` (check_type false: only its size). */
static uint64_t props_size(const struct mqtt_props *pr, uint8_t ptype, bool check_type)
{
    if (pr->len > MQTT_MAX_REMAINING_LENGTH || (pr->len && pr->data == NULL))
        return 0;
    if (check_type && mqtt_props_validate(ptype, pr->data, pr->len, NULL) != MQTT_OK)
        return 0;
    return varint_len(pr->len) + (uint64_t)pr->len;
}

/* Adds the property section's size to *body; false when props_size()
 * refuses the block (the packet cannot be encoded then). */
static bool add_props(uint64_t *body, const struct mqtt_props *pr, uint8_t ptype)
{
    uint64_t n = props_size(pr, ptype, true);
    *body += n;
    return n != 0;
}

static uint8_t *put_props(uint8_t *p, const struct mqtt_props *pr)
{
    p += mqtt_encode_varint(pr->len, p);
    if (pr->len)
        memcpy(p, pr->data, pr->len);
    return p + pr->len;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* memcpy with a NULL source is undefined even for 0 bytes, and an empty
 * field may well have data == NULL. */
static uint8_t *put_raw(uint8_t *p, const uint8_t *data, size_t n)
{
    if (n != 0)
        memcpy(p, data, n);
    return p + n;
}

static uint8_t *put_bytes(uint8_t *p, struct mqtt_bytes b)
{
    p = put_u16(p, (uint16_t)b.len);
    return put_raw(p, b.data, b.len);
}

/*
 * Writes the fixed header for a body of `body` bytes and returns the total
 * size of the packet, or 0 when the body is too long.  Nothing is written if
 * the total exceeds cap; *bodyp is then left alone.
 */
static size_t put_header(uint8_t first_byte, uint64_t body, uint8_t *out, size_t cap,
                         uint8_t **bodyp)
{
    uint8_t len_bytes[4];

    if (body > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    size_t n = mqtt_encode_varint((uint32_t)body, len_bytes);
    size_t total = 1 + n + (size_t)body;
    if (total > cap)
        return total;
    out[0] = first_byte;
    memcpy(out + 1, len_bytes, n);
    *bodyp = out + 1 + n;
    return total;
}

static size_t encode_connect(const struct mqtt_connect *c, uint8_t level, uint8_t *out, size_t cap)
{
    uint8_t *p = NULL;
    uint8_t flags = 0;

    bool v5 = level == MQTT_LEVEL_5;
    /* 10 = "\0\4MQTT" + level + flags + keepalive. */
    uint64_t body = 10 + 2 + (uint64_t)c->client_id.len;

    if (c->client_id.len > MAX_STRING)
        return 0;
    if (v5 && !add_props(&body, &c->props, MQTT_CONNECT))
        return 0;
    if (c->clean_session)
        flags |= 0x02;
    if (c->will_flag) {
        if (c->will_qos > 2 || c->will_topic.len == 0 || c->will_topic.len > MAX_STRING ||
            c->will_payload.len > MAX_STRING)
            return 0;
        flags |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));
        body += 4 + (uint64_t)c->will_topic.len + c->will_payload.len;
        if (v5 && !add_props(&body, &c->will_props, MQTT_PROPS_WILL))
            return 0;
    }
    if (c->has_username) {
        if (c->username.len > MAX_STRING)
            return 0;
        flags |= 0x80;
        body += 2 + (uint64_t)c->username.len;
    }
    if (c->has_password) {
        /* A 3.1.1 server must reject this combination [MQTT-3.1.2-22];
         * 5.0 allows it. */
        if ((!v5 && !c->has_username) || c->password.len > MAX_STRING)
            return 0;
        flags |= 0x40;
        body += 2 + (uint64_t)c->password.len;
    }

    size_t total = put_header(MQTT_CONNECT << 4, body, out, cap, &p);
    if (p == NULL)
        return total;
    p = put_raw(p, (const uint8_t *)"\0\4MQTT", 6);
    *p++ = (uint8_t)(c->bridge ? level | 0x80 : level); /* Mosquitto's bridge flag */
    *p++ = flags;
    p = put_u16(p, c->keepalive);
    if (v5)
        p = put_props(p, &c->props);
    p = put_bytes(p, c->client_id);
    if (c->will_flag) {
        if (v5)
            p = put_props(p, &c->will_props);
        p = put_bytes(p, c->will_topic);
        p = put_bytes(p, c->will_payload);
    }
    if (c->has_username)
        p = put_bytes(p, c->username);
    if (c->has_password)
        p = put_bytes(p, c->password);
    return total;
}

static size_t encode_connack(const struct mqtt_connack *c, bool v5, uint8_t *out, size_t cap)
{
    uint8_t *p = NULL;
    uint64_t props = 0;

    /* A refused connection never has a session [MQTT-3.2.2-4]. */
    if (c->session_present && c->return_code != MQTT_CONNACK_ACCEPTED)
        return 0;
    if (v5) {
        if (!mqtt_reason_allowed(MQTT_CONNACK, c->return_code) ||
            (props = props_size(&c->props, MQTT_CONNACK, true)) == 0)
            return 0;
    } else if (c->return_code > MQTT_CONNACK_NOT_AUTHORIZED) {
        return 0;
    }
    size_t total = put_header(MQTT_CONNACK << 4, 2 + props, out, cap, &p);
    if (p != NULL) {
        p[0] = c->session_present ? 1 : 0;
        p[1] = c->return_code;
        if (v5)
            put_props(p + 2, &c->props);
    }
    return total;
}

/*
 * The hot path: one delivery, one call.  Kept free of the general machinery
 * so that it is a handful of stores plus two memcpy.
 */
static size_t encode_publish(const struct mqtt_publish *m, bool v5, uint8_t *out, size_t cap)
{
    uint8_t *p = NULL;
    uint64_t props = 0;

    if (m->qos > 2 || m->topic.len > MAX_STRING)
        return 0;
    if (m->qos > 0 ? m->packet_id == 0 : m->dup)
        return 0;
    if (v5) {
        struct mqtt_prop alias;
        if ((props = props_size(&m->props, MQTT_PUBLISH, false)) == 0)
            return 0;
        /* 5.0: an empty topic stands for the topic of the alias. */
        if (m->topic.len == 0 && !mqtt_props_find(&m->props, MQTT_PROP_TOPIC_ALIAS, &alias))
            return 0;
    } else if (m->topic.len == 0) {
        return 0;
    }

    uint64_t body = 2 + (uint64_t)m->topic.len + (m->qos ? 2 : 0) + props + m->payload.len;
    uint8_t first = (uint8_t)(MQTT_PUBLISH << 4 | (m->dup ? 0x08 : 0) | m->qos << 1 |
                              (m->retain ? 0x01 : 0));

    size_t total = put_header(first, body, out, cap, &p);
    if (p == NULL)
        return total;
    p = put_bytes(p, m->topic);
    if (m->qos)
        p = put_u16(p, m->packet_id);
    if (v5)
        p = put_props(p, &m->props);
    put_raw(p, m->payload.data, m->payload.len);
    return total;
}

/* 5.0 acknowledgements take the shortest form the spec allows: 2 bytes for
 * reason 0 without properties, 3 for another reason without properties. */
static size_t encode_ack(uint8_t first_byte, const struct mqtt_ack *a, bool v5, uint8_t *out,
                         size_t cap)
{
    uint8_t *p = NULL;
    uint8_t type = first_byte >> 4;
    uint64_t body = 2;

    if (a->packet_id == 0)
        return 0;
    if (v5) {
        if (!mqtt_reason_allowed(type, a->reason_code))
            return 0;
        if (a->props.len) {
            uint64_t n = props_size(&a->props, type, true);
            if (n == 0)
                return 0;
            body += 1 + n;
        } else if (a->reason_code != 0) {
            body += 1;
        }
    }
    size_t total = put_header(first_byte, body, out, cap, &p);
    if (p != NULL) {
        p = put_u16(p, a->packet_id);
        if (body > 2)
            *p++ = a->reason_code;
        if (body > 3)
            put_props(p, &a->props);
    }
    return total;
}

/* DISCONNECT and AUTH: empty for reason 0 without properties; otherwise the
 * reason and a property length (even 0: AUTH has no 1-byte form, and
 * writing DISCONNECT the same way suits every peer). */
static size_t encode_disconnect(uint8_t type, const struct mqtt_disconnect *d, uint8_t *out,
                                size_t cap)
{
    uint8_t *p = NULL;
    uint64_t body = 0;

    if (!mqtt_reason_allowed(type, d->reason_code))
        return 0;
    if (d->reason_code != 0 || d->props.len) {
        uint64_t n = props_size(&d->props, type, true);
        if (n == 0)
            return 0;
        body = 1 + n;
    }
    size_t total = put_header((uint8_t)(type << 4), body, out, cap, &p);
    if (p != NULL && body) {
        *p++ = d->reason_code;
        put_props(p, &d->props);
    }
    return total;
}

static size_t encode_subscribe(uint8_t type, const struct mqtt_subscribe *s, bool v5,
                               uint8_t *out, size_t cap)
{
    uint8_t *p = NULL;
    uint64_t body = 2;
    size_t per_entry = type == MQTT_SUBSCRIBE ? 3 : 2;  /* length + options */

    if (s->packet_id == 0 || s->count == 0 || s->entries == NULL)
        return 0;
    if (v5 && !add_props(&body, &s->props, type))
        return 0;
    for (uint32_t i = 0; i < s->count; i++) {
        const struct mqtt_topic_entry *e = &s->entries[i];
        if (e->filter.len > MAX_STRING)
            return 0;
        /* 3.1.1 options are the requested QoS and nothing else; 5.0 adds
         * bits 2-5, of which retain handling 3 is forbidden. */
        if (type == MQTT_SUBSCRIBE &&
            (v5 ? (e->options & 0xC0) || MQTT_SUBOPT_QOS(e->options) == 3 ||
                      MQTT_SUBOPT_RETAIN_HANDLING(e->options) == 3
                : e->options > 2))
            return 0;
        body += per_entry + e->filter.len;
        if (body > MQTT_MAX_REMAINING_LENGTH)
            return 0;
    }

    size_t total = put_header((uint8_t)(type << 4 | 0x02), body, out, cap, &p);
    if (p == NULL)
        return total;
    p = put_u16(p, s->packet_id);
    if (v5)
        p = put_props(p, &s->props);
    for (uint32_t i = 0; i < s->count; i++) {
        p = put_bytes(p, s->entries[i].filter);
        if (type == MQTT_SUBSCRIBE)
            *p++ = s->entries[i].options;
    }
    return total;
}

/* SUBACK, and UNSUBACK in 5.0. */
static size_t encode_suback(uint8_t type, const struct mqtt_suback *s, bool v5, uint8_t *out,
                            size_t cap)
{
    uint8_t *p = NULL;
    uint64_t props = 0;

    if (s->packet_id == 0 || s->codes.len == 0)
        return 0;
    for (uint32_t i = 0; i < s->codes.len; i++) {
        uint8_t rc = s->codes.data[i];
        if (v5 ? !mqtt_reason_allowed(type, rc) : rc > 2 && rc != MQTT_SUBACK_FAILURE)
            return 0;
    }
    if (v5 && (props = props_size(&s->props, type, true)) == 0)
        return 0;
    size_t total = put_header((uint8_t)(type << 4), 2 + props + (uint64_t)s->codes.len, out,
                              cap, &p);
    if (p == NULL)
        return total;
    p = put_u16(p, s->packet_id);
    if (v5)
        p = put_props(p, &s->props);
    put_raw(p, s->codes.data, s->codes.len);
    return total;
}

size_t mqtt_encode(uint8_t level, const struct mqtt_packet *p, uint8_t *out, size_t cap)
{
    uint8_t *unused = NULL;

    if (level != MQTT_LEVEL_311 && level != MQTT_LEVEL_5)
        return 0;
    bool v5 = level == MQTT_LEVEL_5;

    switch (p->type) {
    case MQTT_PUBLISH:
        return encode_publish(&p->u.publish, v5, out, cap);
    case MQTT_CONNECT:
        return encode_connect(&p->u.connect, level, out, cap);
    case MQTT_CONNACK:
        return encode_connack(&p->u.connack, v5, out, cap);
    case MQTT_UNSUBACK:
        if (v5)
            return encode_suback(p->type, &p->u.suback, v5, out, cap);
        return encode_ack((uint8_t)(p->type << 4), &p->u.ack, v5, out, cap);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return encode_ack((uint8_t)(p->type << 4), &p->u.ack, v5, out, cap);
    case MQTT_PUBREL:
        return encode_ack(MQTT_PUBREL << 4 | 0x02, &p->u.ack, v5, out, cap);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return encode_subscribe(p->type, &p->u.subscribe, v5, out, cap);
    case MQTT_SUBACK:
        return encode_suback(p->type, &p->u.suback, v5, out, cap);
    case MQTT_DISCONNECT:
        if (v5)
            return encode_disconnect(p->type, &p->u.disconnect, out, cap);
        return put_header((uint8_t)(p->type << 4), 0, out, cap, &unused);
    case MQTT_AUTH:
        if (v5)
            return encode_disconnect(p->type, &p->u.disconnect, out, cap);
        return 0;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return put_header((uint8_t)(p->type << 4), 0, out, cap, &unused);
    }
    return 0;   /* type 0, AUTH in 3.1.1, or not a type at all */
}
