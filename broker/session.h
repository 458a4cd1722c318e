/*
 * session.h - MQTT session state: what survives a TCP connection when the
 * client asked for a persistent session (3.1.1: clean session = 0, kept for
 * the broker's session_expiry; 5.0: a Session Expiry Interval above 0).
 *
 * A session owns its subscriptions (mirrored in the topic tree), its
 * outbound deliveries (in flight, i.e. sent and not yet acknowledged, and
 * queued, i.e. waiting for the client to come back or for the inflight window
 * to open) and the inbound QoS 2 packet ids waiting for PUBREL.
 *
 * Every change to that state goes through the functions below: they are the
 * seam where the durable store (store.h) records what the broker promised,
 * in the turn's transaction, for a persistent session.
 *
 * The session's files:
 *   session.c        its life: create, find, subscriptions, the binding to
 *                    a connection, expiry, destroy;
 *   session_queue.c  its messages: deliver, the queue and its bounds, the
 *                    inflight window, pump, acknowledgements, the hand-off
 *                    of shared deliveries, inbound QoS 2 ids;
 *   will_delay.c     its will, published when the connection ends or after
 *                    the 5.0 Will Delay Interval.
 */
#ifndef PETREL_SESSION_H
#define PETREL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct conn;
struct event;
struct message;
struct share_group;
struct flow_link;
struct sub_job;

enum delivery_state {
    DELIVERY_QUEUED = 0,    /* not sent yet */
    DELIVERY_WAIT_PUBACK,   /* QoS 1 sent */
    DELIVERY_WAIT_PUBREC,   /* QoS 2 sent */
    DELIVERY_WAIT_PUBCOMP   /* QoS 2, PUBREL sent; the message is released */
};

struct delivery {
    struct delivery *next;
    struct message *msg;    /* NULL once PUBREC arrived */
    int64_t seq;            /* order in the session; key of its store row */
    uint32_t size;          /* payload bytes, for max_queued_bytes */
    uint16_t packet_id;     /* assigned when first sent */
    uint8_t qos;            /* 1 or 2 */
    uint8_t state;          /* enum delivery_state */
    bool retain;            /* retain flag of this delivery */
    bool shared;            /* came through a shared subscription: handed to
                               another member if this session ends
                               (shared_subs.h); stored with the row */
    bool unsent;            /* in flight since an earlier connection, not yet
                               resent on this one (session_resend_inflight) */
};

struct delivery_list {
    struct delivery *head, *tail;
    uint32_t count;
};

struct subscription {
    struct subscription *next;  /* the session's list, newest first */
    struct subscription *prev;
    struct subscription *hnext; /* chain in the session's filter table */
    uint64_t hash;              /* keyed hash of the filter */
    struct share_group *share; /* its group for "$share/{group}/{filter}" */
    uint32_t id;            /* MQTT 5.0 subscription identifier, 0 = none */
    uint8_t qos;            /* granted */
    uint8_t options;        /* the MQTT 5.0 options byte with the granted QoS
                               in bits 0-1 (3.1.1: the QoS only) */
    bool job_new;           /* new before the SUBSCRIBE marked job_stamp */
    uint16_t len;
    uint32_t job_index;     /* its last entry in that SUBSCRIBE */
    uint64_t job_stamp;     /* the SUBSCRIBE that last touched it
                               (protocol_subscribe.c) */
    uint16_t inner;         /* start of the filter proper: after
                               "$share/{group}/", 0 if not shared */
    char filter[];          /* NUL-terminated copy, "$share/..." included */
};

/* Fields in order of size (64-bit, then 32-bit, then smaller), so that the
 * struct has no holes: one per client, 10,000 idle clients are S6. */
struct session {
    char *client_id;        /* NUL-terminated copy (may contain any UTF-8) */
    size_t client_id_len;
    char *log_id;           /* printable form for logs: controls escaped */
    struct message *will;   /* will waiting for its Will Delay Interval */
    struct event *will_timer;
    int64_t will_at;        /* when it is due, unix ms (stored with it) */
    int64_t db_id;          /* row in the store's sessions table (persistent) */
    int64_t offline_since;  /* unix seconds, rounded up (so that an interval
                               counted from it after a restart never ends
                               early); 0 while connected */
    int64_t offline_ms;     /* unix ms when it went offline in this run of
                               petreld, 0 if not (then offline_since counts) */
    int64_t created_at;     /* unix seconds: made, or loaded at start (admin API) */
    int64_t attached_at;    /* unix seconds of its connection's CONNECT (admin API) */
    uint64_t store_batch;   /* store batch that last wrote its session state
                               (store_redo: it was rolled back) */
    struct conn *conn;      /* NULL while offline */
    struct subscription *subs;
    size_t n_subs;
    /* Filter -> subscription, so that SUBSCRIBE and UNSUBSCRIBE cost O(1)
     * however many a session holds; made when it holds a few (keyed
     * hashing: filters come from the network).  sub_table_cap below. */
    struct subscription **sub_table;
    struct sub_job *sub_job; /* a SUBSCRIBE/UNSUBSCRIBE being worked through
                                over several loop turns (protocol_subscribe.c) */
    struct delivery_list inflight; /* in send order (n_unsent below) */
    struct delivery *resend_after; /* the last one resent (NULL: look from
                               the head): every unsent one comes after it */
    struct delivery_list queued;   /* in arrival order; for a persistent
                                      session only a window of what the
                                      store holds */
    uint64_t queued_mem;    /* memory of the deliveries in `queued` (payload
                               and SESSION_DELIVERY_OVERHEAD each) */
    int64_t loaded_seq;     /* highest seq loaded or created in memory */
    int64_t last_seq;       /* highest seq ever given in this session */
    uint64_t queued_bytes;  /* payload bytes of the n_queued deliveries */
    /* Deliveries that the store batch `added_batch` (while it is open)
     * queued, from seq added_first_seq on; added_backlog of them (payload
     * bytes: added_backlog_bytes) went to the store only.  A failed commit
     * takes them back: session_store_rolled_back. */
    uint64_t added_batch;
    int64_t added_first_seq;
    uint64_t added_backlog_bytes;
    uint8_t *ids_out;       /* bitmap of outbound packet ids that may be in
                               use, while many are in flight (session.c) */
    uint8_t *qos2_ids;      /* bitmap of inbound QoS 2 ids awaiting PUBREL,
                               allocated on the first QoS 2 publish
                               (n_qos2_ids of them) */
    /* Scratch for routing: the generation of the last match that reached
     * this session (and match_qos, match_rap below). */
    uint64_t match_stamp;
    struct session_acl *acl; /* identity and ACL cache (acl_session.c) */
    LIST_HEAD(, flow_link) flow_waiters; /* publishers slowed by its full queue */
    uint64_t own_max_bytes; /* with own_bounds: 0 = no limit */

    uint32_t expiry;        /* 5.0 Session Expiry Interval, seconds;
                               UINT32_MAX = never */
    uint32_t sub_table_cap; /* a power of two, 0 while there is no table */
    uint32_t n_sub_ids;     /* subscriptions carrying an identifier */
    uint32_t n_shared;      /* shared subscriptions */
    uint32_t n_unsent;      /* of `inflight`, marked unsent: not counted
                               against the client's Receive Maximum until
                               resent */
    uint32_t backlog;       /* deliveries in the store not loaded in memory */
    uint32_t n_queued;      /* unsent deliveries, in memory and in store */
    uint32_t added_backlog;
    uint32_t n_qos2_ids;
    /* Its own queue bounds instead of max_queued_messages/_bytes (a
     * bridge's session, bridge_config.h; set at each start, not stored):
     * own_max_messages and own_max_bytes. */
    uint32_t own_max_messages;
    uint16_t last_packet_id;
    uint8_t match_qos;      /* the highest QoS granted by its matching filters */
    bool persistent : 1;    /* outlives the connection (3.1.1: clean session
                               = 0; 5.0: session expiry interval > 0) */
    bool expiry_set : 1;    /* 5.0 session: `expiry` applies, not the
                               broker's session_expiry */
    bool store_redo : 1;    /* store_batch was rolled back: write it again */
    bool taking_over : 1;   /* a new connection is taking the session over:
                               its detach moves no shared message away */
    bool match_rap : 1;     /* a matching filter has retain as published */
    bool own_bounds : 1;
};

/* What a queued delivery costs in memory besides its payload (the delivery
 * and its share of the message), for max_queued_memory. */
#define SESSION_DELIVERY_OVERHEAD 128

/* ---- session.c ---- */

/* Who else wants to know of a session's changes (the cluster's directory,
 * cluster_session.c; none alone): changed - bound to a connection, off
 * it, or its subscriptions changed (protocol_subscribe.c says so through
 * session_note_changed); ended - about to be destroyed. */
struct session_watch {
    void (*changed)(struct session *s);
    void (*ended)(struct session *s);
};
void session_set_watch(const struct session_watch *w);
void session_note_changed(struct session *s);

/* The session of `client_id`, or NULL. */
struct session *session_find(const char *client_id, size_t len);
/* Creates and registers an empty session; NULL when out of memory. */
struct session *session_create(const char *client_id, size_t len, bool persistent);
/* Removes the session's subscriptions from the topic tree, drops its
 * deliveries, unregisters and frees it.  It must have no connection. */
void session_destroy(struct session *s);
/* Frees every session (shutdown). */
void session_destroy_all(void);

/* Binds a connection; resends the in-flight messages (PUBLISH with DUP, or
 * PUBREL) in their order within the window (session_resend_inflight),
 * then sends what is queued. */
void session_attach(struct session *s, struct conn *c);
/* The connection is gone: a persistent session stays with its state, a
 * clean one is destroyed. */
void session_detach(struct session *s);

/* MQTT 5.0 Session Expiry Interval (set = true) or back to the broker's
 * session_expiry (set = false, 3.1.1).  5.0: 0 makes the session end with
 * its connection, more makes it persistent (and stored). */
void session_set_expiry(struct session *s, bool set, uint32_t expiry);
/* A client's Session Expiry Interval capped by session_expiry (0 = no cap). */
uint32_t session_cap_expiry(uint32_t requested);
/* Unix time in ms at which the offline session expires, or 0 for never
 * (online, or no expiry); never before its interval has passed since it
 * went offline. */
int64_t session_expiry_due(const struct session *s);

/* Adds or replaces a subscription.  `filter` is valid (a shared one,
 * "$share/{group}/{filter}", well-formed: see shared_subs.h); `options` is
 * the MQTT 5.0 options byte with the granted QoS in bits 0-1 (3.1.1: just
 * the QoS); `id` the subscription identifier (0 = none).
 * Returns 1 if new, 0 if replaced, -1 when out of memory. */
int session_subscribe(struct session *s, const char *filter, size_t len, uint8_t options,
                      uint32_t id);
/* Returns 1 if the subscription existed and was removed, 0 otherwise. */
int session_unsubscribe(struct session *s, const char *filter, size_t len);
/* The subscription with exactly this filter, or NULL. */
struct subscription *session_subscription(const struct session *s, const char *filter,
                                          size_t len);

/* The identifiers of the session's subscriptions that match `topic`, for
 * the Subscription Identifier properties of an MQTT 5.0 PUBLISH: writes up
 * to `max` of them to out[] and returns how many it wrote.  Identifiers of shared subscriptions are included.  Costs
 * one test when the session has no identifiers. */
size_t session_subscription_ids(const struct session *s, const char *topic, size_t topic_len,
                                uint32_t *out, size_t max);

/* ---- will_delay.c ---- */

/* A will whose Will Delay Interval runs: published after `delay` seconds,
 * or when the session ends if that is sooner; the session takes the
 * reference.  Cancelled (dropped) when the client reconnects in time. */
void session_set_will(struct session *s, struct message *will, uint32_t delay);
void session_cancel_will(struct session *s);
/* The store read back a pending will due at `due_ms` (unix ms): the
 * session takes the reference; nothing runs until session_start_wills. */
void session_restore_will(struct session *s, struct message *will, int64_t due_ms);
/* After the store is loaded, before clients connect: publishes the restored
 * wills that are due and arms a timer for the others. */
void session_start_wills(void);
/* Between the session's files: drops the pending will without publishing
 * it; publishes it now (if the ACL in force allows) and forgets it. */
void session_drop_will(struct session *s);
void session_publish_will(struct session *s);

/* ---- session_queue.c ---- */

/* Hands a message to the session at `qos` (already min(published, granted)).
 * Online: QoS 0 is written at once (dropped if the connection's output
 * buffer is full); QoS 1/2 enter the queue and are sent within the inflight
 * window.  Offline: QoS 1/2 are queued (in the store only, for a stored
 * session), QoS 0 is not kept.
 * A full queue (max_queued_messages, max_queued_bytes; max_queued_memory
 * for a session that is not stored): with queue_full_policy = block an
 * online session takes the message and the publisher is slowed (flow.h),
 * up to twice the bound; otherwise, and offline, the policy drops the new
 * or the oldest message, counted and logged.
 * Returns SESSION_TAKEN (queued or sent at QoS 1/2), SESSION_REFUSED
 * (dropped at the bound) or 0 (QoS 0, expired, no memory). */
#define SESSION_TAKEN 1
#define SESSION_REFUSED 2
int session_deliver(struct session *s, struct message *msg, uint8_t qos, bool retain);
/* The same for a message routed through a shared subscription: the
 * delivery is marked so that it can be handed to another member. */
int session_deliver_shared(struct session *s, struct message *msg, uint8_t qos, bool retain);

/* The state (enum delivery_state) of the in-flight delivery with this
 * packet id, or -1 if none is in flight: what kind of acknowledgement it
 * may take (protocol_publish.c judges the kind). */
int session_inflight_state(const struct session *s, uint16_t packet_id);

/* Acknowledgements from the client for outbound messages.  Unknown packet
 * ids are ignored (returns false). */
bool session_puback(struct session *s, uint16_t packet_id);
bool session_pubrec(struct session *s, uint16_t packet_id);
bool session_pubcomp(struct session *s, uint16_t packet_id);
/* 5.0 PUBREC with an error reason: the message is done with, no PUBREL. */
bool session_pubrec_refused(struct session *s, uint16_t packet_id);

/* Inbound QoS 2: has this id been received and not yet released?  Marking
 * returns -1 when out of memory. */
bool session_qos2_pending(const struct session *s, uint16_t packet_id);
int session_qos2_mark(struct session *s, uint16_t packet_id);
void session_qos2_release(struct session *s, uint16_t packet_id);
/* The batch that stored the mark of `packet_id` was rolled back: the mark
 * is taken back in memory (nothing is written), so that the client's
 * resend of a PUBLISH that was never acknowledged is stored, not taken
 * for a duplicate. */
void session_qos2_forget(struct session *s, uint16_t packet_id);


/* Offers each delivery of s that came through a shared subscription to
 * take(), in order (seq): those in memory, then those only in the store,
 * read a window at a time.  `queued_only`: only never-sent ones; otherwise
 * also those in flight whose message the client may not have (before
 * PUBREC).  When take() returns true (it gave the message to someone else)
 * the delivery is removed from s and its row deleted, in the turn's store
 * transaction, so that the move is atomic on disk.  take() must not change
 * s.  Returns how many were taken. */
uint32_t session_move_shared(struct session *s, bool queued_only,
                             bool (*take)(struct session *s, struct message *msg, void *arg),
                             void *arg);

/* Calls fn(s, d, arg) for every delivery of s, in order: the in-flight ones
 * in memory, then the queued ones in memory, then those only in the store
 * (rows in flight since before a restart among them, in their seq place),
 * read back a window at a time as session_move_shared does.  s is the same
 * afterwards, in memory and in the store; fn must not change s.  fn
 * returns 0 to go on, -1 to stop.  Returns 0, or -1 (stopped, or the store
 * could not be read).  For session_state.c. */
int session_each_delivery(struct session *s,
                          int (*fn)(struct session *s, const struct delivery *d, void *arg),
                          void *arg);
/* Appends d (calloc'd; msg, qos, retain, shared, size, state, packet_id
 * set; msg NULL only for DELIVERY_WAIT_PUBCOMP) after everything s holds,
 * as the store would give it back after a restart: an in-flight one keeps
 * its state and packet id (session_attach resends it), a queued one is
 * queued, without the queue's bounds.  s has no connection.  A stored
 * session writes its row (state included; a released QoS 2 one gets an
 * empty message row, never read back) in the turn's transaction; queued
 * ones then wait in the store only, as session_deliver puts them.  Takes
 * d.  Returns 0, or -1 (the store write failed: d is freed). */
int session_append_delivery(struct session *s, struct delivery *d);

/* Called by the store for each delivery read back from disk, in order. */
void session_loaded_delivery(struct session *s, struct delivery *d);

/* Sends queued messages while the inflight window and the connection's
 * output buffer allow.  Called when either opens up. */
void session_pump(struct session *s);
/* Between the session's files: on resumption, resends the in-flight
 * messages in their order, then pumps.  PUBRELs go at once; a PUBLISH (with
 * DUP) only while the client's Receive Maximum allows [MQTT-3.3.4-9], the
 * rest as acknowledgements come, before anything new; one whose Message
 * Expiry Interval has passed, or now over the client's Maximum Packet Size,
 * is removed (row included) instead of resent.  Also frees a delivery
 * list. */
void session_resend_inflight(struct session *s);
void session_free_deliveries(struct delivery_list *l);
/* The store batch `batch` was rolled back (store.h): the deliveries it
 * queued for s are gone from the store and are taken off its queue and
 * counters too (their publishers were not acknowledged and resend), so
 * that no phantom fills the queue's bound or is looked for later. */
void session_store_rolled_back(struct session *s, uint64_t batch);

#endif
