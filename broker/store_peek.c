/*
 * store_peek.c - a look at a stored session's queue for the admin API
 * (GET /api/v1/sessions/ID): the topics and sizes of deliveries that are
 * in the store only, read without loading them into the session.  At most
 * a page of rows, on the store's own connection (so it sees what this turn
 * wrote).
 */
#include <sqlite3.h>

#include "session.h"
#include "store.h"
#include "store_internal.h"

int store_peek_deliveries(const struct session *s, int64_t after_seq, size_t max,
                          store_peek_fn fn, void *arg)
{
    if (!store_st.db || !s->db_id || max == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_st.db,
                           "SELECT m.topic, d.size, d.qos FROM deliveries d "
                           "JOIN messages m ON m.id = d.message_id "
                           "WHERE d.session_id = ? AND d.seq > ? ORDER BY d.seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *topic = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        fn(topic ? topic : "", (size_t)(len > 0 ? len : 0), (uint32_t)sqlite3_column_int64(st, 1),
           (uint8_t)sqlite3_column_int(st, 2), arg);
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}
