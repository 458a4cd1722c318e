/*
 * protocol.c - dispatch of decoded packets by connection state and type.
 * The codec has already checked each packet's own well-formedness; this is
 * where the rules about the order of packets are enforced.
 */
#include "protocol.h"


#include "broker.h"
#include "conn.h"
#include "log.h"
#include "mqtt_codec.h"
#include "session.h"
#include "store.h"

int protocol_violation(struct conn *c, const char *why)
{
    broker.stats.protocol_errors++;
    char msg[256];
    snprintf(msg, sizeof msg, "protocol violation: %s", why);
    conn_close(c, msg, true);
    return -1;
}

static int handle_pubrel(struct conn *c, uint16_t id)
{
    session_qos2_release(c->session, id);
    struct mqtt_packet p = {.type = MQTT_PUBCOMP};
    p.u.ack.packet_id = id;
    /* Only once the id is gone from the store: a PUBCOMP followed by a
     * crash would otherwise leave the id marked, and the client's next
     * message with that id would be taken for a duplicate and lost. */
    store_send_after_commit(c, &p);
    return 0;
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
        /* A clean end: the will is discarded. */
        conn_close(c, "client sent DISCONNECT", false);
        return -1;
    default: {
        char why[64];
        snprintf(why, sizeof why, "%s sent by a client", mqtt_type_name(p->type));
        return protocol_violation(c, why);
    }
    }
}
