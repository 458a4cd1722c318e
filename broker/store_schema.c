/*
 * store_schema.c - opening petrel.db safely and upgrading its schema.
 *
 * A database is recognised by PRAGMA application_id; its schema version is
 * PRAGMA user_version.  Migrations are numbered and each runs in its own
 * transaction, so an interrupted upgrade leaves the previous version intact.
 * Anything unexpected (a foreign file, another application's database, a
 * schema from a newer petreld) is an error: the file is never re-created or
 * modified behind the operator's back.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "store_internal.h"

#define PETREL_APPLICATION_ID 0x5045544C /* "PETL" */

/* Migration N brings the schema from version N-1 to N.
 * subscriptions.options packs the MQTT 5.0 options byte and the
 * subscription identifier: see store_sub_options() in store_internal.h. */
static const char *const migrations[] = {
    /* 1: the first schema.  Messages are stored once and reference-counted
     * by triggers, so that a message delivered to many sessions and
     * retained costs one row, and disappears with its last reference. */
    "CREATE TABLE sessions("
    "  id INTEGER PRIMARY KEY,"
    "  client_id BLOB NOT NULL UNIQUE,"
    "  level INTEGER NOT NULL,"
    "  offline_since INTEGER NOT NULL DEFAULT 0," /* unix seconds; 0 = online */
    "  expiry INTEGER);"                          /* seconds; NULL = broker default
                                                     (5.0 Session Expiry Interval) */
    "CREATE TABLE subscriptions("
    "  session_id INTEGER NOT NULL,"
    "  filter BLOB NOT NULL,"
    "  options INTEGER NOT NULL,"
    "  PRIMARY KEY(session_id, filter)) WITHOUT ROWID;"
    "CREATE TABLE messages("
    "  id INTEGER PRIMARY KEY,"
    "  topic BLOB NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL,"
    "  properties BLOB,"                          /* MQTT 5.0, raw */
    "  expires_at INTEGER,"                       /* MQTT 5.0 message expiry, unix ms */
    "  refs INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE deliveries("
    "  session_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"                     /* order within the session */
    "  message_id INTEGER NOT NULL,"
    "  qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"         /* enum delivery_state */
    "  packet_id INTEGER NOT NULL DEFAULT 0,"
    "  size INTEGER NOT NULL,"                    /* payload bytes, for the bounds */
    "  PRIMARY KEY(session_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE inbound_qos2("
    "  session_id INTEGER NOT NULL,"
    "  packet_id INTEGER NOT NULL,"
    "  PRIMARY KEY(session_id, packet_id)) WITHOUT ROWID;"
    "CREATE TABLE retained("
    "  topic BLOB PRIMARY KEY,"
    "  message_id INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TRIGGER delivery_ref AFTER INSERT ON deliveries BEGIN"
    "  UPDATE messages SET refs = refs + 1 WHERE id = NEW.message_id; END;"
    "CREATE TRIGGER delivery_unref AFTER DELETE ON deliveries BEGIN"
    "  UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;"
    "  DELETE FROM messages WHERE id = OLD.message_id AND refs <= 0; END;"
    "CREATE TRIGGER retained_ref AFTER INSERT ON retained BEGIN"
    "  UPDATE messages SET refs = refs + 1 WHERE id = NEW.message_id; END;"
    "CREATE TRIGGER retained_unref AFTER DELETE ON retained BEGIN"
    "  UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;"
    "  DELETE FROM messages WHERE id = OLD.message_id AND refs <= 0; END;"
    "CREATE TRIGGER session_gone AFTER DELETE ON sessions BEGIN"
    "  DELETE FROM subscriptions WHERE session_id = OLD.id;"
    "  DELETE FROM deliveries WHERE session_id = OLD.id;"
    "  DELETE FROM inbound_qos2 WHERE session_id = OLD.id; END;",
    /* 2: who owns a session, so that its ACL identity survives a restart:
     * `identified` = 0 for sessions stored before (owner unknown),
     * username NULL with identified = 1 for an anonymous client. */
    "ALTER TABLE sessions ADD COLUMN username BLOB;"
    "ALTER TABLE sessions ADD COLUMN identified INTEGER NOT NULL DEFAULT 0;",
    /* 3: a will waiting for its Will Delay Interval (MQTT 5.0), so that it
     * survives a restart: will_at is when it is due (unix ms), NULL = no
     * pending will.  The message is kept inline, not in `messages`: it
     * belongs to its session alone and goes with its row, no reference to
     * count.  will_expiry is the Message Expiry Interval (seconds), which
     * starts only when the will is published. */
    "ALTER TABLE sessions ADD COLUMN will_at INTEGER;"
    "ALTER TABLE sessions ADD COLUMN will_topic BLOB;"
    "ALTER TABLE sessions ADD COLUMN will_payload BLOB;"
    "ALTER TABLE sessions ADD COLUMN will_qos INTEGER;"
    "ALTER TABLE sessions ADD COLUMN will_retain INTEGER;"
    "ALTER TABLE sessions ADD COLUMN will_properties BLOB;"  /* MQTT 5.0, raw */
    "ALTER TABLE sessions ADD COLUMN will_expiry INTEGER;",
    /* 4: the cluster (store_outbox.h).  cluster_outbox holds QoS 1/2
     * messages until JetStream has them: a copy of the message, not a
     * reference into `messages`, since most have no local subscriber and
     * the row lives only until JetStream acknowledges (milliseconds).
     * cluster_inbox remembers the ids of QoS 2 messages from other nodes
     * against a second delivery; rowid order is arrival order. */
    "CREATE TABLE cluster_outbox("
    "  id INTEGER PRIMARY KEY,"
    "  petrel_id TEXT NOT NULL,"                  /* the Nats-Msg-Id: JetStream de-duplicates */
    "  topic BLOB NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL,"
    "  properties BLOB,"                          /* MQTT 5.0, raw */
    "  expires_at INTEGER,"                       /* unix ms */
    "  size INTEGER NOT NULL);"                   /* bytes, for cluster_outbox_max_bytes */
    "CREATE TABLE cluster_inbox("
    "  petrel_id TEXT NOT NULL UNIQUE);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

int store_query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(sqlite3 *db, int64_t from, const char *path, char *err, size_t errlen)
{
    for (int64_t v = from + 1; v <= STORE_SCHEMA_VERSION; v++) {
        char sql[128];
        char *msg = NULL;
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, migrations[v - 1], NULL, NULL, &msg);
        if (rc == SQLITE_OK) {
            snprintf(sql, sizeof sql, "PRAGMA user_version = %lld; PRAGMA application_id = %d;",
                     (long long)v, PETREL_APPLICATION_ID);
            rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "%s: upgrading the schema to version %lld failed: %s", path,
                     (long long)v, msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

/* Pages of a new database.  Each commit writes every page it changed to
 * the WAL, and a turn's commit changes a few (the tails and heads of the
 * messages and deliveries tables, the freelist): with 4 KiB pages that was
 * 80 MB/s of WAL at 20,000 msg/s, the checkpoints' work and their stalls;
 * 1 KiB pages write a quarter of it.  Rows are about 100 bytes; a larger
 * payload goes to overflow pages either way.  An existing database keeps
 * its page size. */
#define STORE_PAGE_SIZE_STR "1024"

int store_schema_open(sqlite3 **out, const char *path, bool readonly, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);

    /* The first read of the header tells a foreign file from a database. */
    int64_t app_id = 0, version = 0, objects = 0;
    rc = store_query_int(db, "PRAGMA application_id", &app_id);
    if (rc == SQLITE_OK)
        rc = store_query_int(db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = store_query_int(db, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_NOTADB)
            snprintf(err, errlen, "%s: not a database (not an SQLite file, or damaged): "
                     "refusing to touch it", path);
        else
            snprintf(err, errlen, "%s: cannot read: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if (app_id != PETREL_APPLICATION_ID && !(app_id == 0 && version == 0 && objects == 0)) {
        snprintf(err, errlen, "%s: not a Petrel database (application_id 0x%llx, %lld objects): "
                 "refusing to touch it", path, (unsigned long long)app_id, (long long)objects);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen, "%s: schema version %lld is newer than this petreld understands "
                 "(%d): upgrade petreld or restore a backup", path, (long long)version,
                 STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (readonly) {
        if (version < STORE_SCHEMA_VERSION) {
            snprintf(err, errlen, "%s: schema version %lld is older than %d: start petreld once "
                     "to upgrade it", path, (long long)version, STORE_SCHEMA_VERSION);
            goto fail;
        }
        *out = db;
        return 0;
    }

    /* WAL lets the storage thread checkpoint while the loop writes; the
     * loop itself never checkpoints (that would fsync on the loop). */
    char *msg = NULL;
    sqlite3_stmt *st;
    if (objects == 0 && version == 0)
        sqlite3_exec(db, "PRAGMA page_size = " STORE_PAGE_SIZE_STR, NULL, NULL, NULL);
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = SQLITE_ERROR;
    sqlite3_finalize(st);
    /* secure_delete = FAST: Debian's SQLite zeroes every freed page by
     * default, so that deleting delivered messages writes them all again
     * into the WAL; on a full disk that delete could then never fit, and
     * consuming the queue would not free the store. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;"
                              "PRAGMA journal_size_limit = 67108864; PRAGMA foreign_keys = OFF;"
                              "PRAGMA secure_delete = FAST;",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot enable WAL mode: %s", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        goto fail;
    }
    if (version < STORE_SCHEMA_VERSION && migrate(db, version, path, err, errlen) != 0)
        goto fail;
    *out = db;
    return 0;
fail:
    sqlite3_close(db);
    return -1;
}
