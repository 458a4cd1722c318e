/*
 * protocol_subscribe.c - SUBSCRIBE and UNSUBSCRIBE, for MQTT 3.1.1 and 5.0.
 * Each filter of a SUBSCRIBE gets its own verdict in the SUBACK:
 *
 *   refusal                                   3.1.1   5.0
 *   invalid filter or share name              0x80    0x8F topic filter invalid
 *   over max_topic_length / max_topic_levels  0x80    0x8F
 *   not allowed by the ACL                    0x80    0x87 not authorized
 *   max_subscriptions_per_client reached      0x80    0x97 quota exceeded
 *   out of memory                             0x80    0x80 unspecified
 *
 * The others are granted min(requested, max_qos).  The retained messages
 * they match follow the SUBACK, except for shared subscriptions (never) and,
 * in 5.0, as Retain Handling asks (1: only for a new subscription; 2: not).
 * A shared subscription ("$share/{group}/{filter}", shared_subs.h) is checked
 * against the limits and the ACL with its filter proper.  No Local on a
 * shared subscription is a protocol error (MQTT-3.8.3-4) and closes the
 * connection before any filter of the packet is applied.
 */
#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "broker.h"
#include "conn.h"
#include "conn_wait.h"
#include "log.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "shared_subs.h"
#include "store.h"

/* The code for a refusal: the 5.0 reason, or 0x80 in 3.1.1. */
static uint8_t refused(const struct conn *c, uint8_t reason)
{
    return c->level == MQTT_LEVEL_5 ? reason : MQTT_SUBACK_FAILURE;
}

/* True if the filter is valid, shared ones included: *inner is where the
 * filter proper starts (0 if not shared). */
static bool filter_ok(const char *filter, size_t len, size_t *inner)
{
    *inner = 0;
    if (!mqtt_topic_filter_valid((const uint8_t *)filter, len))
        return false;
    int shared = share_parse(filter, len, inner);
    return shared == 0 ||
           (shared == 1 && mqtt_topic_filter_valid((const uint8_t *)filter + *inner, len - *inner));
}

/* 0 if the session may subscribe to the valid filter (filter proper at
 * `inner`), else the refusal code; *why says why for the log. */
static uint8_t refusal(struct conn *c, const char *filter, size_t len, size_t inner,
                       const char **why)
{
    struct session *s = c->session;
    *why = topic_over_limits((const uint8_t *)filter + inner, len - inner);
    if (*why)
        return refused(c, MQTT_RC_TOPIC_FILTER_INVALID);
    if (!acl_may_subscribe(s, filter + inner, len - inner)) {
        broker.stats.acl_subscribe_denied++;
        *why = "not allowed by the ACL";
        return refused(c, MQTT_RC_NOT_AUTHORIZED);
    }
    uint32_t max = broker.cfg.max_subscriptions_per_client;
    if (max && s->n_subs >= max && !session_subscription(s, filter, len)) {
        broker.stats.subscriptions_refused++;
        *why = "max_subscriptions_per_client";
        return refused(c, MQTT_RC_QUOTA_EXCEEDED);
    }
    return 0;
}

/* The Subscription Identifier of a 5.0 SUBSCRIBE, 0 if none (the decoder
 * has checked that there is at most one, in 1..268435455). */
static uint32_t subscription_id(const struct conn *c, const struct mqtt_packet *p)
{
    struct mqtt_prop prop;
    if (c->level != MQTT_LEVEL_5 ||
        !mqtt_props_find(&p->u.subscribe.props, MQTT_PROP_SUBSCRIPTION_ID, &prop))
        return 0;
    return prop.num;
}

static void log_refusal(struct conn *c, const char *filter, size_t len, const char *why)
{
    log_info("%s: subscription to '%.*s' refused: %s", conn_name(c),
             (int)(len > 200 ? 200 : len), filter, why);
}

int handle_subscribe(struct conn *c, const struct mqtt_packet *p)
{
    struct session *s = c->session;
    const struct mqtt_subscribe *sub = &p->u.subscribe;
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    size_t inner;

    /* Protocol errors first, so that a bad packet changes nothing. */
    if (c->level == MQTT_LEVEL_5) {
        mqtt_topic_iter_init(&it, p);
        while (mqtt_topic_iter_next(&it, &e))
            if ((e.options & MQTT_SUBOPT_NO_LOCAL) &&
                share_parse((const char *)e.filter.data, e.filter.len, &inner) == 1)
                return protocol_violation(c, "No Local on a shared subscription");
    }

    /* codes[i]: the SUBACK code; codes[count + i]: send retained after. */
    uint8_t *codes = malloc(2 * (size_t)sub->count);
    if (!codes) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    uint8_t *retained = codes + sub->count;
    uint32_t id = subscription_id(c, p);
    uint32_t i = 0;
    mqtt_topic_iter_init(&it, p);
    while (mqtt_topic_iter_next(&it, &e)) {
        const char *filter = (const char *)e.filter.data;
        size_t len = e.filter.len;
        /* 3.1.1 carries the QoS alone; the decoder has checked the rest. */
        uint8_t options = c->level == MQTT_LEVEL_5 ? e.options : MQTT_SUBOPT_QOS(e.options);
        uint8_t granted = MQTT_SUBOPT_QOS(options);
        if (granted > broker.cfg.max_qos)
            granted = broker.cfg.max_qos;
        options = (uint8_t)((options & ~3u) | granted);
        const char *why = NULL;
        uint8_t code;
        int added = -1;
        retained[i] = 0;
        if (!filter_ok(filter, len, &inner)) {
            why = "invalid topic filter or share name";
            code = refused(c, MQTT_RC_TOPIC_FILTER_INVALID);
        } else if ((code = refusal(c, filter, len, inner, &why)) != 0) {
            /* code and why set */
        } else if ((added = session_subscribe(s, filter, len, options, id)) < 0) {
            why = "out of memory";
            code = MQTT_SUBACK_FAILURE;
        } else {
            code = granted;
            uint8_t rh = MQTT_SUBOPT_RETAIN_HANDLING(options);
            retained[i] = !inner && (rh == 0 || (rh == 1 && added == 1));
        }
        if (why) {
            log_refusal(c, filter, len, why);
        } else {
            log_info("%s subscribed to '%.*s' (QoS %u)", conn_name(c), (int)len, filter,
                     granted);
        }
        codes[i++] = code;
    }
    acl_session_subs_changed(s);
    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = sub->packet_id;
    ack.u.suback.codes.data = codes;
    ack.u.suback.codes.len = i;
    conn_wait_send(c, &ack, false);

    /* Retained messages go after the SUBACK, also for a subscription that
     * replaced an existing one (MQTT-3.8.4-3) unless Retain Handling says
     * otherwise. */
    mqtt_topic_iter_init(&it, p);
    for (uint32_t k = 0; mqtt_topic_iter_next(&it, &e); k++)
        if (retained[k])
            router_send_retained(s, (const char *)e.filter.data, e.filter.len, codes[k]);
    free(codes);
    return 0;
}

int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *uns = &p->u.subscribe;
    bool v5 = c->level == MQTT_LEVEL_5;
    uint8_t *codes = NULL;
    if (v5 && !(codes = malloc(uns->count))) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    uint32_t i = 0;
    mqtt_topic_iter_init(&it, p);
    while (mqtt_topic_iter_next(&it, &e)) {
        const char *filter = (const char *)e.filter.data;
        size_t inner;
        uint8_t code = MQTT_RC_SUCCESS;
        if (session_unsubscribe(c->session, filter, e.filter.len))
            log_info("%s unsubscribed from '%.*s'", conn_name(c), (int)e.filter.len, filter);
        else if (!filter_ok(filter, e.filter.len, &inner))
            code = MQTT_RC_TOPIC_FILTER_INVALID;
        else
            code = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        if (v5)
            codes[i++] = code;
    }
    acl_session_subs_changed(c->session);
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
    if (v5) {
        ack.u.suback.packet_id = uns->packet_id;
        ack.u.suback.codes.data = codes;
        ack.u.suback.codes.len = i;
    } else {
        ack.u.ack.packet_id = uns->packet_id;
    }
    conn_wait_send(c, &ack, false);
    free(codes);
    return 0;
}
