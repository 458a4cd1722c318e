/*
 * store.c - the store's connection: opening petrel.db (the schema, the
 * prepared statements, the storage threads) and closing it.  The turn's
 * write transaction, its rows and its batches are store_write.c's.  See
 * store.h for the contract.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "store_internal.h"
#include "store_outbox.h"

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
    store_wal_watch((int)page);
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
    if (store_redo_timer_start() != 0) {
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
    store_redo_timer_stop();
    store_batch_committed(); /* frees the redo lists */
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store_st.stmt[i]);
    store_outbox_close();
    /* Closing the last connection checkpoints the WAL into the database. */
    sqlite3_close(store_st.db);
    store_st.db = NULL;
    store_flush_deletes(); /* frees its list */
}

