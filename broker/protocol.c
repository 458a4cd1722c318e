/*
 * protocol.c - dispatch of decoded packets by connection state and type.
 * The codec has already checked each packet's own well-formedness; this is
 * where the rules about the order of packets are enforced; each packet
 * type's handler lives in the file protocol.h names.
 */
#include "protocol.h"

#include <stdio.h>

#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "mqtt_codec.h"

int protocol_error(struct conn *c, uint8_t reason, const char *why)
{
    broker.stats.protocol_errors++;
    conn_io_close_code(c, 1002); /* over WebSocket: protocol error */
    char msg[256];
    snprintf(msg, sizeof msg, "protocol violation: %s", why);
    conn_disconnect(c, reason, msg, true);
    return -1;
}

int protocol_violation(struct conn *c, const char *why)
{
    return protocol_error(c, MQTT_RC_PROTOCOL_ERROR, why);
}

int protocol_handle(struct conn *c, const struct mqtt_packet *p)
{
    if (c->state == CONN_AWAIT_CONNECT) {
        if (p->type != MQTT_CONNECT)
            return protocol_violation(c, "first packet is not CONNECT");
        return handle_connect(c, &p->u.connect);
    }
    switch (p->type) {
    case MQTT_CONNECT:
        return protocol_violation(c, "second CONNECT on one connection");
    case MQTT_PUBLISH:
        return handle_publish(c, &p->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_publish_ack(c, p->u.ack.packet_id, p->type, p->u.ack.reason_code);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, p);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, p);
    case MQTT_PINGREQ:
        return handle_pingreq(c);
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
