/*
 * cluster.h - several petreld nodes as one broker, over NATS (cluster.c).
 *
 * With `cluster_nats` set, the node keeps one NATS connection (libnats on
 * the broker's own event loop, reconnecting for ever) and:
 *   - subscribes on NATS to the subjects of its local subscriptions
 *     (cluster_subject.h), one NATS subscription per distinct filter, made
 *     when the filter gets its first local subscriber and dropped with its
 *     last (the topic tree reports both);
 *   - publishes each message a local client (or a will) published, once,
 *     under its subject (QoS 1/2: through the outbox and JetStream), with
 *     its QoS, retain flag and MQTT 5.0 properties in headers; $SYS and
 *     topics a subject cannot hold stay local;
 *   - routes what arrives from the other nodes to its local subscribers
 *     exactly as a local publish, without sending it back (the connection
 *     is "no echo", and a message seen twice through two overlapping
 *     subscriptions is routed once).
 *
 * QoS 0 goes over core NATS: at most once between nodes.  QoS 1 and 2 go
 * through a JetStream stream (cluster_js.h): at least once, QoS 2 exactly
 * once, also across a node's crash or a partition.  Retained messages
 * are cluster-wide: a JetStream stream with one message per topic, applied
 * to every node's store (cluster_js.h).  Share groups are cluster-wide
 * (cluster_share.c); so are sessions: a client id is one session
 * cluster-wide, moved between nodes when its client moves
 * (cluster_session.c).
 */
#ifndef PETREL_CLUSTER_H
#define PETREL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config;
struct message;

/* libnats' handles (nats/nats.h declares them the same way). */
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;

/* Before the event base is made: a cluster needs libevent's locking (the
 * NATS library's threads add events to the loop).  No-op without
 * cluster_nats. */
void cluster_preinit(const char *cluster_nats);

/* Connects (in the background when no server answers yet) and registers
 * for the topic tree's interest.  Returns 0, or -1 after logging why (a
 * bad URL).  No-op without cluster_nats. */
int cluster_start(void);
/* Flushes what is queued for NATS (briefly), closes the connection. */
void cluster_stop(void);

/* Is the node part of a cluster (cluster_nats set and started)? */
bool cluster_enabled(void);

/* A message published on this node: sends it to the other nodes (QoS 0
 * over core NATS, QoS 1/2 through the outbox and JetStream).  Returns 0,
 * or -1 when the outbox is full (cluster_outbox_max_bytes): the message
 * reaches this node's subscribers only. */
int cluster_forward(const struct message *m);
/* (cluster_forward and cluster_share_here reach the router, and
 * cluster_share_group the share groups, as the callbacks cluster_start
 * registers: router_set_cluster, share_set_watch.) */

/* Shared subscriptions (cluster_share.c).  A share group was made on this
 * node (on) or its last local member left (off): `key` is
 * "$share/GROUP/filter", the filter from `inner`.  No-op when alone; the
 * groups made before cluster_start (restored sessions) are found then. */
void cluster_share_group(const char *key, size_t len, size_t inner, bool on);
/* Does this node deliver m to its own share groups itself?  True alone,
 * for what does not cross (kept_local: the outbox was full; $SYS; no
 * subject), and for QoS 0 while the share connection is down; otherwise
 * the cluster picks the member (QoS 0: a NATS queue group; QoS 1/2: the
 * group's JetStream consumer). */
bool cluster_share_here(const struct message *m, bool kept_local);

/* Sessions cluster-wide (cluster_session.c): counters. */
struct cluster_session_stats {
    uint64_t claims;          /* CONNECTs that asked the directory */
    uint64_t unclaimed;       /* went on with the node's own session: directory not reachable */
    uint64_t taken;           /* sessions handed over to this node */
    uint64_t deliveries_taken;
    uint64_t from_record;     /* started from the record: the owner did not answer */
    uint64_t wills_from_record;
    uint64_t given;           /* sessions this node handed to another */
    uint64_t stale;           /* copies found another node's */
    uint64_t handed_back;     /* chunks of a stale copy's deliveries the owner took */
    uint64_t adopted;         /* deliveries of other nodes' stale copies taken in */
    uint64_t failed, lost;    /* claims refused: hand-over broken, CAS lost */
    uint64_t writes, writes_lost; /* record updates, and those another node's CAS beat */
};
const struct cluster_session_stats *cluster_session_stats(void);

/* The end of each turn, after the commit (turn.c): `failed` is the batch
 * rolled back, 0 if none.  Publishes to JetStream what became durable,
 * acknowledges to JetStream what this node has committed. */
void cluster_turn_end(uint64_t failed);

struct cluster_stats {
    bool connected;       /* to a NATS server now */
    uint64_t subjects;    /* NATS subscriptions held */
    uint64_t sent;        /* messages published to NATS */
    uint64_t received;    /* messages routed from NATS */
    uint64_t duplicates;  /* copies dropped (overlapping subscriptions) */
    uint64_t dropped;     /* not sent (NATS buffer full) or not taken in
                             (hand-off queue full, bad subject) */
    uint64_t reconnects;
    /* QoS 1/2 through JetStream (cluster_js.h) */
    uint64_t outbox_messages, outbox_bytes; /* waiting for JetStream now */
    uint64_t outbox_full;     /* kept local: the outbox was at its bound */
    uint64_t js_sent, js_stored, js_retried;
    uint64_t js_received, js_redelivered, js_duplicates;
    uint64_t retained_sent, retained_received; /* through the retained stream */
    bool stream_ready;        /* the stream and this node's consumer exist */
    /* As of the last delivery of the QoS 1/2 stream: what the stream holds
     * that this node's consumer has not had yet, and how long that
     * delivery waited since the stream stored it (ms, by this node's clock
     * against the NATS server's). */
    uint64_t stream_pending, stream_lag_ms;
    /* The nodes heard (cluster_nodes.c), this one included */
    uint64_t nodes_seen;
    uint64_t nodes_ready;     /* of which with their stream ready */
    uint64_t nodes_refused;   /* heartbeats malformed, too big, or with this node's name */
    uint64_t nodes_full;      /* heartbeats of new nodes beyond CLUSTER_NODES_MAX */
    uint64_t nodes_dropped;   /* heartbeats over the bound per interval */
};
const struct cluster_stats *cluster_stats(void);

/* The nodes heard within the last CLUSTER_HB_MISSED heartbeat intervals,
 * this one included: their names in byte order, joined by spaces.  A
 * buffer of the cluster's, valid until the next call. */
const char *cluster_nodes_list(void);
/* This node's name (from cluster_start on). */
const char *cluster_node_name(void);
/* The node's name: cfg's node_name, or else the host name (or "petrel"). */
void cluster_node_name_of(const struct config *cfg, char *out, size_t len);
/* petreld --inspect with cluster_nats set: the cluster's and the node's
 * names, and that NATS is not asked. */
void cluster_inspect(const struct config *cfg, FILE *out);

/* For the other cluster parts (sessions, retained, shares): the node's NATS
 * connection and its JetStream context, NULL when the node is alone.  They
 * live from cluster_start to cluster_stop; use them on the loop (libnats
 * calls made there must not block it: no synchronous request while the
 * loop waits).  The JetStream context's asynchronous-publish acknowledgement
 * handler belongs to the outbox (cluster_outbox.c): publish asynchronously
 * through a context of your own. */
natsConnection *cluster_conn(void);
jsCtx *cluster_js(void);

#endif
