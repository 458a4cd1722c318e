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
#include <sys/socket.h>

struct bufferevent;
struct event;
struct message;
struct mqtt_packet;
struct session;
struct listener;
struct connect_wait;
struct ssl_ctx_st;

enum conn_state {
    CONN_AWAIT_CONNECT = 0, /* accepted, no CONNECT yet */
    CONN_ACTIVE,            /* CONNECT accepted */
    CONN_CLOSING            /* flushing a last packet before closing */
};

struct conn {
    struct conn *prev, *next;      /* broker.conns */
    struct bufferevent *bev;
    struct event *timer;           /* connect timeout, then closing deadline */
    struct session *session;       /* set once CONNECT is accepted */
    struct message *will;          /* will message, NULL if none */
    char peer[64];                 /* "addr:port" for logs */
    uint8_t state;                 /* enum conn_state */
    uint8_t level;                 /* protocol level from CONNECT */
    uint16_t keepalive;
    uint32_t n_pending;            /* packets waiting for a store commit */
    bool read_paused;              /* input paused: output over the bound */
    const char *close_reason;      /* static string, while CONN_CLOSING */
    struct listener *listener;     /* accepted on (NULL if made in-process) */
    struct connect_wait *auth_wait; /* CONNECT held for a password check or a
                                      refusal delay: input is not processed */
};

/* Takes ownership of an accepted socket.  With `tls` (the listener's
 * context, else NULL) the connection starts with a TLS handshake.  Returns
 * NULL (socket closed) on failure. */
struct conn *conn_new(int fd, const struct sockaddr *addr, int addrlen,
                      struct ssl_ctx_st *tls);

/* The name to put in log lines: "client <id>" once known, else the peer. */
const char *conn_name(const struct conn *c);

/* Closes the connection now.  With `publish_will` its will (if any) is
 * published first.  `why` goes to the log.  The session is detached. */
void conn_close(struct conn *c, const char *why, bool publish_will);

/* Sends a packet; returns 0 or -1 (encoding or memory failure). */
int conn_send_packet(struct conn *c, const struct mqtt_packet *p);

/* Sends a PUBLISH of `msg` at `qos` with the given id and flags. */
int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                      bool dup, bool retain);

/* True while the output buffer is below max_output_buffer. */
bool conn_can_write(const struct conn *c);

/* Sends a last packet (e.g. CONNACK with a refusal), then closes once it
 * has been written, or after a short deadline. */
void conn_send_and_close(struct conn *c, const struct mqtt_packet *p, const char *why);

/* Closes every connection without wills (shutdown). */
void conn_close_all(void);

#endif
