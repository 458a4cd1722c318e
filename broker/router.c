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
#include "broker.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "session.h"
#include "shared_subs.h"
#include "store.h"
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
        size_t ncap = *cap ? *cap * 2 : 64;
        void **n = realloc(*arr, ncap * sizeof *n);
        if (!n) {
            matched_oom = true;
            return false;
        }
        *arr = n;
        *cap = ncap;
    }
    (*arr)[(*len)++] = p;
    return true;
}

static void count_retained(void *value, const char *topic, size_t topic_len, void *arg);

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

/* ---- retained totals -----------------------------------------------------
 * max_retained_messages and max_retained_bytes bound what clients make the
 * broker keep, in memory and on disk.  $SYS values are the broker's own
 * and do not count. */

static size_t retained_n;
static uint64_t retained_bytes;
static struct log_ratelimit retained_log[2]; /* messages, bytes */

static bool is_sys(const struct message *m)
{
    return m->topic_len >= 5 && memcmp(m->topic, "$SYS/", 5) == 0;
}

static uint64_t retained_size(const struct message *m)
{
    return (uint64_t)m->topic_len + m->payload_len + m->props_len;
}

static void account(const struct message *m, int sign)
{
    if (!m || is_sys(m))
        return;
    if (sign > 0) {
        retained_n++;
        retained_bytes += retained_size(m);
    } else {
        retained_n--;
        retained_bytes -= retained_size(m);
    }
}

void router_retained_recount(void)
{
    retained_n = 0;
    retained_bytes = 0;
    topic_tree_foreach_retained(broker.topics, count_retained, NULL);
}

static const char over_count[] = "max_retained_messages";
static const char over_bytes[] = "max_retained_bytes";

/* Would msg, replacing `cur` (NULL if its topic has no retained value), keep
 * the totals within the limits?  A replacement never adds a topic. */
static const char *retained_over(const struct message *msg, const struct message *cur)
{
    uint64_t max_n = broker.cfg.max_retained_messages, max_b = broker.cfg.max_retained_bytes;
    if (is_sys(msg))
        return NULL;
    if (!cur && max_n && retained_n >= max_n)
        return over_count;
    uint64_t bytes = retained_bytes - (cur ? retained_size(cur) : 0) + retained_size(msg);
    if (max_b && bytes > max_b && bytes > retained_bytes)
        return over_bytes;
    return NULL;
}

static void set_retained(struct message *msg)
{
    struct message *cur = topic_tree_get_retained(broker.topics, msg->topic, msg->topic_len);
    if (msg->payload_len == 0) {
        if (!cur)
            return;
        store_retained_set(msg->topic, msg->topic_len, NULL);
        topic_tree_set_retained(broker.topics, msg->topic, msg->topic_len, NULL);
        account(cur, -1);
        message_unref(cur);
        return;
    }
    const char *over = retained_over(msg, cur);
    if (over) {
        /* Routed all the same; the topic keeps what it had. */
        broker.stats.retained_refused++;
        long n = log_ratelimit_check(&retained_log[over == over_bytes], 10);
        if (n >= 0)
            log_notice("retained message for '%s' not kept: %s reached (%zu messages, "
                       "%llu bytes)%s", log_str(msg->topic, msg->topic_len), over, retained_n, (unsigned long long)retained_bytes,
                       log_suppressed(n));
        return;
    }
    store_retained_set(msg->topic, msg->topic_len, msg);
    void *old = topic_tree_set_retained(broker.topics, msg->topic, msg->topic_len,
                                        message_ref(msg));
    if (old == msg) { /* not stored: out of memory */
        log_error("out of memory: retained message for '%s' not stored",
                  log_str(msg->topic, msg->topic_len));
        message_unref(msg);
        return;
    }
    account(old, -1);
    account(msg, +1);
    message_unref(old);
}

void router_publish(struct message *msg, const struct session *origin)
{
    struct route_result res;
    router_publish_counted(msg, origin, &res);
}

void router_publish_counted(struct message *msg, const struct session *origin,
                            struct route_result *res)
{
    res->taken = res->refused = 0;
    if (msg->retain)
        set_retained(msg);

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
        if (rc == SESSION_TAKEN)
            res->taken++;
        else if (rc == SESSION_REFUSED)
            res->refused++;
    }
    for (size_t i = 0; i < groups_len; i++)
        share_route(groups[i], msg);
    res->taken += (uint32_t)groups_len; /* a group hands it on, or counts the drop */
}

struct retained_ctx {
    struct session *s;
    bool check;     /* the filter is not wholly readable: check each */
    struct message **v;
    size_t n, cap;
    bool oom;
};

static void collect_retained(void *value, const char *topic, size_t topic_len, void *arg)
{
    (void)topic;
    (void)topic_len;
    struct retained_ctx *ctx = arg;
    struct message *m = value;
    if (ctx->oom)
        return;
    if (ctx->check && !acl_may_read(ctx->s, m->topic, m->topic_len)) {
        broker.stats.acl_read_denied++;
        return;
    }
    if (ctx->n == ctx->cap) {
        size_t ncap = ctx->cap ? ctx->cap * 2 : 16;
        struct message **nv = realloc(ctx->v, ncap * sizeof *nv);
        if (!nv) {
            ctx->oom = true;
            return;
        }
        ctx->v = nv;
        ctx->cap = ncap;
    }
    ctx->v[ctx->n++] = message_ref(m);
}

struct message **router_retained_collect(struct session *s, const char *filter, size_t len,
                                         size_t *n)
{
    struct retained_ctx ctx = {s, acl_enabled() && !acl_may_read_all(s, filter, len), NULL, 0,
                               0, false};
    topic_tree_match_retained(broker.topics, filter, len, collect_retained, &ctx);
    if (ctx.oom)
        log_error("client %s: out of memory collecting the retained messages of '%s': "
                  "some are not sent", s->log_id, log_str(filter, len));
    *n = ctx.n;
    if (ctx.n == 0) {
        free(ctx.v);
        return NULL;
    }
    return ctx.v;
}

static void count_retained(void *value, const char *topic, size_t topic_len, void *arg)
{
    (void)topic;
    (void)topic_len;
    (void)arg;
    account(value, +1);
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
    free(groups);
    groups = NULL;
    groups_len = groups_cap = 0;
}
