/*
 * listener.h - the broker's listening sockets.  Each configured address gets
 * an evconnlistener; accepted sockets are tuned (TCP keepalive,
 * TCP_USER_TIMEOUT, no Nagle) and handed to conn_new, unless the global or
 * the listener's own connection limit is reached.  A listener also decides
 * whether anonymous clients may use it (loopback addresses may, by default).
 * A TLS listener (broker/tls.c) hands each accepted socket its OpenSSL
 * context, so the connection starts with the handshake.
 */
#ifndef PETREL_LISTENER_H
#define PETREL_LISTENER_H

#include <stdbool.h>

struct conn;
struct listener;

/* Opens every listener of broker.cfg and logs "listening on ADDR:PORT" with
 * the real port.  Returns 0, or -1 after logging which address failed (all
 * listeners opened so far are closed again). */
int listeners_open(void);
/* Stops accepting and frees the listeners. */
void listeners_close(void);

/* May clients without a verified user name and password connect through
 * `l`?  Follows the listener's allow_anonymous option, else the global one;
 * `loopback` (the default) allows them on 127.0.0.0/8 and ::1 only.  NULL
 * (a connection made in-process, as by tests) counts as loopback. */
bool listener_allows_anonymous(const struct listener *l);

/* Does `l` take the user name from the client certificate's CN
 * (use_identity_as_username)?  False for NULL. */
bool listener_uses_identity(const struct listener *l);

/* SIGHUP: reads the certificate, key and CA files of every TLS listener
 * again (the options stay those it was opened with).  New connections use
 * the new files; on an error the listener keeps the ones it had, and the
 * error is logged. */
void listeners_reload_tls(void);

/* For /metrics and the admin API: the open listeners in turn
 * (listener_next(NULL) is the first, NULL follows the last), each one's
 * "ADDR:PORT" and its transport: "tcp" or "tls" ("ws" and "wss" for
 * WebSocket listeners).  For NULL (a connection made in-process): "" and
 * "tcp". */
const struct listener *listener_next(const struct listener *l);
const char *listener_name(const struct listener *l);
const char *listener_transport(const struct listener *l);

/* The connection is closing: it no longer counts against its listener's
 * max_connections.  Called by conn_close. */
void listener_conn_closed(struct conn *c);

#endif
