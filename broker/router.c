/*
 * router.c - matching a message against the topic tree and handing it to
 * sessions (the retained value of its topic is set by retain.c).
 *
 * A subscriber with several overlapping filters must get one copy at the
 * highest granted QoS: matches are collected with a per-session generation
 * stamp, so deduplication costs no lookup and no allocation per message.
 *
 * Every delivery passes the ACL's read check here, the one place all
 * messages go through: live messages, wills, $SYS and retained messages
 * sent on subscribe.  acl_session.c keeps the check cheap.
 *
 * Shared subscriptions appear in the tree as one subscriber per group
 * (flagged in its options): a matched group is collected apart and hands the
 * message to one member (shared_subs.c), after the ordinary subscribers.
 * MQTT 5.0 options are applied per matching filter: No Local skips a filter
 * of the publishing session, Retain As Published on any matching filter
 * keeps the retain flag.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "array_grow.h"
#include "broker.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "retain.h"
#include "session.h"
#include "shared_subs.h"
#include "topic_tree.h"

/* Sessions reached by the message being routed; reused between messages. */
/* (void * so that one growth function serves both arrays.) */
static void **matched;
static size_t matched_len, matched_cap;
/* Share groups reached by it: each is reported once (one tree node). */
static void **groups;
static size_t groups_len, groups_cap;
static bool matched_oom;

/* Appends p to a growing scratch array; false when out of memory. */
static bool push(void ***arr, size_t *len, size_t *cap, void *p)
{
    if (*len == *cap) {
        void **n = array_grow(*arr, cap, *len + 1, sizeof *n, 64);
        if (!n) {
            matched_oom = true;
            return false;
        }
        *arr = n;
    }
    (*arr)[(*len)++] = p;
    return true;
}

/* arg: the publishing session, or NULL. */
static void collect(void *subscriber, uint8_t options, void *arg)
{
    if (options & SHARE_TREE_FLAG) {
        push(&groups, &groups_len, &groups_cap, subscriber);
        return;
    }
    struct session *s = subscriber;
    if ((options & MQTT_SUBOPT_NO_LOCAL) && s == arg)
        return;
    uint8_t qos = MQTT_SUBOPT_QOS(options);
    bool rap = (options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED) != 0;
    if (s->match_stamp == broker.match_stamp) {
        if (qos > s->match_qos)
            s->match_qos = qos;
        s->match_rap |= rap;
        return;
    }
    if (!push(&matched, &matched_len, &matched_cap, s))
        return;
    s->match_stamp = broker.match_stamp;
    s->match_qos = qos;
    s->match_rap = rap;
}

void router_publish(struct message *msg, const struct session *origin)
{
    struct route_result res;
    router_publish_counted(msg, origin, &res);
}

static void route(struct message *msg, const struct session *origin, bool keep_retained,
                  int shares, struct route_result *res);

static const struct router_cluster *cluster; /* NULL alone */

void router_set_cluster(const struct router_cluster *c)
{
    cluster = c;
}

void router_publish_counted(struct message *msg, const struct session *origin,
                            struct route_result *res)
{
    /* the other nodes' subscribers (none alone) */
    bool kept_local = cluster && cluster->forward(msg) < 0;
    route(msg, origin, true, kept_local ? 1 : 0, res);
    if (kept_local)
        res->refused++; /* the outbox was full (cluster.h) */
}

void router_publish_from_cluster(struct message *msg)
{
    struct route_result res;
    /* Its retain flag is kept for Retain As Published, but the value is
     * not retained from here: retained values come from the cluster's
     * retained stream, in its order (cluster_retained.c). */
    route(msg, NULL, false, -1, &res);
}

/* shares: 1 the cluster kept msg on this node (its share groups are served
 * here), 0 a local publish (the cluster's share_here says), -1 from the cluster
 * (the groups get it through their own subscriptions, cluster_share.c). */
static void route(struct message *msg, const struct session *origin, bool keep_retained,
                  int shares, struct route_result *res)
{
    res->taken = res->refused = 0;
    if (msg->retain && keep_retained)
        retain_set(msg);

    broker.match_stamp++;
    matched_len = 0;
    groups_len = 0;
    matched_oom = false;
    topic_tree_match(broker.topics, msg->topic, msg->topic_len, collect, (void *)origin);
    if (matched_oom)
        log_error("out of memory while routing '%s': some subscribers missed it",
                  log_str(msg->topic, msg->topic_len));
    bool check = acl_enabled();
    for (size_t i = 0; i < matched_len; i++) {
        struct session *s = matched[i];
        if (check && !acl_may_read(s, msg->topic, msg->topic_len)) {
            broker.stats.acl_read_denied++;
            continue;
        }
        uint8_t qos = msg->qos < s->match_qos ? msg->qos : s->match_qos;
        int rc = session_deliver(s, msg, qos, s->match_rap && msg->retain);
        if (rc == SESSION_TAKEN) {
            res->taken++;
            if (msg->xid && cluster)
                cluster->delivered(s, msg);
        }
        else if (rc == SESSION_REFUSED)
            res->refused++;
    }
    if (groups_len && (shares < 0 || (cluster && !cluster->share_here(msg, shares > 0))))
        groups_len = 0; /* one member cluster-wide: the cluster chooses */
    for (size_t i = 0; i < groups_len; i++)
        share_route(groups[i], msg);
    res->taken += (uint32_t)groups_len; /* a group hands it on, or counts the drop */
}

void router_shutdown(void)
{
    free(matched);
    matched = NULL;
    matched_len = matched_cap = 0;
    free(groups);
    groups = NULL;
    groups_len = groups_cap = 0;
}
