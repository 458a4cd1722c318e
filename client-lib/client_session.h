/*
 * client_session.h - the client side of an MQTT session as a pure state machine:
 * what to send, what to expect, when to ping, when a link is dead and when
 * to reconnect.  It owns no socket, timer or clock: the caller (client.c,
 * or a unit test) feeds it framed packets and the current time, performs
 * the I/O it asks for through `struct sess_io`, and arms one timer for
 * sess_deadline().
 */
#ifndef PETREL_CLIENT_SESSION_H
#define PETREL_CLIENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_codec.h"
#include "options.h"

enum sess_state {
    SESS_IDLE,        /* not started, or stopped */
    SESS_OPENING,     /* waiting for the transport (TCP connect) */
    SESS_HANDSHAKE,   /* CONNECT sent, waiting for CONNACK */
    SESS_CONNECTED,
    SESS_CLOSING,     /* DISCONNECT sent, waiting for it to be flushed */
    SESS_BACKOFF      /* waiting before the next connection attempt */
};

/* What the session needs from its environment.  Every hook may be called
 * from any sess_* function except sess_new/sess_free/sess_deadline and the
 * read-only getters.  A hook may call back into the session (e.g. publish
 * from the message hook): the session is consistent whenever it calls out. */
struct sess_io {
    void *ctx;
    /* Start opening a new transport.  Success or failure is reported later
     * with sess_transport_up / sess_transport_down; a non-zero return is an
     * immediate failure (a petrel error code). */
    int (*open)(void *ctx);
    /* Append bytes to the open transport.  Non-zero = the transport is
     * broken; the session then closes it with close(ctx, false). */
    int (*write)(void *ctx, const uint8_t *data, size_t len);
    /* Whether the transport wants more data now (its output buffer is below
     * its high-water mark).  When it drains, call sess_writable. */
    bool (*can_write)(void *ctx);
    /* Close the transport.  graceful=false: at once, with no report back.
     * graceful=true: after the buffered output is written; then report
     * sess_transport_down(PETREL_OK) (or the error that stopped the flush). */
    void (*close)(void *ctx, bool graceful);

    /* Events for the application; see the callbacks in petrel.h. */
    void (*connected)(void *ctx, bool session_present);
    void (*disconnected)(void *ctx, int reason, bool reconnecting);
    /* Returns false if the message could not be handed over (out of
     * memory): the session then closes the connection without
     * acknowledging it, so that the server delivers it again. */
    bool (*message)(void *ctx, const struct mqtt_publish *p);
    void (*published)(void *ctx, uint64_t id, int result);
    void (*subscribed)(void *ctx, uint64_t id, size_t count, const int *granted);
    void (*unsubscribed)(void *ctx, uint64_t id);
    /* Debug trace; may be NULL.  Called only when trace_enabled. */
    void (*trace)(void *ctx, int level, const char *line);
    /* A uniformly random 32-bit number, for backoff jitter. */
    uint32_t (*random)(void *ctx);
};

struct sess;

/* `o` must outlive the session (the client keeps its own copy). */
struct sess *sess_new(const struct petrel_options *o, const struct sess_io *io);
/* Frees everything without calling any hook. */
void sess_free(struct sess *s);
void sess_set_trace(struct sess *s, bool enabled);

/* Times are milliseconds on a monotonic clock chosen by the caller. */

/* IDLE -> OPENING (calls io->open).  PETREL_ESTATE unless IDLE. */
int sess_start(struct sess *s, int64_t now);
/* User disconnect: sends DISCONNECT if connected, stops reconnecting, and
 * reports disconnected(PETREL_OK, false) when closed.  No-op when IDLE. */
void sess_stop(struct sess *s, int64_t now);

/* The transport is open: sends CONNECT. */
void sess_transport_up(struct sess *s, int64_t now);
/* The transport failed or closed (reason: a petrel error; PETREL_OK after a
 * graceful close).  Must not be called after the session closed it with
 * close(ctx, false). */
void sess_transport_down(struct sess *s, int64_t now, int reason);
/* One complete packet from the server: first byte of the fixed header and
 * the body.  The body is only read during the call.  A packet that breaks
 * the protocol closes the transport (close(ctx, false)) and counts as a lost
 * connection with PETREL_EPROTOCOL. */
void sess_packet(struct sess *s, int64_t now, uint8_t first_byte, const uint8_t *body,
                 uint32_t len);
/* The transport's output drained below its high-water mark. */
void sess_writable(struct sess *s, int64_t now);
/* Runs whatever is due at `now` (pings, dead-link and connect timeouts,
 * reconnection). */
void sess_tick(struct sess *s, int64_t now);
/* When sess_tick must run next; -1 = nothing scheduled.  May be early
 * (sess_tick then does nothing and the deadline moves). */
int64_t sess_deadline(const struct sess *s);
/* The caller stopped (false) or resumed (true) reading the transport.
 * While not reading, a missing PINGRESP is not held against the server. */
void sess_set_reading(struct sess *s, int64_t now, bool reading);

/* Queue a publication; see petrel_publish for the errors. */
int sess_publish(struct sess *s, int64_t now, const char *topic, size_t topic_len,
                 const void *payload, size_t payload_len, int qos, bool retain, uint64_t *id);
int sess_subscribe(struct sess *s, int64_t now, const char *const *filters, const int *qos,
                   size_t count, uint64_t *id);
/* MQTT 5.0 forms: a property block (wire format, checked by the caller;
 * copied) and subscription options (QoS | MQTT_SUBOPT_* bits).  With 3.1.1
 * a non-empty block or option bits beyond the QoS are PETREL_EINVAL. */
int sess_publish_props(struct sess *s, int64_t now, const char *topic, size_t topic_len,
                       const void *payload, size_t payload_len, int qos, bool retain,
                       const uint8_t *props, size_t props_len, uint64_t *id);
int sess_subscribe_props(struct sess *s, int64_t now, const char *const *filters,
                         const int *options, size_t count, const uint8_t *props,
                         size_t props_len, uint64_t *id);
int sess_unsubscribe(struct sess *s, int64_t now, const char *const *filters, size_t count,
                     uint64_t *id);

enum sess_state sess_state(const struct sess *s);
/* Publications accepted but not completed. */
size_t sess_pending(const struct sess *s);
/* QoS 1/2 publications sent and waiting for their acknowledgement. */
size_t sess_inflight(const struct sess *s);

/* MQTT 5.0.  While a hook reports an event (disconnected after a CONNACK
 * refusal or a server DISCONNECT, published, subscribed), the reason code
 * and properties of the packet behind it; 0 and an empty block otherwise. */
uint8_t sess_reason(const struct sess *s, struct mqtt_props *props);
/* The properties of the CONNACK of the current connection; false when not
 * connected or with 3.1.1.  Valid until the connection ends. */
bool sess_connack_props(const struct sess *s, struct mqtt_props *props);
/* MQTT_LEVEL_311 or MQTT_LEVEL_5. */
uint8_t sess_level(const struct sess *s);

#endif
