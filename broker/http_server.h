/*
 * http_server.h - the HTTP listener (`http_listen`): Prometheus metrics,
 * health checks, the JSON admin API and the dashboard's embedded files,
 * served by libevent's evhttp on the broker's own loop (so handlers read
 * broker state directly, without locks).  This module owns the listener,
 * the bounds on what a client may make it hold, routing and access
 * control; the handlers live in http_metrics.c, http_api.c and
 * http_health.c and answer through the reply functions below.
 *
 * Bounds: request headers 8 KiB, bodies 64 KiB, HTTP_MAX_CONNECTIONS open
 * connections (further ones wait in the kernel's backlog), of which one
 * source address may hold `max_per_source` (further ones are closed), and
 * HTTP_TIMEOUT_S seconds for each read or write (an idle keep-alive
 * connection is closed after that long too).
 */
#ifndef PETREL_HTTP_SERVER_H
#define PETREL_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 65536
#define HTTP_MAX_CONNECTIONS 64
#define HTTP_TIMEOUT_S 10

struct evhttp_request;
struct evbuffer;

/* Opens broker.cfg.http if it is enabled (nothing to do otherwise) and
 * logs "http listener on http://ADDR:PORT/" with the real port.  Returns
 * 0, or -1 after logging why (bad certificate, address in use). */
int http_server_open(void);
/* Closes the listener and every HTTP connection. */
void http_server_close(void);
/* SIGHUP: reads the TLS listener's certificate files again (on an error
 * the old ones stay, and it is logged). */
void http_server_reload_tls(void);
/* From now on /readyz answers 503 "shutting_down". */
void http_server_shutting_down(void);
bool http_server_is_shutting_down(void);

/* The listener's own counters, for /metrics. */
struct http_server_stats {
    uint64_t replies[6];     /* by status class: [2] = 2xx ... [5] = 5xx */
    uint64_t limit_hits;     /* times HTTP_MAX_CONNECTIONS stopped accepting */
    uint64_t source_limit_hits; /* connections closed at max_per_source */
    unsigned connections;    /* open now */
};
const struct http_server_stats *http_server_stats(void);

/* One request as the handlers see it. */
struct http_call {
    struct evhttp_request *req;
    int method;              /* enum evhttp_cmd_type */
    const char *path;        /* as sent (not decoded), without the query */
    const char *query;       /* after '?', not decoded; NULL if none */
    uint8_t role;            /* enum http_role this request may act with */
    const char *who;         /* the token's name, or "anonymous" (for logs) */
    char peer[64];           /* "ADDR:PORT" of the client */
};

/* Sends `body` (may be NULL for none) with status `code` and the given
 * content type, and frees nothing: the caller frees body afterwards. */
void http_reply(struct http_call *call, int code, const char *content_type,
                struct evbuffer *body);
/* application/json reply */
void http_reply_json(struct http_call *call, int code, struct evbuffer *body);
/* {"error": code_name, "message": "..."} with status `code`. */
void http_reply_error(struct http_call *call, int code, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A buffer for a reply body, or NULL after replying 503 (out of memory). */
struct evbuffer *http_body_new(struct http_call *call);
/* Sends `body` as JSON with status `code`, and frees it. */
void http_reply_json_free(struct http_call *call, int code, struct evbuffer *body);
/* True for GET and HEAD; otherwise replies 405 and returns false. */
bool http_only_get(struct http_call *call);

/* Handlers (one per file). */
void http_health_healthz(struct http_call *call);
void http_health_readyz(struct http_call *call);

#endif
