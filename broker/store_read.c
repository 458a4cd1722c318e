/*
 * store_read.c - what the sessions read back from the store: a window of a
 * session's queue when it has room for it (store_load_deliveries), and the
 * earliest time one of them may expire, noted as they go offline, for the
 * expiry walk (store_load.c).  It calls no session function: each delivery
 * read is handed to the caller's function.
 */
#include <stdlib.h>

#include "log.h"
#include "message.h"
#include "session.h"
#include "store.h"
#include "store_internal.h"

struct message *store_message_from_row(sqlite3_stmt *st, int col)
{
    const void *payload = sqlite3_column_blob(st, col + 2);
    const void *props = sqlite3_column_blob(st, col + 5);
    struct message *m = message_new_raw(sqlite3_column_blob(st, col + 1),
                                        (size_t)sqlite3_column_bytes(st, col + 1), payload,
                                        (size_t)sqlite3_column_bytes(st, col + 2),
                                        (uint8_t)sqlite3_column_int(st, col + 3),
                                        sqlite3_column_int(st, col + 4) != 0, props,
                                        props ? (size_t)sqlite3_column_bytes(st, col + 5) : 0,
                                        sqlite3_column_int64(st, col + 6));
    if (m)
        m->db_id = sqlite3_column_int64(st, col);
    return m;
}

int store_load_deliveries(struct session *s, int64_t after_seq, uint32_t max,
                          store_delivery_fn got)
{
    if (!store_st.db || !s->db_id)
        return 0;
    store_flush_deletes(); /* rows acknowledged or moved must not come back */
    sqlite3_stmt *st = store_st.stmt[ST_DELIVERY_LOAD];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct delivery *d = calloc(1, sizeof *d);
        int state = sqlite3_column_int(st, 3);
        if (!d)
            break;
        d->seq = sqlite3_column_int64(st, 0);
        d->qos = (uint8_t)sqlite3_column_int(st, 1);
        int flags = sqlite3_column_int(st, 2);
        d->retain = (flags & STORE_DELIVERY_RETAIN) != 0;
        d->shared = (flags & STORE_DELIVERY_SHARED) != 0;
        d->state = (uint8_t)state;
        d->packet_id = (uint16_t)sqlite3_column_int(st, 4);
        d->size = (uint32_t)sqlite3_column_int64(st, 5);
        if (state != DELIVERY_WAIT_PUBCOMP) {
            d->msg = store_message_from_row(st, 6);
            if (!d->msg) {
                free(d);
                break;
            }
        }
        got(s, d);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error("store: loading the queue of client %s: %s", s->log_id,
                  sqlite3_errmsg(store_st.db));
        n = n ? n : -1;
    }
    sqlite3_reset(st);
    return n;
}

/* Earliest time a session may expire, or INT64_MAX: the walk over all
 * sessions runs only when something is due. */
static int64_t next_due = INT64_MAX;

void store_expiry_note(int64_t due)
{
    if (due > 0 && due < next_due)
        next_due = due;
}

int64_t store_expiry_earliest(void) { return next_due; }

void store_expiry_restart(int64_t next) { next_due = next; }
