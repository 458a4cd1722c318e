/*
 * protocol.c - protocol violations: how a connection that broke the rules
 * is closed; and the policy the CONNECT handler asks of the listeners and
 * the bridges (protocol_init).  The dispatch of a decoded packet by
 * connection state and type is conn.c's, where the packet is framed and
 * decoded; each packet type's handler lives in the file protocol.h names.
 */
#include "protocol.h"

#include <stdio.h>

#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "mqtt_codec.h"

const struct protocol_policy *protocol_policy;

void protocol_init(const struct protocol_policy *policy) { protocol_policy = policy; }

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
