/*
 * protocol.c - dispatch of decoded packets by connection state and type.
 * The codec has already checked each packet's own well-formedness; this is
 * where the rules about the order of packets are enforced.
 */
#include "protocol.h"


#include "broker.h"
#include "conn.h"
#include "conn_wait.h"
#include "log.h"
#include "mqtt_codec.h"
#include "session.h"
#include "store.h"

int protocol_error(struct conn *c, uint8_t reason, const char *why)
{
    broker.stats.protocol_errors++;
    char msg[256];
    snprintf(msg, sizeof msg, "protocol violation: %s", why);
    conn_disconnect(c, reason, msg, true);
    return -1;
}

int protocol_violation(struct conn *c, const char *why)
{
    return protocol_error(c, MQTT_RC_PROTOCOL_ERROR, why);
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

/* DISCONNECT from the client.  3.1.1, and 5.0 reason 0x00: a clean end,
 * the will is discarded; any other 5.0 reason (0x04 "with will", errors)
 * publishes it.  5.0 may change the Session Expiry Interval, but not from
 * 0 to more. */
static int handle_disconnect(struct conn *c, const struct mqtt_disconnect *d)
{
    if (c->level != MQTT_LEVEL_5) {
        conn_close(c, "client sent DISCONNECT", false);
        return -1;
    }
    struct mqtt_prop pr;
    if (mqtt_props_find(&d->props, MQTT_PROP_SESSION_EXPIRY, &pr)) {
        if (c->expiry_was_zero && pr.num != 0)
            return protocol_error(c, MQTT_RC_PROTOCOL_ERROR,
                                  "DISCONNECT sets a session expiry after CONNECT set 0");
        session_set_expiry(c->session, true, session_cap_expiry(pr.num));
    }
    char why[96];
    snprintf(why, sizeof why, "client sent DISCONNECT (0x%02x %s)", d->reason_code,
             mqtt_reason_str(d->reason_code));
    conn_close(c, why, d->reason_code != MQTT_RC_SUCCESS);
    return -1;
}

int protocol_handle(struct conn *c, const struct mqtt_packet *p)
{
    if (c->state == CONN_AWAIT_CONNECT) {
        if (p->type != MQTT_CONNECT)
            return protocol_violation(c, "first packet is not CONNECT");
        return handle_connect(c, &p->u.connect);
    }
    struct session *s = c->session;
    switch (p->type) {
    case MQTT_CONNECT:
        return protocol_violation(c, "second CONNECT on one connection");
    case MQTT_PUBLISH:
        return handle_publish(c, &p->u.publish);
    case MQTT_PUBACK:
        if (!session_puback(s, p->u.ack.packet_id))
            log_debug("%s: PUBACK for unknown packet id %u", conn_name(c), p->u.ack.packet_id);
        return 0;
    case MQTT_PUBREC:
        if (p->u.ack.reason_code >= 0x80) {
            /* 5.0: the client refused the message; the exchange ends here,
             * without PUBREL. */
            if (!session_pubrec_refused(s, p->u.ack.packet_id))
                log_debug("%s: PUBREC for unknown packet id %u", conn_name(c),
                          p->u.ack.packet_id);
            return 0;
        }
        if (!session_pubrec(s, p->u.ack.packet_id))
            log_debug("%s: PUBREC for unknown packet id %u", conn_name(c), p->u.ack.packet_id);
        return 0;
    case MQTT_PUBREL:
        return handle_pubrel(c, p->u.ack.packet_id);
    case MQTT_PUBCOMP:
        if (!session_pubcomp(s, p->u.ack.packet_id))
            log_debug("%s: PUBCOMP for unknown packet id %u", conn_name(c), p->u.ack.packet_id);
        return 0;
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, p);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, p);
    case MQTT_PINGREQ: {
        struct mqtt_packet resp = {.type = MQTT_PINGRESP};
        conn_send_packet(c, &resp);
        return 0;
    }
    case MQTT_DISCONNECT:
        return handle_disconnect(c, &p->u.disconnect);
    case MQTT_AUTH:
        /* No CONNECT here had an Authentication Method (those are refused
         * with 0x8C), so there is no exchange an AUTH could continue. */
        return protocol_error(c, MQTT_RC_PROTOCOL_ERROR,
                              "AUTH without an authentication method in CONNECT");
    default: {
        char why[64];
        snprintf(why, sizeof why, "%s sent by a client", mqtt_type_name(p->type));
        return protocol_violation(c, why);
    }
    }
}
