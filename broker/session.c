/*
 * session.c - a session's life: creation, its subscriptions, the binding to
 * a connection (attach, detach, takeover), expiry and its end.  Its queue
 * is session_queue.c's, its delayed will will_delay.c's.  See session.h for
 * the contract.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "acl_session.h"
#include "broker.h"
#include "flow.h"
#include "hashmap.h"
#include "keyed_hash.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "shared_subs.h"
#include "store.h"
#include "topic_tree.h"


static void free_log_id(struct session *s)
{
    if (s->log_id != s->client_id)
        free(s->log_id);
}

struct session *session_find(const char *client_id, size_t len)
{
    return hashmap_get(broker.sessions, client_id, len);
}

struct session *session_create(const char *client_id, size_t len, bool persistent)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->client_id = malloc(len + 1);
    if (!s->client_id)
        goto fail;
    memcpy(s->client_id, client_id, len);
    s->client_id[len] = '\0';
    /* An id with nothing to escape (the usual case) is its own printable
     * form, which saves an allocation per session. */
    s->log_id = log_escape_needed(s->client_id, len) ? log_escape_dup(s->client_id, len)
                                                     : s->client_id;
    if (!s->log_id)
        goto fail;
    s->client_id_len = len;
    s->persistent = persistent;
    s->created_at = (int64_t)time(NULL);
    if (hashmap_put(broker.sessions, client_id, len, s) != 0)
        goto fail;
    if (persistent && store_session_add(s) != 0)
        log_error("client %s: session not stored: it will not survive a restart", s->log_id);
    return s;
fail:
    if (s->log_id)
        free_log_id(s);
    free(s->client_id);
    free(s);
    return NULL;
}

static void forget(struct session *s, struct subscription *sub);
uint32_t session_cap_expiry(uint32_t requested)
{
    uint32_t cap = broker.cfg.session_expiry;
    return cap && requested > cap ? cap : requested;
}

void session_set_expiry(struct session *s, bool set, uint32_t expiry)
{
    s->expiry_set = set;
    s->expiry = set ? expiry : 0;
    if (set) {
        bool was = s->persistent;
        s->persistent = expiry > 0;
        if (s->persistent && !was && !s->db_id && store_session_add(s) != 0)
            log_error("client %s: session not stored: it will not survive a restart",
                      s->log_id);
    }
    if (s->db_id)
        store_session_expiry(s);
}

int64_t session_expiry_due(const struct session *s)
{
    if (s->conn || !s->persistent || s->offline_since == 0)
        return 0;
    uint32_t e = s->expiry_set ? s->expiry : broker.cfg.session_expiry;
    if (s->expiry_set ? e == UINT32_MAX : e == 0)
        return 0;
    int64_t since = s->offline_ms ? s->offline_ms : s->offline_since * 1000;
    return since + (int64_t)e * 1000;
}

static void session_free(struct session *s)
{
    flow_release(s);
    subscribe_job_cancel(s);
    session_drop_will(s);
    struct subscription *sub = s->subs;
    while (sub) {
        struct subscription *next = sub->next;
        forget(s, sub);
        sub = next;
    }
    s->subs = NULL;
    free(s->sub_table);
    session_free_deliveries(&s->inflight);
    session_free_deliveries(&s->queued);
    free(s->qos2_ids);
    free(s->ids_out);
    acl_session_free(s);
    free_log_id(s);
    free(s->client_id);
    free(s);
}

static const struct session_watch *watch;

void session_set_watch(const struct session_watch *w) { watch = w; }

void session_note_changed(struct session *s)
{
    if (watch)
        watch->changed(s);
}

void session_destroy(struct session *s)
{
    if (watch)
        watch->ended(s);
    if (s->n_shared)
        share_handoff(s); /* before its deliveries are dropped */
    /* The session ends: a will still waiting goes out now. */
    if (s->will)
        session_publish_will(s);
    store_session_delete(s);
    hashmap_remove(broker.sessions, s->client_id, s->client_id_len);
    session_free(s);
}

static void free_one(void *value, void *arg)
{
    (void)arg;
    session_free(value);
}

void session_destroy_all(void)
{
    hashmap_foreach(broker.sessions, free_one, NULL);
    hashmap_free(broker.sessions);
    broker.sessions = NULL;
}

/* ---- subscriptions ---- */

/* A session with few subscriptions scans its list: a table would cost more
 * memory than it saves time. */
#define SUB_TABLE_MIN 8

static uint64_t filter_hash(const char *filter, size_t len)
{
    return keyed_hash(hash_key_process(), filter, len);
}

static bool sub_is(const struct subscription *sub, uint64_t h, const char *filter, size_t len)
{
    return sub->hash == h && sub->len == len && memcmp(sub->filter, filter, len) == 0;
}

static void table_link(struct session *s, struct subscription *sub)
{
    struct subscription **b = &s->sub_table[sub->hash & (s->sub_table_cap - 1)];
    sub->hnext = *b;
    *b = sub;
}

/* (Re)builds the table at `cap` buckets from the list.  Best effort: out
 * of memory keeps the table there is (or the list scan). */
static void table_resize(struct session *s, uint32_t cap)
{
    struct subscription **t = calloc(cap, sizeof *t);
    if (!t)
        return;
    free(s->sub_table);
    s->sub_table = t;
    s->sub_table_cap = cap;
    for (struct subscription *sub = s->subs; sub; sub = sub->next)
        table_link(s, sub);
}

static struct subscription *lookup(const struct session *s, const char *filter, size_t len,
                                   uint64_t h)
{
    if (!s->sub_table) {
        for (struct subscription *sub = s->subs; sub; sub = sub->next)
            if (sub_is(sub, h, filter, len))
                return sub;
        return NULL;
    }
    for (struct subscription *sub = s->sub_table[h & (s->sub_table_cap - 1)]; sub;
         sub = sub->hnext)
        if (sub_is(sub, h, filter, len))
            return sub;
    return NULL;
}

struct subscription *session_subscription(const struct session *s, const char *filter,
                                          size_t len)
{
    return lookup(s, filter, len, filter_hash(filter, len));
}

/* Adds sub to the list and the table. */
static void sub_link(struct session *s, struct subscription *sub)
{
    sub->prev = NULL;
    sub->next = s->subs;
    if (s->subs)
        s->subs->prev = sub;
    s->subs = sub;
    s->n_subs++;
    if (s->sub_table) {
        table_link(s, sub);
        if (s->n_subs > s->sub_table_cap)
            table_resize(s, s->sub_table_cap * 2);
    } else if (s->n_subs >= SUB_TABLE_MIN) {
        table_resize(s, 2 * SUB_TABLE_MIN);
    }
}

static void sub_unlink(struct session *s, struct subscription *sub)
{
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        s->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    if (s->sub_table) {
        struct subscription **p = &s->sub_table[sub->hash & (s->sub_table_cap - 1)];
        while (*p != sub)
            p = &(*p)->hnext;
        *p = sub->hnext;
    }
}

/* Puts the subscription into the topic tree: the session itself, or its
 * share group for a shared one. */
static int tree_add(struct session *s, struct subscription *sub)
{
    if (sub->inner == 0)
        return topic_tree_subscribe(broker.topics, sub->filter, sub->len, s, sub->options);
    return share_join(s, sub->filter, sub->len, sub->options, &sub->share);
}

static void tree_remove(struct session *s, struct subscription *sub)
{
    if (sub->share)
        share_leave(s, sub->share);
    else
        topic_tree_unsubscribe(broker.topics, sub->filter, sub->len, s);
}

static void set_id(struct session *s, struct subscription *sub, uint32_t id)
{
    s->n_sub_ids += (id != 0) - (sub->id != 0);
    sub->id = id;
}

int session_subscribe(struct session *s, const char *filter, size_t len, uint8_t options,
                      uint32_t id)
{
    uint64_t h = filter_hash(filter, len);
    struct subscription *sub = lookup(s, filter, len, h);
    if (sub) {
        sub->qos = MQTT_SUBOPT_QOS(options);
        sub->options = options;
        set_id(s, sub, id);
        tree_add(s, sub); /* replaces the options: needs no memory */
        store_sub_put(s, sub);
        return 0;
    }
    size_t inner = 0;
    if (share_parse(filter, len, &inner) < 0)
        return -1; /* callers check; a stored row from elsewhere may not */
    sub = calloc(1, sizeof *sub + len + 1);
    if (!sub)
        return -1;
    sub->hash = h;
    sub->qos = MQTT_SUBOPT_QOS(options);
    sub->options = options;
    sub->len = (uint16_t)len;
    sub->inner = (uint16_t)inner;
    memcpy(sub->filter, filter, len);
    sub->filter[len] = '\0';
    if (tree_add(s, sub) < 0) {
        free(sub);
        return -1;
    }
    set_id(s, sub, id);
    if (sub->share)
        s->n_shared++;
    sub_link(s, sub);
    store_sub_put(s, sub);
    return 1;
}

/* Frees a subscription already unlinked from the session. */
static void forget(struct session *s, struct subscription *sub)
{
    tree_remove(s, sub);
    set_id(s, sub, 0);
    if (sub->share)
        s->n_shared--;
    s->n_subs--;
    free(sub);
}

int session_unsubscribe(struct session *s, const char *filter, size_t len)
{
    struct subscription *sub = session_subscription(s, filter, len);
    if (!sub)
        return 0;
    store_sub_delete(s, filter, len);
    sub_unlink(s, sub);
    forget(s, sub);
    return 1;
}

size_t session_subscription_ids(const struct session *s, const char *topic, size_t topic_len,
                                uint32_t *out, size_t max)
{
    size_t n = 0;
    if (s->n_sub_ids == 0)
        return 0;
    for (const struct subscription *sub = s->subs; sub; sub = sub->next) {
        if (sub->id == 0 || !mqtt_topic_matches(sub->filter + sub->inner, sub->len - sub->inner,
                                                topic, topic_len))
            continue;
        if (n == max)
            break;
        out[n++] = sub->id;
    }
    return n;
}

/* ---- connection binding ---- */

void session_attach(struct session *s, struct conn *c)
{
    s->conn = c;
    session_note_changed(s);
    s->offline_ms = 0;
    s->attached_at = (int64_t)time(NULL);
    if (s->offline_since) {
        s->offline_since = 0;
        store_session_offline(s, 0);
    }
    session_resend_inflight(s);
}

void session_detach(struct session *s)
{
    s->conn = NULL;
    session_note_changed(s);
    free(s->ids_out); /* an offline session gives no ids */
    s->ids_out = NULL;
    /* Offline, its queue's policy applies: nobody waits for it. */
    flow_release(s);
    if (s->qos2_ids && s->n_qos2_ids == 0) {
        /* The bitmap is kept while connected (no churn per QoS 2 message)
         * but an idle offline session should not hold 8 KiB. */
        free(s->qos2_ids);
        s->qos2_ids = NULL;
    }
    if (!s->persistent) {
        session_destroy(s);
        return;
    }
    /* Counted in ms: from whole seconds, a 2 s Session Expiry Interval
     * could end (and publish a will) after 1.1 s.  The store keeps whole
     * seconds, rounded up: late rather than early after a restart. */
    s->offline_ms = message_now_ms();
    s->offline_since = (s->offline_ms + 999) / 1000;
    store_session_offline(s, s->offline_since);
    /* Shared messages it was never sent need not wait for its return when
     * another member is online (shared_subs.h).  Not on a takeover: the
     * session is back at once, or ends and hands everything on in order. */
    if (s->n_shared && !s->taking_over)
        share_release_queued(s);
    store_expiry_note(session_expiry_due(s));
    /* Now that nothing more can change them, store the packet ids of
     * QoS 1 messages in flight, so that a restarted broker resends them
     * with their ids and DUP, as 3.1.1 asks.  (After a crash while the
     * client was connected, they are resent as new deliveries: QoS 1 allows
     * the duplicate.) */
    for (struct delivery *d = s->inflight.head; d && s->db_id; d = d->next)
        if (d->state == DELIVERY_WAIT_PUBACK)
            store_delivery_state(s, d);
    if (s->db_id && s->queued.head) {
        /* An offline session costs no message memory: its queue is in
         * the store and is read again when it returns.  In-flight ones
         * stay, to be resent with their packet ids. */
        s->loaded_seq = s->queued.head->seq - 1;
        s->backlog += s->queued.count;
        if (s->added_batch && s->added_batch == store_open_batch())
            for (const struct delivery *d = s->queued.head; d; d = d->next)
                if (d->seq >= s->added_first_seq) { /* now in the store only */
                    s->added_backlog++;
                    s->added_backlog_bytes += d->size;
                }
        session_free_deliveries(&s->queued);
        s->queued_mem = 0;
    }
}

void session_qos2_forget(struct session *s, uint16_t packet_id)
{
    if (!session_qos2_pending(s, packet_id))
        return;
    s->qos2_ids[packet_id >> 3] &= (uint8_t)~(1u << (packet_id & 7));
    s->n_qos2_ids--;
}
