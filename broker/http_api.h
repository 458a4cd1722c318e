/*
 * http_api.h - the JSON admin API under /api/v1/ (the contract is in
 * docs/operations.md): stats, clients (list, one, disconnect), sessions
 * (list, one, delete), retained messages (list, delete) and reload.
 * Reading needs the read role, changing the admin role (http_server.c
 * decides who has which); every change is logged with the token's name.
 */
#ifndef PETREL_HTTP_API_H
#define PETREL_HTTP_API_H

struct http_call;

/* Bounds on what a request may ask for. */
#define HTTP_API_MAX_QUERY 4096   /* bytes of query string */
#define HTTP_API_MAX_LIMIT 1000   /* items per page */
#define HTTP_API_DEFAULT_LIMIT 100
#define HTTP_API_MAX_QUEUED_SHOWN 100

/* Answers a request whose path starts with /api/v1/. */
void http_api_handle(struct http_call *call);

/* POST /api/v1/reload does what SIGHUP does: main.c registers how.  The
 * function starts a reload (or queues one after the reload under way) and
 * calls done(errors, log lines, arg) on the loop when it is finished; it
 * returns -1 (done never called) when it cannot take another waiter. */
typedef void (*http_reload_done)(unsigned errors, const char *lines, void *arg);
typedef int (*http_reload_fn)(http_reload_done done, void *arg);
void http_api_set_reload(http_reload_fn fn);

/* An HTTP connection is closing (http_server.c): a reply that waits for a
 * reload on it is dropped. */
struct evhttp_connection;
void http_api_connection_closed(struct evhttp_connection *evcon);

#endif
