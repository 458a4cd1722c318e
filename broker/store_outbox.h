/*
 * store_outbox.h - the cluster's rows in petrel.db (store_outbox.c):
 *
 *   cluster_outbox  QoS 1/2 messages this node accepted and JetStream has
 *                   not acknowledged yet (cluster_outbox.h).  A row is
 *                   written in the transaction of the turn that routed the
 *                   message, so the publisher's acknowledgement waits for
 *                   it like for any other row, and deleted once JetStream
 *                   has stored the message.
 *   cluster_inbox   the Petrel-Ids of QoS 2 messages from other nodes this
 *                   node queued, written with the deliveries they queued:
 *                   a copy JetStream delivers again (a crash before the
 *                   acknowledgement) is recognised and not queued twice.
 *                   Only the newest STORE_INBOX_KEEP are kept.
 *
 * Writes join the turn's transaction (store.h); reads see it too.
 */
#ifndef PETREL_STORE_OUTBOX_H
#define PETREL_STORE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;

/* Ids of QoS 2 messages remembered against redelivery: JetStream redelivers
 * only what it has not seen acknowledged, at most the consumer's
 * MaxAckPending at a time, so far fewer are ever needed. */
#define STORE_INBOX_KEEP 200000

/* Adds a row (its id given by the caller, never reused).  0 or -1. */
int store_outbox_add(int64_t id, const char *petrel_id, const struct message *m);
int store_outbox_delete(int64_t id);

/* What is in the outbox now: rows and their bytes (payload, topic and
 * properties).  0 or -1. */
int store_outbox_totals(int64_t *rows, int64_t *bytes, int64_t *max_id);

/* Calls fn for up to `max` rows with after < id <= upto, in id order.
 * fn takes its own reference to m if it keeps it.  Returns the number of
 * rows read, or -1. */
typedef void (*store_outbox_fn)(int64_t id, const char *petrel_id, struct message *m,
                                uint32_t bytes, void *arg);
int store_outbox_scan(int64_t after, int64_t upto, int max, store_outbox_fn fn, void *arg);

/* cluster_inbox: 1 if petrel_id is there, 0 if not, -1 on error. */
int store_inbox_seen(const char *petrel_id);
int store_inbox_add(const char *petrel_id);
/* Deletes all but the newest STORE_INBOX_KEEP ids (once a minute). */
int store_inbox_prune(void);

/* The size store_outbox_totals counts for a message. */
uint32_t store_outbox_bytes(const struct message *m);

/* Finalizes the statements (store_close, before the database closes). */
void store_outbox_close(void);

#endif
