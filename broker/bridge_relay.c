/*
 * bridge_relay.c - what a bridge passes between its two connections.
 *
 * Out: the broker delivers a message of the "$bridge/NAME" session
 * (PUBLISH, id P); it goes to the remote with id P, and the remote's
 * PUBACK / PUBREC / PUBCOMP for P go back to the broker as the session's
 * acknowledgements, the broker's PUBREL for P to the remote.  In: the
 * remote's PUBLISH (id R) goes to the broker with id R, and the broker's
 * acknowledgements - sent only once the message is committed and routed -
 * go back to the remote.  Keeping the ids is what makes a QoS 2 exchange
 * cut by a crash resume where it stopped: both sides still know the id
 * and its state (the broker's session in its store, the remote in its
 * session), so the message is neither lost nor delivered twice.
 */
#include "bridge_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The rule whose subscription matches `topic` on the side it comes from
 * (out: local, in: remote); the mapped topic is written to dst. */
static const struct bridge_rule *map_topic(const struct bridge *b, bool out, const uint8_t *topic,
                                           size_t len, char *dst, size_t cap, size_t *dlen)
{
    for (size_t i = 0; i < b->conf.n_rules; i++) {
        const struct bridge_rule *r = &b->conf.rules[i];
        if (r->out != out)
            continue;
        const char *from = out ? r->local_prefix : r->remote_prefix;
        const char *to = out ? r->remote_prefix : r->local_prefix;
        size_t flen = strlen(from), tlen = strlen(to);
        if (len < flen || memcmp(topic, from, flen) != 0)
            continue;
        if (!mqtt_topic_matches(b->sub_filter[i], strlen(b->sub_filter[i]), (const char *)topic,
                                len))
            continue;
        size_t rest = len - flen;
        if (tlen + rest > 65535 || tlen + rest + 1 > cap || tlen + rest == 0)
            return NULL;
        memcpy(dst, to, tlen);
        memcpy(dst + tlen, topic + flen, rest);
        *dlen = tlen + rest;
        return r;
    }
    return NULL;
}

static bool is_user(const struct mqtt_prop *pr, const char *key)
{
    size_t n = strlen(key);
    return pr->id == MQTT_PROP_USER_PROPERTY && pr->str.len == n &&
           memcmp(pr->str.data, key, n) == 0;
}

/* A PUBLISH's properties minus those that belong to one connection (Topic
 * Alias, Subscription Identifier): a client may not send the latter.  With
 * `tag` (out, to a 5.0 remote) the origin is added if absent and the hop
 * count raised (bridge.h); *hops gets the new count. */
static struct mqtt_props filter_props(const struct mqtt_props *in, uint8_t *buf, size_t cap,
                                      bool tag, unsigned *hops)
{
    struct mqtt_props_builder pb;
    mqtt_pb_init(&pb, buf, cap);
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    bool has_origin = false;
    *hops = 0;
    mqtt_prop_iter_init(&it, in);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id == MQTT_PROP_TOPIC_ALIAS || pr.id == MQTT_PROP_SUBSCRIPTION_ID)
            continue;
        if (tag && is_user(&pr, BRIDGE_HOPS_PROP)) {
            unsigned h = 0;
            for (uint32_t i = 0; i < pr.value.len && i < 4; i++)
                if (pr.value.data[i] >= '0' && pr.value.data[i] <= '9')
                    h = h * 10 + (pr.value.data[i] - '0');
            *hops = h;
            continue; /* written again below, raised */
        }
        if (tag && is_user(&pr, BRIDGE_ORIGIN_PROP))
            has_origin = true;
        switch (mqtt_prop_type(pr.id)) {
        case MQTT_PT_UTF8:
        case MQTT_PT_BINARY:
            mqtt_pb_bytes(&pb, pr.id, pr.str.data, pr.str.len);
            break;
        case MQTT_PT_PAIR:
            mqtt_pb_pair(&pb, pr.id, pr.str.data, pr.str.len, pr.value.data, pr.value.len);
            break;
        default:
            mqtt_pb_num(&pb, pr.id, pr.num);
            break;
        }
    }
    if (tag) {
        const char *id = bridge_origin_id();
        if (!has_origin)
            mqtt_pb_pair(&pb, MQTT_PROP_USER_PROPERTY, BRIDGE_ORIGIN_PROP,
                         strlen(BRIDGE_ORIGIN_PROP), id, strlen(id));
        char h[12];
        int n = snprintf(h, sizeof h, "%u", ++*hops);
        mqtt_pb_pair(&pb, MQTT_PROP_USER_PROPERTY, BRIDGE_HOPS_PROP, strlen(BRIDGE_HOPS_PROP), h,
                     (size_t)n);
    }
    return mqtt_pb_props(&pb);
}

static int send_ack(struct bridge *b, bool to_remote, uint8_t type, uint16_t id, uint8_t rc)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    uint8_t level = to_remote ? b->conf.protocol : BRIDGE_LOCAL_LEVEL;
    /* 3.1.1 has no reason codes; a 5.0 reason goes on as it came. */
    p.u.ack.reason_code = level == MQTT_LEVEL_5 ? rc : 0;
    if (type == MQTT_PUBREL || type == MQTT_PUBCOMP)
        p.u.ack.reason_code = p.u.ack.reason_code == 0x92 ? 0x92 : 0; /* the only others */
    return bridge_encode(level, &p, to_remote ? bridge_remote_write : bridge_local_write, b);
}

enum forward_result {
    FORWARDED = 0,
    NOT_FORWARDED, /* never will be (no rule maps it, too large, a loop):
                      acknowledged where it came from, so that it does not
                      block the queue */
    LINK_FAILED    /* the other side's connection failed: not acknowledged
                      (the sender keeps it and sends it again) */
};

/* One PUBLISH from one side to the other. */
static enum forward_result forward(struct bridge *b, bool out, const struct mqtt_publish *in)
{
    char topic[65536];
    size_t tlen;
    if (!map_topic(b, out, in->topic.data, in->topic.len, topic, sizeof topic, &tlen))
        return NOT_FORWARDED;
    uint8_t level = out ? b->conf.protocol : BRIDGE_LOCAL_LEVEL;
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish = *in;
    p.u.publish.topic.data = (const uint8_t *)topic;
    p.u.publish.topic.len = (uint32_t)tlen;
    uint8_t *props = NULL;
    p.u.publish.props.data = NULL;
    p.u.publish.props.len = 0;
    if (level == MQTT_LEVEL_5 && (in->props.len > 0 || out)) {
        size_t cap = in->props.len + 64;
        unsigned hops = 0;
        props = malloc(cap);
        if (!props)
            return LINK_FAILED;
        p.u.publish.props = filter_props(&in->props, props, cap, out, &hops);
        if (hops > BRIDGE_MAX_HOPS) {
            free(props);
            return NOT_FORWARDED; /* a loop the origin did not catch */
        }
    }
    size_t size = mqtt_encode(level, &p, NULL, 0);
    if (size == 0 || (out && b->remote_max_packet && size > b->remote_max_packet)) {
        free(props);
        return NOT_FORWARDED;
    }
    int rc = bridge_encode(level, &p, out ? bridge_remote_write : bridge_local_write, b);
    free(props);
    if (rc != 0)
        return LINK_FAILED;
    if (out) {
        b->forwarded_out++;
        if (in->qos > 0) {
            if (b->inflight_out++ == 0)
                b->oldest_sent_ms = bridge_now_ms();
        }
        if (!bridge_remote_can_write(b))
            bridge_local_set_reading(b, false);
    } else {
        b->forwarded_in++;
        if (!bridge_local_can_write(b))
            bridge_remote_set_reading(b, false);
    }
    return FORWARDED;
}

static struct log_ratelimit drop_log;

/* A message that cannot be forwarded (no rule maps its topic any more,
 * over the remote's Maximum Packet Size): acknowledged where it came from,
 * counted and logged, so that it does not block the queue. */
static void drop(struct bridge *b, bool out, const struct mqtt_publish *in)
{
    b->dropped++;
    long n = log_ratelimit_check(&drop_log, 10);
    if (n >= 0)
        log_warning("bridge %s: %s message on '%s' dropped: no rule maps it, it is too large "
                    "or it went round a loop%s", b->conf.name, out ? "outgoing" : "incoming",
                    log_str((const char *)in->topic.data, in->topic.len), log_suppressed(n));
    if (in->qos == 1)
        send_ack(b, !out, MQTT_PUBACK, in->packet_id, 0);
    else if (in->qos == 2)
        send_ack(b, !out, MQTT_PUBREC, in->packet_id, 0);
}

static void acked_out(struct bridge *b)
{
    if (b->inflight_out > 0 && --b->inflight_out == 0)
        b->oldest_sent_ms = 0;
    else if (b->inflight_out > 0)
        b->oldest_sent_ms = bridge_now_ms(); /* the next one: an estimate */
}

void bridge_relay_from_local(struct bridge *b, const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH:
        switch (forward(b, true, &p->u.publish)) {
        case NOT_FORWARDED: drop(b, true, &p->u.publish); break;
        case LINK_FAILED: bridge_fail(b, "cannot write to %s", b->remote_name); break;
        default: break;
        }
        return;
    case MQTT_PUBREL: /* out QoS 2, second half */
        send_ack(b, true, MQTT_PUBREL, p->u.ack.packet_id, p->u.ack.reason_code);
        return;
    case MQTT_PUBACK: /* in QoS 1: committed and routed here */
    case MQTT_PUBREC: /* in QoS 2 */
    case MQTT_PUBCOMP:
        send_ack(b, true, p->type, p->u.ack.packet_id, p->u.ack.reason_code);
        return;
    default:
        return; /* SUBACK and the like: the bridge sends none */
    }
}

void bridge_relay_from_remote(struct bridge *b, const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH:
        switch (forward(b, false, &p->u.publish)) {
        case NOT_FORWARDED: drop(b, false, &p->u.publish); break;
        case LINK_FAILED: bridge_fail(b, "cannot write to the local connection"); break;
        default: break;
        }
        return;
    case MQTT_PUBACK: /* out QoS 1 done: the session's row goes */
    case MQTT_PUBCOMP:
        acked_out(b);
        send_ack(b, false, p->type, p->u.ack.packet_id, p->u.ack.reason_code);
        return;
    case MQTT_PUBREC:
        if (b->conf.protocol == MQTT_LEVEL_5 && p->u.ack.reason_code >= 0x80)
            acked_out(b); /* refused: no PUBREL follows */
        send_ack(b, false, MQTT_PUBREC, p->u.ack.packet_id, p->u.ack.reason_code);
        return;
    case MQTT_PUBREL: /* in QoS 2, second half */
        send_ack(b, false, MQTT_PUBREL, p->u.ack.packet_id, p->u.ack.reason_code);
        return;
    default:
        return;
    }
}

void bridge_relay_drained(struct bridge *b)
{
    if (b->state != BRIDGE_UP)
        return;
    if (b->local_read_paused && bridge_remote_can_write(b) && !b->suback_pending)
        bridge_local_set_reading(b, true);
    if (b->remote_read_paused && bridge_local_can_write(b))
        bridge_remote_set_reading(b, true);
}
