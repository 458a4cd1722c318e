/*
 * protocol_subscribe.c - SUBSCRIBE and UNSUBSCRIBE.  A filter that breaks the
 * wildcard rules is refused with 0x80 in its SUBACK slot; the others are
 * granted min(requested, max_qos), and the retained messages they match
 * follow the SUBACK.
 */
#include <stdlib.h>

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "store.h"

int handle_subscribe(struct conn *c, const struct mqtt_packet *p)
{
    struct session *s = c->session;
    const struct mqtt_subscribe *sub = &p->u.subscribe;
    uint8_t *codes = malloc(sub->count);
    if (!codes) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    uint32_t i = 0;
    mqtt_topic_iter_init(&it, p);
    while (mqtt_topic_iter_next(&it, &e)) {
        const char *filter = (const char *)e.filter.data;
        uint8_t granted = e.options & 3;
        if (granted > broker.cfg.max_qos)
            granted = broker.cfg.max_qos;
        if (!mqtt_topic_filter_valid(e.filter.data, e.filter.len)) {
            log_info("%s: subscription to '%.*s' refused: invalid topic filter", conn_name(c),
                     (int)e.filter.len, filter);
            codes[i++] = MQTT_SUBACK_FAILURE;
        } else if (session_subscribe(s, filter, e.filter.len, granted) < 0) {
            log_error("%s: out of memory subscribing to '%.*s'", conn_name(c), (int)e.filter.len,
                      filter);
            codes[i++] = MQTT_SUBACK_FAILURE;
        } else {
            log_info("%s subscribed to '%.*s' (QoS %u)", conn_name(c), (int)e.filter.len, filter,
                     granted);
            codes[i++] = granted;
        }
    }
    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = sub->packet_id;
    ack.u.suback.codes.data = codes;
    ack.u.suback.codes.len = i;
    store_send_after_commit(c, &ack);

    /* Retained messages go after the SUBACK, also for a subscription that
     * replaced an existing one (MQTT-3.8.4-3). */
    mqtt_topic_iter_init(&it, p);
    for (uint32_t k = 0; mqtt_topic_iter_next(&it, &e); k++)
        if (codes[k] != MQTT_SUBACK_FAILURE)
            router_send_retained(s, (const char *)e.filter.data, e.filter.len, codes[k]);
    free(codes);
    return 0;
}

int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p)
{
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, p);
    while (mqtt_topic_iter_next(&it, &e)) {
        if (session_unsubscribe(c->session, (const char *)e.filter.data, e.filter.len))
            log_info("%s unsubscribed from '%.*s'", conn_name(c), (int)e.filter.len,
                     (const char *)e.filter.data);
    }
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
    ack.u.ack.packet_id = p->u.subscribe.packet_id;
    store_send_after_commit(c, &ack);
    return 0;
}
