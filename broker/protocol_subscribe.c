/*
 * protocol_subscribe.c - SUBSCRIBE and UNSUBSCRIBE.  A filter that breaks the
 * wildcard rules, exceeds max_topic_length or max_topic_levels, is not
 * allowed by the ACL, or would take the session past
 * max_subscriptions_per_client is refused with 0x80 in its SUBACK slot; the
 * others are granted min(requested, max_qos), and the retained messages
 * they match follow the SUBACK.
 */
#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "broker.h"
#include "conn.h"
#include "log.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "store.h"

static bool subscribed(const struct session *s, const char *filter, size_t len)
{
    for (const struct subscription *sub = s->subs; sub; sub = sub->next)
        if (sub->len == len && memcmp(sub->filter, filter, len) == 0)
            return true;
    return false;
}

/* NULL if the session may subscribe to the (valid) filter, else why not. */
static const char *refusal(struct session *s, const char *filter, size_t len)
{
    const char *over = topic_over_limits((const uint8_t *)filter, len);
    if (over)
        return over;
    if (!acl_may_subscribe(s, filter, len)) {
        broker.stats.acl_subscribe_denied++;
        return "not allowed by the ACL";
    }
    uint32_t max = broker.cfg.max_subscriptions_per_client;
    if (max && s->n_subs >= max && !subscribed(s, filter, len)) {
        broker.stats.subscriptions_refused++;
        return "max_subscriptions_per_client";
    }
    return NULL;
}

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
        const char *why = NULL;
        if (!mqtt_topic_filter_valid(e.filter.data, e.filter.len)) {
            log_info("%s: subscription to '%.*s' refused: invalid topic filter", conn_name(c),
                     (int)e.filter.len, filter);
            codes[i++] = MQTT_SUBACK_FAILURE;
        } else if ((why = refusal(s, filter, e.filter.len)) != NULL) {
            log_info("%s: subscription to '%.*s' refused: %s", conn_name(c),
                     (int)(e.filter.len > 200 ? 200 : e.filter.len), filter, why);
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
    acl_session_subs_changed(s);
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
    acl_session_subs_changed(c->session);
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
    ack.u.ack.packet_id = p->u.subscribe.packet_id;
    store_send_after_commit(c, &ack);
    return 0;
}
