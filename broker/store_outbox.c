/*
 * store_outbox.c - the cluster outbox and inbox rows (store_outbox.h).
 * The statements are prepared on first use, on the store's connection, and
 * join the turn's transaction like every other write (store_write.c).
 */
#include "store_outbox.h"

#include <string.h>

#include "message.h"
#include "store.h"
#include "store_internal.h"

enum {
    OB_ADD,
    OB_DELETE,
    OB_TOTALS,
    OB_SCAN,
    IB_SEEN,
    IB_ADD,
    IB_PRUNE,
    OB_COUNT
};

static const char *const sql[OB_COUNT] = {
    [OB_ADD] = "INSERT INTO cluster_outbox(id, petrel_id, topic, payload, qos, retain, "
               "properties, expires_at, size) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [OB_DELETE] = "DELETE FROM cluster_outbox WHERE id = ?1",
    [OB_TOTALS] = "SELECT count(*), coalesce(sum(size), 0), coalesce(max(id), 0) "
                  "FROM cluster_outbox",
    [OB_SCAN] = "SELECT id, petrel_id, topic, payload, qos, retain, properties, expires_at, size "
                "FROM cluster_outbox WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
    [IB_SEEN] = "SELECT 1 FROM cluster_inbox WHERE petrel_id = ?1",
    [IB_ADD] = "INSERT OR IGNORE INTO cluster_inbox(petrel_id) VALUES(?1)",
    [IB_PRUNE] = "DELETE FROM cluster_inbox WHERE rowid <= "
                 "(SELECT max(rowid) FROM cluster_inbox) - ?1",
};

static sqlite3_stmt *stmt[OB_COUNT];

/* The statement, reset, in the turn's transaction for writes; NULL when
 * there is no store or it failed (logged, transaction doomed). */
static sqlite3_stmt *get(int id, bool write)
{
    if (!store_st.db || store_st.loading)
        return NULL;
    if (write && store_begin() != 0)
        return NULL;
    if (!stmt[id] && sqlite3_prepare_v3(store_st.db, sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                        &stmt[id], NULL) != SQLITE_OK) {
        store_fail("preparing a cluster outbox statement");
        return NULL;
    }
    sqlite3_reset(stmt[id]);
    sqlite3_clear_bindings(stmt[id]);
    return stmt[id];
}

static int step_write(sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_fail(what);
}

uint32_t store_outbox_bytes(const struct message *m)
{
    return m->payload_len + m->topic_len + m->props_len;
}

int store_outbox_add(int64_t id, const char *petrel_id, const struct message *m)
{
    sqlite3_stmt *st = get(OB_ADD, true);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, petrel_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, m->topic, m->topic_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, m->payload_len ? (const void *)m->payload : "", (int)m->payload_len,
                      SQLITE_STATIC);
    sqlite3_bind_int(st, 5, m->qos);
    sqlite3_bind_int(st, 6, m->retain);
    if (m->props_len)
        sqlite3_bind_blob(st, 7, m->props, (int)m->props_len, SQLITE_STATIC);
    if (m->expires_at)
        sqlite3_bind_int64(st, 8, m->expires_at);
    sqlite3_bind_int64(st, 9, store_outbox_bytes(m));
    return step_write(st, "storing a cluster outbox row");
}

int store_outbox_delete(int64_t id)
{
    sqlite3_stmt *st = get(OB_DELETE, true);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_int64(st, 1, id);
    return step_write(st, "deleting a cluster outbox row");
}

int store_outbox_totals(int64_t *rows, int64_t *bytes, int64_t *max_id)
{
    *rows = *bytes = *max_id = 0;
    sqlite3_stmt *st = get(OB_TOTALS, false);
    if (!st)
        return store_st.db ? -1 : 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rows = sqlite3_column_int64(st, 0);
        *bytes = sqlite3_column_int64(st, 1);
        *max_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

int store_outbox_scan(int64_t after, int64_t upto, int max, store_outbox_fn fn, void *arg)
{
    sqlite3_stmt *st = get(OB_SCAN, false);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, upto);
    sqlite3_bind_int(st, 3, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *pid = (const char *)sqlite3_column_text(st, 1);
        const void *topic = sqlite3_column_blob(st, 2);
        int tlen = sqlite3_column_bytes(st, 2);
        const void *payload = sqlite3_column_blob(st, 3);
        int plen = sqlite3_column_bytes(st, 3);
        const void *props = sqlite3_column_blob(st, 6);
        int prlen = sqlite3_column_bytes(st, 6);
        if (!pid || !topic || tlen <= 0 || tlen > 65535)
            continue; /* not a row this petreld wrote */
        struct message *m =
            message_new_raw(topic, (size_t)tlen, payload, (size_t)plen,
                            (uint8_t)sqlite3_column_int(st, 4), sqlite3_column_int(st, 5) != 0,
                            props, props ? (size_t)prlen : 0, sqlite3_column_int64(st, 7));
        if (!m)
            break;
        fn(sqlite3_column_int64(st, 0), pid, m, (uint32_t)sqlite3_column_int64(st, 8), arg);
        message_unref(m);
        n++;
    }
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_reset(st);
    return ok ? n : -1;
}

int store_inbox_seen(const char *petrel_id)
{
    sqlite3_stmt *st = get(IB_SEEN, false);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_text(st, 1, petrel_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_inbox_add(const char *petrel_id)
{
    sqlite3_stmt *st = get(IB_ADD, true);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_text(st, 1, petrel_id, -1, SQLITE_STATIC);
    return step_write(st, "storing a cluster inbox id");
}

int store_inbox_prune(void)
{
    sqlite3_stmt *st = get(IB_PRUNE, true);
    if (!st)
        return store_st.db ? -1 : 0;
    sqlite3_bind_int64(st, 1, STORE_INBOX_KEEP);
    return step_write(st, "pruning the cluster inbox");
}

void store_outbox_close(void)
{
    for (int i = 0; i < OB_COUNT; i++) {
        sqlite3_finalize(stmt[i]);
        stmt[i] = NULL;
    }
}
