/*
 * ws_linger.h - the socket of a WebSocket connection that is gone stays a
 * moment to send its last bytes (the close frame, an HTTP error): closing
 * it at once, with the client's bytes unread, would reset it and the
 * client could lose them.  It is outside the broker's connection count,
 * reads are thrown away, and it ends when the client's FIN comes or after
 * two seconds at most.
 */
#ifndef PETREL_WS_LINGER_H
#define PETREL_WS_LINGER_H

struct bufferevent;

/* Takes `bev` (a socket or TLS bufferevent made with BEV_OPT_CLOSE_ON_FREE,
 * its last bytes in its output) and frees it once they are sent and the
 * client closed, or at the deadline; at once if it cannot wait. */
void ws_linger(struct bufferevent *bev);

/* Frees the sockets still lingering (broker shutdown). */
void ws_linger_shutdown(void);

#endif
