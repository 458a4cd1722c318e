/*
 * bridge_status.c - what an operator sees of the bridges: their $SYS
 * topics (with the broker's other statistics, every sys_interval), their
 * Prometheus metrics (/metrics) and their JSON (GET /api/v1/bridges).
 * Bridge names are letters, digits, '-' and '_' (bridge_config.c), so
 * they go into topics and labels as they are; the last error is escaped
 * as any JSON string.
 */
#include "bridge_status.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

#include "bridge.h"
#include "http_json.h"
#include "message.h"
#include "router.h"

static void sys_value(const char *name, const char *key, const char *value)
{
    char topic[160];
    snprintf(topic, sizeof topic, "$SYS/broker/bridges/%s/%s", name, key);
    struct message *m = message_new(topic, strlen(topic), (const uint8_t *)value, strlen(value),
                                    0, true);
    if (!m)
        return;
    router_publish(m, NULL);
    message_unref(m);
}

static void sys_u64(const char *name, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    sys_value(name, key, buf);
}

void bridges_publish_sys(void)
{
    struct bridge_status st;
    for (size_t i = 0; bridge_get_status(i, &st); i++) {
        /* .../state itself changes when the state does (bridge.c). */
        sys_u64(st.name, "queued", st.queued);
        sys_u64(st.name, "inflight", st.inflight);
        sys_u64(st.name, "messages/sent", st.forwarded_out);
        sys_u64(st.name, "messages/received", st.forwarded_in);
        sys_u64(st.name, "connects", st.connects);
        sys_u64(st.name, "lag_ms", (uint64_t)st.lag_ms);
        sys_value(st.name, "remote", st.remote);
        sys_value(st.name, "last_error", st.last_error[0] ? st.last_error : "none");
    }
}

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void bridges_metrics_write(struct evbuffer *b)
{
    size_t n = bridges_count();
    if (n == 0)
        return;
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"petrel_bridge_up", "gauge", "1 while the bridge is connected to its remote."},
        {"petrel_bridge_queued_messages", "gauge",
         "Messages waiting in the bridge's session for the remote."},
        {"petrel_bridge_inflight_messages", "gauge",
         "Messages sent to the remote and not yet acknowledged."},
        {"petrel_bridge_lag_seconds", "gauge",
         "Age of the oldest message sent to the remote and not yet acknowledged."},
        {"petrel_bridge_sent_total", "counter", "PUBLISH packets the bridge sent to the remote."},
        {"petrel_bridge_received_total", "counter",
         "PUBLISH packets from the remote given to this broker."},
        {"petrel_bridge_connects_total", "counter", "Connections the remote accepted."},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        struct bridge_status st;
        for (size_t i = 0; bridge_get_status(i, &st); i++) {
            evbuffer_add_printf(b, "%s{bridge=\"%s\"} ", fams[f].name, st.name);
            switch (f) {
            case 0: evbuffer_add_printf(b, "%d\n", strcmp(st.state, "connected") == 0); break;
            case 1: evbuffer_add_printf(b, "%u\n", st.queued); break;
            case 2: evbuffer_add_printf(b, "%u\n", st.inflight); break;
            case 3: evbuffer_add_printf(b, "%.3f\n", (double)st.lag_ms / 1000.0); break;
            case 4: evbuffer_add_printf(b, "%" PRIu64 "\n", st.forwarded_out); break;
            case 5: evbuffer_add_printf(b, "%" PRIu64 "\n", st.forwarded_in); break;
            default: evbuffer_add_printf(b, "%" PRIu64 "\n", st.connects); break;
            }
        }
    }
}

void bridges_json(struct evbuffer *b)
{
    evbuffer_add_printf(b, "{\"bridges\":[");
    struct bridge_status st;
    for (size_t i = 0; bridge_get_status(i, &st); i++) {
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_string0(b, st.name);
        evbuffer_add_printf(b, ",\"state\":\"%s\",\"remote\":", st.state);
        json_string0(b, st.remote);
        evbuffer_add_printf(b, ",\"last_error\":");
        json_string0(b, st.last_error);
        evbuffer_add_printf(b,
                            ",\"queued\":%u,\"inflight\":%u,\"lag_ms\":%lld,\"sent\":%" PRIu64
                            ",\"received\":%" PRIu64 ",\"connects\":%" PRIu64 "}",
                            st.queued, st.inflight, (long long)st.lag_ms, st.forwarded_out,
                            st.forwarded_in, st.connects);
    }
    evbuffer_add_printf(b, "]}\n");
}
