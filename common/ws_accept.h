/*
 * ws_accept.h - the Sec-WebSocket-Accept value of RFC 6455 (base64 of the
 * SHA-1 of the client's key and the protocol's GUID), computed with OpenSSL:
 * the broker answers with it, libpetrel checks the server's.
 */
#ifndef PETREL_WS_ACCEPT_H
#define PETREL_WS_ACCEPT_H

#include <stddef.h>

/* Length of the value (28) plus its NUL. */
#define WS_ACCEPT_LEN 29

/* Writes the accept value for `key` (its `len` bytes, as sent) to out.
 * Returns 0, or -1 if OpenSSL fails. */
int ws_accept_compute(const char *key, size_t len, char out[WS_ACCEPT_LEN]);

#endif
