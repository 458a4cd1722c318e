/*
 * ws_transport.h - MQTT over WebSocket (RFC 6455) as a transport below the
 * connection code: a libevent filter bufferevent over the accepted
 * connection's own bufferevent (a socket, or TLS for wss).  Above it the
 * connection sees a bufferevent carrying plain MQTT bytes, exactly like a
 * TLS one; below it the filter runs the opening handshake (ws_handshake.h)
 * and then turns binary frames into bytes (wslay) and each write into one
 * binary frame.  Pings are answered and close frames exchanged here; what
 * the client does wrong ends the connection with the close code RFC 6455
 * gives it.  This layer knows nothing of MQTT or of struct conn: it reports
 * a failure as the end of the bufferevent, like a socket error.
 */
#ifndef PETREL_WS_TRANSPORT_H
#define PETREL_WS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;

/* A listener's WebSocket settings; must outlive its connections' handshakes. */
struct ws_transport_conf {
    const char *path;     /* ws_path */
    const char *origins;  /* allowed_origins, comma list; "" = any */
    uint64_t max_frame;   /* payload bytes of one frame, more = close 1009 */
};

/* Frames may carry this much more than max_packet_size: a client may pack
 * a few small packets with a big one. */
#define WS_FRAME_SLACK 4096

/* Counters of what clients did wrong, for $SYS. */
struct ws_stats {
    uint64_t handshakes;          /* upgrades accepted */
    uint64_t handshake_refused;   /* requests answered with an HTTP error */
    uint64_t frame_too_large;     /* closed with 1009 */
    uint64_t protocol_errors;     /* closed with 1002 or 1003 (text, unmasked,
                                     bad opcode or control frame...) */
    uint64_t pings;               /* pings answered */
};
extern struct ws_stats ws_stats;

/* When the WebSocket layer ends a connection (a refused handshake, a
 * protocol violation, a close frame from the client) its bufferevent
 * reports BEV_EVENT_ERROR (BEV_EVENT_EOF for the close frame), after the
 * read callback for the bytes that came before; ws_transport_error_reason
 * then says why.  What the layer queued (the HTTP error, the close frame)
 * is still sent: freeing the bufferevent leaves the socket lingering until
 * it is written, for at most two seconds. */
bool ws_transport_error_reason(struct bufferevent *bev, char *why, size_t len);

/* Wraps `under` (made with BEV_OPT_CLOSE_ON_FREE; taken over, freed on
 * failure).  Returns the bufferevent the connection uses, or NULL. */
struct bufferevent *ws_transport_wrap(struct bufferevent *under, const struct ws_transport_conf *conf);

/* Is `bev` one ws_transport_wrap made? */
bool ws_transport_is(struct bufferevent *bev);

/* The bytes still to be written to the socket, frames and all (the
 * filter's own buffer holds none for long). */
size_t ws_transport_pending(struct bufferevent *bev);

/* Frees the bufferevent (instead of bufferevent_free): the socket
 * lingers to send what is queued, then closes. */
void ws_transport_free(struct bufferevent *bev);

/* Everything the connection had to say is written: sends a close frame
 * (1000) and then a FIN once the socket took it. */
void ws_transport_finish(struct bufferevent *bev);

/* The next close frame this layer sends (when the connection ends) has
 * this code; default 1000.  For MQTT protocol errors (1002). */
void ws_transport_set_close_code(struct bufferevent *bev, uint16_t code);

/* Frees the sockets still lingering (broker shutdown, after every
 * connection is closed). */
void ws_transport_shutdown(void);

#endif
