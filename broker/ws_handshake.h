/*
 * ws_handshake.h - the server side of the WebSocket opening handshake (RFC
 * 6455 section 4.2): the HTTP/1.1 upgrade request, read with http-parser in
 * pieces as they come and bounded in size, checked against the listener's
 * path, allowed origins and the `mqtt` subprotocol, and the response to it
 * (101 Switching Protocols, or an HTTP error that ends the connection).
 * It does no I/O: ws_transport.c feeds it and sends what it answers.
 */
#ifndef PETREL_WS_HANDSHAKE_H
#define PETREL_WS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of request line and headers taken before the request is refused
 * (431): a client cannot make the broker hold more during a handshake. */
#define WS_HANDSHAKE_MAX 8192

/* What a listener accepts. */
struct ws_handshake_conf {
    const char *path;    /* the request path, e.g. "/mqtt" (the query is ignored) */
    const char *origins; /* comma-separated Origin values allowed; "" = any.
                            A request without Origin (not a browser) is
                            always allowed. */
};

/* The outcome; the values are the HTTP status sent. */
enum ws_handshake_status {
    WS_HS_MORE = 0,                /* the request is not complete yet */
    WS_HS_ACCEPTED = 101,
    WS_HS_BAD_REQUEST = 400,       /* not an upgrade request we can read */
    WS_HS_FORBIDDEN = 403,         /* Origin not in allowed_origins */
    WS_HS_NOT_FOUND = 404,         /* another path */
    WS_HS_UPGRADE_REQUIRED = 426,  /* no Upgrade: websocket, or not version 13 */
    WS_HS_TOO_LARGE = 431          /* over WS_HANDSHAKE_MAX */
};

struct ws_handshake;

/* A handshake in progress; NULL when out of memory. */
struct ws_handshake *ws_handshake_new(void);
void ws_handshake_free(struct ws_handshake *h);

/* Reads the next `len` bytes of the request.  *used is set to how many of
 * them belong to it: after WS_HS_ACCEPTED, the rest are the client's first
 * WebSocket bytes (sent without waiting for the answer).  Returns
 * WS_HS_MORE until the request is complete, then its outcome (and keeps
 * returning that). */
enum ws_handshake_status ws_handshake_feed(struct ws_handshake *h,
                                           const struct ws_handshake_conf *conf,
                                           const uint8_t *data, size_t len, size_t *used);

/* The HTTP response for the outcome: the 101 with Sec-WebSocket-Accept and
 * "Sec-WebSocket-Protocol: mqtt", or the error status with a one-line text
 * body.  Returns its length, or 0 if it does not fit in `cap` (1024 is
 * always enough) or the handshake is not finished. */
size_t ws_handshake_response(const struct ws_handshake *h, char *out, size_t cap);

/* Why the request was refused, for the log ("" when accepted). */
const char *ws_handshake_reason(const struct ws_handshake *h);

#endif
