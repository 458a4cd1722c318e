/*
 * tls.h - TLS for petreld's listeners: one OpenSSL server context per TLS
 * listener, built from its `listen` options, the OpenSSL bufferevent of an
 * accepted connection, and what the rest of the broker asks about a TLS
 * connection (the client certificate's CN, why a handshake failed).
 */
#ifndef PETREL_TLS_H
#define PETREL_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct listener_tls_conf;
struct ssl_ctx_st; /* SSL_CTX */

/* Builds a server context from a listener's TLS options: certificate chain
 * and key (which must match), CAs for client certificates, verification
 * mode, TLS 1.2 at least, ciphers, no compression and no renegotiation.
 * Returns NULL with "<which file or option>: <OpenSSL's reason>" in err. */
struct ssl_ctx_st *tls_server_ctx_new(const struct listener_tls_conf *t, char *err,
                                      size_t errlen); /* freed with SSL_CTX_free */

/* A bufferevent that runs the server side of a TLS handshake on the
 * accepted socket `fd` and then carries the connection's bytes.  Freeing
 * it frees the SSL and closes the socket.  NULL on failure, with fd closed. */
struct bufferevent *tls_accept_bufferevent(struct event_base *base, int fd,
                                           struct ssl_ctx_st *ctx);

/* The handshake of `bev` finished (BEV_EVENT_CONNECTED): remembers it for
 * tls_error_reason, and logs version, cipher and client certificate at
 * debug. */
void tls_handshake_done(struct bufferevent *bev, const char *peer);

/* After BEV_EVENT_ERROR or BEV_EVENT_EOF on a TLS bufferevent: writes why
 * into `why` ("TLS handshake failed: certificate verify failed") and
 * returns true.  False (why untouched) for a plain socket, or when
 * OpenSSL has nothing to add, so that the caller's own message stands. */
bool tls_error_reason(struct bufferevent *bev, short what, char *why, size_t len);

/* The common name of the client certificate of a TLS connection, if one
 * was presented and verified: a malloc'd NUL-terminated copy (length in
 * *len), or NULL (no TLS, no certificate, not verified, no CN, or a CN
 * with a NUL byte). */
char *tls_peer_cn(struct bufferevent *bev, size_t *len);

#endif
