/*
 * ws_upgrade.h - the client side of the WebSocket opening handshake (RFC
 * 6455 4.1): the upgrade request for the `mqtt` subprotocol, and the
 * server's answer read with http-parser (bounded to WS_UPGRADE_MAX) and
 * checked: 101, Upgrade: websocket, the Sec-WebSocket-Accept of our key,
 * Sec-WebSocket-Protocol: mqtt.  No I/O: libpetrel's ws_client.c and
 * `petrel bench` (cli/bench_ws.c) send and feed it.
 */
#ifndef PETREL_WS_UPGRADE_H
#define PETREL_WS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>

#include "ws_accept.h"

#define WS_UPGRADE_MAX 8192
#define WS_UPGRADE_HEADER_MAX 128

enum { WSU_UPGRADE, WSU_ACCEPT, WSU_PROTOCOL, WSU_HEADERS };

/* One handshake in progress (its fields are ws_upgrade.c's). */
struct ws_upgrade {
    http_parser parser;
    size_t fed;
    char accept[WS_ACCEPT_LEN];     /* the value the server must answer */
    char field[32];
    size_t field_len;
    bool in_value;
    int cur;
    char val[WSU_HEADERS][WS_UPGRADE_HEADER_MAX];
    size_t val_len[WSU_HEADERS];
    bool complete;
};

/* Starts `u` and writes the request for ws://host:port/path (a fresh
 * random key) to `req`.  Returns its length, or 0 (out of memory, or it
 * does not fit in `cap`; 1536 is enough for a 1024-byte path). */
size_t ws_upgrade_request(struct ws_upgrade *u, const char *host, uint16_t port,
                          const char *path, char *req, size_t cap);

/* Feeds the next `len` bytes of the answer; *used of them were the
 * answer's (what follows are the first frames).  1 once upgraded, 0 for
 * more (all used), -1 refused or malformed. */
int ws_upgrade_feed(struct ws_upgrade *u, const uint8_t *p, size_t len, size_t *used);

#endif
