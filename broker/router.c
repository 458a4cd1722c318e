/*
 * router.c - matching a message against the topic tree and handing it to
 * sessions, plus the retained message store kept in the same tree.
 *
 * A subscriber with several overlapping filters must get one copy at the
 * highest granted QoS: matches are collected with a per-session generation
 * stamp, so deduplication costs no lookup and no allocation per message.
 *
 * Every delivery passes the ACL's read check here, the one place all
 * messages go through: live messages, wills, $SYS and retained messages
 * sent on subscribe.  acl_session.c keeps the check cheap.
 */
#include "router.h"

#include <stdlib.h>

#include "acl_session.h"
#include "broker.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "store.h"
#include "topic_tree.h"

/* Sessions reached by the message being routed; reused between messages. */
static struct session **matched;
static size_t matched_len, matched_cap;
static bool matched_oom;

static void collect(void *subscriber, uint8_t options, void *arg)
{
    (void)arg;
    struct session *s = subscriber;
    uint8_t qos = options & 3;
    if (s->match_stamp == broker.match_stamp) {
        if (qos > s->match_qos)
            s->match_qos = qos;
        return;
    }
    if (matched_len == matched_cap) {
        size_t cap = matched_cap ? matched_cap * 2 : 64;
        struct session **p = realloc(matched, cap * sizeof *p);
        if (!p) {
            matched_oom = true;
            return;
        }
        matched = p;
        matched_cap = cap;
    }
    s->match_stamp = broker.match_stamp;
    s->match_qos = qos;
    matched[matched_len++] = s;
}

void router_publish(struct message *msg)
{
    if (msg->retain) {
        store_retained_set(msg->topic, msg->topic_len, msg->payload_len ? msg : NULL);
        void *old;
        if (msg->payload_len == 0)
            old = topic_tree_set_retained(broker.topics, msg->topic, msg->topic_len, NULL);
        else {
            old = topic_tree_set_retained(broker.topics, msg->topic, msg->topic_len, message_ref(msg));
            if (old == msg) { /* not stored: out of memory */
                log_error("out of memory: retained message for '%s' not stored", msg->topic);
                old = NULL;
                message_unref(msg);
            }
        }
        message_unref(old);
    }

    broker.match_stamp++;
    matched_len = 0;
    matched_oom = false;
    topic_tree_match(broker.topics, msg->topic, msg->topic_len, collect, NULL);
    if (matched_oom)
        log_error("out of memory while routing '%s': some subscribers missed it", msg->topic);
    bool check = acl_enabled();
    for (size_t i = 0; i < matched_len; i++) {
        struct session *s = matched[i];
        if (check && !acl_may_read(s, msg->topic, msg->topic_len)) {
            broker.stats.acl_read_denied++;
            continue;
        }
        uint8_t qos = msg->qos < s->match_qos ? msg->qos : s->match_qos;
        session_deliver(s, msg, qos, false);
    }
}

struct retained_ctx {
    struct session *s;
    uint8_t qos;
    bool check;     /* the filter is not wholly readable: check each */
};

static void send_one_retained(void *value, const char *topic, size_t topic_len, void *arg)
{
    (void)topic;
    (void)topic_len;
    struct retained_ctx *ctx = arg;
    struct message *m = value;
    if (ctx->check && !acl_may_read(ctx->s, m->topic, m->topic_len)) {
        broker.stats.acl_read_denied++;
        return;
    }
    uint8_t qos = m->qos < ctx->qos ? m->qos : ctx->qos;
    session_deliver(ctx->s, m, qos, true);
}

void router_send_retained(struct session *s, const char *filter, size_t len, uint8_t qos)
{
    struct retained_ctx ctx = {s, qos, acl_enabled() && !acl_may_read_all(s, filter, len)};
    topic_tree_match_retained(broker.topics, filter, len, send_one_retained, &ctx);
}

static void unref_retained(void *value, const char *topic, size_t topic_len, void *arg)
{
    (void)topic;
    (void)topic_len;
    (void)arg;
    /* Only the reference is dropped: the tree itself is freed afterwards and
     * never looks at values, so the walk stays valid. */
    message_unref(value);
}

void router_shutdown(void)
{
    topic_tree_foreach_retained(broker.topics, unref_retained, NULL);
    free(matched);
    matched = NULL;
    matched_len = matched_cap = 0;
}
