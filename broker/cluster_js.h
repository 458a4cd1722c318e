/*
 * cluster_js.h - QoS 1/2 between nodes through JetStream: what cluster.c
 * shares with cluster_outbox.c (the publishing side) and cluster_stream.c
 * (the stream, and each node's durable consumer).  Not for the rest of the
 * broker, which uses cluster.h.
 *
 * QoS 0 goes over core NATS on "<cluster_name>.<subject>"; QoS 1 and 2 go
 * through one JetStream stream, "<cluster_name>-js", on subjects
 * "<cluster_name>-js.<subject>" (same mapping, cluster_subject.h).  The
 * two subject spaces do not overlap, so the stream stores no QoS 0 and a
 * node's core subscriptions (even for "#") never see a QoS 1/2 copy.
 *
 * Publishing node: the message and a cluster_outbox row commit in the
 * turn's transaction (so the publisher's PUBACK/PUBREC waits for nothing
 * more than before); once that batch is durable the message is published
 * to JetStream asynchronously with Nats-Msg-Id = its Petrel-Id; the row is
 * deleted when JetStream acknowledges.  What is left (NATS unreachable,
 * a timeout, a restart) is published again from the table, with the same
 * id: JetStream drops a copy it already has (its duplicate window).
 *
 * Every node: a durable push consumer named after node_name, acknowledging
 * explicitly; a message is acknowledged once the batch holding what its
 * routing queued to persistent sessions is durable, and not acknowledged
 * (redelivered) when that batch rolled back.  QoS 2 ids are remembered in
 * cluster_inbox, written in that same batch: a redelivered copy is not
 * queued twice.
 */
#ifndef PETREL_CLUSTER_JS_H
#define PETREL_CLUSTER_JS_H

#include <stdbool.h>
#include <stdint.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <nats/nats.h>
#pragma GCC diagnostic pop

#include "cluster.h"

struct message;
struct session;

/* Messages in flight to JetStream from this node, at most (its pending
 * acknowledgements); the rest wait in the outbox table. */
#define CLUSTER_JS_INFLIGHT 4096
/* Messages delivered to this node and not yet acknowledged, at most (the
 * consumer's MaxAckPending). */
#define CLUSTER_JS_ACK_PENDING 4096
/* JetStream redelivers what a node has not acknowledged after this long. */
#define CLUSTER_JS_ACK_WAIT_S 5
/* A publish JetStream has not acknowledged after this long is published
 * again (same id). */
#define CLUSTER_JS_PUB_WAIT_MS 5000
/* JetStream's duplicate window: a copy published again within it is
 * dropped by the server. */
#define CLUSTER_JS_DUPLICATES_S 120

/* Heartbeats (cluster_nodes.c): each node announces itself this often... */
#define CLUSTER_HB_INTERVAL_MS 2000
/* ...and counts a node it has not heard for this many intervals as gone. */
#define CLUSTER_HB_MISSED 3
/* The nodes a node keeps track of, itself included, at most. */
#define CLUSTER_NODES_MAX 1024

/* cluster.c (and cluster_node_name, cluster.h) */
const char *cluster_prefix(void);      /* "<cluster_name>": the core subjects */
const char *cluster_js_prefix(void);   /* "<cluster_name>-js": subjects and the stream's name */
const char *cluster_boot(void);        /* this start's random stamp (hex), for ids */
bool cluster_link_up(void);
/* Wakes the loop (any thread): the loop then runs cluster_outbox_run and
 * takes in what was received. */
void cluster_wake(void);
/* The NATS message for m on `subject`: the payload and the headers
 * (Nmqtt-Pub, Petrel-Node, Petrel-Id = id, Petrel-Retain, Petrel-Props).
 * NULL when out of memory. */
natsMsg *cluster_msg_new(const char *subject, const struct message *m, const char *id);
/* Decodes a message from NATS whose subject is under `prefix`, strictly
 * (as a client's PUBLISH).  NULL if it does not decode or names no topic
 * this node accepts from the cluster. */
struct message *cluster_msg_decode(natsMsg *nm, const char *prefix);
/* What both of the node's NATS connections set (the main one and the
 * share groups'): the servers, the connection's name, reconnecting for
 * ever every second, libnats' global delivery threads, and Connect not
 * waiting for a server (`connected` is called when one answers). */
natsStatus cluster_options_base(natsOptions *o, const char **servers, int n, const char *name,
                                natsConnectionHandler connected);
/* The handler of every NATS subscription: queues the message for the loop. */
void cluster_msg_in(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);

/* cluster_close.c: the orderly close.  Every subscription the node makes
 * is tracked (its completion callback counted) so that cluster_stop can
 * wait until libnats has returned from its last message handler. */
natsStatus cluster_sub_track(natsSubscription *sub);
/* Waits up to `ms` for every tracked subscription to complete (after the
 * connection closed them).  False at the bound. */
bool cluster_subs_wait(int ms);
/* From cluster_stop on, true: the threads' callbacks drop what they are
 * given (natsMsg_Destroy) and touch nothing else.  Never reset by
 * cluster_stop, so that a late thread still sees it. */
bool cluster_closing(void);
void cluster_close_begin(void);
void cluster_close_reset(void);  /* cluster_start */

/* cluster_loop.c: the connection's socket on the broker's loop (the
 * callbacks of natsOptions_SetEventLoop), and the moment the loop stops
 * running callbacks (cluster_stop, before the connection closes). */
natsStatus cluster_loop_attach(void **user, void *loop, natsConnection *nc, natsSock sock);
natsStatus cluster_loop_read(void *user, bool add);
natsStatus cluster_loop_write(void *user, bool add);
natsStatus cluster_loop_detach(void *user);
void cluster_loop_stopping(void);

/* cluster_outbox.c */
int cluster_outbox_start(void);
void cluster_outbox_stop(void);
/* m (QoS 1/2, from a local client or a will) for the other nodes: stored
 * in the outbox with the turn's writes.  Returns false when the outbox is
 * at cluster_outbox_max_bytes (counted, logged): it stays on this node. */
bool cluster_outbox_add(const struct message *m);
/* m (retain flag set, any QoS, an empty payload included) for the
 * retained messages' stream (cluster_retained.c), through the outbox in the
 * same way; its row's id starts with "r.".  False when the outbox is full. */
bool cluster_outbox_add_retained(const struct message *m);
/* jsOptions.PublishAsync.AckHandler (a libnats thread). */
void cluster_outbox_acked(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);
/* On the loop: JetStream's acknowledgements taken, backlog published. */
void cluster_outbox_run(void);
void cluster_outbox_turn_end(uint64_t failed);

/* cluster_stream.c */
int cluster_stream_start(jsCtx *js);
/* Before the connection is destroyed: ends the setup thread, drops what
 * waits for an acknowledgement (JetStream delivers it again). */
void cluster_stream_stop(void);
/* Called once the connection is closed (the setup thread may be in a
 * request): joins it. */
void cluster_stream_join(void);
/* A message delivered by the consumer, on the loop.  Returns true when it
 * keeps nm (acknowledged later), false when the caller destroys it. */
bool cluster_stream_take(natsMsg *nm);
void cluster_stream_turn_end(uint64_t failed);
/* For the loop's log: a setup error the thread met, once each. */
void cluster_stream_log(void);
/* From the setup thread: js_AddStream of a stream `name` on `filter`
 * (limits retention, file storage, the oldest dropped beyond max_bytes or
 * max_age (0: none), per_subject messages per subject at most (0: no
 * limit), JetStream's duplicate window), with `replicas`, or one on a
 * single server; *made (if not NULL) = the replicas made. */
natsStatus cluster_stream_add(jsCtx *js, const char *name, const char *filter, int64_t max_bytes,
                              int64_t max_age, int64_t per_subject, int replicas, int *made,
                              jsErrCode *je);
/* From the setup thread: this node's durable push consumer `durable` of
 * `stream` (explicit acknowledgement, CLUSTER_JS_ACK_PENDING at most,
 * redelivered after CLUSTER_JS_ACK_WAIT_S), delivering into cluster_msg_in;
 * a new consumer starts with the stream's first message (from_start) or
 * its next.  NULL after cluster_stream_set_err(what, ...). */
natsSubscription *cluster_stream_consume(jsCtx *js, const char *stream, const char *filter,
                                         const char *durable, bool from_start, const char *what);
/* From the setup thread: an error for the loop's log. */
void cluster_stream_set_err(const char *what, natsStatus s, jsErrCode je);
/* A delivered message (nm) whose effects are in the turn's batch: it is
 * acknowledged once that batch is durable, negatively acknowledged if it
 * rolled back.  Returns true (nm kept), or false when out of memory (the
 * caller destroys it; JetStream delivers it again). */
bool cluster_stream_hold(natsMsg *nm);

/* cluster_retained.c: retained messages cluster-wide. */
void cluster_retained_init(void);             /* cluster_start: the names */
const char *cluster_retained_prefix(void);    /* "<cluster_name>-retained" */
/* From the setup thread: the stream (if missing) and this node's durable
 * consumer.  0 once both exist, -1 to try again. */
int cluster_retained_setup(jsCtx *js, int replicas);
/* After the connection closed: the subscription goes. */
void cluster_retained_stop(void);
/* A message of the retained stream, on the loop: applied to this node's
 * retained store.  As cluster_stream_take. */
bool cluster_retained_take(natsMsg *nm);

/* cluster_share.c: shared subscriptions across the nodes.  A second NATS
 * connection (echo on, libnats' own threads) holds each local group's
 * queue subscriptions (QoS 0) and its subscription to the group's
 * JetStream consumer (QoS 1/2); deliveries come through cluster_msg_in
 * with the group's entry as closure. */
int cluster_share_start(const char **servers, int n, const char *name);
void cluster_share_tick(void);     /* each turn: subscriptions that failed, again each second */
void cluster_share_close(void);    /* with the main connection's close */
void cluster_share_destroy(void);  /* before nats_CloseAndWait */
/* A delivery for a group's entry `closure`, on the loop.  As
 * cluster_stream_take. */
bool cluster_share_take(natsMsg *nm, void *closure);

/* cluster_share.c: its connection (libnats' own threads: synchronous
 * requests may be made from a thread other than the loop) and JetStream
 * context, for cluster_session.c. */
natsConnection *cluster_share_conn(void);
jsCtx *cluster_share_js(void);

/* cluster_session.c: sessions cluster-wide.  Started after the share
 * connection, on it; stopped (threads told) before it closes, joined after. */
int cluster_session_start(natsConnection *nc, jsCtx *js, int replicas);
void cluster_session_stop(void);
void cluster_session_join(void);
void cluster_session_turn_end(uint64_t failed);
/* The closure of the node's session subscription, and its requests (on
 * the loop): another node takes a session, or hands back a stale copy's
 * deliveries.  As cluster_stream_take. */
void *cluster_session_tag(void);
/* The router's `delivered` (router.h). */
void cluster_session_delivered(struct session *s, const struct message *m);
/* A message's cross-node id from its Petrel-Id (message.h: xid). */
uint64_t cluster_xid(const char *petrel_id);
bool cluster_session_take(natsMsg *nm);

/* cluster_nodes.c: the nodes heard.  Started on the main connection after
 * the JetStream context; stopped after its subscriptions completed. */
int cluster_nodes_start(natsConnection *nc);
void cluster_nodes_stop(void);
/* A heartbeat now (the link came up; otherwise the timer sends them). */
void cluster_nodes_announce(void);
/* The closure of the heartbeat subscription; a heartbeat, on the loop (as
 * cluster_stream_take: never kept). */
void *cluster_nodes_tag(void);
bool cluster_nodes_take(natsMsg *nm);
/* Fills the nodes_* fields of cs. */
void cluster_nodes_stats(struct cluster_stats *cs);

/* Counters of the JetStream path (cluster_stats). */
struct cluster_js_stats {
    uint64_t outbox_messages, outbox_bytes; /* in the outbox now */
    uint64_t outbox_full;     /* messages kept local: outbox at its bound */
    uint64_t js_sent;         /* published to JetStream (with republishes) */
    uint64_t js_stored;       /* acknowledged by JetStream */
    uint64_t js_retried;      /* publishes that failed or timed out, published again */
    uint64_t js_received;     /* delivered by the consumer and routed */
    uint64_t js_redelivered;  /* of which JetStream delivered more than once */
    uint64_t js_duplicates;   /* QoS 2 copies recognised in cluster_inbox */
    uint64_t retained_sent;   /* retained publishes put in the outbox for the stream */
    uint64_t retained_received; /* taken from the retained stream and applied */
    bool stream_ready;        /* stream and consumer set up */
    uint64_t stream_pending;  /* NumPending of the last delivery */
    uint64_t stream_lag_ms;   /* the last delivery's wait since the stream stored it */
};
extern struct cluster_js_stats cluster_js_st;

#endif
