/*
 * protocol.h - what the broker does with each decoded packet of a client.
 * The handlers implement the MQTT 3.1.1 and 5.0 server rules; conn.c
 * frames and decodes a packet and calls the handler of its type, after the
 * rules about the order of packets (CONNECT first, and once).  They are
 * split by concern: protocol.c (protocol violations), protocol_connect.c
 * (CONNECT, PINGREQ, DISCONNECT), protocol_publish.c (PUBLISH and its
 * acknowledgements: PUBACK, PUBREC, PUBREL, PUBCOMP) and
 * protocol_subscribe.c (SUBSCRIBE, UNSUBSCRIBE).
 */
#ifndef PETREL_PROTOCOL_H
#define PETREL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct mqtt_packet;
struct mqtt_connect;
struct mqtt_disconnect;
struct mqtt_publish;
struct mqtt_subscribe;
struct session;

/* What the CONNECT handler asks of the layers that make connections (the
 * listeners, the bridges), given by the broker's owner (broker.c:
 * protocol_init) so that the handlers call neither by name.
 * Every member is set; the policy is kept, not copied. */
struct protocol_policy {
    /* May c's client connect without a verified user name and password
     * (its listener's allow_anonymous: listener_allows_anonymous)? */
    bool (*allows_anonymous)(const struct conn *c);
    /* Does the client certificate's CN name c's user (its listener's
     * use_identity_as_username: listener_uses_identity)? */
    bool (*uses_identity)(const struct conn *c);
    /* Is c a bridge's own connection to this broker (bridge_owns_conn)?
     * Only those may use the bridges' client ids (bridge_origin.h). */
    bool (*bridge_conn)(const struct conn *c);
};
void protocol_init(const struct protocol_policy *policy);
/* The policy given to protocol_init (protocol.c). */
extern const struct protocol_policy *protocol_policy;

/* The cluster's say in a CONNECT (cluster_session.c registers it; none
 * alone).  Once the login is decided and before the session is bound,
 * claim() makes the client id this node's cluster-wide, which may bring
 * the session from another node into this one's store.  Returns 0 when the
 * CONNECT goes on at once, 1 when it waits (input held, connect_timeout
 * running): protocol_claimed(c, ok, why) is called later, or abort() if
 * the connection ends first. */
struct protocol_claim {
    int (*claim)(struct conn *c, const char *id, size_t id_len, bool clean, const char *user,
                 size_t user_len);
    void (*abort)(struct conn *c, const char *id, size_t id_len);
};
void protocol_set_claim(const struct protocol_claim *pc);
/* The claim is decided: the CONNECT goes on (ok), or is refused with
 * "server unavailable" and `why` in the log. */
void protocol_claimed(struct conn *c, bool ok, const char *why);

/* Closes the connection for a protocol violation, with its will. Returns -1.
 * A 5.0 client is sent DISCONNECT 0x82 (protocol error) first. */
int protocol_violation(struct conn *c, const char *why);
/* The same with another reason code for 5.0 clients (enum mqtt_reason:
 * 0x81 malformed, 0x93 receive maximum exceeded, 0x94 topic alias invalid,
 * 0x95 packet too large, 0x99 payload format invalid...). */
int protocol_error(struct conn *c, uint8_t reason, const char *why);

/* NULL if a topic name or filter is within max_topic_length and
 * max_topic_levels; else what it exceeds (the hit is counted). */
const char *topic_over_limits(const uint8_t *topic, size_t len);

/* True if clients may not publish to `topic` at all, wills included: the
 * broker's own $SYS tree. */
bool topic_reserved(const uint8_t *topic, size_t len);

/* True if `topic` starts with "$share/": the form of a shared subscription
 * filter, never a topic name anyone could subscribe to, so a PUBLISH or a
 * will there is refused (5.0: reason 0x90 Topic Name invalid). */
bool topic_share_name(const uint8_t *topic, size_t len);

/* Answers a CONNECT with a refusing CONNACK and closes once it is sent:
 * `code311` for a 3.1.1 client; for a 5.0 client `code5` (0 = the 5.0 code
 * matching code311) with `reason` (may be NULL) as its reason string unless
 * the client asked for none.  `why` goes to the log at close. */
void connect_refuse(struct conn *c, uint8_t code311, uint8_t code5, const char *reason,
                    const char *why);

/* Drops a CONNECT held for a password check or a refusal delay (the
 * connection is closing).  Called by conn_close when c->auth_wait is set. */
void connect_abort(struct conn *c);

/* The handlers, by packet type.  Pointers in the packet refer to the
 * connection's input buffer and are valid only during the call.  Each
 * returns 0 to go on reading, or -1 when the connection has been closed:
 * its state is CONN_DEAD, its memory stays valid until the end of the turn
 * (conn.h), nothing more is read. */
int handle_connect(struct conn *c, const struct mqtt_connect *ck);
int handle_disconnect(struct conn *c, const struct mqtt_disconnect *d);
int handle_pingreq(struct conn *c);
int handle_publish(struct conn *c, const struct mqtt_publish *pub);
/* PUBACK, PUBREC, PUBREL or PUBCOMP (`type`) with its packet id and
 * reason code. */
int handle_publish_ack(struct conn *c, uint16_t id, uint8_t type, uint8_t reason_code);
int handle_subscribe(struct conn *c, const struct mqtt_packet *p);
int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p);
/* Drops the SUBSCRIBE or UNSUBSCRIBE the session's client is having worked
 * through over several loop turns, if any (the session is being freed). */
void subscribe_job_cancel(struct session *s);

#endif
