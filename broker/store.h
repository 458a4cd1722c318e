/*
 * store.h - the durable store: one SQLite database, petrel.db, in the data
 * directory.  It holds what the broker promised: persistent sessions, their
 * subscriptions, the messages they have not acknowledged yet, inbound QoS 2
 * packet ids awaiting PUBREL, and retained messages.
 *
 * Group commit: the write functions below only add to a transaction that
 * is opened by the first write of a turn of the event loop and committed at
 * the end of that turn (turn.h).  Packets that promise durability (PUBACK,
 * PUBREC, PUBCOMP, SUBACK, UNSUBACK) wait, with their connection, for the
 * batch that holds their data to be committed (and, with durability =
 * power, fsynced by the storage thread): see conn_wait.h.  The loop never
 * waits for the disk.
 *
 * A failed commit rolls back, and every connection with a packet waiting on
 * it is closed, so that its client resends what was not acknowledged.  The
 * next turn tries again: the store recovers by itself.  What the batch
 * changed in memory is made to match: session state is written again
 * (store_redo), deliveries it queued are taken off their sessions' queues
 * and counters, and messages it stored lose their row id (stored again
 * when next referenced).
 *
 * Only persistent sessions are stored: a clean session's state dies with
 * its connection anyway.  $SYS retained messages are not stored either.
 */
#ifndef PETREL_STORE_H
#define PETREL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct message;
struct session;
struct delivery;
struct subscription;

#define STORE_FILE "petrel.db"
/* The schema this build writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 4

/* Opens (creating when absent) data_dir/petrel.db and upgrades its schema.
 * Returns 0, or -1 with a message in err: unreadable file, not a Petrel
 * database, schema newer than this build. */
int store_open(const char *data_dir, char *err, size_t errlen);

/* Loads sessions with their subscriptions, inbound QoS 2 ids and queue
 * counters, and retained messages, into broker memory; expires abandoned
 * sessions.  Queued messages stay on disk until their session connects.
 * Returns 0 or -1 (logged). */
int store_load(void);

/* Commits what is pending, stops the storage thread and closes. */
void store_close(void);

/* Batches.  Every write joins the transaction of the current turn, batch
 * number store_wait_batch(); store_commit() (the end of the turn) commits
 * it.  A batch is durable once committed (durability = process) or once
 * the storage thread has synced it (power).  A packet that promises what a
 * write recorded waits for store_wait_batch() to be durable (conn_wait.h). */
/* The batch a packet sent now must wait for; 0 = none, all is durable. */
uint64_t store_wait_batch(void);
/* The batch of the transaction open in this turn, 0 when none is: what
 * a rollback of it takes back is kept by that number (session.h). */
uint64_t store_open_batch(void);
/* The highest durable batch. */
uint64_t store_durable(void);
/* Commits the turn's transaction (end of turn).  Returns 0, or the number
 * of the batch that was rolled back: the packets waiting for it must not
 * leave.  What it lost is written again later (store_redo). */
uint64_t store_commit(void);

/* What a rolled-back batch asks of the sessions, given by the broker's
 * owner (broker.c) so that the store calls no session function by name.
 * Every member is set; the hooks are kept, not copied. */
struct store_session_hooks {
    /* The batch `failed` was rolled back: what it queued for s is taken
     * off s's queue and counters (session_store_rolled_back). */
    void (*rolled_back)(struct session *s, uint64_t failed);
    /* The mark of inbound QoS 2 id `packet_id`, stored by that batch, is
     * taken back (session_qos2_forget). */
    void (*qos2_forget)(struct session *s, uint16_t packet_id);
    /* Is the id marked?  For writing a session's marks again
     * (session_qos2_pending). */
    bool (*qos2_pending)(const struct session *s, uint16_t packet_id);
};
void store_set_session_hooks(const struct store_session_hooks *hooks);

/* Writes.  All return 0, or -1 when the statement failed; a failure also
 * dooms the current transaction (see above). */
int store_session_add(struct session *s);            /* sets s->db_id */
int store_session_delete(struct session *s);
/* Records the session's owner (its ACL identity) after CONNECT. */
int store_session_identity(struct session *s);
int store_session_offline(struct session *s, int64_t since); /* 0 = online */
/* Records a 5.0 Session Expiry Interval (or the broker default, NULL). */
int store_session_expiry(struct session *s);
/* Records the session's pending will (s->will, due at s->will_at), or
 * clears it when s->will is NULL. */
int store_session_will(struct session *s);
int store_sub_put(struct session *s, const struct subscription *sub);
int store_sub_delete(struct session *s, const char *filter, size_t len);
int store_message_add(struct message *m);            /* sets m->db_id if 0 */
int store_delivery_add(struct session *s, struct delivery *d, struct message *m);
int store_delivery_state(struct session *s, const struct delivery *d);
int store_delivery_delete(struct session *s, int64_t seq);
/* Deletes the oldest queued (never sent) delivery; returns its payload
 * size via *bytes, 1 if one was deleted, 0 if none, -1 on error. */
int store_delivery_drop_oldest(struct session *s, int64_t after_seq, uint32_t *bytes);
int store_qos2_add(struct session *s, uint16_t packet_id);
int store_qos2_delete(struct session *s, uint16_t packet_id);
int store_retained_set(const char *topic, size_t len, struct message *m); /* NULL clears */

/* Reads up to `max` deliveries of s with seq > after_seq, in order, and
 * hands each to got(s, d) (session_loaded_delivery appends them to its
 * lists: in-flight QoS 2 states to s->inflight, the rest to s->queued).
 * Returns how many were read, or -1.  store_read.c. */
typedef void (*store_delivery_fn)(struct session *s, struct delivery *d);
int store_load_deliveries(struct session *s, int64_t after_seq, uint32_t max,
                          store_delivery_fn got);

/* Removes persistent sessions offline for longer than their expiry (5.0:
 * their Session Expiry Interval; 3.1.1: session_expiry).  Cheap when
 * nothing is due: call it every second. */
void store_expire_sessions(void);
/* A session went offline and expires at `due` (unix ms, 0 = never):
 * store_expire_sessions looks again then. */
void store_expiry_note(int64_t due);

/* True while writes fail (reported in $SYS and the log). */
bool store_degraded(void);
/* NULL while the store works; else what is wrong, for $SYS and the service
 * manager's status: writes failing, or petrel.db deleted, replaced or made
 * unwritable while running (then nothing is acknowledged until it is
 * fixed: see store_identity.c). */
const char *store_problem(void);

/* The admin API's look at a stored queue: fn(topic, len, payload bytes,
 * qos, arg) for the first `max` deliveries of s stored after `after_seq`,
 * in order, read without loading them.  Returns how many, or -1. */
typedef void (*store_peek_fn)(const char *topic, size_t len, uint32_t size, uint8_t qos,
                              void *arg);
int store_peek_deliveries(const struct session *s, int64_t after_seq, size_t max,
                          store_peek_fn fn, void *arg);

/* petreld --inspect: prints the database's sessions, subscriptions, queue
 * depths and retained topics (session_expiry: for the expiry shown), and
 * for a cluster node (`cluster`) its outbox even when empty.  Opens
 * read-only; returns an exit code. */
int store_inspect(const char *data_dir, uint32_t session_expiry, bool cluster, FILE *out);

#endif
