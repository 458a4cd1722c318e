/*
 * store.c - the store's write path: prepared statements, the transaction
 * of each loop turn (group commit), and the packets that wait for it.
 * See store.h for the contract.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "session.h"
#include "store_internal.h"

struct store_state store_st;

static const char *const stmt_sql[ST_COUNT] = {
    [ST_SESSION_ADD] = "INSERT OR REPLACE INTO sessions(id, client_id, level, offline_since, "
                       "username, identified, expiry) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_SESSION_IDENTITY] = "UPDATE sessions SET username = ?2, identified = 1 WHERE id = ?1",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [ST_SESSION_OFFLINE] = "UPDATE sessions SET offline_since = ?2 WHERE id = ?1",
    [ST_SESSION_EXPIRY] = "UPDATE sessions SET expiry = ?2, level = ?3 WHERE id = ?1",
    [ST_SESSION_WILL] = "UPDATE sessions SET will_at = ?2, will_topic = ?3, will_payload = ?4, "
                         "will_qos = ?5, will_retain = ?6, will_properties = ?7, will_expiry = ?8 "
                         "WHERE id = ?1",
    [ST_SUB_PUT] = "INSERT OR REPLACE INTO subscriptions(session_id, filter, options) VALUES(?1, ?2, ?3)",
    [ST_SUB_DELETE] = "DELETE FROM subscriptions WHERE session_id = ?1 AND filter = ?2",
    [ST_MESSAGE_ADD] = "INSERT INTO messages(id, topic, payload, qos, retain, properties, "
                       "expires_at) VALUES(?5, ?1, ?2, ?3, ?4, ?6, ?7)",
    [ST_DELIVERY_ADD] = "INSERT INTO deliveries(session_id, seq, message_id, qos, retain, size) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_DELIVERY_STATE] = "UPDATE deliveries SET state = ?3, packet_id = ?4 "
                          "WHERE session_id = ?1 AND seq = ?2",
    [ST_DELIVERY_DELETE] = "DELETE FROM deliveries WHERE session_id = ?1 AND seq = ?2",
    [ST_DELIVERY_OLDEST] = "DELETE FROM deliveries WHERE session_id = ?1 AND seq = "
                           "(SELECT seq FROM deliveries WHERE session_id = ?1 AND seq > ?2 "
                           "AND state = 0 ORDER BY seq LIMIT 1) RETURNING size",
    [ST_DELIVERY_LOAD] = "SELECT d.seq, d.qos, d.retain, d.state, d.packet_id, d.size, m.id, "
                         "m.topic, m.payload, m.qos, m.retain, m.properties, m.expires_at FROM deliveries d "
                         "JOIN messages m ON m.id = d.message_id "
                         "WHERE d.session_id = ?1 AND d.seq > ?2 ORDER BY d.seq LIMIT ?3",
    [ST_QOS2_ADD] = "INSERT OR IGNORE INTO inbound_qos2(session_id, packet_id) VALUES(?1, ?2)",
    [ST_QOS2_DELETE] = "DELETE FROM inbound_qos2 WHERE session_id = ?1 AND packet_id = ?2",
    [ST_RETAINED_DELETE] = "DELETE FROM retained WHERE topic = ?1",
    [ST_RETAINED_ADD] = "INSERT INTO retained(topic, message_id) VALUES(?1, ?2)",
    [ST_SUBS_CLEAR] = "DELETE FROM subscriptions WHERE session_id = ?1",
    [ST_QOS2_CLEAR] = "DELETE FROM inbound_qos2 WHERE session_id = ?1",
};

/* ---- packets waiting for a commit ---- */

struct pending {
    struct conn *conn;  /* NULL once the connection is gone */
    uint64_t batch;     /* sent when this batch is durable */
    uint32_t len;
    uint8_t *data;      /* points to inline_buf or to the heap */
    uint8_t inline_buf[8];
};

static struct event *redo_ev;
static struct pending *pending;
static size_t n_pending, cap_pending;
static struct event *commit_ev;
static struct log_ratelimit fail_log;

static void commit_cb(evutil_socket_t fd, short what, void *arg);

/* How long after a failed commit the lost changes are written again. */
#define REDO_DELAY_MS 1000

static void redo_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    store_redo();
}
static void repoint_inline(size_t from);
static void free_entry(struct pending *e);

int store_open(const char *data_dir, char *err, size_t errlen)
{
    memset(&store_st, 0, sizeof store_st);
    snprintf(store_st.path, sizeof store_st.path, "%s/%s", data_dir, STORE_FILE);
    if (store_schema_open(&store_st.db, store_st.path, false, err, errlen) != 0)
        return -1;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(store_st.db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &store_st.stmt[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: preparing statements: %s", store_st.path,
                     sqlite3_errmsg(store_st.db));
            store_close();
            return -1;
        }
    }
    /* The commit event is activated by the first write of a turn, which
     * puts it behind every callback already made ready by that turn's poll:
     * it runs last, and one transaction groups the whole turn.  (A lower
     * priority would not do: libevent starves lower priorities while
     * higher ones keep getting events, so commits would stall under load.) */
    commit_ev = event_new(broker.base, -1, 0, commit_cb, NULL);
    if (!commit_ev) {
        snprintf(err, errlen, "cannot create the commit event");
        store_close();
        return -1;
    }
    store_st.cur_batch = 1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_st.db, "SELECT (SELECT max(id) FROM sessions), "
                           "(SELECT max(id) FROM messages)", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        store_st.last_session_id = sqlite3_column_int64(st, 0);
        store_st.last_message_id = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    redo_ev = evtimer_new(broker.base, redo_cb, NULL);
    if (!redo_ev) {
        snprintf(err, errlen, "cannot create the store retry timer");
        store_close();
        return -1;
    }
    if (store_sync_start(store_st.path, broker.cfg.durability == DURABILITY_POWER) != 0) {
        snprintf(err, errlen, "cannot start the storage thread");
        store_close();
        return -1;
    }
    return 0;
}

void store_close(void)
{
    if (!store_st.db)
        return;
    if (store_st.in_txn && commit_ev)
        commit_cb(-1, 0, NULL);
    store_sync_stop();
    for (size_t i = 0; i < n_pending; i++)
        free_entry(&pending[i]);
    free(pending);
    pending = NULL;
    n_pending = cap_pending = 0;
    if (commit_ev)
        event_free(commit_ev);
    commit_ev = NULL;
    if (redo_ev)
        event_free(redo_ev);
    redo_ev = NULL;
    store_batch_committed(); /* frees the redo lists */
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store_st.stmt[i]);
    /* Closing the last connection checkpoints the WAL into the database. */
    sqlite3_close(store_st.db);
    store_st.db = NULL;
}

bool store_degraded(void) { return store_st.degraded; }

int store_fail(const char *what)
{
    long n = log_ratelimit_check(&fail_log, 10);
    if (n >= 0)
        log_error("store: %s failed: %s%s", what, sqlite3_errmsg(store_st.db),
                  log_suppressed(n));
    store_st.txn_failed = true;
    return -1;
}

int store_begin(void)
{
    if (store_st.in_txn)
        return 0;
    int rc = sqlite3_exec(store_st.db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_fail("BEGIN");
    store_st.in_txn = true;
    store_st.txn_failed = false;
    event_active(commit_ev, 0, 0);
    return 0;
}

/* ---- sending after commit ---- */

static void send_now(struct conn *c, const uint8_t *data, size_t len)
{
    /* An inbound QoS 1 is acknowledged now: it no longer counts against
     * the Receive Maximum the broker announced. */
    if ((data[0] >> 4) == MQTT_PUBACK && c->in_qos1_unacked > 0)
        c->in_qos1_unacked--;
    conn_write(c, data, len);
}

void store_send_after_commit(struct conn *c, const struct mqtt_packet *p)
{
    size_t len = mqtt_encode(c->level, p, NULL, 0);
    if (len == 0)
        return;
    bool waiting = store_st.in_txn || store_st.synced < store_st.committed;
    if (!waiting) {
        conn_send_packet(c, p);
        return;
    }
    if (n_pending == cap_pending) {
        size_t cap = cap_pending ? cap_pending * 2 : 256;
        struct pending *np = realloc(pending, cap * sizeof *np);
        if (!np) {
            conn_close(c, "out of memory", true);
            return;
        }
        pending = np;
        cap_pending = cap;
        repoint_inline(0);
    }
    struct pending *e = &pending[n_pending];
    e->data = len <= sizeof e->inline_buf ? e->inline_buf : malloc(len);
    if (!e->data) {
        conn_close(c, "out of memory", true);
        return;
    }
    mqtt_encode(c->level, p, e->data, len);
    e->conn = c;
    e->len = (uint32_t)len;
    e->batch = store_st.in_txn ? store_st.cur_batch : store_st.committed;
    c->n_pending++;
    n_pending++;
}

void store_forget_conn(struct conn *c)
{
    for (size_t i = 0; i < n_pending && c->n_pending > 0; i++) {
        if (pending[i].conn == c) {
            pending[i].conn = NULL;
            c->n_pending--;
        }
    }
}

/* Entries with short packets keep them inline; moving an entry (realloc,
 * memmove) must point it at its own copy again. */
static void repoint_inline(size_t from)
{
    for (size_t k = from; k < n_pending; k++)
        if (pending[k].len <= sizeof pending[k].inline_buf)
            pending[k].data = pending[k].inline_buf;
}

static void free_entry(struct pending *e)
{
    if (e->data != e->inline_buf)
        free(e->data);
}

/* Sends the packets of every batch up to `upto`, now durable. */
static void release_pending(uint64_t upto)
{
    size_t i = 0;
    for (; i < n_pending && pending[i].batch <= upto; i++) {
        struct pending *e = &pending[i];
        if (e->conn) {
            e->conn->n_pending--;
            send_now(e->conn, e->data, e->len);
        }
        free_entry(e);
    }
    if (i == 0)
        return;
    memmove(pending, pending + i, (n_pending - i) * sizeof *pending);
    n_pending -= i;
    repoint_inline(0);
}

/* Batch `batch` was rolled back: the connections whose packets depended on
 * it are closed, so that their clients resend what was not acknowledged. */
static void fail_pending(uint64_t batch)
{
    for (size_t i = 0; i < n_pending; i++) {
        struct conn *c = pending[i].conn;
        if (pending[i].batch == batch && c)
            conn_close(c, "store write failed: acknowledgement withheld", true);
    }
    size_t kept = 0;
    for (size_t i = 0; i < n_pending; i++) {
        if (pending[i].batch == batch) {
            free_entry(&pending[i]);
            continue;
        }
        pending[kept++] = pending[i];
    }
    n_pending = kept;
    repoint_inline(0);
}

void store_synced(uint64_t batch)
{
    if (batch > store_st.synced) {
        store_st.synced = batch;
        release_pending(batch);
    }
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!store_st.in_txn)
        return;
    uint64_t batch = store_st.cur_batch++;
    store_st.in_txn = false;
    int rc = store_st.txn_failed ? SQLITE_ERROR : sqlite3_exec(store_st.db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (!store_st.txn_failed)
            store_fail("COMMIT");
        sqlite3_exec(store_st.db, "ROLLBACK", NULL, NULL, NULL);
        if (!store_st.degraded)
            log_error("store: writes are failing; QoS 1/2 publishes are not acknowledged "
                      "until they succeed again");
        store_st.degraded = true;
        broker.stats.store_errors++;
        fail_pending(batch);
        store_batch_failed(batch);
        struct timeval tv = {0, REDO_DELAY_MS * 1000};
        evtimer_add(redo_ev, &tv);
        return;
    }
    store_batch_committed();
    if (store_st.degraded) {
        store_st.degraded = false;
        log_notice("store: writes succeed again, store recovered");
    }
    store_st.committed = batch;
    if (broker.cfg.durability == DURABILITY_POWER)
        store_sync_request(batch);
    else
        store_synced(batch);
}
