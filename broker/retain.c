/*
 * retain.c - the retained messages: one per topic, kept as values in the
 * topic tree (topic_tree.h) and in the store (store.h), set or cleared as
 * messages with the retain flag are routed, bounded in number and bytes,
 * and collected for a new subscription.
 */
#include "retain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "array_grow.h"
#include "broker.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "store.h"
#include "topic_tree.h"

static void count_retained(void *value, const char *topic, size_t topic_len, void *arg);

/* ---- retained totals -----------------------------------------------------
 * max_retained_messages and max_retained_bytes bound what clients make the
 * broker keep, in memory and on disk.  $SYS values are the broker's own
 * and do not count. */

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
        broker.retained_n++;
        broker.retained_bytes += retained_size(m);
    } else {
        broker.retained_n--;
        broker.retained_bytes -= retained_size(m);
    }
}

void retain_recount(void)
{
    broker.retained_n = 0;
    broker.retained_bytes = 0;
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
    if (!cur && max_n && broker.retained_n >= max_n)
        return over_count;
    uint64_t bytes = broker.retained_bytes - (cur ? retained_size(cur) : 0) + retained_size(msg);
    if (max_b && bytes > max_b && bytes > broker.retained_bytes)
        return over_bytes;
    return NULL;
}

void retain_set(struct message *msg)
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
                       "%llu bytes)%s", log_str(msg->topic, msg->topic_len), over, broker.retained_n,
                       (unsigned long long)broker.retained_bytes, log_suppressed(n));
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
        struct message **nv = array_grow(ctx->v, &ctx->cap, ctx->n + 1, sizeof *nv, 16);
        if (!nv) {
            ctx->oom = true;
            return;
        }
        ctx->v = nv;
    }
    ctx->v[ctx->n++] = message_ref(m);
}

struct message **retain_collect(struct session *s, const char *filter, size_t len, size_t *n)
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

void retain_free_all(void)
{
    topic_tree_foreach_retained(broker.topics, unref_retained, NULL);
}
