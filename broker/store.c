/*
 * store.c - the store's write path: prepared statements, the transaction
 * of each loop turn (group commit), and the packets that wait for it.
 * See store.h for the contract.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "broker.h"
#include "log.h"
#include "message.h"
#include "notify.h"
#include "store_internal.h"
#include "store_outbox.h"
#include "turn.h"

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
    [ST_DELIVERY_DELETE_RANGE] = "DELETE FROM deliveries WHERE session_id = ?1 AND seq >= ?2 "
                                 "AND seq <= ?3",
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

static struct event *redo_ev;
static struct log_ratelimit fail_log;



/* How long after a failed commit the lost changes are written again. */
#define REDO_DELAY_MS 1000

static void redo_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    store_redo();
}

/* The loop's connection waits for the storage thread's RESTART checkpoint
 * (store_sync.c), which holds the write lock for about one fsync: in steps
 * of 100 us rather than SQLite's default of 1, 2, 5, 10 ... ms, so that
 * the wait is that long and no longer.  Gives up after 5 s. */
int store_busy_wait(void *arg, int count)
{
    (void)arg;
    if (count >= 50000)
        return 0;
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    return 1;
}

/* After each commit of the loop's connection, with the frames now in the
 * WAL: past WAL_KICK_BYTES the checkpoint thread is asked to run now, once
 * per growth past it (the count starts again when the WAL does). */
static int frame_bytes = 4096 + 24;
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)arg;
    (void)db;
    (void)name;
    static bool kicked;
    store_sync_wal_size((int64_t)frames * frame_bytes);
    bool big = (int64_t)frames * frame_bytes >= store_sync_kick_bytes();
    if (big && !kicked)
        store_sync_kick();
    kicked = big;
    return SQLITE_OK;
}

int store_open(const char *data_dir, char *err, size_t errlen)
{
    memset(&store_st, 0, sizeof store_st);
    /* No global memory statistics: each allocation would take SQLite's
     * memory mutex (a few per cent of the durable path).  Only possible
     * before SQLite is initialised; later calls change nothing. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    snprintf(store_st.path, sizeof store_st.path, "%s/%s", data_dir, STORE_FILE);
    if (store_schema_open(&store_st.db, store_st.path, false, err, errlen) != 0)
        return -1;
    sqlite3_busy_handler(store_st.db, store_busy_wait, NULL);
    int64_t page = 4096;
    store_query_int(store_st.db, "PRAGMA page_size", &page);
    frame_bytes = (int)page + 24;
    /* (Also turns SQLite's own checkpoints off, which would fsync on the
     * loop; wal_autocheckpoint = 0 says the same.) */
    sqlite3_wal_hook(store_st.db, wal_hook, NULL);
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(store_st.db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &store_st.stmt[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: preparing statements: %s", store_st.path,
                     sqlite3_errmsg(store_st.db));
            store_close();
            return -1;
        }
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
    store_writeback_start(store_st.path); /* without it only slower */
    if (store_identity_start() != 0) {
        snprintf(err, errlen, "%s: cannot watch the file: %s", store_st.path, strerror(errno));
        store_close();
        return -1;
    }
    return 0;
}

void store_close(void)
{
    if (!store_st.db)
        return;
    /* Acknowledgements a rollback put back are written now if they can be:
     * else they would be delivered again after the restart. */
    if (!store_st.in_txn && store_deletes_pending())
        store_begin();
    if (store_st.in_txn)
        store_commit();
    store_sync_stop();
    store_writeback_stop();
    store_identity_stop();
    if (redo_ev)
        event_free(redo_ev);
    redo_ev = NULL;
    store_batch_committed(); /* frees the redo lists */
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store_st.stmt[i]);
    store_outbox_close();
    /* Closing the last connection checkpoints the WAL into the database. */
    sqlite3_close(store_st.db);
    store_st.db = NULL;
    store_flush_deletes(); /* frees its list */
}

bool store_degraded(void) { return store_st.degraded; }

int store_fail(const char *what)
{
    long n = log_ratelimit_check(&fail_log, 10);
    if (n >= 0)
        log_error("store: %s failed: %s%s", what, sqlite3_errmsg(store_st.db),
                  log_suppressed(n));
    store_st.txn_failed = true;
    store_identity_check(); /* did the file go? */
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
    turn_schedule(); /* the end of the turn commits */
    return 0;
}

/* ---- batches ---- */

uint64_t store_wait_batch(void)
{
    if (store_st.in_txn)
        return store_st.cur_batch;
    return store_st.synced < store_st.committed ? store_st.committed : 0;
}

uint64_t store_open_batch(void) { return store_st.in_txn ? store_st.cur_batch : 0; }

uint64_t store_durable(void) { return store_st.synced; }

void store_synced(uint64_t batch)
{
    if (batch > store_st.synced) {
        store_st.synced = batch;
        turn_schedule(); /* what waited for it leaves at the end of the turn */
    }
}

uint64_t store_commit(void)
{
    if (!store_st.in_txn)
        return 0;
    store_flush_deletes(); /* into this transaction */
    uint64_t batch = store_st.cur_batch++;
    store_st.in_txn = false;
    /* A commit into a file that is no longer petrel.db would be lost at the
     * next start: it fails, like a full disk (store_identity.c). */
    bool lost = store_st.lost[0] || store_st.unwritable;
    /* On a disk with little room the WAL may not outgrow what the database
     * can take (store_sync_wal_size). */
    bool wal_over = !store_st.txn_failed && !lost && store_sync_wal_over();
    if (wal_over) {
        long n = log_ratelimit_check(&fail_log, 10);
        if (n >= 0)
            log_error("store: COMMIT refused: the WAL is at its bound (half the room left on "
                      "the disk) until the checkpoint has copied it into the database%s",
                      log_suppressed(n));
    }
    uint64_t t0 = histogram_now_ns();
    int rc = store_st.txn_failed || lost || wal_over
                 ? SQLITE_ERROR
                 : sqlite3_exec(store_st.db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        histogram_observe_ns(&broker.store_commit_latency, histogram_now_ns() - t0);
    if (rc != SQLITE_OK) {
        if (!store_st.txn_failed && !lost && !wal_over)
            store_fail("COMMIT");
        sqlite3_exec(store_st.db, "ROLLBACK", NULL, NULL, NULL);
        if (!store_st.degraded && !lost)
            log_error("store: writes are failing; QoS 1/2 publishes are not acknowledged "
                      "until they succeed again");
        if (!store_st.degraded)
            notify_status();
        store_st.degraded = true;
        broker.stats.store_errors++;
        store_batch_failed(batch);
        store_sync_truncate();
        struct timeval tv = {0, REDO_DELAY_MS * 1000};
        evtimer_add(redo_ev, &tv);
        return batch;
    }
    store_batch_committed();
    store_sync_restart_wait();
    if (store_st.degraded) {
        store_st.degraded = false;
        log_notice("store: writes succeed again, store recovered");
        notify_status();
    }
    store_st.committed = batch;
    if (broker.cfg.durability == DURABILITY_POWER)
        store_sync_request(batch);
    else
        store_synced(batch);
    return 0;
}
