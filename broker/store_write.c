/*
 * store_write.c - the store's row operations.  Each binds a prepared
 * statement and steps it inside the turn's transaction (store_begin); a
 * failure dooms that transaction, so acknowledgements that depended on it
 * are withheld (store.c).  While store_load replays the database into
 * memory, writes are no-ops: the rows are already there.
 */
#include <string.h>

#include "broker.h"
#include "message.h"
#include "session.h"
#include "store.h"
#include "store_internal.h"

/* Resets a statement for reuse and starts the transaction if needed.
 * Returns NULL when nothing must be written. */
static sqlite3_stmt *prepare(enum store_stmt id)
{
    if (store_st.loading || !store_st.db)
        return NULL;
    if (store_begin() != 0)
        return NULL;
    sqlite3_stmt *st = store_st.stmt[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* What a write returns when prepare() gave no statement: success when
 * there is nothing to write (replaying, or no store), failure otherwise. */
static int nothing_to_do(void)
{
    return store_st.loading || !store_st.db ? 0 : -1;
}

/* Steps a write statement; returns 0 or -1 (transaction doomed). */
static int run(sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return store_fail(what);
    return 0;
}

int store_session_add(struct session *s)
{
    sqlite3_stmt *st = prepare(ST_SESSION_ADD);
    if (!st)
        return nothing_to_do();
    sqlite3_bind_blob(st, 1, s->client_id, (int)s->client_id_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, 4);
    if (run(st, "adding a session") != 0)
        return -1;
    s->db_id = sqlite3_last_insert_rowid(store_st.db);
    return 0;
}

int store_session_delete(struct session *s)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_SESSION_DELETE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    return run(st, "deleting a session");
}

int store_session_offline(struct session *s, int64_t since)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_SESSION_OFFLINE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, since);
    return run(st, "marking a session offline");
}

int store_sub_put(struct session *s, const char *filter, size_t len, uint8_t options)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_SUB_PUT) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_blob(st, 2, filter, (int)len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, options);
    return run(st, "storing a subscription");
}

int store_sub_delete(struct session *s, const char *filter, size_t len)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_SUB_DELETE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_blob(st, 2, filter, (int)len, SQLITE_STATIC);
    return run(st, "deleting a subscription");
}

int store_message_add(struct message *m)
{
    if (m->db_id)
        return 0;
    sqlite3_stmt *st = prepare(ST_MESSAGE_ADD);
    if (!st)
        return nothing_to_do();
    sqlite3_bind_blob(st, 1, m->topic, m->topic_len, SQLITE_STATIC);
    /* A zero-length blob must still be a blob, not NULL (NOT NULL column). */
    sqlite3_bind_blob(st, 2, m->payload_len ? (const void *)m->payload : "", (int)m->payload_len,
                      SQLITE_STATIC);
    sqlite3_bind_int(st, 3, m->qos);
    sqlite3_bind_int(st, 4, m->retain);
    if (run(st, "storing a message") != 0)
        return -1;
    m->db_id = sqlite3_last_insert_rowid(store_st.db);
    return 0;
}

int store_delivery_add(struct session *s, struct delivery *d, struct message *m)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_DELIVERY_ADD) : NULL;
    if (!st)
        return nothing_to_do();
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, d->seq);
    sqlite3_bind_int64(st, 3, m->db_id);
    sqlite3_bind_int(st, 4, d->qos);
    sqlite3_bind_int(st, 5, d->retain);
    sqlite3_bind_int64(st, 6, d->size);
    return run(st, "storing a delivery");
}

int store_delivery_state(struct session *s, const struct delivery *d)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_DELIVERY_STATE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, d->seq);
    sqlite3_bind_int(st, 3, d->state);
    sqlite3_bind_int(st, 4, d->packet_id);
    return run(st, "updating a delivery");
}

int store_delivery_delete(struct session *s, int64_t seq)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_DELIVERY_DELETE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, seq);
    return run(st, "deleting a delivery");
}

int store_delivery_drop_oldest(struct session *s, int64_t after_seq, uint32_t *bytes)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_DELIVERY_OLDEST) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, after_seq);
    int rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        *bytes = (uint32_t)sqlite3_column_int64(st, 0);
        found = 1;
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_fail("dropping the oldest delivery");
    return found;
}

int store_qos2_add(struct session *s, uint16_t packet_id)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_QOS2_ADD) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int(st, 2, packet_id);
    return run(st, "storing a QoS 2 packet id");
}

int store_qos2_delete(struct session *s, uint16_t packet_id)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_QOS2_DELETE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int(st, 2, packet_id);
    return run(st, "deleting a QoS 2 packet id");
}

int store_retained_set(const char *topic, size_t len, struct message *m)
{
    /* $SYS values are regenerated every interval: not worth a write. */
    if (len >= 5 && memcmp(topic, "$SYS/", 5) == 0)
        return 0;
    sqlite3_stmt *st = prepare(ST_RETAINED_DELETE);
    if (!st)
        return nothing_to_do();
    sqlite3_bind_blob(st, 1, topic, (int)len, SQLITE_STATIC);
    if (run(st, "clearing a retained message") != 0)
        return -1;
    if (!m)
        return 0;
    if (store_message_add(m) != 0)
        return -1;
    st = prepare(ST_RETAINED_ADD);
    if (!st)
        return -1;
    sqlite3_bind_blob(st, 1, topic, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->db_id);
    return run(st, "storing a retained message");
}
