/*
 * protocol_publish.c - inbound PUBLISH at QoS 0, 1 and 2.  QoS 2 is made
 * exactly-once by routing the message when it first arrives and remembering
 * its packet id until PUBREL: a resent PUBLISH with that id is acknowledged
 * again but not routed again.  A topic over the length or level limits is
 * a protocol violation; one the ACL does not let the client write to is
 * acknowledged and dropped, as 3.1.1 has no way to refuse a PUBLISH.
 */
#include <stdio.h>
#include <string.h>

#include "acl_session.h"
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

    const char *over = topic_over_limits(pub->topic.data, pub->topic.len);
    if (over) {
        char why[64];
        snprintf(why, sizeof why, "topic over %s", over);
        return protocol_violation(c, why);
    }

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
    } else if (!acl_may_publish(s, (const char *)pub->topic.data, pub->topic.len)) {
        /* Acknowledged all the same: a client that got no PUBACK would
         * resend the message forever. */
        broker.stats.acl_publish_denied++;
        long n = log_ratelimit_check(&acl_log, 10);
        if (n >= 0)
            log_notice("%s: publish to '%.*s' denied by the ACL%s", conn_name(c),
                       (int)(pub->topic.len > 200 ? 200 : pub->topic.len),
                       (const char *)pub->topic.data, log_suppressed(n));
    } else {
        uint8_t qos = pub->qos < broker.cfg.max_qos ? pub->qos : broker.cfg.max_qos;
        struct message *m = message_new((const char *)pub->topic.data, pub->topic.len,
                                        pub->payload.data, pub->payload.len, qos, pub->retain);
        if (!m) {
            /* Not acknowledging makes a QoS 1/2 sender retry later. */
            log_error("%s: out of memory, publish dropped", conn_name(c));
            return 0;
        }
        router_publish(m, c->session);
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
