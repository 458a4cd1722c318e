/*
 * session_state.h - a session's state as bytes, to hand it from one node to
 * another (cluster_session.c).  Every byte decoded here comes from another
 * node: hostile input, decoded strictly (every length checked, nothing read
 * past the end, filters and topics validated as a client's SUBSCRIBE /
 * PUBLISH would be, QoS / options / state values in range, properties
 * validated with the codec's property check), refused as a whole with a
 * reason.  No count field makes a decoder allocate more than the bytes
 * that follow it can hold.
 *
 * The format (integers big-endian; "str16" = u16 length + bytes, "bin32" =
 * u32 length + bytes):
 *
 *   header:   u8 version (1), u8 kind 'H',
 *             str16 client id (valid UTF-8),
 *             u8 flags: bit 0 persistent, bit 1 expiry set (5.0), bit 2 a
 *                will follows; the other bits 0,
 *             u32 expiry (0 unless expiry set; with it set, persistent is
 *                 expiry > 0),
 *             u32 n_subs, then each: str16 filter, u8 options, u32 id,
 *             u32 n_qos2, then each: u16 packet id (1..65535, increasing),
 *             with a will: u32 will delay, then a message (below);
 *             nothing after.
 *   chunk:    u8 version (1), u8 kind 'D', u32 count, then count
 *             deliveries; nothing after.
 *   delivery: u8 state (enum delivery_state), u8 qos (QUEUED: 1 or 2;
 *             WAIT_PUBACK: 1; WAIT_PUBREC, WAIT_PUBCOMP: 2),
 *             u8 flags: bit 0 retain, bit 1 shared, bit 2 a message follows
 *                (set unless WAIT_PUBCOMP, which has none); the other bits 0,
 *             u16 packet id (0 when QUEUED, else 1..65535), u64 xid,
 *             then the message when flagged.
 *   message:  u8 qos (0..2), u8 retain (0/1), str16 topic (a valid topic
 *             name), bin32 properties (the MQTT 5.0 block a server
 *             forwards: payload format, content type, response topic,
 *             correlation data, user properties; checked as a PUBLISH's),
 *             bin32 payload, u32 Message Expiry Interval as published
 *             (seconds; what a will counts from when it goes out), u64 ms
 *             left until the message expires (0 = never; at most the
 *             longest interval).
 */
#ifndef PETREL_SESSION_STATE_H
#define PETREL_SESSION_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct session;

#define SESSION_STATE_VERSION 1

/* The header: everything but the deliveries. */
struct session_state_sub {
    char *filter; /* NUL-terminated copy */
    size_t len;
    uint8_t options;
    uint32_t id;
};
struct session_state_header {
    char *client_id; /* NUL-terminated copy */
    size_t id_len;
    bool persistent;
    bool expiry_set;
    uint32_t expiry;
    size_t n_subs;
    struct session_state_sub *subs;
    size_t n_qos2;
    uint16_t *qos2_ids;  /* inbound QoS 2 ids awaiting PUBREL, increasing */
    struct message *will; /* NULL = none (one reference owned) */
    uint32_t will_delay;
};

/* Encodes s's header, with `will` (may be NULL: none) and its delay.
 * malloc'd, *len set; NULL when out of memory. */
uint8_t *session_state_header_encode(const struct session *s, const struct message *will,
                                     uint32_t will_delay, size_t *len);
/* Decodes strictly into *h (owned: free with session_state_header_free).
 * 0, or -1 with *why (static string) and *h empty. */
int session_state_header_decode(const uint8_t *buf, size_t len, struct session_state_header *h,
                                const char **why);
void session_state_header_free(struct session_state_header *h);
/* Applies a decoded header to s (which has no connection): persistence and
 * expiry (session_set_expiry semantics; a persistent session ends up
 * stored, as session_create(..., true) does), each subscription through
 * session_subscribe (topic tree and store, share groups included), each
 * QoS 2 id through session_qos2_mark.  The will is NOT applied (the caller
 * decides).  0, or -1 (out of memory). */
int session_state_apply_header(struct session *s, const struct session_state_header *h);

/* The deliveries: the in-flight ones in memory first (with packet id and
 * state; a QoS 2 one past PUBREC has no message, only its packet id and
 * state), then the queued ones, those only in the store included (read
 * back a window at a time as session_move_shared does; rows in flight
 * since before a restart come in their seq place); s is unchanged
 * afterwards, memory and rows.  emit() gets consecutive chunks of at most
 * max_chunk bytes, each holding whole deliveries (a delivery bigger than
 * max_chunk goes alone in its chunk); no chunk when there is no delivery.
 * emit returns 0 to go on, -1 to stop (then the function returns -1).
 * xid_of (may be NULL) gives a delivery's cross-node message id (0 =
 * unknown), carried with it.  after_seq: only the deliveries whose seq is
 * above it (0: all).  Neither may change s nor look at its lists
 * (while rows only in the store are read, they hold that window).  Returns
 * the number of deliveries emitted, or -1 (stopped, out of memory, store
 * unreadable). */
long session_state_export(struct session *s, int64_t after_seq, size_t max_chunk,
                          uint64_t (*xid_of)(struct session *s, int64_t seq, void *arg),
                          int (*emit)(const uint8_t *chunk, size_t len, void *arg), void *arg);
/* Appends the deliveries of one chunk to s (no connection attached).
 * keep_inflight: s was empty of deliveries before the first chunk:
 * in-flight ones keep their packet id and state, so that session_attach
 * resends them (PUBLISH with DUP at the same packet id, PUBREL for released
 * QoS 2) exactly as after a restart of petreld; queued ones are queued
 * after them (session_append_delivery).  !keep_inflight (s has deliveries
 * of its own): every delivery that has a message is queued as new
 * (session_deliver / session_deliver_shared: bounds and policy), released
 * QoS 2 ones (no message) are dropped.  skip (may be NULL): a delivery
 * whose xid != 0 and skip(s, xid, arg) is true is not imported.  For a
 * stored session everything is written in the turn's store transaction.
 * Strict decoding: on bad bytes returns -1 with *why and imports nothing of
 * the chunk.  Returns the deliveries imported (those the queue took), or
 * -1 with *why: bad bytes, or out of memory / a failed store write part
 * way (what was appended stays; the failed write dooms the turn's
 * transaction, whose rollback takes the queued ones back). */
long session_state_import(struct session *s, const uint8_t *chunk, size_t len, bool keep_inflight,
                          bool (*skip)(struct session *s, uint64_t xid, void *arg), void *arg,
                          const char **why);

#endif
