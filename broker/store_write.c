/*
 * store_write.c - the turn's write transaction: begun by the first row a
 * turn writes, committed at the end of the turn (group commit), each one a
 * numbered batch.  The row operations bind a prepared statement and step
 * it inside that transaction; a failure dooms it, so acknowledgements that
 * depended on it are withheld, and a rolled-back batch is written again
 * later (store_redo).  While store_load replays the database into memory,
 * writes are no-ops: the rows are already there.  See store.h.
 */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "acl_session.h"
#include "broker.h"
#include "hashmap.h"
#include "histogram.h"
#include "log.h"
#include "message.h"
#include "notify.h"
#include "session.h"
#include "store.h"
#include "store_internal.h"
#include "topic_tree.h"
#include "turn.h"

static struct log_ratelimit fail_log;
static const struct store_session_hooks *sessions;

void store_set_session_hooks(const struct store_session_hooks *h) { sessions = h; }

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

/* What the open batch changed outside session rows, so that a rollback can
 * be redone: deleted sessions and retained topics. */
struct id_list {
    int64_t *v;
    size_t n, cap;
};
static struct id_list batch_deleted, redo_deleted;
static struct {
    char **v;
    size_t n, cap;
} batch_retained, redo_retained;

/* Messages given a row in the open batch (a reference each): a rollback
 * takes their row ids back, so that the next reference stores them again
 * instead of naming a row that does not exist. */
static struct {
    struct message **v;
    size_t n, cap;
} batch_messages;

static int remember_message(struct message *m)
{
    if (batch_messages.n == batch_messages.cap) {
        size_t cap = batch_messages.cap ? batch_messages.cap * 2 : 64;
        struct message **v = realloc(batch_messages.v, cap * sizeof *v);
        if (!v)
            return -1;
        batch_messages.v = v;
        batch_messages.cap = cap;
    }
    batch_messages.v[batch_messages.n++] = message_ref(m);
    return 0;
}

/* Ends the open batch's list: on a rollback (`failed`) its messages have
 * no row any more. */
static void forget_messages(bool failed)
{
    for (size_t i = 0; i < batch_messages.n; i++) {
        if (failed)
            batch_messages.v[i]->db_id = 0;
        message_unref(batch_messages.v[i]);
    }
    batch_messages.n = 0;
}

static void remember_id(struct id_list *l, int64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        int64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return; /* best effort: only matters if this batch fails */
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
}

static void remember_topic(const char *topic, size_t len)
{
    if (batch_retained.n == batch_retained.cap) {
        size_t cap = batch_retained.cap ? batch_retained.cap * 2 : 16;
        char **v = realloc(batch_retained.v, cap * sizeof *v);
        if (!v)
            return;
        batch_retained.v = v;
        batch_retained.cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, topic, len);
    copy[len] = '\0';
    batch_retained.v[batch_retained.n++] = copy;
}

/* (session row, seq or packet id) pairs. */
struct row_ref {
    int64_t session;
    int64_t seq;
};
struct row_list {
    struct row_ref *v;
    size_t n, cap;
};
/* What the open batch did that memory no longer shows, so a rollback can
 * take it back or do it again: inbound QoS 2 ids it marked (their PUBLISH
 * was not acknowledged, so the mark is taken back in memory too), and
 * deliveries it deleted for acknowledgements (the messages were delivered:
 * the deletes are done again with the next transaction). */
static struct row_list batch_qos2, batch_acks;

static int add_row(struct row_list *l, int64_t session, int64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct row_ref *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct row_ref){session, seq};
    return 0;
}

static void free_rows(struct row_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Session state (row, subscriptions, QoS 2 ids) written in this batch. */
static void touch(struct session *s)
{
    s->store_batch = store_st.cur_batch;
}

void store_bind_message(sqlite3_stmt *st, int first, int props, const struct message *m)
{
    sqlite3_bind_blob(st, first, m->topic, m->topic_len, SQLITE_STATIC);
    /* A zero-length blob must still be a blob, not NULL (NOT NULL column). */
    sqlite3_bind_blob(st, first + 1, m->payload_len ? (const void *)m->payload : "",
                      (int)m->payload_len, SQLITE_STATIC);
    sqlite3_bind_int(st, first + 2, m->qos);
    sqlite3_bind_int(st, first + 3, m->retain);
    if (m->props_len)
        sqlite3_bind_blob(st, props, m->props, (int)m->props_len, SQLITE_STATIC);
}

/* A statement on a session's rows, or NULL for a session not in the
 * store (or no statement): the session is marked as written by this batch
 * and its row id is bound as ?1. */
static sqlite3_stmt *session_stmt(struct session *s, enum store_stmt id)
{
    sqlite3_stmt *st = s->db_id ? prepare(id) : NULL;
    if (st) {
        touch(s);
        sqlite3_bind_int64(st, 1, s->db_id);
    }
    return st;
}

/* A statement on a session's rows with one more value, ?2, run. */
static int session_write_int(struct session *s, enum store_stmt id, int64_t v, const char *what)
{
    sqlite3_stmt *st = session_stmt(s, id);
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 2, v);
    return run(st, what);
}

static int write_session_row(struct session *s)
{
    sqlite3_stmt *st = prepare(ST_SESSION_ADD);
    if (!st)
        return nothing_to_do();
    touch(s);
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_blob(st, 2, s->client_id, (int)s->client_id_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, s->expiry_set ? 5 : 4);
    sqlite3_bind_int64(st, 4, s->conn ? 0 : s->offline_since);
    if (s->expiry_set)
        sqlite3_bind_int64(st, 7, s->expiry);
    const char *user;
    size_t ulen;
    if (acl_session_user(s, &user, &ulen)) {
        if (user)
            sqlite3_bind_blob(st, 5, user, (int)ulen, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, 1);
    } else {
        sqlite3_bind_int(st, 6, 0);
    }
    return run(st, "storing a session");
}

int store_session_identity(struct session *s)
{
    const char *user;
    size_t ulen;
    if (!s->db_id || !acl_session_user(s, &user, &ulen))
        return 0;
    sqlite3_stmt *st = prepare(ST_SESSION_IDENTITY);
    if (!st)
        return nothing_to_do();
    touch(s);
    sqlite3_bind_int64(st, 1, s->db_id);
    if (user)
        sqlite3_bind_blob(st, 2, user, (int)ulen, SQLITE_STATIC);
    return run(st, "storing a session's owner");
}

int store_session_add(struct session *s)
{
    if (store_st.loading || !store_st.db)
        return 0;
    s->db_id = ++store_st.last_session_id;
    return write_session_row(s);
}

int store_session_delete(struct session *s)
{
    sqlite3_stmt *st = s->db_id ? prepare(ST_SESSION_DELETE) : NULL;
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, s->db_id);
    remember_id(&batch_deleted, s->db_id);
    return run(st, "deleting a session");
}

int store_session_offline(struct session *s, int64_t since)
{
    return session_write_int(s, ST_SESSION_OFFLINE, since, "marking a session offline");
}

int store_session_expiry(struct session *s)
{
    sqlite3_stmt *st = session_stmt(s, ST_SESSION_EXPIRY);
    if (!st)
        return 0;
    if (s->expiry_set)
        sqlite3_bind_int64(st, 2, s->expiry); /* else NULL: the broker's default */
    sqlite3_bind_int(st, 3, s->expiry_set ? 5 : 4);
    return run(st, "storing a session expiry");
}

int store_session_will(struct session *s)
{
    sqlite3_stmt *st = session_stmt(s, ST_SESSION_WILL);
    if (!st)
        return 0;
    const struct message *m = s->will;
    if (m) { /* else every column NULL: no pending will */
        sqlite3_bind_int64(st, 2, s->will_at);
        store_bind_message(st, 3, 7, m);
        if (m->expiry_interval)
            sqlite3_bind_int64(st, 8, m->expiry_interval);
    }
    return run(st, m ? "storing a pending will" : "clearing a pending will");
}

int store_sub_put(struct session *s, const struct subscription *sub)
{
    sqlite3_stmt *st = session_stmt(s, ST_SUB_PUT);
    if (!st)
        return 0;
    sqlite3_bind_blob(st, 2, sub->filter, (int)sub->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, store_sub_options(sub->options, sub->id));
    return run(st, "storing a subscription");
}

int store_sub_delete(struct session *s, const char *filter, size_t len)
{
    sqlite3_stmt *st = session_stmt(s, ST_SUB_DELETE);
    if (!st)
        return 0;
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
    store_bind_message(st, 1, 6, m);
    if (m->expires_at)
        sqlite3_bind_int64(st, 7, m->expires_at);
    /* The id is never given again, so the rows that name it can only be
     * missing, never wrong; a rollback takes it back from m
     * (forget_messages). */
    if (remember_message(m) != 0) {
        log_error("store: out of memory storing a message");
        store_st.txn_failed = true;
        return -1;
    }
    m->db_id = ++store_st.last_message_id;
    sqlite3_bind_int64(st, 5, m->db_id);
    return run(st, "storing a message");
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
    sqlite3_bind_int(st, 5, (d->retain ? STORE_DELIVERY_RETAIN : 0) |
                                (d->shared ? STORE_DELIVERY_SHARED : 0));
    sqlite3_bind_int64(st, 6, d->size);
    return run(st, "storing a delivery");
}

int store_delivery_state(struct session *s, const struct delivery *d)
{
    /* memory moved on (PUBREC): a rollback must write it again */
    sqlite3_stmt *st = session_stmt(s, ST_DELIVERY_STATE);
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 2, d->seq);
    sqlite3_bind_int(st, 3, d->state);
    sqlite3_bind_int(st, 4, d->packet_id);
    return run(st, "updating a delivery");
}

/* Rows to delete at the end of the turn: (session row, seq). */
static struct row_list deletes;

int store_delivery_delete(struct session *s, int64_t seq)
{
    if (!s->db_id || store_st.loading || !store_st.db)
        return 0;
    if (store_begin() != 0)
        return -1;
    if (add_row(&deletes, s->db_id, seq) != 0) {
        /* One at a time then. */
        sqlite3_stmt *st = prepare(ST_DELIVERY_DELETE);
        if (!st)
            return nothing_to_do();
        sqlite3_bind_int64(st, 1, s->db_id);
        sqlite3_bind_int64(st, 2, seq);
        return run(st, "deleting a delivery");
    }
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    const struct row_ref *x = a, *y = b;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

bool store_deletes_pending(void) { return deletes.n > 0; }

void store_flush_deletes(void)
{
    if (!store_st.db) { /* closed: give the list back */
        free_rows(&deletes);
        return;
    }
    if (deletes.n == 0)
        return;
    /* Acknowledgements come in send order, so runs are long: one
     * statement per run instead of one per message. */
    qsort(deletes.v, deletes.n, sizeof *deletes.v, cmp_row);
    size_t i = 0;
    while (i < deletes.n) {
        size_t j = i + 1;
        while (j < deletes.n && deletes.v[j].session == deletes.v[i].session &&
               deletes.v[j].seq <= deletes.v[j - 1].seq + 1)
            j++;
        sqlite3_stmt *st = prepare(ST_DELIVERY_DELETE_RANGE);
        if (!st)
            break;
        sqlite3_bind_int64(st, 1, deletes.v[i].session);
        sqlite3_bind_int64(st, 2, deletes.v[i].seq);
        sqlite3_bind_int64(st, 3, deletes.v[j - 1].seq);
        if (run(st, "deleting deliveries") != 0)
            break;
        i = j;
    }
    /* Kept until the batch commits: a rollback puts them back. */
    for (size_t k = 0; k < deletes.n; k++)
        if (add_row(&batch_acks, deletes.v[k].session, deletes.v[k].seq) != 0)
            log_error("store: out of memory remembering acknowledgements: a rollback now "
                      "would deliver some messages again after a restart");
    deletes.n = 0;
}

int store_delivery_drop_oldest(struct session *s, int64_t after_seq, uint32_t *bytes)
{
    store_flush_deletes();
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
    touch(s);
    if (add_row(&batch_qos2, s->db_id, packet_id) != 0) {
        /* Unable to take it back after a rollback: no rollback then. */
        log_error("store: out of memory storing a QoS 2 packet id");
        store_st.txn_failed = true;
        return -1;
    }
    sqlite3_bind_int64(st, 1, s->db_id);
    sqlite3_bind_int(st, 2, packet_id);
    return run(st, "storing a QoS 2 packet id");
}

int store_qos2_delete(struct session *s, uint16_t packet_id)
{
    return session_write_int(s, ST_QOS2_DELETE, packet_id, "deleting a QoS 2 packet id");
}

int store_retained_set(const char *topic, size_t len, struct message *m)
{
    /* $SYS values are regenerated every interval: not worth a write. */
    if (len >= 5 && memcmp(topic, "$SYS/", 5) == 0)
        return 0;
    sqlite3_stmt *st = prepare(ST_RETAINED_DELETE);
    if (!st)
        return nothing_to_do();
    remember_topic(topic, len);
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

/* ---- redoing a rolled-back batch ---- */

/* The QoS 2 ids the failed batch marked for session row `id`, taken back
 * (batch_qos2 is sorted). */
static void forget_qos2(struct session *s)
{
    size_t lo = 0, hi = batch_qos2.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (batch_qos2.v[mid].session < s->db_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < batch_qos2.n && batch_qos2.v[lo].session == s->db_id; lo++)
        sessions->qos2_forget(s, (uint16_t)batch_qos2.v[lo].seq);
}

static void flag_session(void *value, void *arg)
{
    struct session *s = value;
    uint64_t failed = *(uint64_t *)arg;
    if (s->db_id && s->store_batch == failed) {
        s->store_redo = true;
        if (batch_qos2.n)
            forget_qos2(s);
    }
    sessions->rolled_back(s, failed);
}

void store_batch_failed(uint64_t batch)
{
    if (batch_qos2.n)
        qsort(batch_qos2.v, batch_qos2.n, sizeof *batch_qos2.v, cmp_row);
    hashmap_foreach(broker.sessions, flag_session, &batch);
    batch_qos2.n = 0;
    /* Delivered and acknowledged all the same: deleted by the next
     * transaction, or the next after that, until one commits. */
    for (size_t i = 0; i < batch_acks.n; i++)
        if (add_row(&deletes, batch_acks.v[i].session, batch_acks.v[i].seq) != 0)
            log_error("store: out of memory: some acknowledged messages will be delivered "
                      "again after a restart");
    batch_acks.n = 0;
    forget_messages(true);
    for (size_t i = 0; i < batch_deleted.n; i++)
        remember_id(&redo_deleted, batch_deleted.v[i]);
    batch_deleted.n = 0;
    for (size_t i = 0; i < batch_retained.n; i++) {
        if (redo_retained.n == redo_retained.cap) {
            size_t cap = redo_retained.cap ? redo_retained.cap * 2 : 16;
            char **v = realloc(redo_retained.v, cap * sizeof *v);
            if (!v) {
                free(batch_retained.v[i]);
                continue;
            }
            redo_retained.v = v;
            redo_retained.cap = cap;
        }
        redo_retained.v[redo_retained.n++] = batch_retained.v[i];
    }
    batch_retained.n = 0;
}

void store_batch_committed(void)
{
    batch_qos2.n = 0;
    batch_acks.n = 0;
    forget_messages(false);
    batch_deleted.n = 0;
    for (size_t i = 0; i < batch_retained.n; i++)
        free(batch_retained.v[i]);
    batch_retained.n = 0;
    if (!store_st.db) { /* closing: give everything back */
        free(batch_messages.v);
        memset(&batch_messages, 0, sizeof batch_messages);
        free(batch_deleted.v);
        free(redo_deleted.v);
        free(batch_retained.v);
        free_rows(&batch_qos2);
        free_rows(&batch_acks);
        for (size_t i = 0; i < redo_retained.n; i++)
            free(redo_retained.v[i]);
        free(redo_retained.v);
        memset(&batch_deleted, 0, sizeof batch_deleted);
        memset(&redo_deleted, 0, sizeof redo_deleted);
        memset(&batch_retained, 0, sizeof batch_retained);
        memset(&redo_retained, 0, sizeof redo_retained);
    }
}

static int clear_rows(enum store_stmt id, struct session *s)
{
    sqlite3_stmt *st = prepare(id);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, s->db_id);
    return run(st, "rewriting a session");
}

/* Writes a session's whole state again: its row, pending will,
 * subscriptions, QoS 2 ids and in-flight states as they are in memory.  Its queue is not rewritten: deliveries lost
 * with the batch belonged to publishes that were not acknowledged. */
static void redo_session(void *value, void *arg)
{
    (void)arg;
    struct session *s = value;
    if (!s->store_redo)
        return;
    s->store_redo = false;
    /* The row is replaced whole: its will columns too. */
    if (write_session_row(s) != 0 || (s->will && store_session_will(s) != 0) ||
        clear_rows(ST_SUBS_CLEAR, s) != 0 || clear_rows(ST_QOS2_CLEAR, s) != 0)
        return;
    for (struct subscription *sub = s->subs; sub; sub = sub->next)
        store_sub_put(s, sub);
    for (uint32_t id = 1; s->n_qos2_ids && id <= UINT16_MAX; id++)
        if (sessions->qos2_pending(s, (uint16_t)id))
            store_qos2_add(s, (uint16_t)id);
    /* PUBRECs: a delivery past one has only its id in memory, and a row
     * still saying "wait for PUBREC" would have the PUBLISH sent again
     * after a restart.  At most the in-flight window. */
    for (struct delivery *d = s->inflight.head; d; d = d->next)
        if (d->state == DELIVERY_WAIT_PUBCOMP)
            store_delivery_state(s, d);
}

void store_redo(void)
{
    log_info("store: writing again what the failed transaction lost");
    if (deletes.n)
        store_begin(); /* acknowledgements to redo: flushed by its commit */
    hashmap_foreach(broker.sessions, redo_session, NULL);
    for (size_t i = 0; i < redo_deleted.n; i++) {
        sqlite3_stmt *st = prepare(ST_SESSION_DELETE);
        if (!st)
            break;
        remember_id(&batch_deleted, redo_deleted.v[i]);
        sqlite3_bind_int64(st, 1, redo_deleted.v[i]);
        run(st, "deleting a session");
    }
    redo_deleted.n = 0;
    for (size_t i = 0; i < redo_retained.n; i++) {
        char *t = redo_retained.v[i];
        size_t len = strlen(t);
        store_retained_set(t, len, topic_tree_get_retained(broker.topics, t, len));
        free(t);
    }
    redo_retained.n = 0;
}

/* ---- the end of the turn: the commit and its batch ---- */

uint64_t store_wait_batch(void)
{
    if (store_st.in_txn)
        return store_st.cur_batch;
    return store_st.synced < store_st.committed ? store_st.committed : 0;
}

uint64_t store_open_batch(void) { return store_st.in_txn ? store_st.cur_batch : 0; }

uint64_t store_durable(void) { return store_st.synced; }

bool store_degraded(void) { return store_st.degraded; }

void store_synced(uint64_t batch)
{
    if (batch > store_st.synced) {
        store_st.synced = batch;
        turn_schedule(); /* what waited for it leaves at the end of the turn */
    }
}

/* How long after a failed commit the lost changes are written again. */
#define REDO_DELAY_MS 1000

static struct event *redo_ev;

static void redo_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    store_redo();
}

int store_redo_timer_start(void)
{
    redo_ev = evtimer_new(broker.base, redo_cb, NULL);
    return redo_ev ? 0 : -1;
}

void store_redo_timer_stop(void)
{
    if (redo_ev)
        event_free(redo_ev);
    redo_ev = NULL;
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

void store_wal_watch(int page_size)
{
    frame_bytes = page_size + 24;
    /* (Also turns SQLite's own checkpoints off, which would fsync on the
     * loop; wal_autocheckpoint = 0 says the same.) */
    sqlite3_wal_hook(store_st.db, wal_hook, NULL);
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
