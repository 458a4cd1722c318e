/*
 * http_health.c - /healthz and /readyz, for load balancers and service
 * managers.  /healthz answers whenever the loop does: a broker that
 * cannot answer it is stuck.  /readyz says whether it should be sent
 * traffic: its store takes writes (else nothing is acknowledged), its
 * MQTT listeners are open, and it is not shutting down.
 */
#include <event2/buffer.h>

#include "broker.h"
#include "http_server.h"
#include "store.h"

void http_health_healthz(struct http_call *call)
{
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"status\":\"ok\"}\n");
    http_reply_json_free(call, 200, b);
}

void http_health_readyz(struct http_call *call)
{
    const char *reasons[3];
    size_t n = 0;
    if (store_problem() != NULL)
        reasons[n++] = "store_unwritable";
    if (broker.listeners == NULL)
        reasons[n++] = "listeners_closed";
    if (http_server_is_shutting_down())
        reasons[n++] = "shutting_down";
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    if (n == 0) {
        evbuffer_add_printf(b, "{\"status\":\"ready\"}\n");
    } else {
        evbuffer_add_printf(b, "{\"status\":\"not_ready\",\"reasons\":[");
        for (size_t i = 0; i < n; i++)
            evbuffer_add_printf(b, "%s\"%s\"", i ? "," : "", reasons[i]);
        evbuffer_add_printf(b, "]}\n");
    }
    http_reply_json_free(call, n == 0 ? 200 : 503, b);
}
