/*
 * store_load.c - the sessions of the store brought back and ended: the
 * start-up replay of sessions, subscriptions, inbound QoS 2 ids, queue
 * counters and retained messages, and session expiry.  It stands above the
 * sessions it creates and destroys; what the sessions themselves read from
 * the store is store_read.c's.
 *
 * Queued messages are not loaded at start-up: a session's queue is read a
 * window at a time when it connects (store_load_deliveries), so start-up
 * time and memory do not grow with the number of queued messages.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl_session.h"
#include "broker.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "store.h"
#include "store_internal.h"
#include "topic_tree.h"

/* Runs `sql` and calls row() for each row; returns 0 or -1 (logged). */
static int each_row(const char *sql, int (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_st.db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("store: %s: %s", sql, sqlite3_errmsg(store_st.db));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (row(st, arg) != 0)
            break;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("store: loading: %s", sqlite3_errmsg(store_st.db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs a write with up to two integer parameters; returns the number of
 * rows changed, or -1 (logged). */
static int exec_int(const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store_st.db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        int n = sqlite3_bind_parameter_count(st);
        if (n >= 1)
            sqlite3_bind_int64(st, 1, a);
        if (n >= 2)
            sqlite3_bind_int64(st, 2, b);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        log_error("store: %s: %s", sql, sqlite3_errmsg(store_st.db));
        return -1;
    }
    return sqlite3_changes(store_st.db);
}

/* store row id -> session, for the duration of the replay */
static struct hashmap *by_id;

static struct session *session_of(sqlite3_stmt *st, int col)
{
    int64_t id = sqlite3_column_int64(st, col);
    return hashmap_get(by_id, &id, sizeof id);
}

static int load_session(sqlite3_stmt *st, void *arg)
{
    (void)arg;
    int64_t id = sqlite3_column_int64(st, 0);
    const char *client_id = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    struct session *s = session_create(client_id ? client_id : "", (size_t)len, true);
    if (!s || hashmap_put(by_id, &id, sizeof id, s) != 0) {
        log_error("store: out of memory loading sessions");
        return -1;
    }
    s->db_id = id;
    s->offline_since = sqlite3_column_int64(st, 2);
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
        /* A 5.0 session: its own Session Expiry Interval. */
        s->expiry_set = true;
        s->expiry = (uint32_t)sqlite3_column_int64(st, 5);
    }
    store_expiry_note(session_expiry_due(s));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
        /* A will waiting for its delay: armed (or published, if due) by
         * session_start_wills once the whole store is loaded. */
        const void *props = sqlite3_column_blob(st, 11);
        const void *payload = sqlite3_column_blob(st, 8);
        const char *topic = sqlite3_column_blob(st, 7);
        struct message *m = message_new_raw(topic ? topic : "", (size_t)sqlite3_column_bytes(st, 7),
                                            payload, (size_t)sqlite3_column_bytes(st, 8),
                                            (uint8_t)sqlite3_column_int(st, 9),
                                            sqlite3_column_int(st, 10) != 0, props,
                                            props ? (size_t)sqlite3_column_bytes(st, 11) : 0, 0);
        if (!m) {
            log_error("store: out of memory loading the will of client %s", s->log_id);
            return -1;
        }
        m->expiry_interval = (uint32_t)sqlite3_column_int64(st, 12); /* starts when published */
        session_restore_will(s, m, sqlite3_column_int64(st, 6));
    }
    if (sqlite3_column_int(st, 4)) {
        /* The owner it had: the ACL keeps applying while it is offline,
         * and only that user may resume it. */
        /* NULL = anonymous; a zero-length blob is the user name "". */
        const char *user = NULL;
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            user = sqlite3_column_blob(st, 3);
            if (!user)
                user = "";
        }
        if (acl_session_identify(s, user, (size_t)sqlite3_column_bytes(st, 3)) != 0)
            return -1;
    }
    return 0;
}

static int load_subscription(sqlite3_stmt *st, void *arg)
{
    (void)arg;
    struct session *s = session_of(st, 0);
    const char *filter = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    int64_t v = sqlite3_column_int64(st, 2);
    if (s && filter &&
        session_subscribe(s, filter, (size_t)len, store_sub_options_byte(v),
                          store_sub_options_id(v)) < 0)
        return -1;
    return 0;
}

static int load_qos2(sqlite3_stmt *st, void *arg)
{
    (void)arg;
    struct session *s = session_of(st, 0);
    if (s && session_qos2_mark(s, (uint16_t)sqlite3_column_int(st, 1)) < 0)
        return -1;
    return 0;
}

static int load_counters(sqlite3_stmt *st, void *arg)
{
    uint64_t *total = arg;
    struct session *s = session_of(st, 0);
    if (!s)
        return 0;
    s->backlog = (uint32_t)sqlite3_column_int64(st, 1);
    s->n_queued = (uint32_t)sqlite3_column_int64(st, 2);
    s->queued_bytes = (uint64_t)sqlite3_column_int64(st, 3);
    s->last_seq = sqlite3_column_int64(st, 4);
    *total += s->backlog;
    return 0;
}

static int load_retained(sqlite3_stmt *st, void *arg)
{
    (void)arg;
    struct message *m = store_message_from_row(st, 0);
    if (!m)
        return -1;
    void *old = topic_tree_set_retained(broker.topics, m->topic, m->topic_len, m);
    if (old == m) {
        message_unref(m);
        return -1;
    }
    message_unref(old);
    return 0;
}

int store_load(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t now = (int64_t)time(NULL);
    int rc = -1;
    by_id = hashmap_new();
    if (!by_id)
        return -1;
    store_st.loading = true;

    /* Sessions that were connected when petreld stopped went offline then. */
    if (exec_int("UPDATE sessions SET offline_since = ?1 WHERE offline_since = 0", now, 0) < 0)
        goto out;
    store_expire_sessions();
    /* Retained messages whose Message Expiry Interval ran out meanwhile. */
    int n_exp = exec_int("DELETE FROM retained WHERE message_id IN (SELECT id FROM messages "
                         "WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
                         message_now_ms(), 0);
    if (n_exp > 0)
        log_notice("store: %d retained messages expired while petreld was stopped", n_exp);

    uint64_t queued = 0;
    if (each_row("SELECT id, client_id, offline_since, username, identified, expiry, will_at, "
                 "will_topic, will_payload, will_qos, will_retain, will_properties, will_expiry "
                 "FROM sessions", load_session, NULL) != 0 ||
        each_row("SELECT session_id, filter, options FROM subscriptions", load_subscription, NULL) != 0 ||
        each_row("SELECT session_id, packet_id FROM inbound_qos2", load_qos2, NULL) != 0 ||
        each_row("SELECT session_id, count(*), sum(state = 0), total(CASE WHEN state = 0 "
                 "THEN size END), max(seq) FROM deliveries GROUP BY session_id",
                 load_counters, &queued) != 0 ||
        each_row("SELECT m.id, r.topic, m.payload, m.qos, m.retain, m.properties, m.expires_at "
                 "FROM retained r "
                 "JOIN messages m ON m.id = r.message_id", load_retained, NULL) != 0)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_notice("store: %s loaded in %.3f s: %zu sessions, %zu subscriptions, %llu queued "
               "messages (left on disk), %zu retained",
               store_st.path, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
               hashmap_count(by_id), topic_tree_subscription_count(broker.topics),
               (unsigned long long)queued, topic_tree_retained_count(broker.topics));
    rc = 0;
out:
    store_st.loading = false;
    hashmap_free(by_id);
    by_id = NULL;
    /* Expired members of shared subscriptions, left by the delete above:
     * now that every session is loaded and writes count again, they end
     * like any expiring session, handing their messages to another member
     * of the group, in one transaction with their removal.  Before any
     * client can connect and resume them.  Sessions with a pending will
     * were kept for the same reason: ending, they publish it.  Then the
     * wills of the sessions that live on go out if due, or wait again. */
    if (rc == 0) {
        store_expire_sessions();
        session_start_wills();
    }
    return rc;
}

struct expiry_ctx {
    int64_t now;    /* unix ms, as session_expiry_due */
    int64_t next;   /* earliest due time among the sessions kept */
    struct session **list;
    size_t n, cap;
};

static void collect_expired(void *value, void *arg)
{
    struct session *s = value;
    struct expiry_ctx *ctx = arg;
    int64_t due = session_expiry_due(s);
    if (due == 0)
        return;
    if (due > ctx->now) {
        if (due < ctx->next)
            ctx->next = due;
        return;
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 16;
        struct session **p = realloc(ctx->list, cap * sizeof *p);
        if (!p) {
            ctx->next = ctx->now + 1000; /* try again in a second */
            return;
        }
        ctx->list = p;
        ctx->cap = cap;
    }
    ctx->list[ctx->n++] = s;
}

void store_expire_sessions(void)
{
    int64_t now = (int64_t)time(NULL);
    if (store_st.loading && store_st.db) {
        /* Before the replay: expired sessions are not even loaded.  NULL
         * expiry: a 3.1.1 session under session_expiry (0 = forever);
         * otherwise its own interval, 4294967295 = never.  Members of a
         * shared subscription are loaded all the same, and expired once
         * the replay is over, so that their messages go to another
         * member (store_load); so are sessions with a pending will, which
         * is published when they end. */
        int n = exec_int("DELETE FROM sessions WHERE offline_since > 0 AND CASE WHEN expiry IS NULL "
                         "THEN ?2 > 0 AND offline_since + ?2 <= ?1 "
                         "ELSE expiry < 4294967295 AND offline_since + expiry <= ?1 END AND will_at IS NULL "
                         "AND id NOT IN (SELECT session_id FROM subscriptions "
                         "WHERE substr(filter, 1, 7) = CAST('$share/' AS BLOB))",
                         now, broker.cfg.session_expiry);
        if (n > 0)
            log_notice("store: %d sessions expired while petreld was stopped", n);
        return;
    }
    /* In ms from here (session_expiry_due): whole seconds made sessions
     * end up to a second early. */
    int64_t now_ms = message_now_ms();
    if (now_ms < store_expiry_earliest())
        return;
    /* The session table cannot change while being walked: collect first. */
    struct expiry_ctx ctx = {now_ms, INT64_MAX, NULL, 0, 0};
    hashmap_foreach(broker.sessions, collect_expired, &ctx);
    store_expiry_restart(ctx.next);
    for (size_t i = 0; i < ctx.n; i++) {
        struct session *s = ctx.list[i];
        log_notice("client %s: session expired (offline for more than %u s)", s->log_id,
                   s->expiry_set ? s->expiry : broker.cfg.session_expiry);
        session_destroy(s);
    }
    free(ctx.list);
}
