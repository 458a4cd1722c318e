/*
 * ws_client.h - MQTT over WebSocket for libpetrel: a libevent filter put
 * over a transport's connected TCP (or TLS) bufferevent.  It sends the
 * upgrade request, checks the server's 101 (http-parser; accept value and
 * subprotocol "mqtt"), then carries MQTT bytes in masked binary frames
 * (wslay; mask keys from OpenSSL's RAND_bytes), answering pings.  Above it
 * the transport frames MQTT as on any bufferevent.
 */
#ifndef PETREL_WS_CLIENT_H
#define PETREL_WS_CLIENT_H

#include <stdint.h>

struct bufferevent;

/* Wraps `under` and sends the upgrade request for ws://host:port/path.
 * The returned bufferevent (freeing it frees `under`) reports
 * BEV_EVENT_CONNECTED once the server accepted the upgrade, and
 * BEV_EVENT_ERROR when it refused it, broke the WebSocket protocol or sent
 * a close frame; before that error *failure is set to the petrel error
 * (PETREL_EPROTOCOL, or PETREL_ECONNLOST for a close frame); it stays 0
 * for errors of the layers below.  `failure` must outlive the
 * bufferevent.  Frames over max_frame payload bytes end the connection.
 * NULL with *err (a petrel error) on failure; `under` is then still the
 * caller's. */
struct bufferevent *wsc_start(struct bufferevent *under, const char *host, uint16_t port,
                              const char *path, uint64_t max_frame, int *failure, int *err);

#endif
