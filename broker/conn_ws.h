/*
 * conn_ws.h - MQTT over WebSocket (ws://) on conn_io's plain socket path,
 * so that an idle WebSocket client costs about what a plain one does: no
 * bufferevent, no buffers of its own between frames, only a small struct.
 * Frames read are decoded from the turn's read buffer into a second
 * broker-wide one, which conn_io then frames MQTT from as it would the
 * socket's bytes; the MQTT bytes conn.c puts in the output buffer are
 * made one binary frame (a header put before them) when the turn writes
 * them.  Handshake, frame reading and writing are ws_frames.h's; the
 * socket of a connection that ends lingers to send its close frame
 * (ws_linger.h).  Used by conn_io.c only.
 */
#ifndef PETREL_CONN_WS_H
#define PETREL_CONN_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct ws_transport_conf;

/* Makes c (a plain connection just accepted) a WebSocket one: its first
 * bytes are the upgrade request.  0, or -1 out of memory. */
int conn_ws_attach(struct conn *c, const struct ws_transport_conf *conf);

/* Decodes `n` bytes read from the socket into `out` (at least n +
 * CONN_WS_SLACK bytes), *out_len of them.  Returns 0, or -1 when the
 * connection must end once they are handled: `why` says why. */
#define CONN_WS_SLACK 64
int conn_ws_input(struct conn *c, const uint8_t *raw, size_t n, uint8_t *out, size_t *out_len,
                  char *why, size_t why_len);

/* What c holds for a frame or fragmented message half read: wslay's
 * reading context, counted as WS_READER_HELD_BYTES of unfinished input
 * (0 when it holds none).  *began: the hold began in the last read. */
size_t conn_ws_held(const struct conn *c, bool *began);

/* Makes the MQTT bytes added to c->out since the last call one frame. */
void conn_ws_frame(struct conn *c);
/* After a write: `left` bytes of c->out are still to be sent (all of them
 * framed); the FIN follows the close frame once they are none. */
void conn_ws_wrote(struct conn *c, size_t left);

/* The output is all written: a close frame, then the FIN. */
void conn_ws_finish(struct conn *c);
void conn_ws_close_code(struct conn *c, uint16_t code);

/* The connection is closed: its close frame is queued, and the socket
 * and the rest of its output go to linger.  Returns true when the socket
 * was taken (not to be closed), false when it is the caller's still.
 * Frees the WebSocket state either way. */
bool conn_ws_close(struct conn *c);

#endif
