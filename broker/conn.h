/*
 * conn.h - one client TCP connection: framing of the input, dispatch of
 * packets to the protocol handlers, bounded output, heartbeat timers and
 * the end of the connection (with its will when the end is abnormal).
 */
#ifndef PETREL_CONN_H
#define PETREL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "conn_close_later.h"
#include "conn_name.h"
#include "conn_timer.h"

struct bufferevent;
struct evbuffer;
struct message;
struct mqtt_packet;
struct session;
struct listener;
struct connect_wait;
struct conn_wait;
struct flow_link;
struct ssl_ctx_st;

enum conn_state {
    CONN_AWAIT_CONNECT = 0, /* accepted, no CONNECT yet */
    CONN_ACTIVE,            /* CONNECT accepted */
    CONN_CLOSING,           /* flushing a last packet before closing */
    CONN_DEAD               /* closed: freed at the end of the turn */
};

/* One per connection (10,000 idle clients are S6): 232 bytes, a 240-byte
 * malloc chunk; mind the holes when adding a field. */
struct conn {
    struct conn *prev, *next;      /* broker.conns */
    struct conn_timer_entry timer; /* its next deadline (conn_timer.h) */
    struct session *session;       /* set once CONNECT is accepted */
    struct message *will;          /* will message, NULL if none */
    const char *close_reason;      /* static string, while CONN_CLOSING */
    struct listener *listener;     /* accepted on (NULL if made in-process) */
    struct connect_wait *auth_wait; /* CONNECT held for a password check or a
                                      refusal delay: input is not processed */
    /* I/O (conn_io.c).  A plain socket costs an idle client nothing but
     * these fields: it is watched by the broker's epoll set, and its
     * buffers exist only while they hold bytes.  A connection made on a
     * bufferevent (TLS) has that instead and uses its buffers. */
    struct bufferevent *bev;       /* NULL for a plain socket */
    struct conn_ws *ws;            /* plain: MQTT over WebSocket (conn_ws.h) */
    struct conn_addr {             /* the peer, for logs: kept because the
                                      socket cannot say once the peer is gone */
        uint8_t family;            /* AF_INET, AF_INET6, or 0 = unknown */
        uint8_t addr[16];          /* network order; IPv4 in the first 4 */
        uint16_t port;             /* host order */
    } peer;
    int fd;                        /* plain: the socket */
    struct evbuffer *in;           /* plain: the start of a partial packet */
    struct evbuffer *out;          /* plain: bytes not yet written */
    struct conn_wait *wait;        /* packets waiting for a durable store
                                      batch, acks held (conn_wait.h) */
    LIST_HEAD(, flow_link) flow_waits; /* sessions this publisher waits for (flow.h) */
    uint32_t last_rx;              /* tick of the last read, for keep alive */
    uint16_t keepalive;
    uint8_t state;                 /* enum conn_state */
    uint8_t level;                 /* protocol level from CONNECT */
    bool read_paused : 1;          /* input paused: output over the bound */
    bool flow_blocked : 1;         /* slowed by flow control: acks held */
    bool flow_paused : 1;          /* slowed past FLOW_MAX_HELD: not read */
    bool input_held : 1;           /* conn_hold_input: nothing is read */
    bool io_want_write : 1;        /* plain: a write would block: wait for EPOLLOUT */
    bool io_flush : 1;             /* plain: in the queue of output to write */
    bool io_kick : 1;              /* plain: in the queue of input to process */
    bool io_deferred : 1;          /* plain: ready, left for the next turn by
                                      the turn's read budget */
    bool close_marked : 1;         /* conn_close_later: closed at the end of
                                      the turn */
    bool rate_paused : 1;          /* over a rate limit: not read */
    bool mem_paused : 1;           /* at the memory budget: not read */
    uint8_t io_events;             /* plain: EPOLLIN/EPOLLOUT watched (0 = none) */
    /* MQTT 5.0 (level 5 only; 3.1.1 connections keep the defaults). */
    bool problem_info : 1;         /* reason strings allowed (Request Problem
                                      Information not 0) */
    bool expiry_was_zero : 1;      /* CONNECT's Session Expiry Interval was 0:
                                      DISCONNECT may not raise it */
    bool bridge_peer : 1;          /* CONNECT level with the bridge bit (0x84):
                                      its subscriptions get No Local and retain
                                      as published, so it hears no echo */
    uint32_t will_delay;           /* Will Delay Interval, seconds */
    uint32_t max_packet_out;       /* client's Maximum Packet Size; 0 = none */
    uint16_t receive_max_out;      /* client's Receive Maximum (65535 default) */
    uint16_t alias_max_out;        /* aliases we may use towards the client */
    uint16_t n_alias_out;          /* aliases assigned so far (1..n) */
    uint32_t in_held;              /* input bytes held after the last framing,
                                      counted in broker.input_held */
    char **alias_out;              /* topic of alias i+1, server -> client */
    struct conn_alias_in *alias_in; /* alias i+1, client -> server; made on
                                      the first alias (topic_alias_maximum) */
    uint32_t in_qos1_unacked;      /* inbound QoS 1 whose PUBACK waits for a commit */
    uint32_t flow_over_bytes;      /* payload queued past full queues while
                                      slowed (flow.h) */
    uint32_t partial_since;        /* tick the incomplete packet at the head of
                                      the input began to arrive; 0 = none
                                      (partial_packet_timeout) */
    /* Publish rate limits (publish_rate.h): tokens, thousandths of a
     * message and bytes, as of tick rate_tick (0 = no PUBLISH yet). */
    int32_t rate_msgs;
    int64_t rate_bytes;
    uint32_t rate_tick;
    uint32_t rate_resume;          /* tick reads resume, while rate_paused */
};

/* A topic alias the client set (MQTT 5.0). */
struct conn_alias_in {
    char *topic;                   /* NULL: not set */
    uint16_t len;
};

/* What conn_send_publish did. */
enum conn_send_result {
    CONN_SEND_FAILED = -1, /* encoding or memory failure */
    CONN_SENT = 0,
    CONN_TOO_LARGE = 1,    /* over the client's Maximum Packet Size: dropped */
    CONN_EXPIRED = 2       /* its Message Expiry Interval ran out: dropped */
};

/* Takes ownership of an accepted socket.  With `tls` (the listener's
 * context, else NULL) the connection starts with a TLS handshake on a
 * bufferevent; without, it is a lean plain connection.  Returns NULL
 * (socket closed) on failure.  `addr` is only logged. */
struct conn *conn_new(int fd, const struct sockaddr *addr, struct ssl_ctx_st *tls);

/* The same on a bufferevent made by the caller (e.g. a TLS one), which it
 * takes over; it must have been made with BEV_OPT_CLOSE_ON_FREE.  Returns
 * NULL (bufferevent freed) on failure. */
struct conn *conn_new_bufferevent(struct bufferevent *bev);

/* conn_name(c), conn_peer(c): how the logs name it (conn_name.h). */

/* Closes the connection now.  With `publish_will` its will (if any) is
 * published first.  `why` goes to the log.  The session is detached.  The
 * memory of c stays valid (state CONN_DEAD, every call on it a no-op) until
 * the end of the turn, so callers up the stack may still look at it. */
void conn_close(struct conn *c, const char *why, bool publish_will);
/* conn_close_later(c, why): the same at the end of the turn, with its
 * will, for paths that must not end a connection under their caller's
 * feet, such as running out of memory while queueing a packet
 * (conn_close_later.h). */
/* End of turn: closes what conn_close_later marked, then frees the closed
 * connections. */
void conn_close_marked(void);
void conn_free_closed(void);

/* Sends a packet; returns 0 or -1 (encoding or memory failure). */
int conn_send_packet(struct conn *c, const struct mqtt_packet *p);

/* Sends a PUBLISH of `msg` at `qos` with the given id and flags; returns an
 * enum conn_send_result.  A 5.0 client gets the message's forwarded
 * properties, its remaining expiry, subscription identifiers and a topic
 * alias; a packet over its Maximum Packet Size is not sent (counted). */
int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                      bool dup, bool retain);
/* The same, sent only once what the store was given is durable
 * (conn_wait_send). */
int conn_send_publish_durable(struct conn *c, struct message *msg, uint8_t qos,
                              uint16_t packet_id, bool dup, bool retain);

/* Ends the connection for a reason (an MQTT 5.0 reason code, enum
 * mqtt_reason): a 5.0 client past CONNECT is sent DISCONNECT with that code,
 * and `why` as its reason string unless it asked for none, before the socket
 * closes; a 3.1.1 client is simply closed.  The session is detached and the
 * will (if `publish_will`) published at once; the socket lingers only to
 * flush.  `why` goes to the log. */
void conn_disconnect(struct conn *c, uint8_t reason, const char *why, bool publish_will);

/* True while the output buffer is below max_output_buffer. */
bool conn_can_write(const struct conn *c);
/* Does it owe the broker acknowledgements (its session has deliveries in
 * flight)?  What it sends then shortens queues and frees memory, so it is
 * read whatever the turn's read budget or the memory budget says. */
bool conn_owes_acks(const struct conn *c);

/* Queues bytes already encoded; they are written at the end of the event
 * loop's turn (with everything else queued for the client meanwhile).
 * Returns 0 or -1 (out of memory). */
int conn_write(struct conn *c, const void *data, size_t len);

/* Keep alive: with secs > 0, the connection is closed when nothing has
 * been received from it for 1.5 x secs (while its input is not paused). */
void conn_set_keepalive(struct conn *c, uint16_t secs);

/* connect_timeout no longer applies (CONNECT answered or being refused). */
void conn_stop_connect_timeout(struct conn *c);

/* Holds the connection's input (nothing more is read or processed, e.g.
 * during a password check), then releases it: what was buffered meanwhile
 * is processed from the event loop, not from the caller. */
void conn_hold_input(struct conn *c);
void conn_release_input(struct conn *c);

/* Sends a last packet (e.g. CONNACK with a refusal), then closes once it
 * has been written, or after a short deadline. */
void conn_send_and_close(struct conn *c, const struct mqtt_packet *p, const char *why);

/* Registers this layer's callbacks with the layers below it that do not
 * call up by name (conn_io, conn_timer, conn_wait, the memory budget), and
 * keeps `closed`, told of every connection that ends (the listeners'
 * count: listener_conn_closed), so that conn.c calls the layer that made
 * the connection by no name.  broker_init does it, before any
 * connection. */
void conn_init(void (*closed)(struct conn *c));

/* Closes every connection without wills (shutdown); 5.0 clients are told
 * "server shutting down" (0x8B). */
void conn_close_all(void);

#endif
