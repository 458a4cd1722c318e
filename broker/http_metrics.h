/*
 * http_metrics.h - GET /metrics: the broker's state and counters in the
 * Prometheus text exposition format (version 0.0.4).  The counters are the
 * ones behind $SYS (broker.h): one source for both.
 */
#ifndef PETREL_HTTP_METRICS_H
#define PETREL_HTTP_METRICS_H

struct http_call;
struct evbuffer;

#include <stdint.h>

void http_metrics_get(struct http_call *call);

/* Totals over every session (one walk), for /metrics and the API's stats. */
struct session_totals {
    uint64_t online, offline, queued, queued_bytes;
};
void http_session_totals(struct session_totals *t);

/* Writes the exposition into b (for tests and the handler). */
void http_metrics_write(struct evbuffer *b);

#endif
