/*
 * protocol_publish.c - inbound PUBLISH at QoS 0, 1 and 2.  QoS 2 is made
 * exactly-once by routing the message when it first arrives and remembering
 * its packet id until PUBREL: a resent PUBLISH with that id is acknowledged
 * again but not routed again.
 */
#include <string.h>

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "store.h"

/* Acknowledgements promise durability: they leave after the commit of
 * everything this turn wrote (store.h). */
static void send_ack(struct conn *c, uint8_t type, uint16_t id)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    store_send_after_commit(c, &p);
}

int handle_publish(struct conn *c, const struct mqtt_publish *pub)
{
    struct session *s = c->session;
    broker.stats.msgs_received++;

    if (pub->qos == 2 && session_qos2_pending(s, pub->packet_id)) {
        send_ack(c, MQTT_PUBREC, pub->packet_id);
        return 0;
    }

    /* $SYS belongs to the broker: clients must not forge its statistics.
     * The publish is acknowledged (3.1.1 has no way to refuse it) and
     * dropped. */
    bool forbidden = pub->topic.len >= 4 && memcmp(pub->topic.data, "$SYS", 4) == 0 &&
                     (pub->topic.len == 4 || pub->topic.data[4] == '/');
    if (forbidden) {
        log_info("%s: publish to '%.*s' ignored: $SYS is reserved for the broker", conn_name(c),
                 (int)pub->topic.len, (const char *)pub->topic.data);
    } else {
        uint8_t qos = pub->qos < broker.cfg.max_qos ? pub->qos : broker.cfg.max_qos;
        struct message *m = message_new((const char *)pub->topic.data, pub->topic.len,
                                        pub->payload.data, pub->payload.len, qos, pub->retain);
        if (!m) {
            /* Not acknowledging makes a QoS 1/2 sender retry later. */
            log_error("%s: out of memory, publish dropped", conn_name(c));
            return 0;
        }
        router_publish(m);
        message_unref(m);
    }

    if (pub->qos == 1) {
        send_ack(c, MQTT_PUBACK, pub->packet_id);
    } else if (pub->qos == 2) {
        if (session_qos2_mark(s, pub->packet_id) < 0) {
            conn_close(c, "out of memory", true);
            return -1;
        }
        send_ack(c, MQTT_PUBREC, pub->packet_id);
    }
    return 0;
}
