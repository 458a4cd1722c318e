/*
 * transport.h - one TCP connection to the server on a libevent bufferevent:
 * resolve (asynchronously, resolver.h), connect (trying each address in
 * turn), frame incoming MQTT packets, write
 * with a high-water mark, close at once or after flushing.  With TLS the
 * handshake runs once TCP is up (tls_client.h), and with WebSocket the
 * upgrade after it (ws_client.h); `connected` means all of them.
 */
#ifndef PETREL_TRANSPORT_H
#define PETREL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct resolver;
struct transport;

struct transport_events {
    void *ctx;
    void (*connected)(void *ctx);
    /* One complete packet; body is valid during the call only. */
    void (*packet)(void *ctx, uint8_t first_byte, const uint8_t *body, uint32_t len);
    /* The output buffer drained below the high-water mark. */
    void (*drained)(void *ctx);
    /* The connection failed, ended, or finished a graceful close (reason
     * PETREL_OK).  No other event follows; the owner then calls
     * transport_close to free the transport. */
    void (*closed)(void *ctx, int reason);
    /* Optional (may be NULL): a host name lookup answered from the loop,
     * and the first connect is about to start. */
    void (*resolved)(void *ctx);
};

struct ssl_ctx_st;

/* TLS for one connection: the client's context, the name the server's
 * certificate must carry (and the SNI), and whether to check it at all.
 * The strings must outlive the transport. */
struct transport_tls {
    struct ssl_ctx_st *ctx;
    const char *server_name;
    bool verify;
};

/* Connects to host:port: at once for a numeric address; for a name, once
 * `dns` has answered, without blocking the loop (a name from /etc/hosts
 * answers inside this call).  Every address is tried in turn.  After the
 * TCP connect comes a TLS handshake when `tls` is not NULL, and then, with
 * `ws_path`, the WebSocket upgrade for that path (ws_client.h).
 *
 * Returns NULL with *err (a petrel error) if the outcome is known at once:
 * no address could even be tried, or the name is not in /etc/hosts and
 * `dns` is NULL (numeric addresses only).  Later failures are reported as
 * closed(): PETREL_ERESOLVE when the lookup failed or timed out (seconds:
 * resolver.c), PETREL_ETLS or PETREL_ECERT for a failed handshake,
 * PETREL_EPROTOCOL for a refused upgrade.
 *
 * The resolver belongs to the caller (one per client, or one for all the
 * bridges of petreld), who frees it only after closing every transport
 * that used it; transport_close abandons a lookup still running, and no
 * event follows.  host and ws_path must outlive the transport. */
struct transport *transport_open(struct event_base *base, struct resolver *dns, const char *host,
                                 uint16_t port, uint32_t max_packet,
                                 const struct transport_tls *tls, const char *ws_path,
                                 const struct transport_events *ev, int *err);
/* Whether the host name is still being looked up. */
bool transport_resolving(const struct transport *t);
/* "TLSv1.3, TLS_AES_256_GCM_SHA384" once connected with TLS, else "". */
void transport_tls_info(const struct transport *t, char *out, size_t len);
/* Queues bytes for sending.  0, or a petrel error. */
int transport_write(struct transport *t, const void *data, size_t len);
/* Whether the output buffer is below its high-water mark. */
bool transport_can_write(const struct transport *t);
/* Stops (false) or resumes (true) reading from the socket. */
void transport_set_reading(struct transport *t, bool reading);
/* The same for any bufferevent (the bridge's in-process side uses it too):
 * resuming also runs the read callback for what already waits in the
 * input buffer, since no new bytes from the socket may come to wake it. */
void transport_bev_reading(struct bufferevent *bev, bool reading);
/* Writes out what is buffered, then reports closed(PETREL_OK). */
void transport_close_gracefully(struct transport *t);
/* Closes the socket and frees the transport; no event is reported after
 * this.  Safe from inside the transport's own events. */
void transport_close(struct transport *t);

#endif
