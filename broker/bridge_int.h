/*
 * bridge_int.h - what the bridge's files share (not for the rest of the
 * broker, which uses bridge.h):
 *   bridge.c         life of the bridges: start, stop, reload, backoff,
 *                    state and its $SYS topic, status;
 *   bridge_remote.c  the connection to the remote broker: resolution
 *                    (evdns, off the loop's critical path), TCP/TLS through
 *                    libpetrel's transport, CONNECT, SUBSCRIBE, keep alive;
 *   bridge_local.c   the in-process connection to this broker's session
 *                    "$bridge/NAME";
 *   bridge_relay.c   the packets between the two: topic mapping, PUBLISH
 *                    and acknowledgements passed on with their ids.
 */
#ifndef PETREL_BRIDGE_INT_H
#define PETREL_BRIDGE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "bridge_config.h"
#include "mqtt_codec.h"

struct bufferevent;
struct conn;
struct event;
struct ssl_ctx_st;
struct transport;

enum bridge_state {
    BRIDGE_STOPPED = 0,
    BRIDGE_BACKOFF,      /* waiting to try again */
    BRIDGE_RESOLVING,    /* the transport looks the current address's name up */
    BRIDGE_CONNECTING,   /* TCP/TLS, then CONNECT sent, waiting for CONNACK */
    BRIDGE_ATTACHING,    /* remote accepted; local connection being made */
    BRIDGE_UP            /* relaying */
};

struct bridge {
    struct bridge_conf conf;
    /* The subscription of each rule on the side it reads from: prefix + filter. */
    char sub_filter[BRIDGE_MAX_RULES][BRIDGE_PREFIX_LEN + BRIDGE_TOPIC_LEN];
    char local_id[BRIDGE_NAME_LEN + 16]; /* "$bridge/NAME" */
    uint8_t *password;
    size_t password_len;
    struct ssl_ctx_st *tls;
    uint8_t state;               /* enum bridge_state */
    struct event *timer;         /* 1 s tick: keep alive, backoff, local watch */
    int64_t retry_at;            /* monotonic ms, in BRIDGE_BACKOFF */
    unsigned attempt;            /* failures since the last accepted connection */
    size_t addr_index;           /* address being tried */
    uint32_t rng;
    /* Remote. */
    struct transport *tr;
    char remote_name[BRIDGE_HOST_LEN + 8]; /* "host:port" for logs and status */
    bool remote_connected;       /* CONNACK accepted */
    bool remote_read_paused;
    uint16_t remote_receive_max; /* from the 5.0 CONNACK; 3.1.1: our own choice */
    uint32_t remote_max_packet;  /* 0 = no limit given */
    uint16_t keepalive;          /* in force: ours, or the server's */
    int64_t last_sent_ms, last_rx_ms;
    bool ping_out;
    bool suback_pending;         /* our SUBSCRIBE (id 1) not answered yet */
    int64_t attach_started;      /* BRIDGE_ATTACHING since */
    /* Local. */
    struct bufferevent *local;   /* our end of the pair */
    struct conn *local_conn;     /* the broker's end (valid while the pair is) */
    bool local_up;               /* CONNACK from the broker */
    bool local_read_paused;
    int local_depth;             /* inside our pair end's callbacks */
    struct bufferevent *local_zombie; /* closed inside them: freed on the way out */
    uint16_t local_keepalive;    /* Server Keep Alive of the broker, 0 = none */
    int64_t local_last_sent_ms;
    /* Counters for the status. */
    uint32_t inflight_out;
    uint64_t forwarded_out, forwarded_in, connects, dropped;
    int64_t oldest_sent_ms;      /* when the oldest unacknowledged one went out */
    char last_error[160];
    bool stopping;
};

#define BRIDGE_LOCAL_LEVEL MQTT_LEVEL_5

/* bridge.c */
int64_t bridge_now_ms(void);
/* Something failed (remote or local): both connections close, the state
 * goes to backoff and the error is kept for the status. */
void bridge_fail(struct bridge *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bridge_set_state(struct bridge *b, enum bridge_state st);
/* Encodes p at `level` and hands the bytes to write(); 0 or -1. */
int bridge_encode(uint8_t level, const struct mqtt_packet *p,
                  int (*write)(struct bridge *b, const void *data, size_t len), struct bridge *b);

/* bridge_remote.c */
void bridge_remote_connect(struct bridge *b);    /* the current address */
void bridge_remote_close(struct bridge *b, bool graceful);
void bridge_remote_tick(struct bridge *b, int64_t now);
int bridge_remote_write(struct bridge *b, const void *data, size_t len);
bool bridge_remote_can_write(const struct bridge *b);
void bridge_remote_set_reading(struct bridge *b, bool reading);
/* Frees the resolver (shutdown, after every bridge). */
void bridge_remote_shutdown(void);

/* bridge_local.c */
int bridge_local_connect(struct bridge *b);
void bridge_local_close(struct bridge *b);
/* False when the broker closed its end (checked each tick and before use). */
bool bridge_local_alive(struct bridge *b);
int bridge_local_write(struct bridge *b, const void *data, size_t len);
bool bridge_local_can_write(const struct bridge *b);
void bridge_local_set_reading(struct bridge *b, bool reading);
/* PINGREQ when the broker capped the keep alive (max_keepalive). */
void bridge_local_tick(struct bridge *b, int64_t now);

/* bridge_relay.c: one decoded packet from each side (the local one after
 * the CONNACK, the remote one after the CONNACK). */
void bridge_relay_from_local(struct bridge *b, const struct mqtt_packet *p);
void bridge_relay_from_remote(struct bridge *b, const struct mqtt_packet *p);
/* Output on one side drained: reading the other may resume. */
void bridge_relay_drained(struct bridge *b);

#endif
