/*
 * shared_subs.c - share groups: who belongs to "$share/{group}/{filter}",
 * which member gets the next message, and the handoff of a departing
 * member's messages.  See shared_subs.h for the behaviour.
 *
 * Groups are found by their full filter string in a map that exists only
 * while some group does.  Members are kept in joining order in an array,
 * with a cursor for round-robin; groups are small (a handful of workers),
 * so a linear scan to find a member costs less than an index.
 */
#include "shared_subs.h"

#include <stdlib.h>
#include <string.h>

#include "acl_session.h"
#include "array_grow.h"
#include "broker.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "session.h"
#include "topic_tree.h"

struct share_member {
    struct session *s;
    uint8_t options;        /* its subscription options, granted QoS included */
};

struct share_group {
    struct share_member *members; /* in joining order */
    size_t cap;
    uint32_t n;
    uint32_t next;          /* round-robin cursor: the member to try first */
    uint16_t inner;         /* start of the filter proper in key */
    uint16_t key_len;
    char key[];             /* "$share/{group}/{filter}" */
};

static struct hashmap *groups; /* key -> struct share_group; NULL when none */
static struct log_ratelimit drop_log;

int share_parse(const char *filter, size_t len, size_t *inner)
{
    static const char prefix[] = "$share/";
    const size_t plen = sizeof prefix - 1;
    if (len < plen || memcmp(filter, prefix, plen) != 0)
        return 0;
    size_t i = plen;
    while (i < len && filter[i] != '/') {
        if (filter[i] == '+' || filter[i] == '#')
            return -1;
        i++;
    }
    /* A share name, then '/', then a filter of at least one character. */
    if (i == plen || i + 1 >= len)
        return -1;
    *inner = i + 1;
    return 1;
}

static struct share_member *find_member(struct share_group *g, const struct session *s)
{
    for (uint32_t i = 0; i < g->n; i++)
        if (g->members[i].s == s)
            return &g->members[i];
    return NULL;
}

static void each_group(void *value, void *arg)
{
    struct share_group *g = value;
    void (*cb)(const char *, size_t, size_t) = *(void (**)(const char *, size_t, size_t))arg;
    cb(g->key, g->key_len, g->inner);
}

void share_foreach_group(void (*cb)(const char *key, size_t len, size_t inner))
{
    if (groups)
        hashmap_foreach(groups, each_group, &cb);
}

static void (*watch)(const char *key, size_t len, size_t inner, bool on); /* NULL alone */

void share_set_watch(void (*w)(const char *key, size_t len, size_t inner, bool on))
{
    watch = w;
}

struct share_group *share_find(const char *full, size_t len)
{
    return groups ? hashmap_get(groups, full, len) : NULL;
}

static void group_free(struct share_group *g)
{
    if (watch)
        watch(g->key, g->key_len, g->inner, false);
    topic_tree_unsubscribe(broker.topics, g->key + g->inner, g->key_len - g->inner, g);
    hashmap_remove(groups, g->key, g->key_len);
    if (hashmap_count(groups) == 0) {
        hashmap_free(groups);
        groups = NULL;
    }
    free(g->members);
    free(g);
}

static struct share_group *group_get(const char *full, size_t len)
{
    size_t inner = 0;
    if (share_parse(full, len, &inner) != 1)
        return NULL;
    if (!groups && !(groups = hashmap_new()))
        return NULL;
    struct share_group *g = hashmap_get(groups, full, len);
    if (g)
        return g;
    g = calloc(1, sizeof *g + len);
    if (!g)
        goto fail;
    g->inner = (uint16_t)inner;
    g->key_len = (uint16_t)len;
    memcpy(g->key, full, len);
    if (hashmap_put(groups, full, len, g) != 0) {
        free(g);
        goto fail;
    }
    if (topic_tree_subscribe(broker.topics, full + inner, len - inner, g, SHARE_TREE_FLAG) < 0) {
        hashmap_remove(groups, full, len);
        free(g);
        goto fail;
    }
    if (watch)
        watch(g->key, g->key_len, g->inner, true);
    return g;
fail:
    if (hashmap_count(groups) == 0) {
        hashmap_free(groups);
        groups = NULL;
    }
    return NULL;
}

int share_join(struct session *s, const char *full, size_t len, uint8_t options,
               struct share_group **group)
{
    struct share_group *g = group_get(full, len);
    if (!g)
        return -1;
    struct share_member *m = find_member(g, s);
    if (m) {
        m->options = options;
        *group = g;
        return 0;
    }
    if (g->n == g->cap) {
        struct share_member *p = array_grow(g->members, &g->cap, g->n + 1, sizeof *p, 4);
        if (!p) {
            if (g->n == 0)
                group_free(g);
            return -1;
        }
        g->members = p;
    }
    g->members[g->n++] = (struct share_member){s, options};
    *group = g;
    return 1;
}

void share_leave(struct session *s, struct share_group *g)
{
    struct share_member *m = find_member(g, s);
    if (!m)
        return;
    uint32_t i = (uint32_t)(m - g->members);
    memmove(m, m + 1, (g->n - i - 1) * sizeof *m);
    g->n--;
    /* Keep the cursor on the member that was next. */
    if (i < g->next)
        g->next--;
    if (g->next >= g->n)
        g->next = 0;
    if (g->n == 0)
        group_free(g);
}

static uint8_t effective_qos(const struct message *msg, const struct share_member *m)
{
    uint8_t granted = MQTT_SUBOPT_QOS(m->options);
    return msg->qos < granted ? msg->qos : granted;
}

/* The member to receive msg, skipping `exclude`: connected members first,
 * then (for what is still QoS 1/2 for them, unless `connected_only`)
 * persistent offline ones, each round-robin from the cursor.  NULL if none
 * qualifies. */
static struct share_member *pick(struct share_group *g, const struct message *msg,
                                 const struct session *exclude, bool connected_only)
{
    bool check = acl_enabled();
    for (int pass = 0; pass < (connected_only ? 1 : 2); pass++) {
        for (uint32_t k = 0; k < g->n; k++) {
            uint32_t i = (g->next + k) % g->n;
            struct share_member *m = &g->members[i];
            struct session *s = m->s;
            if (s == exclude)
                continue;
            if (pass == 0 ? !s->conn
                          : s->conn || !s->persistent || effective_qos(msg, m) == 0)
                continue;
            if (check && !acl_may_read(s, msg->topic, msg->topic_len))
                continue;
            g->next = (i + 1) % g->n;
            return m;
        }
    }
    return NULL;
}

static void give(struct share_member *m, struct message *msg)
{
    bool retain = (m->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED) && msg->retain;
    session_deliver_shared(m->s, msg, effective_qos(msg, m), retain);
}

static void count_drop(const struct share_group *g, const struct message *msg)
{
    broker.stats.shared_dropped++;
    long suppressed = log_ratelimit_check(&drop_log, 10);
    if (suppressed >= 0)
        log_warning("shared subscription '%s': no member can take a QoS %u message on "
                    "'%s': dropped%s", log_str(g->key, g->key_len), msg->qos,
                    log_str(msg->topic, msg->topic_len),
                    log_suppressed(suppressed));
}

void share_route(struct share_group *g, struct message *msg)
{
    struct share_member *m = pick(g, msg, NULL, false);
    if (m) {
        broker.stats.shared_delivered++;
        give(m, msg);
    } else if (msg->qos > 0) {
        count_drop(g, msg);
    }
}

/* Gives one delivery of session s to another member of a group of s whose
 * filter matches its topic; `*connected_only` (the arg) limits the choice
 * to connected members.  Returns true if someone took it.  A message that
 * nobody can take is counted as dropped only when s is ending: otherwise
 * s keeps it. */
static bool hand_off(struct session *s, struct message *msg, void *arg)
{
    bool connected_only = *(const bool *)arg;
    struct share_group *first = NULL;
    for (struct subscription *sub = s->subs; sub; sub = sub->next) {
        if (!sub->share || !mqtt_topic_matches(sub->filter + sub->inner, sub->len - sub->inner,
                                               msg->topic, msg->topic_len))
            continue;
        if (!first)
            first = sub->share;
        struct share_member *m = pick(sub->share, msg, s, connected_only);
        if (m) {
            give(m, msg);
            return true;
        }
    }
    if (first && !connected_only)
        count_drop(first, msg);
    return false;
}

void share_handoff(struct session *s)
{
    bool connected_only = false;
    uint32_t moved = session_move_shared(s, false, hand_off, &connected_only);
    broker.stats.shared_redistributed += moved;
    if (moved)
        log_info("client %s: %u shared message%s handed to other members of the group",
                 s->log_id, moved, moved == 1 ? "" : "s");
}

/* Is a member of one of s's groups, other than s, connected? */
static bool other_member_online(const struct session *s)
{
    for (const struct subscription *sub = s->subs; sub; sub = sub->next) {
        if (!sub->share)
            continue;
        for (uint32_t i = 0; i < sub->share->n; i++)
            if (sub->share->members[i].s != s && sub->share->members[i].s->conn)
                return true;
    }
    return false;
}

void share_release_queued(struct session *s)
{
    /* Most of the time nobody else is online to take them, or nothing is
     * queued: the store is not read then. */
    if (s->n_queued == 0 || !other_member_online(s))
        return;
    bool connected_only = true;
    uint32_t moved = session_move_shared(s, true, hand_off, &connected_only);
    broker.stats.shared_redistributed += moved;
    if (moved)
        log_info("client %s: offline, %u queued shared message%s handed to connected members "
                 "of the group", s->log_id, moved, moved == 1 ? "" : "s");
}
