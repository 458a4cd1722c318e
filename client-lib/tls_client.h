/*
 * tls_client.h - TLS for libpetrel: one OpenSSL client context per client,
 * built from its options, the TLS layer put over a transport's TCP
 * bufferevent once it is connected, and the words for what went wrong
 * (petrel_tls_error_detail).
 */
#ifndef PETREL_TLS_CLIENT_H
#define PETREL_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct petrel_options;
struct ssl_ctx_st; /* SSL_CTX */

/* A client context for o's TLS options (CA file or the system's store,
 * client certificate and key, TLS 1.2 or later).  NULL with *err set
 * (PETREL_ETLS with the detail recorded, or PETREL_ENOMEM). */
struct ssl_ctx_st *tlsc_ctx_new(const struct petrel_options *o, int *err);
void tlsc_ctx_free(struct ssl_ctx_st *ctx);

/* Puts TLS over the connected TCP bufferevent `tcp` and starts the
 * handshake.  server_name: checked against the certificate unless
 * `verify` is false, and sent as SNI unless it is an address.  Returns the
 * bufferevent to use from now on (freeing it frees `tcp` too), or NULL with
 * *err set (`tcp` is then still the caller's). */
struct bufferevent *tlsc_start(struct event_base *base, struct bufferevent *tcp,
                               struct ssl_ctx_st *ctx, const char *server_name, bool verify,
                               int *err);

/* The handshake failed or the TLS connection broke (BEV_EVENT_EOF or
 * BEV_EVENT_ERROR): PETREL_ECERT if the server's certificate was refused,
 * else PETREL_ETLS; records the detail. */
int tlsc_failure(struct bufferevent *bev, const char *server_name);

/* An established TLS connection broke: PETREL_ETLS (detail recorded) if
 * the TLS layer says why (an alert from the server), else PETREL_OK and
 * the caller's own reason stands. */
int tlsc_broken(struct bufferevent *bev);

/* "TLSv1.3, TLS_AES_256_GCM_SHA384" of an established connection. */
void tlsc_describe(struct bufferevent *bev, char *out, size_t len);

/* Records the text petrel_tls_error_detail returns (printf-style). */
void tlsc_set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
