/*
 * broker.h - the one broker instance and its counters.  Like Redis' `server`,
 * the state is a single global owned by the event loop thread: every module
 * reads and changes it from loop callbacks only, so it needs no locks.
 * broker.c makes and frees it (broker_init, broker_free); petreld's main,
 * the fuzz target and the unit tests all go through those two.  broker.c
 * also gives the end of the turn its steps (turn.h), as the one file that
 * knows every module.
 */
#ifndef PETREL_BROKER_H
#define PETREL_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "histogram.h"

struct event_base;
struct event;
struct topic_tree;
struct hashmap;
struct conn;
struct listener;

struct broker_stats {
    uint64_t msgs_received;      /* PUBLISH packets received */
    uint64_t msgs_sent;          /* PUBLISH packets sent (incl. resends) */
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t publish_dropped;    /* deliveries dropped: full queue or slow consumer */
    uint64_t connections_refused; /* max_connections reached */
    uint64_t protocol_errors;    /* connections closed for a protocol violation */
    uint64_t store_errors;       /* store transactions rolled back */
    /* Security and limits: each counts the times it refused or cut off. */
    uint64_t listener_refused;   /* a listener's own max_connections reached */
    uint64_t source_refused;     /* max_connections_per_source reached */
    uint64_t connect_timeouts;   /* closed: no CONNECT within connect_timeout */
    uint64_t packet_too_large;   /* closed: packet over max_packet_size */
    uint64_t keepalive_refused;  /* CONNECT asking for more than max_keepalive */
    uint64_t auth_refused;       /* bad credentials, or anonymous where not allowed */
    uint64_t auth_throttled;     /* refused unchecked: too many failed logins (login_throttle.h) */
    uint64_t auth_busy;          /* too many password checks waiting (CONNACK 0x03) */
    uint64_t acl_publish_denied; /* PUBLISH dropped by the ACL */
    uint64_t acl_subscribe_denied; /* filter refused by the ACL (0x80) */
    uint64_t acl_read_denied;    /* delivery withheld by the ACL */
    uint64_t subscriptions_refused; /* max_subscriptions_per_client reached (0x80) */
    uint64_t retained_refused;   /* retained message not kept: max_retained_messages/_bytes */
    /* Shared subscriptions (shared_subs.h). */
    uint64_t shared_delivered;   /* messages given to one member of a group */
    uint64_t shared_redistributed; /* handed on from a departing member */
    uint64_t shared_dropped;     /* QoS 1/2 no member of a group could take */
    uint64_t topic_too_long;     /* topic or filter over max_topic_length */
    uint64_t topic_too_deep;     /* topic or filter over max_topic_levels */
    uint64_t inflight_full;      /* message queued behind a full max_inflight window */
    uint64_t queue_full;         /* message dropped: max_queued_messages/_bytes */
    uint64_t flow_slowed;        /* publishers slowed by a full queue (flow.h) */
    uint64_t flow_paused;        /* ... and not read: FLOW_MAX_HELD acks held */
    uint64_t queue_over_bound;   /* taken past a full queue with no one to slow */
    uint64_t output_buffer_full; /* max_output_buffer: QoS 0 dropped or input paused */
    /* MQTT 5.0 */
    uint64_t msgs_expired;       /* deliveries dropped: Message Expiry Interval ran out */
    uint64_t publish_too_large;  /* deliveries dropped: over the client's Maximum Packet Size */
    uint64_t partial_timeouts;   /* closed: a packet not complete within partial_packet_timeout */
    uint64_t input_total_closed; /* closed: the most unfinished input at max_input_buffer_total */
    uint64_t conn_log_left_out;  /* connection log lines over max_connection_log_rate */
    uint64_t publish_rate_paused; /* reads paused: over max_publish_rate */
    uint64_t publish_bytes_rate_paused; /* reads paused: over max_publish_bytes_rate */
    uint64_t memory_budget_hits; /* memory_budget: publisher paused, output held, refused */
    /* By QoS, for /metrics (http_metrics.c): PUBLISH packets and their
     * payload bytes, in (as published) and out (as sent, resends too). */
    uint64_t msgs_received_qos[3], payload_received_qos[3];
    uint64_t msgs_sent_qos[3], payload_sent_qos[3];
};

struct broker {
    struct event_base *base;
    struct config cfg;
    const char *config_path;     /* NULL when started without -c */
    struct topic_tree *topics;
    struct hashmap *sessions;    /* client id -> struct session */
    struct conn *conns;          /* every open connection, doubly linked */
    size_t n_conns;              /* open TCP connections (any state) */
    size_t n_clients;            /* connections past CONNECT */
    struct listener *listeners;
    struct broker_stats stats;
    time_t started;              /* wall clock, for $SYS uptime */
    uint64_t match_stamp;        /* generation for deduplicating matches */
    /* Retained messages towards max_retained_messages/_bytes (router.c);
     * $SYS ones do not count. */
    size_t retained_n;
    uint64_t retained_bytes;
    int lock_fd;                 /* flock on data_dir/petreld.lock, or -1 */
    /* Input bytes read but not yet handled (mostly incomplete packets),
     * over all connections, towards max_input_buffer_total (conn.c). */
    uint64_t input_held;
    /* Latencies for /metrics: a store COMMIT, an fsync of the WAL
     * (durability = power), and a message's way from being received (or
     * read back from the store) to its first send to a subscriber. */
    struct histogram store_commit_latency, store_fsync_latency, delivery_latency;
};

extern struct broker broker;

/* Zeroes the broker, takes a copy of *cfg and creates the event loop, the
 * topic tree, the session table and the end-of-turn event (turn.h), with
 * no connection, listener or store yet.  Returns 0, or -1 out of memory;
 * either way broker_free undoes it. */
int broker_init(const struct config *cfg);

/* Closes and frees everything the broker holds, in the order the modules
 * need: listeners, connections (a 5.0 client is told the server is shutting
 * down), the password check threads, $SYS, the store (which commits what
 * the closing connections wrote), sessions, the topic tree with its
 * retained messages, the loop.  Safe after a failed or partial start. */
void broker_free(void);

#endif
