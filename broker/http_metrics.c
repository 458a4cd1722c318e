/*
 * http_metrics.c - the Prometheus exposition of GET /metrics (see
 * http_metrics.h).  Names follow Prometheus' conventions: a petrel_
 * prefix, base units (seconds, bytes), _total on counters, labels for
 * what a family is split by.  Gauges that need a walk over the sessions
 * or connections are computed per scrape: a few microseconds per thousand
 * sessions, on a request that comes every few seconds at most.
 */
#include "http_metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "bridge_status.h"
#include "broker.h"
#include "conn.h"
#include "hashmap.h"
#include "histogram.h"
#include "http_server.h"
#include "listener.h"
#include "mqtt_codec.h"
#include "session.h"
#include "store.h"
#include "topic_tree.h"
#include "turn.h"

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *b, const char *name, const char *type, const char *help,
                uint64_t v)
{
    family(b, name, type, help);
    evbuffer_add_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* A label value: '\', '"' and newlines escaped as the format wants. */
static void label_value(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(b, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, s, 1);
    }
}

struct labelled {
    const char *label;
    uint64_t value;
};

static void split(struct evbuffer *b, const char *name, const char *type, const char *help,
                  const char *key, const struct labelled *v, size_t n)
{
    family(b, name, type, help);
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(b, "%s{%s=\"%s\"} %" PRIu64 "\n", name, key, v[i].label,
                            v[i].value);
}

static void histogram(struct evbuffer *b, const char *name, const char *help,
                      const struct histogram *h)
{
    family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        cum += h->counts[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                            histogram_bound_seconds(i), cum);
    }
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    evbuffer_add_printf(b, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name,
                        (double)h->sum_ns / 1e9, name, h->count);
}

static void add_session(void *value, void *arg)
{
    const struct session *s = value;
    struct session_totals *t = arg;
    if (s->conn)
        t->online++;
    else
        t->offline++;
    t->queued += s->n_queued;
    t->queued_bytes += s->queued_bytes;
}

void http_session_totals(struct session_totals *t)
{
    memset(t, 0, sizeof *t);
    hashmap_foreach(broker.sessions, add_session, t);
}

/* Connections by listener and protocol; "connecting" before CONNECT. */
static void connections(struct evbuffer *b)
{
    enum { P_CONNECTING, P_31, P_311, P_5, P_N };
    static const char *const proto[P_N] = {"connecting", "3.1", "3.1.1", "5.0"};
    struct {
        const struct listener *l;
        uint64_t n[P_N];
    } rows[CONFIG_MAX_LISTENERS + 1];
    size_t n_rows = 0;
    for (const struct listener *l = listener_next(NULL);
         l && n_rows < CONFIG_MAX_LISTENERS; l = listener_next(l)) {
        memset(&rows[n_rows], 0, sizeof rows[0]);
        rows[n_rows++].l = l;
    }
    for (const struct conn *c = broker.conns; c; c = c->next) {
        if (c->state == CONN_DEAD)
            continue;
        size_t r = 0;
        while (r < n_rows && rows[r].l != c->listener)
            r++;
        if (r == n_rows) {
            if (n_rows == CONFIG_MAX_LISTENERS + 1)
                continue;
            memset(&rows[n_rows], 0, sizeof rows[0]);
            rows[n_rows++].l = c->listener;
        }
        int p = c->state == CONN_AWAIT_CONNECT ? P_CONNECTING
                : c->level == MQTT_LEVEL_5     ? P_5
                : c->level == 3                ? P_31
                                               : P_311;
        rows[r].n[p]++;
    }
    family(b, "petrel_connections", "gauge",
           "Open MQTT connections by listener, transport and protocol version.");
    for (size_t r = 0; r < n_rows; r++) {
        for (int p = 0; p < P_N; p++) {
            if (p == P_31 && rows[r].n[p] == 0)
                continue; /* MQTT 3.1 is rare: no series unless it is used */
            evbuffer_add(b, "petrel_connections{listener=\"", 29);
            label_value(b, rows[r].l ? listener_name(rows[r].l) : "internal");
            evbuffer_add_printf(b, "\",transport=\"%s\",protocol=\"%s\"} %" PRIu64 "\n",
                                listener_transport(rows[r].l), proto[p], rows[r].n[p]);
        }
    }
}

void http_metrics_write(struct evbuffer *b)
{
    const struct broker_stats *st = &broker.stats;
    family(b, "petrel_build_info", "gauge", "Always 1; the labels say which petreld this is.");
    evbuffer_add_printf(b, "petrel_build_info{version=\"%s\"} 1\n", PETREL_VERSION);
    family(b, "petrel_start_time_seconds", "gauge", "When petreld started, in unix seconds.");
    evbuffer_add_printf(b, "petrel_start_time_seconds %lld\n", (long long)broker.started);
    one(b, "petrel_uptime_seconds", "gauge", "Seconds since petreld started.",
        (uint64_t)(time(NULL) - broker.started));

    connections(b);
    one(b, "petrel_clients_connected", "gauge", "Connections past CONNECT.", broker.n_clients);
    struct session_totals t;
    http_session_totals(&t);
    struct labelled sessions[] = {{"online", t.online}, {"offline", t.offline}};
    split(b, "petrel_sessions", "gauge", "Sessions, with a connection (online) or without.",
          "state", sessions, 2);
    one(b, "petrel_subscriptions", "gauge", "Subscriptions of all sessions.",
        topic_tree_subscription_count(broker.topics));
    one(b, "petrel_retained_messages", "gauge", "Retained messages ($SYS not counted).",
        broker.retained_n);
    one(b, "petrel_retained_bytes", "gauge",
        "Topic, payload and property bytes of the retained messages.", broker.retained_bytes);
    one(b, "petrel_queued_messages", "gauge",
        "Messages queued for sessions and not sent yet (memory and store).", t.queued);
    one(b, "petrel_queued_bytes", "gauge", "Payload bytes of the queued messages.",
        t.queued_bytes);

    struct labelled q[3];
    static const char *const qos_names[3] = {"0", "1", "2"};
    for (int i = 0; i < 3; i++)
        q[i] = (struct labelled){qos_names[i], st->msgs_received_qos[i]};
    split(b, "petrel_messages_received_total", "counter",
          "PUBLISH packets received from clients, by QoS.", "qos", q, 3);
    for (int i = 0; i < 3; i++)
        q[i] = (struct labelled){qos_names[i], st->msgs_sent_qos[i]};
    split(b, "petrel_messages_sent_total", "counter",
          "PUBLISH packets sent to clients (resends included), by QoS.", "qos", q, 3);
    for (int i = 0; i < 3; i++)
        q[i] = (struct labelled){qos_names[i], st->payload_received_qos[i]};
    split(b, "petrel_received_payload_bytes_total", "counter",
          "Payload bytes of the PUBLISH packets received, by QoS.", "qos", q, 3);
    for (int i = 0; i < 3; i++)
        q[i] = (struct labelled){qos_names[i], st->payload_sent_qos[i]};
    split(b, "petrel_sent_payload_bytes_total", "counter",
          "Payload bytes of the PUBLISH packets sent, by QoS.", "qos", q, 3);
    one(b, "petrel_received_bytes_total", "counter", "Bytes read from MQTT connections.",
        st->bytes_received);
    one(b, "petrel_sent_bytes_total", "counter", "Bytes written to MQTT connections.",
        st->bytes_sent);

    one(b, "petrel_messages_dropped_total", "counter",
        "Deliveries dropped, whatever the cause (see petrel_message_drops_total).",
        st->publish_dropped);
    struct labelled drops[] = {
        {"queue_full", st->queue_full},
        {"expired", st->msgs_expired},
        {"client_maximum_packet_size", st->publish_too_large},
        {"output_buffer_full", st->output_buffer_full},
        {"shared_no_member", st->shared_dropped},
    };
    split(b, "petrel_message_drops_total", "counter",
          "Messages not delivered, by cause: a full queue (max_queued_messages/_bytes), "
          "Message Expiry, over the client's Maximum Packet Size, a full output buffer "
          "(QoS 0), or no member of a shared group to take it.", "cause", drops,
          sizeof drops / sizeof drops[0]);
    struct labelled refused[] = {
        {"bad_credentials", st->auth_refused},
        {"auth_busy", st->auth_busy},
        {"acl_publish", st->acl_publish_denied},
        {"acl_subscribe", st->acl_subscribe_denied},
        {"acl_read", st->acl_read_denied},
        {"protocol_error", st->protocol_errors},
    };
    split(b, "petrel_refusals_total", "counter",
          "Clients and packets refused other than by a limit: bad or missing credentials, "
          "too many password checks waiting, the ACL, protocol violations.", "cause", refused,
          sizeof refused / sizeof refused[0]);
    /* The same counters, and names, as $SYS/broker/limits/. */
    struct labelled limits[] = {
        {"max_connections", st->connections_refused},
        {"listener_max_connections", st->listener_refused},
        {"max_connections_per_source", st->source_refused},
        {"connect_timeout", st->connect_timeouts},
        {"max_packet_size", st->packet_too_large},
        {"max_keepalive", st->keepalive_refused},
        {"max_subscriptions_per_client", st->subscriptions_refused},
        {"max_retained", st->retained_refused},
        {"max_login_failures", st->auth_throttled},
        {"max_topic_length", st->topic_too_long},
        {"max_topic_levels", st->topic_too_deep},
        {"max_inflight", st->inflight_full},
        {"max_queued", st->queue_full},
        {"max_output_buffer", st->output_buffer_full},
        {"client_maximum_packet_size", st->publish_too_large},
    };
    split(b, "petrel_limit_hits_total", "counter",
          "Times each limit refused or cut something off (as $SYS/broker/limits/).", "limit",
          limits, sizeof limits / sizeof limits[0]);
    struct labelled flow[] = {
        {"slowed", st->flow_slowed},
        {"paused", st->flow_paused},
        {"over_bound", st->queue_over_bound},
    };
    split(b, "petrel_flow_control_events_total", "counter",
          "Flow control: publishers slowed by a full queue (acks held), paused (not read), "
          "and messages taken past a full queue with no one to slow.", "event", flow, 3);
    struct labelled shared[] = {
        {"delivered", st->shared_delivered},
        {"redistributed", st->shared_redistributed},
        {"dropped", st->shared_dropped},
    };
    split(b, "petrel_shared_messages_total", "counter",
          "Shared subscriptions: messages given to one member, handed on from a departing "
          "one, and dropped for want of a member.", "event", shared, 3);

    one(b, "petrel_store_writable", "gauge",
        "1 while the store takes writes, 0 while they fail (nothing is acknowledged then).",
        store_problem() ? 0 : 1);
    one(b, "petrel_store_errors_total", "counter", "Store transactions rolled back.",
        st->store_errors);
    histogram(b, "petrel_store_commit_duration_seconds",
              "Time of each store COMMIT (one per loop turn that wrote).",
              &broker.store_commit_latency);
    histogram(b, "petrel_store_fsync_duration_seconds",
              "Time of each fsync of the write-ahead log (durability = power only).",
              &broker.store_fsync_latency);
    histogram(b, "petrel_delivery_latency_seconds",
              "From receiving a message (or reading it back from the store) to its first "
              "send to a subscriber.", &broker.delivery_latency);
    const struct http_server_stats *hs = http_server_stats();
    one(b, "petrel_http_connections", "gauge", "Open connections to the HTTP listener.",
        hs->connections);
    struct labelled replies[] = {
        {"2xx", hs->replies[2]}, {"3xx", hs->replies[3]}, {"4xx", hs->replies[4]},
        {"5xx", hs->replies[5]},
    };
    split(b, "petrel_http_replies_total", "counter",
          "Replies of the HTTP listener by status class (not those evhttp makes itself for "
          "requests it cannot parse).", "code", replies, 4);
    one(b, "petrel_http_connection_limit_hits_total", "counter",
        "Times the HTTP listener stopped accepting at its 64 open connections.",
        hs->limit_hits);
    one(b, "petrel_http_source_limit_hits_total", "counter",
        "Connections to the HTTP listener closed because their address had max_per_source open.",
        hs->source_limit_hits);
    const struct turn_stats *ts = turn_stats();
    one(b, "petrel_loop_turns_total", "counter", "Turns of the event loop.", ts->turns);
    one(b, "petrel_loop_stalls_total", "counter", "Turns of the event loop that took over 5 ms.",
        ts->stalls);
    family(b, "petrel_loop_longest_turn_seconds", "gauge",
           "The longest turn of the event loop so far.");
    evbuffer_add_printf(b, "petrel_loop_longest_turn_seconds %.6f\n", (double)ts->max_us / 1e6);
    bridges_metrics_write(b);
}

void http_metrics_get(struct http_call *call)
{
    if (!http_only_get(call))
        return;
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    http_metrics_write(b);
    http_reply(call, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}
