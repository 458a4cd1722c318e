/*
 * mqtt_decode.c - turns one framed MQTT 3.1.1 or 5.0 packet body into a
 * struct mqtt_packet, rejecting anything the specification does not allow.
 * Nothing is copied: decoded strings and property blocks point into the
 * caller's buffer.
 */
#include <string.h>

#include "mqtt_props_check.h"

/*
 * Which error class a rule belongs to: MALFORMED when the bytes do not form
 * a valid packet (bad flags, lengths, UTF-8, codes), PROTOCOL when they do
 * but the spec forbids the content (unknown protocol name, packet identifier
 * 0, a SUBSCRIBE/UNSUBSCRIBE without entries).  MQTT 5.0 makes the same
 * distinction with reason codes 0x81 and 0x82, so keeping it now means the
 * broker can answer correctly later without revisiting every rule.
 */

/* A bounds-checked reading position in the body.  Every read either
 * succeeds completely or leaves `ok` false; callers test `ok` once after a
 * group of reads instead of after each one. */
struct reader {
    const uint8_t *pos;
    const uint8_t *end;
    bool ok;
};

static uint8_t read_u8(struct reader *r)
{
    if (r->end - r->pos < 1) {
        r->ok = false;
        return 0;
    }
    return *r->pos++;
}

static uint16_t read_u16(struct reader *r)
{
    if (r->end - r->pos < 2) {
        r->ok = false;
        return 0;
    }
    uint16_t v = (uint16_t)(r->pos[0] << 8 | r->pos[1]);
    r->pos += 2;
    return v;
}

/* A length-prefixed field: UTF-8 strings and binary data share the wire
 * form; the caller decides which rules apply to the content. */
static struct mqtt_bytes read_bytes(struct reader *r)
{
    struct mqtt_bytes b = {NULL, 0};
    uint16_t n = read_u16(r);

    if (!r->ok || r->end - r->pos < n) {
        r->ok = false;
        return b;
    }
    b.data = r->pos;
    b.len = n;
    r->pos += n;
    return b;
}

static size_t left(const struct reader *r)
{
    return (size_t)(r->end - r->pos);
}

static enum mqtt_err reject(const char **why, enum mqtt_err err, const char *msg)
{
    if (why)
        *why = msg;
    return err;
}

/* Every decoder ends the same way: a field that ran past the end, or bytes
 * left over after the last field, mean the Remaining Length lied. */
static enum mqtt_err finish(const struct reader *r, const char **why)
{
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (r->pos != r->end)
        return reject(why, MQTT_E_MALFORMED, "trailing bytes after packet");
    return MQTT_OK;
}

/*
 * A 5.0 property block: its varint length, then the block, validated
 * completely for packet type `ptype` so that users can iterate it without
 * checks.  The block must fit in what is left of the body.
 */
static enum mqtt_err read_props(struct reader *r, uint8_t ptype, struct mqtt_props *out,
                                const char **why)
{
    uint32_t n = 0;

    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    int used = mqtt_varint_read(r->pos, left(r), &n);
    if (used == 0)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (used < 0)
        return reject(why, MQTT_E_MALFORMED, "property length is not a valid varint");
    r->pos += used;
    if (n > left(r))
        return reject(why, MQTT_E_MALFORMED, "property length runs past the packet");
    out->data = r->pos;
    out->len = n;
    r->pos += n;
    return mqtt_props_validate(ptype, out->data, n, why);
}

static bool bytes_equal(struct mqtt_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.data, s, n) == 0;
}

/*
 * CONNECT is decoded at whatever level it announces; the name and level are
 * checked before anything else so that a client speaking another version is
 * told so (CONNACK 0x01 [MQTT-3.1.2-2]) instead of seeing its packet called
 * malformed under rules that are not its own.
 */
static enum mqtt_err decode_connect(struct reader *r, struct mqtt_connect *c, const char **why)
{
    struct mqtt_bytes name = read_bytes(r);
    uint8_t level = read_u8(r);

    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    /* Mosquitto's bridges announce themselves with the top bit of the level
     * (try_private): the level proper is in the low bits. */
    c->bridge = (level & 0x80) != 0 && (level & 0x7f) >= MQTT_LEVEL_311;
    if (c->bridge)
        level &= 0x7f;
    c->level = level;
    if (bytes_equal(name, "MQIsdp"))
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "MQTT 3.1 (MQIsdp) is not supported");
    if (!bytes_equal(name, "MQTT"))
        return reject(why, MQTT_E_PROTOCOL, "unknown protocol name");
    if (level != MQTT_LEVEL_311 && level != MQTT_LEVEL_5)
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "unsupported protocol level");
    bool v5 = level == MQTT_LEVEL_5;
    enum mqtt_err err;

    uint8_t flags = read_u8(r);
    c->keepalive = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");

    if (flags & 0x01)
        return reject(why, MQTT_E_MALFORMED, "reserved connect flag set");
    c->clean_session = (flags & 0x02) != 0;
    c->will_flag = (flags & 0x04) != 0;
    c->will_qos = (flags >> 3) & 0x03;
    c->will_retain = (flags & 0x20) != 0;
    c->has_password = (flags & 0x40) != 0;
    c->has_username = (flags & 0x80) != 0;

    if (!c->will_flag && (c->will_qos != 0 || c->will_retain))
        return reject(why, MQTT_E_MALFORMED, "will QoS or retain set without will flag");
    if (c->will_qos == 3)
        return reject(why, MQTT_E_MALFORMED, "will QoS 3");
    /* 5.0 allows a password alone (e.g. a token) [MQTT-3.1.2-18]. */
    if (!v5 && c->has_password && !c->has_username)
        return reject(why, MQTT_E_MALFORMED, "password flag without username flag");
    if (v5 && (err = read_props(r, MQTT_CONNECT, &c->props, why)) != MQTT_OK)
        return err;

    /* The payload fields appear in a fixed order, each exactly when its flag
     * says so [MQTT-3.1.3-1]; finish() catches any that are missing or
     * extra. */
    c->client_id = read_bytes(r);
    if (r->ok && !mqtt_utf8_valid(c->client_id.data, c->client_id.len))
        return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in client identifier");
    if (c->will_flag) {
        if (v5 && (err = read_props(r, MQTT_PROPS_WILL, &c->will_props, why)) != MQTT_OK)
            return err;
        c->will_topic = read_bytes(r);
        c->will_payload = read_bytes(r);
        if (r->ok && !mqtt_utf8_valid(c->will_topic.data, c->will_topic.len))
            return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in will topic");
        /* The will is later published like any PUBLISH, so same rules. */
        if (r->ok && !mqtt_topic_name_valid(c->will_topic.data, c->will_topic.len))
            return reject(why, MQTT_E_MALFORMED, "will topic is empty or has wildcards");
    }
    if (c->has_username) {
        c->username = read_bytes(r);
        if (r->ok && !mqtt_utf8_valid(c->username.data, c->username.len))
            return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in username");
    }
    if (c->has_password)
        c->password = read_bytes(r);
    return finish(r, why);
}

static enum mqtt_err decode_connack(struct reader *r, bool v5, struct mqtt_connack *c,
                                    const char **why)
{
    uint8_t ack_flags = read_u8(r);
    c->return_code = read_u8(r);
    enum mqtt_err err;

    /* 5.0 has no short form of CONNACK: the property length is always there. */
    if (v5 && (err = read_props(r, MQTT_CONNACK, &c->props, why)) != MQTT_OK)
        return err;
    err = finish(r, why);
    if (err != MQTT_OK)
        return err;
    if (ack_flags & 0xFE)
        return reject(why, MQTT_E_MALFORMED, "reserved CONNACK flags set");
    c->session_present = (ack_flags & 0x01) != 0;
    if (v5 && !mqtt_reason_allowed(MQTT_CONNACK, c->return_code))
        return reject(why, MQTT_E_PROTOCOL, "invalid CONNACK reason code");
    if (!v5 && c->return_code > MQTT_CONNACK_NOT_AUTHORIZED)
        return reject(why, MQTT_E_MALFORMED, "invalid CONNACK return code");
    /* [MQTT-3.2.2-4]: a refused connection has no session to be present. */
    if (c->session_present && c->return_code != MQTT_CONNACK_ACCEPTED)
        return reject(why, MQTT_E_MALFORMED, "session present on refused CONNACK");
    return MQTT_OK;
}

/* The fixed header flags have already been checked for QoS 3 and DUP. */
static enum mqtt_err decode_publish(struct reader *r, bool v5, uint8_t flags,
                                    struct mqtt_publish *p, const char **why)
{
    enum mqtt_err err;

    p->dup = (flags & 0x08) != 0;
    p->qos = (flags >> 1) & 0x03;
    p->retain = (flags & 0x01) != 0;

    p->topic = read_bytes(r);
    if (p->qos > 0)
        p->packet_id = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (v5 && (err = read_props(r, MQTT_PUBLISH, &p->props, why)) != MQTT_OK)
        return err;
    if (p->topic.len == 0) {
        struct mqtt_prop alias;
        if (!v5)
            return reject(why, MQTT_E_MALFORMED, "empty topic name");
        /* 5.0: the topic comes from the alias, which the receiver resolves
         * (and refuses if it does not know it) [MQTT-3.3.2-8]. */
        if (!mqtt_props_find(&p->props, MQTT_PROP_TOPIC_ALIAS, &alias))
            return reject(why, MQTT_E_PROTOCOL, "empty topic name without topic alias");
    }
    /* Spelled out rather than mqtt_topic_name_valid() so the log says which
     * rule failed; memchr keeps the extra pass cheap on this hot path. */
    if (memchr(p->topic.data, '+', p->topic.len) || memchr(p->topic.data, '#', p->topic.len))
        return reject(why, MQTT_E_MALFORMED, "wildcard in topic name");
    if (!mqtt_utf8_valid(p->topic.data, p->topic.len))
        return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in topic");
    if (p->qos > 0 && p->packet_id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");

    /* The payload is whatever the Remaining Length leaves; it may be empty
     * (an empty retained PUBLISH deletes the retained message). */
    p->payload.data = r->pos;
    p->payload.len = (uint32_t)left(r);
    r->pos = r->end;
    return MQTT_OK;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP and (3.1.1) UNSUBACK: just an id.  In
 * 5.0 a reason code and properties follow, both optional: remaining length
 * 2 means reason 0, 3 means no properties [MQTT 5.0 3.4.2.1, 3.4.2.2.1]. */
static enum mqtt_err decode_ack(struct reader *r, bool v5, uint8_t type, struct mqtt_ack *a,
                                const char **why)
{
    enum mqtt_err err;

    a->packet_id = read_u16(r);
    if (v5 && r->ok && left(r) > 0) {
        a->reason_code = read_u8(r);
        if (left(r) > 0 && (err = read_props(r, type, &a->props, why)) != MQTT_OK)
            return err;
    }
    err = finish(r, why);
    if (err != MQTT_OK)
        return err;
    if (a->packet_id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");
    if (v5 && !mqtt_reason_allowed(type, a->reason_code))
        return reject(why, MQTT_E_PROTOCOL, "invalid reason code for this acknowledgement");
    return MQTT_OK;
}

/* DISCONNECT and AUTH (5.0): an empty body means reason 0 and no
 * properties.  DISCONNECT may also stop after the reason code
 * [MQTT 5.0 3.14.2.2.1]; AUTH may not (its section has no such rule). */
static enum mqtt_err decode_disconnect(struct reader *r, uint8_t type, struct mqtt_disconnect *d,
                                       const char **why)
{
    enum mqtt_err err;

    if (left(r) == 0)
        return MQTT_OK;
    d->reason_code = read_u8(r);
    if ((type == MQTT_AUTH || left(r) > 0) &&
        (err = read_props(r, type, &d->props, why)) != MQTT_OK)
        return err;
    err = finish(r, why);
    if (err != MQTT_OK)
        return err;
    if (!mqtt_reason_allowed(type, d->reason_code))
        return reject(why, MQTT_E_PROTOCOL,
                      type == MQTT_AUTH ? "invalid AUTH reason code"
                                        : "invalid DISCONNECT reason code");
    return MQTT_OK;
}

/* The packet identifier (not 0) and, in 5.0, the properties that start a
 * SUBSCRIBE, UNSUBSCRIBE, SUBACK or UNSUBACK. */
static enum mqtt_err read_id_and_props(struct reader *r, bool v5, uint8_t type, uint16_t *id,
                                       struct mqtt_props *props, const char **why)
{
    *id = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (*id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");
    if (v5)
        return read_props(r, type, props, why);
    return MQTT_OK;
}

/*
 * SUBSCRIBE and UNSUBSCRIBE are validated in full here so that the iterator
 * can walk them later without checks.  A filter that is empty or breaks
 * the wildcard rules [MQTT-4.7.3-1] [MQTT-4.7.1-1] [MQTT-4.7.1-2] makes the
 * packet malformed (5.0: 0x81; 3.1.1: close [MQTT-4.8.0-1]), so none of
 * its filters is applied.  What a well-formed filter may mean (a share
 * name, the ACL) is the broker's to refuse per entry (0x8F, 0x87...).
 */
static enum mqtt_err decode_subscribe(struct reader *r, bool v5, uint8_t type,
                                      struct mqtt_subscribe *s, const char **why)
{
    enum mqtt_err err = read_id_and_props(r, v5, type, &s->packet_id, &s->props, why);
    if (err != MQTT_OK)
        return err;

    s->wire.data = r->pos;
    s->wire.len = (uint32_t)left(r);
    s->entries = NULL;
    s->count = 0;

    while (r->ok && r->pos < r->end) {
        struct mqtt_bytes filter = read_bytes(r);
        if (r->ok && !mqtt_utf8_valid(filter.data, filter.len))
            return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in topic filter");
        if (r->ok && !mqtt_topic_filter_valid(filter.data, filter.len))
            return reject(why, MQTT_E_MALFORMED,
                          filter.len == 0 ? "empty topic filter"
                                          : "topic filter breaks the wildcard rules");
        if (type == MQTT_SUBSCRIBE) {
            uint8_t options = read_u8(r);
            /* 3.1.1 has only the QoS bits; 5.0 adds No Local, Retain As
             * Published and Retain Handling and reserves bits 6-7. */
            if (r->ok && (options & (v5 ? 0xC0 : 0xFC)))
                return reject(why, MQTT_E_MALFORMED, "reserved subscription option bits set");
            if (r->ok && MQTT_SUBOPT_QOS(options) == 3)
                return reject(why, MQTT_E_MALFORMED, "QoS 3 requested in SUBSCRIBE");
            if (r->ok && MQTT_SUBOPT_RETAIN_HANDLING(options) == 3)
                return reject(why, MQTT_E_PROTOCOL, "retain handling 3 in SUBSCRIBE");
        }
        s->count++;
    }
    err = finish(r, why);
    if (err != MQTT_OK)
        return err;
    if (s->count == 0)
        return reject(why, MQTT_E_PROTOCOL,
                      type == MQTT_SUBSCRIBE ? "SUBSCRIBE with no topic filters"
                                             : "UNSUBSCRIBE with no topic filters");
    return MQTT_OK;
}

/* SUBACK, and UNSUBACK in 5.0 (which gained one reason code per filter). */
static enum mqtt_err decode_suback(struct reader *r, bool v5, uint8_t type, struct mqtt_suback *s,
                                   const char **why)
{
    enum mqtt_err err = read_id_and_props(r, v5, type, &s->packet_id, &s->props, why);
    if (err != MQTT_OK)
        return err;
    s->codes.data = r->pos;
    s->codes.len = (uint32_t)left(r);
    r->pos = r->end;
    if (s->codes.len == 0)
        return reject(why, MQTT_E_MALFORMED,
                      type == MQTT_SUBACK ? "SUBACK with no return codes"
                                          : "UNSUBACK with no reason codes");
    for (uint32_t i = 0; i < s->codes.len; i++) {
        uint8_t rc = s->codes.data[i];
        if (v5 && !mqtt_reason_allowed(type, rc))
            return reject(why, MQTT_E_PROTOCOL,
                          type == MQTT_SUBACK ? "invalid SUBACK reason code"
                                              : "invalid UNSUBACK reason code");
        if (!v5 && rc > 2 && rc != MQTT_SUBACK_FAILURE)
            return reject(why, MQTT_E_MALFORMED, "invalid SUBACK return code");
    }
    return MQTT_OK;
}

/*
 * The low nibble of the first byte is fixed for every type but PUBLISH
 * [MQTT-2.2.2-1]; PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0010 as a relic of
 * MQTT 3.1 where they were sent at QoS 1.  The strings are per type so that
 * the log says which packet was at fault.
 */
static enum mqtt_err check_flags(uint8_t type, uint8_t flags, const char **why)
{
    static const char *const set_on[16] = {
        NULL,
        "reserved flags set on CONNECT",
        "reserved flags set on CONNACK",
        NULL,
        "reserved flags set on PUBACK",
        "reserved flags set on PUBREC",
        "reserved flags not 0010 on PUBREL",
        "reserved flags set on PUBCOMP",
        "reserved flags not 0010 on SUBSCRIBE",
        "reserved flags set on SUBACK",
        "reserved flags not 0010 on UNSUBSCRIBE",
        "reserved flags set on UNSUBACK",
        "reserved flags set on PINGREQ",
        "reserved flags set on PINGRESP",
        "reserved flags set on DISCONNECT",
        "reserved flags set on AUTH",
    };

    if (type == MQTT_PUBLISH) {
        uint8_t qos = (flags >> 1) & 0x03;
        if (qos == 3)
            return reject(why, MQTT_E_MALFORMED, "QoS 3 on PUBLISH");
        if ((flags & 0x08) && qos == 0)
            return reject(why, MQTT_E_MALFORMED, "DUP set on QoS 0 PUBLISH");
        return MQTT_OK;
    }
    bool want_0010 = type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE;
    if (flags != (want_0010 ? 0x02 : 0x00))
        return reject(why, MQTT_E_MALFORMED, set_on[type]);
    return MQTT_OK;
}

enum mqtt_err mqtt_decode(uint8_t level, uint8_t first_byte, const uint8_t *body, uint32_t len,
                          struct mqtt_packet *out, const char **why)
{
    static const uint8_t empty[1];
    uint8_t type = first_byte >> 4;
    uint8_t flags = first_byte & 0x0F;
    enum mqtt_err err;

    memset(out, 0, sizeof *out);
    out->type = type;
    out->flags = flags;

    /* Pointer arithmetic on NULL is undefined even with offset 0, and a
     * bodiless packet may well come with body == NULL. */
    if (body == NULL) {
        if (len != 0)
            return reject(why, MQTT_E_MALFORMED, "packet truncated");
        body = empty;
    }
    struct reader r = {body, body + len, true};

    if (type == 0)
        return reject(why, MQTT_E_MALFORMED, "reserved packet type 0");
    if (type != MQTT_CONNECT && level != MQTT_LEVEL_311 && level != MQTT_LEVEL_5)
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "unsupported protocol level");
    if (type == MQTT_AUTH && level != MQTT_LEVEL_5)
        return reject(why, MQTT_E_MALFORMED, "AUTH packet in MQTT 3.1.1");
    bool v5 = level == MQTT_LEVEL_5;

    err = check_flags(type, flags, why);
    if (err != MQTT_OK)
        return err;

    switch (type) {
    case MQTT_CONNECT:
        return decode_connect(&r, &out->u.connect, why);
    case MQTT_CONNACK:
        return decode_connack(&r, v5, &out->u.connack, why);
    case MQTT_PUBLISH:
        return decode_publish(&r, v5, flags, &out->u.publish, why);
    case MQTT_UNSUBACK:
        if (v5)
            return decode_suback(&r, v5, type, &out->u.suback, why);
        return decode_ack(&r, v5, type, &out->u.ack, why);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(&r, v5, type, &out->u.ack, why);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(&r, v5, type, &out->u.subscribe, why);
    case MQTT_SUBACK:
        return decode_suback(&r, v5, type, &out->u.suback, why);
    case MQTT_DISCONNECT:
        if (v5)
            return decode_disconnect(&r, type, &out->u.disconnect, why);
        return finish(&r, why);
    case MQTT_AUTH:
        return decode_disconnect(&r, type, &out->u.disconnect, why);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return finish(&r, why);
    }
    /* Unreachable: type 0 was handled above. */
    return reject(why, MQTT_E_MALFORMED, "unknown packet type");
}

void mqtt_topic_iter_init(struct mqtt_topic_iter *it, const struct mqtt_packet *p)
{
    it->type = p->type;
    if ((p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) && p->u.subscribe.wire.data) {
        it->pos = p->u.subscribe.wire.data;
        it->end = it->pos + p->u.subscribe.wire.len;
    } else {
        it->pos = it->end = NULL;
    }
}

/* mqtt_decode has validated the layout, but the iterator still checks its
 * bounds: it costs nothing and keeps a misuse (an iterator over a packet
 * that was never decoded) from reading outside the buffer. */
bool mqtt_topic_iter_next(struct mqtt_topic_iter *it, struct mqtt_topic_entry *out)
{
    size_t need_after = it->type == MQTT_SUBSCRIBE ? 1 : 0;

    if (it->pos == NULL || it->end - it->pos < 2)
        return false;
    size_t n = (size_t)(it->pos[0] << 8 | it->pos[1]);
    if ((size_t)(it->end - it->pos) - 2 < n + need_after)
        return false;
    out->filter.data = it->pos + 2;
    out->filter.len = (uint32_t)n;
    out->options = need_after ? it->pos[2 + n] : 0;
    it->pos += 2 + n + need_after;
    return true;
}
