/*
 * ws_transport.h - MQTT over WebSocket (RFC 6455) on a bufferevent, for
 * wss:// (ws:// runs on the broker's own socket path instead, conn_ws.h):
 * a libevent filter bufferevent over the accepted connection's TLS
 * bufferevent.  Above it the
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

#include "ws_frames.h"

struct bufferevent;

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

/* Frees the sockets still lingering and the shared contexts (broker
 * shutdown, after every connection is closed). */
void ws_transport_shutdown(void);

#endif
