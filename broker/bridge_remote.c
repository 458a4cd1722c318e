/*
 * bridge_remote.c - a bridge's connection to the remote broker.  Name
 * lookup (asynchronous, libevent's evdns: the loop never waits on DNS), TCP
 * and TLS are libpetrel's transport, the same code as the client library's
 * with its framing and output bound; the MQTT packets go through the shared
 * codec.
 */
#include "bridge_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/dns.h>

#include "broker.h"
#include "log.h"
#include "petrel.h"
#include "resolver.h"
#include "transport.h"

/* What the bridge lets the remote have in flight towards it; acks wait for
 * the local commit, so this is also what a slow disk holds back. */
#define BRIDGE_RECEIVE_MAX 1000
/* Towards a 3.1.1 remote, which does not say what it can take. */
#define BRIDGE_DEFAULT_WINDOW 100
#define CONNECT_TIMEOUT_MS 30000

/* One resolver for every bridge (it reads /etc/resolv.conf and /etc/hosts
 * again for each attempt made while no other lookup runs). */
static struct resolver *dns;

static struct bridge_address *current(struct bridge *b)
{
    return &b->conf.addresses[b->addr_index];
}

int bridge_remote_write(struct bridge *b, const void *data, size_t len)
{
    if (!b->tr)
        return -1;
    if (transport_write(b->tr, data, len) != 0)
        return -1;
    b->last_sent_ms = bridge_now_ms();
    return 0;
}

bool bridge_remote_can_write(const struct bridge *b)
{
    return b->tr && transport_can_write(b->tr);
}

void bridge_remote_set_reading(struct bridge *b, bool reading)
{
    b->remote_read_paused = !reading;
    if (b->tr)
        transport_set_reading(b->tr, reading);
}

void bridge_remote_close(struct bridge *b, bool graceful)
{
    if (b->tr) {
        if (graceful && b->remote_connected) {
            struct mqtt_packet p = {.type = MQTT_DISCONNECT};
            bridge_encode(b->conf.protocol, &p, bridge_remote_write, b);
        }
        transport_close(b->tr);
        b->tr = NULL;
    }
    b->remote_connected = false;
    b->remote_read_paused = false;
    b->ping_out = false;
    b->suback_pending = false;
}

/* CONNECT.  With try_private, a 3.1.1 bridge sets the top bit of the
 * protocol level (0x84), Mosquitto's sign that the client is a bridge (the
 * remote then does not echo its own messages back to it). */
static int send_connect(struct bridge *b)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *ck = &p.u.connect;
    ck->clean_session = b->conf.clean;
    ck->keepalive = b->conf.keepalive;
    ck->client_id.data = (const uint8_t *)b->conf.client_id;
    ck->client_id.len = (uint32_t)strlen(b->conf.client_id);
    static const char off[] = "0";
    if (b->conf.notification_topic[0]) {
        ck->will_flag = true;
        ck->will_qos = 1;
        ck->will_retain = true;
        ck->will_topic.data = (const uint8_t *)b->conf.notification_topic;
        ck->will_topic.len = (uint32_t)strlen(b->conf.notification_topic);
        ck->will_payload.data = (const uint8_t *)off;
        ck->will_payload.len = 1;
    }
    if (b->conf.username[0]) {
        ck->has_username = true;
        ck->username.data = (const uint8_t *)b->conf.username;
        ck->username.len = (uint32_t)strlen(b->conf.username);
        if (b->password) {
            ck->has_password = true;
            ck->password.data = b->password;
            ck->password.len = (uint32_t)b->password_len;
        }
    }
    uint8_t props[32];
    struct mqtt_props_builder pb;
    mqtt_pb_init(&pb, props, sizeof props);
    if (b->conf.protocol == MQTT_LEVEL_5) {
        /* A persistent session lives as long as the remote lets it. */
        mqtt_pb_num(&pb, MQTT_PROP_SESSION_EXPIRY, b->conf.clean ? 0 : 0xFFFFFFFFu);
        /* The broker takes at most max_inflight unacknowledged publishes
         * from the bridge's local connection. */
        mqtt_pb_num(&pb, MQTT_PROP_RECEIVE_MAXIMUM, broker.cfg.max_inflight < BRIDGE_RECEIVE_MAX
                                                        ? broker.cfg.max_inflight
                                                        : BRIDGE_RECEIVE_MAX);
        mqtt_pb_num(&pb, MQTT_PROP_MAXIMUM_PACKET_SIZE, broker.cfg.max_packet_size);
        ck->props = mqtt_pb_props(&pb);
    }
    ck->bridge = b->conf.protocol == MQTT_LEVEL_311 && b->conf.try_private;
    return bridge_encode(b->conf.protocol, &p, bridge_remote_write, b);
}

static void send_subscribe(struct bridge *b)
{
    struct mqtt_topic_entry entries[BRIDGE_MAX_RULES];
    uint32_t n = 0;
    for (size_t i = 0; i < b->conf.n_rules; i++) {
        const struct bridge_rule *r = &b->conf.rules[i];
        if (r->out)
            continue;
        entries[n].filter.data = (const uint8_t *)b->sub_filter[i];
        entries[n].filter.len = (uint32_t)strlen(b->sub_filter[i]);
        /* 5.0: not our own messages back (the out side), retained ones
         * stay retained. */
        entries[n].options = b->conf.protocol == MQTT_LEVEL_5
                                 ? (uint8_t)(r->qos | MQTT_SUBOPT_NO_LOCAL |
                                             MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
                                 : r->qos;
        n++;
    }
    if (n == 0)
        return;
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE};
    /* Id 1: nothing is relayed from the local session, whose PUBLISH ids
     * go to the remote as they are, until the SUBACK is in (the local
     * connection is not read meanwhile: bridge_local.c), so the id is not
     * in use twice. */
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.count = n;
    p.u.subscribe.entries = entries;
    if (bridge_encode(b->conf.protocol, &p, bridge_remote_write, b) != 0)
        bridge_fail(b, "cannot encode SUBSCRIBE");
    else
        b->suback_pending = true;
}

static void publish_notification(struct bridge *b)
{
    if (!b->conf.notification_topic[0])
        return;
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = 0;
    p.u.publish.retain = true;
    p.u.publish.topic.data = (const uint8_t *)b->conf.notification_topic;
    p.u.publish.topic.len = (uint32_t)strlen(b->conf.notification_topic);
    p.u.publish.payload.data = (const uint8_t *)"1";
    p.u.publish.payload.len = 1;
    bridge_encode(b->conf.protocol, &p, bridge_remote_write, b);
}

static const char *connack_error(uint8_t rc)
{
    switch (rc) {
    case MQTT_CONNACK_BAD_PROTOCOL: return "refused: protocol version not accepted";
    case MQTT_CONNACK_ID_REJECTED: return "refused: client id rejected";
    case MQTT_CONNACK_UNAVAILABLE: return "refused: server unavailable";
    case MQTT_CONNACK_BAD_CREDENTIALS: return "refused: bad user name or password";
    case MQTT_CONNACK_NOT_AUTHORIZED: return "refused: not authorized";
    default: return NULL;
    }
}

static void on_connack(struct bridge *b, const struct mqtt_connack *ca)
{
    if (ca->return_code != 0) {
        const char *why = b->conf.protocol == MQTT_LEVEL_311 ? connack_error(ca->return_code)
                                                              : NULL;
        if (why)
            bridge_fail(b, "%s %s", b->remote_name, why);
        else
            bridge_fail(b, "%s refused the connection: %s (0x%02x)", b->remote_name,
                        mqtt_reason_str(ca->return_code), ca->return_code);
        return;
    }
    b->remote_connected = true;
    b->remote_receive_max = BRIDGE_DEFAULT_WINDOW;
    b->remote_max_packet = 0;
    b->keepalive = b->conf.keepalive;
    struct mqtt_prop pr;
    if (b->conf.protocol == MQTT_LEVEL_5) {
        if (mqtt_props_find(&ca->props, MQTT_PROP_RECEIVE_MAXIMUM, &pr))
            b->remote_receive_max = (uint16_t)pr.num;
        else
            b->remote_receive_max = 65535;
        if (mqtt_props_find(&ca->props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &pr))
            b->remote_max_packet = pr.num;
        if (mqtt_props_find(&ca->props, MQTT_PROP_SERVER_KEEP_ALIVE, &pr))
            b->keepalive = (uint16_t)pr.num;
    }
    /* Nothing more is read until the local side is attached: a persistent
     * session at the remote may start sending at once, and its messages
     * need the local connection. */
    bridge_remote_set_reading(b, false);
    publish_notification(b);
    b->attach_started = bridge_now_ms();
    send_subscribe(b);
    if (b->state != BRIDGE_CONNECTING)
        return; /* failed meanwhile */
    bridge_set_state(b, BRIDGE_ATTACHING);
    b->attach_started = bridge_now_ms();
    if (bridge_local_connect(b) != 0)
        bridge_fail(b, "cannot open the local connection");
}

static void on_packet(void *ctx, uint8_t first, const uint8_t *body, uint32_t len)
{
    struct bridge *b = ctx;
    struct mqtt_packet p;
    const char *why = NULL;
    b->last_rx_ms = bridge_now_ms();
    b->ping_out = false;
    enum mqtt_err e = mqtt_decode(b->conf.protocol, first, body, len, &p, &why);
    if (e != MQTT_OK) {
        bridge_fail(b, "%s sent a bad packet: %s", b->remote_name, why ? why : mqtt_err_str(e));
        return;
    }
    if (!b->remote_connected) {
        if (p.type != MQTT_CONNACK)
            bridge_fail(b, "%s sent %s before CONNACK", b->remote_name, mqtt_type_name(p.type));
        else
            on_connack(b, &p.u.connack);
        return;
    }
    switch (p.type) {
    case MQTT_PINGRESP:
        return;
    case MQTT_SUBACK:
        if (b->suback_pending) {
            b->suback_pending = false;
            if (b->local_up)
                bridge_local_set_reading(b, true);
        }
        for (uint32_t i = 0; i < p.u.suback.codes.len; i++)
            if (p.u.suback.codes.data[i] >= 0x80)
                log_warning("bridge %s: %s refused an in subscription (0x%02x)", b->conf.name,
                            b->remote_name, p.u.suback.codes.data[i]);
        return;
    case MQTT_DISCONNECT:
        bridge_fail(b, "%s sent DISCONNECT: %s", b->remote_name,
                    mqtt_reason_str(p.u.disconnect.reason_code));
        return;
    case MQTT_PUBLISH:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        bridge_relay_from_remote(b, &p);
        return;
    default:
        bridge_fail(b, "%s sent an unexpected %s", b->remote_name, mqtt_type_name(p.type));
        return;
    }
}

static void on_connected(void *ctx)
{
    struct bridge *b = ctx;
    if (send_connect(b) != 0)
        bridge_fail(b, "cannot send CONNECT");
}

static void on_drained(void *ctx)
{
    bridge_relay_drained(ctx);
}

static void on_closed(void *ctx, int reason)
{
    struct bridge *b = ctx;
    if (reason == PETREL_ERESOLVE)
        bridge_fail(b, "cannot resolve %s", current(b)->host);
    else if (reason == PETREL_ETLS || reason == PETREL_ECERT)
        bridge_fail(b, "%s: %s (%s)", b->remote_name, petrel_strerror(reason),
                    petrel_tls_error_detail());
    else
        bridge_fail(b, "%s: %s", b->remote_name,
                    reason ? petrel_strerror(reason) : "connection closed");
}

/* evdns says on its own when a nameserver stops answering (and much more
 * at debug level); into petreld's log rather than raw onto stderr. */
static void dns_log(int is_warning, const char *msg)
{
    if (is_warning)
        log_warning("dns: %s", log_str0(msg));
    else
        log_debug("dns: %s", log_str0(msg));
}

static void on_resolved(void *ctx)
{
    bridge_set_state(ctx, BRIDGE_CONNECTING);
}

/* The transport resolves the name (each of its addresses is tried in turn)
 * and checks the certificate against the configured host. */
void bridge_remote_connect(struct bridge *b)
{
    const struct bridge_address *a = current(b);
    snprintf(b->remote_name, sizeof b->remote_name, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u",
             a->host, (unsigned)a->port);
    b->last_rx_ms = bridge_now_ms();
    if (!dns) {
        evdns_set_log_fn(dns_log);
        dns = resolver_new(broker.base);
    }
    if (!dns) {
        bridge_fail(b, "cannot set up name resolution");
        return;
    }
    struct transport_events ev = {
        .ctx = b, .connected = on_connected, .packet = on_packet, .drained = on_drained,
        .closed = on_closed, .resolved = on_resolved};
    struct transport_tls tls = {.ctx = b->tls, .server_name = a->host,
                                .verify = !b->conf.tls_insecure};
    int err = 0;
    b->tr = transport_open(broker.base, dns, a->host, a->port, broker.cfg.max_packet_size,
                           b->tls ? &tls : NULL, NULL, &ev, &err);
    if (!b->tr) {
        if (err == PETREL_ERESOLVE)
            bridge_fail(b, "cannot resolve %s", a->host);
        else
            bridge_fail(b, "%s: %s", b->remote_name, petrel_strerror(err));
        return;
    }
    bridge_set_state(b, transport_resolving(b->tr) ? BRIDGE_RESOLVING : BRIDGE_CONNECTING);
}

void bridge_remote_tick(struct bridge *b, int64_t now)
{
    if (b->state == BRIDGE_RESOLVING || b->state == BRIDGE_CONNECTING) {
        if (now - b->last_rx_ms > CONNECT_TIMEOUT_MS)
            bridge_fail(b, "%s: no CONNACK within %d s", b->remote_name,
                        CONNECT_TIMEOUT_MS / 1000);
        return;
    }
    if (b->state == BRIDGE_ATTACHING && now - b->attach_started > CONNECT_TIMEOUT_MS) {
        bridge_fail(b, "the broker did not accept the bridge's local connection within %d s",
                    CONNECT_TIMEOUT_MS / 1000);
        return;
    }
    if (b->suback_pending && now - b->attach_started > CONNECT_TIMEOUT_MS) {
        bridge_fail(b, "%s: no SUBACK within %d s", b->remote_name, CONNECT_TIMEOUT_MS / 1000);
        return;
    }
    if (!b->remote_connected || b->keepalive == 0)
        return;
    if (b->remote_read_paused) {
        b->last_rx_ms = now; /* not held against a remote we do not read */
        return;
    }
    if (now - b->last_rx_ms > (int64_t)b->keepalive * 1500) {
        bridge_fail(b, "%s: no answer within 1.5 x keepalive", b->remote_name);
        return;
    }
    if (!b->ping_out && now - b->last_sent_ms >= (int64_t)b->keepalive * 1000) {
        struct mqtt_packet p = {.type = MQTT_PINGREQ};
        if (bridge_encode(b->conf.protocol, &p, bridge_remote_write, b) == 0)
            b->ping_out = true;
    }
}

void bridge_remote_shutdown(void)
{
    resolver_free(dns);
    dns = NULL;
}
