/*
 * sys_topics.c - periodic $SYS/broker/... statistics.  Values are plain
 * decimal numbers (uptime in seconds) so that scripts can read them without
 * parsing units.  Filters starting with a wildcard never match these
 * topics; subscribe to "$SYS/#" to see them.
 */
#include "sys_topics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>

#include "broker.h"
#include "cluster.h"
#include "turn.h"
#include "log.h"
#include "memory_budget.h"
#include "message.h"
#include "bridge_status.h"
#include "router.h"
#include "store.h"
#include "topic_tree.h"
#include "ws_transport.h"

static struct event *sys_timer;

static void publish_value(const char *topic, const char *value)
{
    struct message *m = message_new(topic, strlen(topic), (const uint8_t *)value, strlen(value), 0, true);
    if (!m)
        return;
    router_publish(m, NULL);
    message_unref(m);
}

static void publish_u64(const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    publish_value(topic, buf);
}

static void publish_all(void)
{
    publish_value("$SYS/broker/version", "petrel " PETREL_VERSION);
    publish_u64("$SYS/broker/uptime", (uint64_t)(time(NULL) - broker.started));
    publish_u64("$SYS/broker/clients/connected", broker.n_clients);
    publish_u64("$SYS/broker/messages/received", broker.stats.msgs_received);
    publish_u64("$SYS/broker/messages/sent", broker.stats.msgs_sent);
    publish_u64("$SYS/broker/bytes/received", broker.stats.bytes_received);
    publish_u64("$SYS/broker/bytes/sent", broker.stats.bytes_sent);
    publish_u64("$SYS/broker/subscriptions/count", topic_tree_subscription_count(broker.topics));
    publish_u64("$SYS/broker/retained messages/count", topic_tree_retained_count(broker.topics));
    publish_u64("$SYS/broker/publish/dropped", broker.stats.publish_dropped);
    publish_u64("$SYS/broker/connections/refused", broker.stats.connections_refused);
    publish_u64("$SYS/broker/protocol errors", broker.stats.protocol_errors);
    publish_u64("$SYS/broker/store/errors", broker.stats.store_errors);
    /* "ok", or what keeps the store from acknowledging */
    publish_value("$SYS/broker/store/status", store_problem() ? store_problem() : "ok");
    publish_u64("$SYS/broker/shared/delivered", broker.stats.shared_delivered);
    publish_u64("$SYS/broker/shared/redistributed", broker.stats.shared_redistributed);
    publish_u64("$SYS/broker/shared/dropped", broker.stats.shared_dropped);
    /* Security and limits: how often each refused or cut something off. */
    publish_u64("$SYS/broker/auth/refused", broker.stats.auth_refused);
    publish_u64("$SYS/broker/auth/busy", broker.stats.auth_busy);
    publish_u64("$SYS/broker/auth/throttled", broker.stats.auth_throttled);
    publish_u64("$SYS/broker/acl/denied/publish", broker.stats.acl_publish_denied);
    publish_u64("$SYS/broker/acl/denied/subscribe", broker.stats.acl_subscribe_denied);
    publish_u64("$SYS/broker/acl/denied/read", broker.stats.acl_read_denied);
    publish_u64("$SYS/broker/limits/max_connections", broker.stats.connections_refused);
    publish_u64("$SYS/broker/limits/listener_max_connections", broker.stats.listener_refused);
    publish_u64("$SYS/broker/limits/max_connections_per_source", broker.stats.source_refused);
    publish_u64("$SYS/broker/limits/connect_timeout", broker.stats.connect_timeouts);
    publish_u64("$SYS/broker/limits/max_packet_size", broker.stats.packet_too_large);
    publish_u64("$SYS/broker/limits/max_keepalive", broker.stats.keepalive_refused);
    publish_u64("$SYS/broker/limits/max_subscriptions_per_client",
                broker.stats.subscriptions_refused);
    publish_u64("$SYS/broker/limits/max_retained", broker.stats.retained_refused);
    publish_u64("$SYS/broker/limits/max_login_failures", broker.stats.auth_throttled);
    publish_u64("$SYS/broker/limits/max_topic_length", broker.stats.topic_too_long);
    publish_u64("$SYS/broker/limits/max_topic_levels", broker.stats.topic_too_deep);
    publish_u64("$SYS/broker/limits/max_inflight", broker.stats.inflight_full);
    publish_u64("$SYS/broker/limits/max_queued", broker.stats.queue_full);
    publish_u64("$SYS/broker/flow/slowed", broker.stats.flow_slowed);
    publish_u64("$SYS/broker/flow/paused", broker.stats.flow_paused);
    publish_u64("$SYS/broker/flow/over_bound", broker.stats.queue_over_bound);
    publish_u64("$SYS/broker/loop/turns", turn_stats()->turns);
    publish_u64("$SYS/broker/loop/stalls", turn_stats()->stalls);
    publish_u64("$SYS/broker/loop/longest_turn_us", turn_stats()->max_us);
    publish_u64("$SYS/broker/limits/max_output_buffer", broker.stats.output_buffer_full);
    publish_u64("$SYS/broker/messages/expired", broker.stats.msgs_expired);
    publish_u64("$SYS/broker/limits/client_maximum_packet_size", broker.stats.publish_too_large);
    if (cluster_enabled()) {
        const struct cluster_stats *cs = cluster_stats();
        publish_value("$SYS/broker/cluster/node", cluster_node_name());
        publish_u64("$SYS/broker/cluster/nodes", cs->nodes_seen);
        publish_value("$SYS/broker/cluster/nodes/list", cluster_nodes_list());
        publish_u64("$SYS/broker/cluster/nodes/ready", cs->nodes_ready);
        publish_u64("$SYS/broker/cluster/nodes/refused", cs->nodes_refused);
        publish_u64("$SYS/broker/cluster/nodes/full", cs->nodes_full);
        publish_u64("$SYS/broker/cluster/nodes/dropped", cs->nodes_dropped);
        publish_u64("$SYS/broker/cluster/connected", cs->connected);
        publish_u64("$SYS/broker/cluster/subjects", cs->subjects);
        publish_u64("$SYS/broker/cluster/messages/sent", cs->sent);
        publish_u64("$SYS/broker/cluster/messages/received", cs->received);
        publish_u64("$SYS/broker/cluster/messages/duplicates", cs->duplicates);
        publish_u64("$SYS/broker/cluster/messages/dropped", cs->dropped);
        publish_u64("$SYS/broker/cluster/reconnects", cs->reconnects);
        publish_u64("$SYS/broker/cluster/stream/ready", cs->stream_ready);
        publish_u64("$SYS/broker/cluster/outbox/messages", cs->outbox_messages);
        publish_u64("$SYS/broker/cluster/outbox/bytes", cs->outbox_bytes);
        publish_u64("$SYS/broker/cluster/outbox/full", cs->outbox_full);
        publish_u64("$SYS/broker/cluster/stream/sent", cs->js_sent);
        publish_u64("$SYS/broker/cluster/stream/stored", cs->js_stored);
        publish_u64("$SYS/broker/cluster/stream/retried", cs->js_retried);
        publish_u64("$SYS/broker/cluster/stream/received", cs->js_received);
        publish_u64("$SYS/broker/cluster/stream/redelivered", cs->js_redelivered);
        publish_u64("$SYS/broker/cluster/stream/duplicates", cs->js_duplicates);
        publish_u64("$SYS/broker/cluster/stream/pending", cs->stream_pending);
        publish_u64("$SYS/broker/cluster/stream/lag_ms", cs->stream_lag_ms);
        publish_u64("$SYS/broker/cluster/retained/sent", cs->retained_sent);
        publish_u64("$SYS/broker/cluster/retained/received", cs->retained_received);
        const struct cluster_session_stats *ss = cluster_session_stats();
        publish_u64("$SYS/broker/cluster/sessions/claims", ss->claims);
        publish_u64("$SYS/broker/cluster/sessions/unclaimed", ss->unclaimed);
        publish_u64("$SYS/broker/cluster/sessions/taken", ss->taken);
        publish_u64("$SYS/broker/cluster/sessions/taken_deliveries", ss->deliveries_taken);
        publish_u64("$SYS/broker/cluster/sessions/from_record", ss->from_record);
        publish_u64("$SYS/broker/cluster/sessions/given", ss->given);
        publish_u64("$SYS/broker/cluster/sessions/stale", ss->stale);
        publish_u64("$SYS/broker/cluster/sessions/adopted", ss->adopted);
        publish_u64("$SYS/broker/cluster/sessions/failed", ss->failed + ss->lost);
        publish_u64("$SYS/broker/cluster/sessions/record_writes", ss->writes);
    }
    publish_u64("$SYS/broker/limits/partial_packet_timeout", broker.stats.partial_timeouts);
    publish_u64("$SYS/broker/limits/max_input_buffer_total", broker.stats.input_total_closed);
    publish_u64("$SYS/broker/input/held_bytes", broker.input_held);
    publish_u64("$SYS/broker/limits/max_connection_log_rate", broker.stats.conn_log_left_out);
    publish_u64("$SYS/broker/limits/max_publish_rate", broker.stats.publish_rate_paused);
    publish_u64("$SYS/broker/limits/max_publish_bytes_rate",
                broker.stats.publish_bytes_rate_paused);
    publish_u64("$SYS/broker/limits/memory_budget", broker.stats.memory_budget_hits);
    bridges_publish_sys();
    publish_u64("$SYS/broker/memory/used_bytes", memory_budget_used());
    /* WebSocket listeners (ws_transport.h) */
    publish_u64("$SYS/broker/websocket/handshakes", ws_stats.handshakes);
    publish_u64("$SYS/broker/limits/websocket_handshake", ws_stats.handshake_refused);
    publish_u64("$SYS/broker/limits/websocket_frame_size", ws_stats.frame_too_large);
    publish_u64("$SYS/broker/websocket/protocol_errors", ws_stats.protocol_errors);
    publish_u64("$SYS/broker/websocket/pings", ws_stats.pings);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    publish_all();
}

int sys_topics_start(void)
{
    if (broker.cfg.sys_interval == 0)
        return 0;
    sys_timer = event_new(broker.base, -1, EV_PERSIST, tick, NULL);
    if (!sys_timer)
        return -1;
    struct timeval tv = {(time_t)broker.cfg.sys_interval, 0};
    event_add(sys_timer, &tv);
    publish_all();
    return 0;
}

void sys_topics_stop(void)
{
    if (sys_timer)
        event_free(sys_timer);
    sys_timer = NULL;
}
