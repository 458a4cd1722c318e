/*
 * mqtt_decode.c - turns one framed MQTT 3.1.1 packet body into a struct
 * mqtt_packet, rejecting anything the specification does not allow.  Nothing
 * is copied: decoded strings point into the caller's buffer.
 */
#include <string.h>

#include "mqtt_codec.h"

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
    c->level = level;
    if (bytes_equal(name, "MQIsdp"))
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "MQTT 3.1 (MQIsdp) is not supported");
    if (!bytes_equal(name, "MQTT"))
        return reject(why, MQTT_E_PROTOCOL, "unknown protocol name");
    /* MQTT 5.0 needs properties in CONNECT and every later packet; until
     * they are implemented a 5.0 client gets a clear CONNACK 0x01 rather
     * than a dropped connection, and can be pointed at 3.1.1 instead. */
    if (level == MQTT_LEVEL_5)
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "MQTT 5.0 is not implemented yet");
    if (level != MQTT_LEVEL_311)
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL, "unsupported protocol level");

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
    if (c->has_password && !c->has_username)
        return reject(why, MQTT_E_MALFORMED, "password flag without username flag");

    /* The payload fields appear in a fixed order, each exactly when its flag
     * says so [MQTT-3.1.3-1]; finish() catches any that are missing or
     * extra. */
    c->client_id = read_bytes(r);
    if (r->ok && !mqtt_utf8_valid(c->client_id.data, c->client_id.len))
        return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in client identifier");
    if (c->will_flag) {
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

static enum mqtt_err decode_connack(struct reader *r, struct mqtt_connack *c, const char **why)
{
    uint8_t ack_flags = read_u8(r);
    c->return_code = read_u8(r);
    enum mqtt_err err = finish(r, why);

    if (err != MQTT_OK)
        return err;
    if (ack_flags & 0xFE)
        return reject(why, MQTT_E_MALFORMED, "reserved CONNACK flags set");
    c->session_present = (ack_flags & 0x01) != 0;
    if (c->return_code > MQTT_CONNACK_NOT_AUTHORIZED)
        return reject(why, MQTT_E_MALFORMED, "invalid CONNACK return code");
    /* [MQTT-3.2.2-4]: a refused connection has no session to be present. */
    if (c->session_present && c->return_code != MQTT_CONNACK_ACCEPTED)
        return reject(why, MQTT_E_MALFORMED, "session present on refused CONNACK");
    return MQTT_OK;
}

/* The fixed header flags have already been checked for QoS 3 and DUP. */
static enum mqtt_err decode_publish(struct reader *r, uint8_t flags, struct mqtt_publish *p,
                                    const char **why)
{
    p->dup = (flags & 0x08) != 0;
    p->qos = (flags >> 1) & 0x03;
    p->retain = (flags & 0x01) != 0;

    p->topic = read_bytes(r);
    if (p->qos > 0)
        p->packet_id = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (p->topic.len == 0)
        return reject(why, MQTT_E_MALFORMED, "empty topic name");
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

/* PUBACK, PUBREC, PUBREL, PUBCOMP and (3.1.1) UNSUBACK: just an id. */
static enum mqtt_err decode_ack(struct reader *r, struct mqtt_ack *a, const char **why)
{
    a->packet_id = read_u16(r);
    enum mqtt_err err = finish(r, why);

    if (err != MQTT_OK)
        return err;
    if (a->packet_id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");
    return MQTT_OK;
}

/*
 * SUBSCRIBE and UNSUBSCRIBE are validated in full here so that the iterator
 * can walk them later without checks.  Wildcard syntax is deliberately left
 * to the broker: a bad filter earns a 0x80 return code for that entry
 * (3.1.1 section 3.9.3), not a closed connection, so it is not malformed.
 */
static enum mqtt_err decode_subscribe(struct reader *r, uint8_t type, struct mqtt_subscribe *s,
                                      const char **why)
{
    s->packet_id = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (s->packet_id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");

    s->wire.data = r->pos;
    s->wire.len = (uint32_t)left(r);
    s->entries = NULL;
    s->count = 0;

    while (r->ok && r->pos < r->end) {
        struct mqtt_bytes filter = read_bytes(r);
        if (r->ok && !mqtt_utf8_valid(filter.data, filter.len))
            return reject(why, MQTT_E_MALFORMED, "invalid UTF-8 in topic filter");
        if (type == MQTT_SUBSCRIBE) {
            uint8_t options = read_u8(r);
            if (r->ok && (options & 0xFC))
                return reject(why, MQTT_E_MALFORMED, "reserved subscription option bits set");
            if (r->ok && options == 3)
                return reject(why, MQTT_E_MALFORMED, "QoS 3 requested in SUBSCRIBE");
        }
        s->count++;
    }
    enum mqtt_err err = finish(r, why);
    if (err != MQTT_OK)
        return err;
    if (s->count == 0)
        return reject(why, MQTT_E_PROTOCOL,
                      type == MQTT_SUBSCRIBE ? "SUBSCRIBE with no topic filters"
                                             : "UNSUBSCRIBE with no topic filters");
    return MQTT_OK;
}

static enum mqtt_err decode_suback(struct reader *r, struct mqtt_suback *s, const char **why)
{
    s->packet_id = read_u16(r);
    if (!r->ok)
        return reject(why, MQTT_E_MALFORMED, "packet truncated");
    if (s->packet_id == 0)
        return reject(why, MQTT_E_PROTOCOL, "packet identifier 0");
    s->codes.data = r->pos;
    s->codes.len = (uint32_t)left(r);
    r->pos = r->end;
    if (s->codes.len == 0)
        return reject(why, MQTT_E_MALFORMED, "SUBACK with no return codes");
    for (uint32_t i = 0; i < s->codes.len; i++) {
        uint8_t rc = s->codes.data[i];
        if (rc > 2 && rc != MQTT_SUBACK_FAILURE)
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
        NULL,
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
    if (type == MQTT_AUTH && level != MQTT_LEVEL_5)
        return reject(why, MQTT_E_MALFORMED, "AUTH packet in MQTT 3.1.1");
    if (type != MQTT_CONNECT && level != MQTT_LEVEL_311)
        return reject(why, MQTT_E_UNSUPPORTED_LEVEL,
                      level == MQTT_LEVEL_5 ? "MQTT 5.0 is not implemented yet"
                                            : "unsupported protocol level");

    err = check_flags(type, flags, why);
    if (err != MQTT_OK)
        return err;

    switch (type) {
    case MQTT_CONNECT:
        return decode_connect(&r, &out->u.connect, why);
    case MQTT_CONNACK:
        return decode_connack(&r, &out->u.connack, why);
    case MQTT_PUBLISH:
        return decode_publish(&r, flags, &out->u.publish, why);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return decode_ack(&r, &out->u.ack, why);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(&r, type, &out->u.subscribe, why);
    case MQTT_SUBACK:
        return decode_suback(&r, &out->u.suback, why);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return finish(&r, why);
    }
    /* Unreachable: type 0 and 15 were handled above. */
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
