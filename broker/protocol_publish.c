/*
 * protocol_publish.c - inbound PUBLISH at QoS 0, 1 and 2.  QoS 2 is made
 * exactly-once by routing the message when it first arrives and remembering
 * its packet id until PUBREL: a resent PUBLISH with that id is acknowledged
 * again but not routed again.  A topic over the length or level limits is
 * a protocol violation; one the ACL does not let the client write to is
 * acknowledged and dropped, as 3.1.1 has no way to refuse a PUBLISH (5.0:
 * refused with 0x87 in the PUBACK/PUBREC); so is one to $SYS (0x87) or under
 * "$share/" (0x90).  A 5.0 PUBLISH above max_qos is a protocol error (0x9B).
 *
 * 5.0 adds topic aliases (client -> server), the UTF-8 check of a payload
 * that says it is UTF-8, and the Receive Maximum the broker announced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "bridge_origin.h"
#include "broker.h"
#include "conn.h"
#include "conn_wait.h"
#include "flow.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "store.h"

static struct log_ratelimit acl_log;

const char *topic_over_limits(const uint8_t *topic, size_t len)
{
    if (len > broker.cfg.max_topic_length) {
        broker.stats.topic_too_long++;
        return "max_topic_length";
    }
    /* Levels = separators + 1; stop counting as soon as the limit is
     * passed, so a long topic costs no more than needed. */
    uint32_t levels = 1;
    const uint8_t *p = topic, *end = topic + len;
    while ((p = memchr(p, '/', (size_t)(end - p))) != NULL) {
        p++;
        if (++levels > broker.cfg.max_topic_levels) {
            broker.stats.topic_too_deep++;
            return "max_topic_levels";
        }
    }
    return NULL;
}

bool topic_reserved(const uint8_t *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0 && (len == 4 || topic[4] == '/');
}

bool topic_share_name(const uint8_t *topic, size_t len)
{
    return len >= 7 && memcmp(topic, "$share/", 7) == 0;
}

static void send_ack(struct conn *c, uint8_t type, uint16_t id, uint8_t reason)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    p.u.ack.reason_code = reason;
    if (type == MQTT_PUBACK)
        c->in_qos1_unacked++; /* counted down when it leaves (conn_wait.c) */
    /* Held while flow control slows this publisher (flow.h). */
    conn_wait_send(c, &p, true);
}

/* What a 5.0 PUBLISH's properties ask of the broker.  Resolves a topic
 * alias into *topic.  Returns 0, or -1 when the connection was closed. */
static int read_publish_props(struct conn *c, const struct mqtt_publish *pub,
                              struct mqtt_bytes *topic, bool *utf8_payload)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    uint32_t alias = 0;
    mqtt_prop_iter_init(&it, &pub->props);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id == MQTT_PROP_TOPIC_ALIAS)
            alias = pr.num;
        else if (pr.id == MQTT_PROP_PAYLOAD_FORMAT)
            *utf8_payload = pr.num == 1;
        else if (pr.id == MQTT_PROP_SUBSCRIPTION_ID)
            return protocol_violation(c, "PUBLISH from a client with a subscription identifier");
    }
    if (alias == 0)
        return 0; /* the decoder refuses an empty topic without an alias */
    uint16_t max = broker.cfg.topic_alias_maximum;
    if (alias > max) {
        char why[96];
        snprintf(why, sizeof why, "topic alias %u above the topic alias maximum %u", alias, max);
        return protocol_error(c, MQTT_RC_TOPIC_ALIAS_INVALID, why);
    }
    if (!c->alias_in && !(c->alias_in = calloc(max, sizeof *c->alias_in))) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    struct conn_alias_in *slot = &c->alias_in[alias - 1];
    if (topic->len == 0) {
        if (!slot->topic)
            return protocol_violation(c, "PUBLISH with an empty topic and an unknown topic alias");
        topic->data = (const uint8_t *)slot->topic;
        topic->len = slot->len;
        return 0;
    }
    char *copy = malloc(topic->len ? topic->len : 1);
    if (!copy) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    memcpy(copy, topic->data, topic->len);
    free(slot->topic);
    slot->topic = copy;
    slot->len = (uint16_t)topic->len;
    return 0;
}

int handle_publish(struct conn *c, const struct mqtt_publish *in)
{
    struct session *s = c->session;
    broker.stats.msgs_received++;
    broker.stats.msgs_received_qos[in->qos > 2 ? 2 : in->qos]++;
    broker.stats.payload_received_qos[in->qos > 2 ? 2 : in->qos] += in->payload.len;
    struct mqtt_publish topic_resolved = *in;
    const struct mqtt_publish *pub = &topic_resolved;
    bool v5 = c->level == MQTT_LEVEL_5;
    bool utf8_payload = false;
    if (v5 && pub->qos > broker.cfg.max_qos) {
        /* The CONNACK announced Maximum QoS [MQTT-3.2.2-11]: a PUBLISH above
         * it is a protocol error answered with 0x9B (5.0 3.2.2.3.4).  3.1.1
         * cannot announce one: its messages are taken at max_qos. */
        char why[64];
        snprintf(why, sizeof why, "PUBLISH at QoS %u above the maximum QoS %u", pub->qos,
                 broker.cfg.max_qos);
        return protocol_error(c, MQTT_RC_QOS_NOT_SUPPORTED, why);
    }
    if (v5 && read_publish_props(c, in, &topic_resolved.topic, &utf8_payload) != 0)
        return -1;

    const char *over = topic_over_limits(pub->topic.data, pub->topic.len);
    if (over) {
        char why[64];
        snprintf(why, sizeof why, "topic over %s", over);
        return protocol_violation(c, why);
    }

    if (pub->qos == 2 && session_qos2_pending(s, pub->packet_id)) {
        send_ack(c, MQTT_PUBREC, pub->packet_id, 0);
        return 0;
    }
    if (v5 && pub->qos > 0 &&
        c->in_qos1_unacked + s->n_qos2_ids >= broker.cfg.max_inflight) {
        /* More unacknowledged QoS 1/2 than the Receive Maximum we set. */
        return protocol_error(c, MQTT_RC_RECEIVE_MAX_EXCEEDED,
                              "more unacknowledged QoS 1/2 publishes than the receive maximum");
    }
    uint8_t reason = MQTT_RC_SUCCESS;
    if (v5 && utf8_payload && !mqtt_utf8_valid(pub->payload.data, pub->payload.len)) {
        if (pub->qos == 0)
            return protocol_error(c, MQTT_RC_PAYLOAD_FORMAT_INVALID,
                                  "payload format indicator says UTF-8 but the payload is not");
        reason = MQTT_RC_PAYLOAD_FORMAT_INVALID;
    }

    /* $SYS belongs to the broker: clients must not forge its statistics.
     * The publish is acknowledged (3.1.1 has no way to refuse it) and
     * dropped. */
    bool forbidden = topic_reserved(pub->topic.data, pub->topic.len);
    if (reason != MQTT_RC_SUCCESS) {
        log_info("%s: publish to '%s' refused: payload is not valid UTF-8", conn_name(c),
                 log_str((const char *)pub->topic.data, pub->topic.len));
    } else if (forbidden) {
        reason = MQTT_RC_NOT_AUTHORIZED;
        log_info("%s: publish to '%s' ignored: $SYS is reserved for the broker", conn_name(c),
                 log_str((const char *)pub->topic.data, pub->topic.len));
    } else if (topic_share_name(pub->topic.data, pub->topic.len)) {
        /* "$share/..." names shared subscriptions (5.0 4.8.2), and topics
         * starting with '$' are the server's (4.7.2): no filter could ever
         * match it.  5.0 answers 0x90, the PUBACK/PUBREC code for a topic
         * name that is well-formed but not accepted; QoS 0 and 3.1.1 have
         * no way to refuse, so the message is dropped (acknowledged). */
        reason = MQTT_RC_TOPIC_NAME_INVALID;
        log_info("%s: publish to '%s' refused: $share/ names shared subscriptions, not topics",
                 conn_name(c), log_str((const char *)pub->topic.data, pub->topic.len));
    } else if (v5 && bridge_came_back(&pub->props)) {
        /* It left this broker over a bridge and came back over another
         * (bridge.h): delivered here once already. */
        log_debug("%s: publish to '%s' dropped: it came back over a bridge loop", conn_name(c),
                  log_str((const char *)pub->topic.data, pub->topic.len));
    } else if (!acl_may_publish(s, (const char *)pub->topic.data, pub->topic.len)) {
        /* Acknowledged all the same: a client that got no PUBACK would
         * resend the message forever. */
        broker.stats.acl_publish_denied++;
        reason = MQTT_RC_NOT_AUTHORIZED;
        long n = log_ratelimit_check(&acl_log, 10);
        if (n >= 0)
            log_notice("%s: publish to '%s' denied by the ACL%s", conn_name(c),
                       log_str((const char *)pub->topic.data, pub->topic.len),
                       log_suppressed(n));
    } else {
        uint8_t qos = pub->qos < broker.cfg.max_qos ? pub->qos : broker.cfg.max_qos;
        struct message *m = message_new_props((const char *)pub->topic.data, pub->topic.len,
                                              pub->payload.data, pub->payload.len, qos,
                                              pub->retain, v5 ? &pub->props : NULL);
        if (!m) {
            /* Not acknowledging makes a QoS 1/2 sender retry later. */
            log_error("%s: out of memory, publish dropped", conn_name(c));
            return 0;
        }
        struct route_result res;
        flow_set_publisher(c);
        router_publish_counted(m, c->session, &res);
        flow_set_publisher(NULL);
        message_unref(m);
        if (v5 && res.refused && !res.taken) {
            /* Acknowledged (it is not lost for a subscriber that is only
             * full), but the publisher hears that no queue took it. */
            reason = MQTT_RC_QUOTA_EXCEEDED;
        }
    }

    if (pub->qos == 1) {
        send_ack(c, MQTT_PUBACK, pub->packet_id, reason);
    } else if (pub->qos == 2) {
        /* A refused QoS 2 ends with its PUBREC (5.0 4.3.3): no PUBREL
         * follows, so its id is not kept. */
        if (reason < 0x80 && session_qos2_mark(s, pub->packet_id) < 0) {
            conn_close(c, "out of memory", true);
            return -1;
        }
        send_ack(c, MQTT_PUBREC, pub->packet_id, reason);
    }
    return 0;
}

static int handle_pubrel(struct conn *c, uint16_t id)
{
    struct mqtt_packet p = {.type = MQTT_PUBCOMP};
    if (c->level == MQTT_LEVEL_5 && !session_qos2_pending(c->session, id))
        p.u.ack.reason_code = MQTT_RC_PACKET_ID_NOT_FOUND;
    session_qos2_release(c->session, id);
    p.u.ack.packet_id = id;
    /* Only once the id is gone from the store: a PUBCOMP followed by a
     * crash would otherwise leave the id marked, and the client's next
     * message with that id would be taken for a duplicate and lost. */
    conn_wait_send(c, &p, false);
    return 0;
}

/* Whether an acknowledgement of kind `type` fits the in-flight delivery in
 * `state` (enum delivery_state): QoS 1 ends with PUBACK [MQTT-4.3.2-1];
 * QoS 2 takes PUBREC (again, while waiting for PUBCOMP: the PUBREL is
 * resent) then PUBCOMP, only after the PUBREL [MQTT-4.3.3-1]; a refusing
 * PUBREC (5.0) only before its PUBREL. */
static bool ack_fits(uint8_t type, int state, uint8_t reason_code)
{
    switch (type) {
    case MQTT_PUBACK: return state == DELIVERY_WAIT_PUBACK;
    case MQTT_PUBREC:
        return state == DELIVERY_WAIT_PUBREC ||
               (state == DELIVERY_WAIT_PUBCOMP && reason_code < 0x80);
    default: return state == DELIVERY_WAIT_PUBCOMP; /* MQTT_PUBCOMP */
    }
}

/* PUBACK, PUBREC and PUBCOMP for what the broker sent; PUBREL for what
 * it received at QoS 2.
 *
 * An acknowledgement of the wrong kind for a message in flight (PUBREC or
 * PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREL) is a protocol
 * violation (5.0: DISCONNECT 0x82).  One for a packet id not in flight is
 * not: it can be left over from a connection that broke, or from a message
 * dropped meanwhile (expired, moved to another member of a shared group).
 * PUBACK and PUBCOMP are then ignored; PUBREC is answered with PUBREL (5.0:
 * 0x92 Packet Identifier not found, as 3.6.2.1 has it) so that the client
 * can end its exchange.  PUBREL for an id not awaiting it is answered with
 * PUBCOMP (5.0: 0x92). */
int handle_publish_ack(struct conn *c, uint16_t id, uint8_t type, uint8_t reason_code)
{
    struct session *s = c->session;
    if (type == MQTT_PUBREL)
        return handle_pubrel(c, id);
    int state = session_inflight_state(s, id);
    if (state < 0) {
        log_debug("%s: %s for unknown packet id %u", conn_name(c), mqtt_type_name(type), id);
        if (type == MQTT_PUBREC && reason_code < 0x80) {
            struct mqtt_packet p = {.type = MQTT_PUBREL};
            p.u.ack.packet_id = id;
            p.u.ack.reason_code = MQTT_RC_PACKET_ID_NOT_FOUND;
            conn_send_packet(c, &p);
        }
        return 0;
    }
    if (!ack_fits(type, state, reason_code)) {
        char why[96];
        snprintf(why, sizeof why, "%s for packet id %u, a %s", mqtt_type_name(type), id,
                 state == DELIVERY_WAIT_PUBACK  ? "QoS 1 message"
                 : state == DELIVERY_WAIT_PUBREC ? "QoS 2 message not yet released by PUBREL"
                                                 : "QoS 2 message already received");
        return protocol_violation(c, why);
    }
    switch (type) {
    case MQTT_PUBACK:
        session_puback(s, id);
        return 0;
    case MQTT_PUBREC:
        if (reason_code >= 0x80)
            /* 5.0: the client refused the message; the exchange ends here,
             * without PUBREL. */
            session_pubrec_refused(s, id);
        else
            session_pubrec(s, id);
        return 0;
    default: /* MQTT_PUBCOMP */
        session_pubcomp(s, id);
        return 0;
    }
}
