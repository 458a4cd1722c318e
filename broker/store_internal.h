/*
 * store_internal.h - what the store's source files share: the connection,
 * the prepared statements and the transaction state.  Not for the rest of
 * the broker, which uses store.h.
 */
#ifndef PETREL_STORE_INTERNAL_H
#define PETREL_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

enum store_stmt {
    ST_SESSION_ADD,
    ST_SESSION_IDENTITY,
    ST_SESSION_DELETE,
    ST_SESSION_OFFLINE,
    ST_SESSION_EXPIRY,
    ST_SESSION_WILL,
    ST_SUB_PUT,
    ST_SUB_DELETE,
    ST_MESSAGE_ADD,
    ST_DELIVERY_ADD,
    ST_DELIVERY_STATE,
    ST_DELIVERY_DELETE,
    ST_DELIVERY_DELETE_RANGE,
    ST_DELIVERY_OLDEST,
    ST_DELIVERY_LOAD,
    ST_QOS2_ADD,
    ST_QOS2_DELETE,
    ST_RETAINED_DELETE,
    ST_RETAINED_ADD,
    ST_SUBS_CLEAR,
    ST_QOS2_CLEAR,
    ST_COUNT
};

struct store_state {
    sqlite3 *db;
    char path[4200];
    sqlite3_stmt *stmt[ST_COUNT];
    bool loading;       /* store_load is replaying: writes are no-ops */
    bool in_txn;        /* a transaction is open for this turn */
    bool txn_failed;    /* a write in it failed: it will be rolled back */
    bool degraded;      /* the last commit failed */
    uint64_t cur_batch; /* id of the open (or next) transaction */
    uint64_t committed; /* highest batch committed */
    uint64_t synced;    /* highest batch durable under the durability mode */
    int64_t last_session_id; /* row ids are given by petreld, never reused: */
    int64_t last_message_id; /* a rolled-back id must not name a later row */
    char lost[4300];    /* why petrel.db is not the file opened; "" = it is */
    bool unwritable;    /* petrel.db lost its write permission */
};

extern struct store_state store_st;

/* Is store_st.path still the file opened, and writable (store_identity.c)?
 * start records its identity and checks each second; check looks now (also
 * after a failed write).  While it is not, commits fail. */
int store_identity_start(void);
void store_identity_stop(void);
void store_identity_check(void);

/* subscriptions.options holds the MQTT 5.0 options byte (granted QoS in
 * bits 0-1, No Local, Retain As Published, Retain Handling) and, from bit
 * 8, the subscription identifier (0 = none, at most 2^28 - 1).  Packing it
 * into the existing column needs no migration, and a row written by a
 * 3.1.1-only petreld (QoS alone) reads the same. */
static inline int64_t store_sub_options(uint8_t options, uint32_t id)
{
    return (int64_t)options | (int64_t)id << 8;
}
static inline uint8_t store_sub_options_byte(int64_t v) { return (uint8_t)(v & 0xff); }
static inline uint32_t store_sub_options_id(int64_t v) { return (uint32_t)((v >> 8) & 0x0fffffff); }

/* deliveries.retain holds flags: bit 0 the retain flag of the delivery, bit
 * 1 "came through a shared subscription" (handed to another member of the
 * group when the session ends, shared_subs.h).  Rows written before the
 * flag existed read as not shared; no migration needed. */
#define STORE_DELIVERY_RETAIN 1
#define STORE_DELIVERY_SHARED 2

/* Binds a message's topic, payload (an empty one as an empty blob), QoS
 * and retain flag to ?first to ?first+3, and its properties, if it has
 * any, to ?props (store_write.c; for any table that keeps a message). */
struct message;
void store_bind_message(sqlite3_stmt *st, int first, int props, const struct message *m);

/* A message from the columns of a row, from `col`: id, topic, payload,
 * qos, retain, properties, expires_at (store_read.c).  NULL without
 * memory. */
struct message *store_message_from_row(sqlite3_stmt *st, int col);
/* The earliest expiry noted by store_expiry_note since the last walk
 * (INT64_MAX: none), and what the walk found among the sessions it kept
 * (store_read.c; the walk is store_load.c's store_expire_sessions). */
int64_t store_expiry_earliest(void);
void store_expiry_restart(int64_t next);

/* Runs a statement that yields one integer (a PRAGMA, a count) into *out;
 * returns an SQLite result code (SQLITE_OK on success). */
int store_query_int(sqlite3 *db, const char *sql, int64_t *out);

/* Opens the connection and brings the schema to STORE_SCHEMA_VERSION;
 * store_schema.c.  Returns 0 or -1 with err. */
int store_schema_open(sqlite3 **db, const char *path, bool readonly, char *err, size_t errlen);

/* The storage thread (store_sync.c): checkpoints the WAL off the loop and,
 * with durability = power, fsyncs it before acknowledgements go out. */
int store_sync_start(const char *db_path, bool fsync_commits);
/* Asks for batch `batch` (just committed) to be made durable; the loop is
 * told through store_synced() when it is. */
void store_sync_request(uint64_t batch);
void store_sync_stop(void);
/* The writeback thread (store_writeback.c): starts the writeback of the
 * database's and the WAL's dirty pages every few milliseconds, so that no
 * fsync or writeback of a large batch holds up the loop's writes.  Start
 * fails only without a thread (logged); stop joins it. */
int store_writeback_start(const char *db_path);
/* The storage threads' sleep: on `cond` until `ms` from now or a signal,
 * `lock` held (store_sync.c). */
void store_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms);
/* Their start: a thread running `main`, *running set if it was made. */
int store_thread_start(pthread_t *thread, void *(*main)(void *), bool *running);
/* Their wake-up: sets *flag under `lock` and wakes all that wait on `cond`. */
void store_cond_raise(pthread_cond_t *cond, pthread_mutex_t *lock, bool *flag);
void store_writeback_stop(void);
/* The WAL grew by WAL_KICK_BYTES since it started over: checkpoint now
 * rather than at the next second. */
#define WAL_KICK_BYTES (16 * 1024 * 1024)
void store_sync_kick(void);
/* The growth that asks for it: WAL_KICK_BYTES, less on a disk with little
 * room (store_sync.c sizes the WAL to the room on its filesystem). */
int64_t store_sync_kick_bytes(void);
/* A commit failed: once the WAL is all copied into the database, it is
 * truncated, giving its room back (a full disk then recovers). */
void store_sync_truncate(void);
/* After each commit, the WAL's size: on a disk with little room, past half
 * the room the WAL is over its bound, and commits fail (like on a full
 * disk) until the checkpoint thread has copied it and started it over, so
 * that the database always has the room to take what the WAL holds. */
void store_sync_wal_size(int64_t bytes);
bool store_sync_wal_over(void);
/* After a commit: if the checkpoint thread wants the write lock to start
 * the WAL over, waits (off any transaction) until it is done, at most 20 ms:
 * about one fsync. */
void store_sync_restart_wait(void);
/* A busy handler that waits in steps of 100 us, for 5 s at most. */
int store_busy_wait(void *arg, int count);
/* Called on the loop when batches up to `batch` are durable. */
void store_synced(uint64_t batch);

/* After a rolled-back batch (store_write.c): remembers what it changed so
 * that store_redo() can write it again once writes may succeed; after a
 * committed one, forgets.  store_redo() runs from a timer, not at once, so
 * that a full disk does not make the loop spin. */
void store_batch_failed(uint64_t batch);
void store_batch_committed(void);
void store_redo(void);

/* The turn's write transaction (store_write.c). */
/* Starts the transaction of this turn if needed; returns 0 or -1. */
int store_begin(void);
/* Records a failed statement: logs it and dooms the transaction. */
int store_fail(const char *what);
/* The timer that runs store_redo a while after a failed commit: made by
 * store_open (0, or -1 without memory), freed by store_close. */
int store_redo_timer_start(void);
void store_redo_timer_stop(void);
/* After each commit, tells the storage thread how large the WAL has grown
 * (pages of page_size bytes); store_open registers it. */
void store_wal_watch(int page_size);

/* Deliveries acknowledged in this turn are deleted together, a statement
 * per run of consecutive rows (store_write.c): before the commit, and
 * before any statement that reads the deliveries table. */
void store_flush_deletes(void);
/* Deletes wait for a transaction (acknowledgements a rollback put back). */
bool store_deletes_pending(void);

#endif
