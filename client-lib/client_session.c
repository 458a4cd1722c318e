/*
 * client_session.c - the MQTT 3.1.1 and 5.0 client session as a state machine
 * without I/O: CONNECT/CONNACK, the QoS 0/1/2 handshakes in both directions
 * with their inflight window, subscriptions, keep alive and dead-link
 * detection, and reconnection with backoff and resumption of unacknowledged
 * messages.  MQTT 5.0 adds properties on every packet, reason codes, the
 * server's limits from CONNACK (keep alive, receive maximum, maximum packet
 * size), incoming topic aliases and DISCONNECT from the server.
 *
 * Reentrancy rule: every hook may call back into the session, so before any
 * hook call the state is consistent, and after it the caller re-checks that
 * the connection it was working on is still the current one (conn_gen).
 */
#include "client_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_grow.h"
#include "backoff.h"
#include "outbox.h"
#include "packet_ids.h"
#include "subscriptions.h"

/* How long a graceful disconnect may take to flush its DISCONNECT. */
#define CLOSE_TIMEOUT_MS 2000

struct sess {
    const struct petrel_options *o;
    struct sess_io io;
    enum sess_state state;
    bool trace;
    bool reading;
    /* Incremented whenever a transport opens or ends, so code that called a
     * hook can tell whether it is still talking to the same connection. */
    uint32_t conn_gen;
    unsigned retries;          /* failed attempts since the last CONNACK 0 */
    /* Set while the connected hook runs: what it publishes or subscribes
     * waits until the messages of the previous connection are resent, so
     * that order is kept. */
    bool resuming;
    /* Set while the message hook runs; a sess_stop from inside it is
     * carried out after the acknowledgement is sent. */
    bool in_message;
    bool stop_after_message;
    int64_t deadline_connect;  /* OPENING, HANDSHAKE */
    int64_t deadline_retry;    /* BACKOFF */
    int64_t deadline_close;    /* CLOSING */
    int64_t last_tx, last_rx;  /* CONNECTED: last packet each way */
    int64_t ping_sent;         /* PINGREQ outstanding since; -1 = none */
    struct outbox out;
    struct subscriptions subs;
    struct packet_ids ids;     /* our own packet identifiers in use */
    struct packet_ids qos2_in; /* incoming QoS 2 delivered, PUBREL pending */
    uint64_t next_id;          /* handles for publications and requests */
    uint8_t *buf;              /* encoding scratch */
    size_t cap;

    /* MQTT 5.0 (level 5); with level 4 these keep their neutral values. */
    uint8_t level;             /* protocol level on the wire */
    uint16_t keepalive;        /* effective: ours, or the Server Keep Alive */
    uint32_t send_max;         /* the server's Receive Maximum */
    uint32_t server_max_packet; /* the server's Maximum Packet Size; 0 = none */
    uint8_t *connack_props;    /* copy of the accepting CONNACK's properties */
    size_t connack_props_len;
    bool has_connack_props;
    uint16_t alias_max;        /* Topic Alias Maximum we announced */
    struct mqtt_bytes *aliases; /* [alias_max + 1]: owned topic copies */
    /* The reason code and properties of the packet behind the event a hook
     * is reporting (see sess_reason); set only around that hook call. */
    uint8_t reason;
    struct mqtt_props reason_props;
};

static void lost(struct sess *s, int64_t now, int reason);
static void pump(struct sess *s, int64_t now);
static void flush_requests(struct sess *s, int64_t now);

/* ------------------------------------------------------------------------
 * Small helpers
 */

static void tracef(struct sess *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tracef(struct sess *s, int level, const char *fmt, ...)
{
    if (!s->trace || !s->io.trace)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->io.trace(s->io.ctx, level, line);
}

/* At most 40 bytes of a topic for trace lines. */
#define TOPIC_FMT "'%.*s%s'"
#define TOPIC_ARG(p, n) (int)((n) > 40 ? 40 : (n)), (const char *)(p), ((n) > 40 ? "..." : "")

/* MQTT 5.0 CONNACK reason codes onto the 3.1.1 errors where one fits, so
 * applications (and the CLI's exit codes) treat both protocols alike. */
static int connack_error5(uint8_t rc)
{
    switch (rc) {
    case MQTT_RC_UNSUPPORTED_VERSION: return PETREL_EREFUSED_PROTOCOL;
    case MQTT_RC_CLIENT_ID_INVALID: return PETREL_EREFUSED_ID;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
    case MQTT_RC_UNSPECIFIED:
    case MQTT_RC_IMPLEMENTATION_SPECIFIC:
    case MQTT_RC_QUOTA_EXCEEDED:
    case MQTT_RC_CONNECTION_RATE_EXCEEDED:
        return PETREL_EUNAVAILABLE; /* may pass: retried with backoff */
    case MQTT_RC_BAD_USER_OR_PASSWORD: return PETREL_EBAD_CREDENTIALS;
    case MQTT_RC_NOT_AUTHORIZED: return PETREL_ENOT_AUTHORIZED;
    default: return PETREL_EREFUSED; /* banned, bad auth method, malformed... */
    }
}

static int connack_error(uint8_t rc)
{
    switch (rc) {
    case MQTT_CONNACK_BAD_PROTOCOL: return PETREL_EREFUSED_PROTOCOL;
    case MQTT_CONNACK_ID_REJECTED: return PETREL_EREFUSED_ID;
    case MQTT_CONNACK_UNAVAILABLE: return PETREL_EUNAVAILABLE;
    case MQTT_CONNACK_BAD_CREDENTIALS: return PETREL_EBAD_CREDENTIALS;
    case MQTT_CONNACK_NOT_AUTHORIZED: return PETREL_ENOT_AUTHORIZED;
    default: return PETREL_EPROTOCOL;
    }
}

/* Refusals that the same CONNECT would get again: retrying only hammers the
 * server, so the client stops and lets the application decide. */
static bool is_permanent(int reason)
{
    return reason == PETREL_EREFUSED_PROTOCOL || reason == PETREL_EREFUSED_ID ||
           reason == PETREL_EBAD_CREDENTIALS || reason == PETREL_ENOT_AUTHORIZED ||
           reason == PETREL_ECERT || /* the server shows the same certificate again */
           reason == PETREL_EREFUSED;
}

static int64_t keepalive_ms(const struct sess *s)
{
    return (int64_t)s->keepalive * 1000;
}

/* The server gets half a keep alive to answer a PINGREQ: with pings sent
 * after one keep alive of silence, a dead link is declared at most 1.5 keep
 * alives after the server last spoke, the same bound servers apply to
 * clients. */
static int64_t ping_timeout_ms(const struct sess *s)
{
    return keepalive_ms(s) / 2;
}

/* Encodes and writes one packet.  Returns false when the connection is gone
 * (the write failed and lost() already ran, or the packet could not be
 * encoded, which validation upstream should make impossible). */
static bool send_packet(struct sess *s, int64_t now, const struct mqtt_packet *p)
{
    size_t n = mqtt_encode(s->level, p, NULL, 0);
    if (n == 0) {
        tracef(s, PETREL_LOG_ERROR, "cannot encode %s", mqtt_type_name(p->type));
        return false;
    }
    if (n > s->cap) {
        uint8_t *b = array_grow(s->buf, &s->cap, n, 1, 256);
        if (!b) {
            s->io.close(s->io.ctx, false);
            lost(s, now, PETREL_ENOMEM);
            return false;
        }
        s->buf = b;
    }
    mqtt_encode(s->level, p, s->buf, n);
    if (s->io.write(s->io.ctx, s->buf, n) != 0) {
        tracef(s, PETREL_LOG_INFO, "write failed");
        s->io.close(s->io.ctx, false);
        lost(s, now, PETREL_ENETWORK);
        return false;
    }
    s->last_tx = now;
    return true;
}

static bool send_ack(struct sess *s, int64_t now, uint8_t type, uint16_t packet_id)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = packet_id;
    tracef(s, PETREL_LOG_DEBUG, "sending %s (id %u)", mqtt_type_name(type), packet_id);
    return send_packet(s, now, &p);
}

/* Closes the transport at once and handles the loss. */
static void drop(struct sess *s, int64_t now, int reason)
{
    s->io.close(s->io.ctx, false);
    lost(s, now, reason);
}

/* Sets the reason context for one hook call (see sess_reason). */
static void reason_set(struct sess *s, uint8_t rc, struct mqtt_props props)
{
    s->reason = rc;
    s->reason_props = props;
}

static void reason_clear(struct sess *s)
{
    s->reason = 0;
    s->reason_props = (struct mqtt_props){NULL, 0};
}

static void aliases_clear(struct sess *s)
{
    if (s->aliases) {
        for (size_t i = 0; i <= s->alias_max; i++)
            free((void *)(uintptr_t)s->aliases[i].data);
        free(s->aliases);
        s->aliases = NULL;
    }
}

/* MQTT 5.0: tells the server why we close (a protocol error on its part),
 * then closes.  With 3.1.1 there is nothing to tell. */
static void fail(struct sess *s, int64_t now, uint8_t rc, int reason)
{
    if (s->level == MQTT_LEVEL_5) {
        struct mqtt_packet p = {.type = MQTT_DISCONNECT};
        p.u.disconnect.reason_code = rc;
        uint32_t gen = s->conn_gen;
        tracef(s, PETREL_LOG_DEBUG, "sending DISCONNECT (reason 0x%02x)", rc);
        if (!send_packet(s, now, &p) || s->conn_gen != gen)
            return;
    }
    drop(s, now, reason);
}

/* ------------------------------------------------------------------------
 * Life cycle
 */

struct sess *sess_new(const struct petrel_options *o, const struct sess_io *io)
{
    struct sess *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->o = o;
    s->io = *io;
    s->state = SESS_IDLE;
    s->reading = true;
    s->ping_sent = -1;
    s->next_id = 1;
    s->level = o->protocol == PETREL_MQTT_5 ? MQTT_LEVEL_5 : MQTT_LEVEL_311;
    s->keepalive = o->keepalive;
    s->send_max = 65535;
    outbox_init(&s->out, o->max_queued, o->max_queued_bytes);
    subs_init(&s->subs);
    packet_ids_init(&s->ids);
    packet_ids_init(&s->qos2_in);
    return s;
}

void sess_free(struct sess *s)
{
    if (!s)
        return;
    outbox_clear(&s->out);
    subs_clear(&s->subs);
    aliases_clear(s);
    free(s->connack_props);
    free(s->buf);
    free(s);
}

void sess_set_trace(struct sess *s, bool enabled)
{
    s->trace = enabled;
}

enum sess_state sess_state(const struct sess *s)
{
    return s->state;
}

size_t sess_pending(const struct sess *s)
{
    return s->out.n_queued + s->out.n_inflight;
}

size_t sess_inflight(const struct sess *s)
{
    return s->out.n_inflight;
}

/* Bookkeeping when a transport ends: requests sent on it go out again on
 * the next one with fresh identifiers.  Publications in flight keep theirs,
 * because a resumed session must resend them unchanged. */
static void connection_ended(struct sess *s)
{
    s->conn_gen++;
    s->ping_sent = -1;
    /* The server's limits and aliases belong to one connection. */
    aliases_clear(s);
    s->has_connack_props = false;
    s->keepalive = s->o->keepalive;
    s->send_max = 65535;
    s->server_max_packet = 0;
    struct sub_req *r;
    TAILQ_FOREACH(r, &s->subs.reqs, link) {
        if (r->packet_id) {
            packet_ids_remove(&s->ids, r->packet_id);
            r->packet_id = 0;
        }
    }
}

static void begin_attempt(struct sess *s, int64_t now)
{
    s->state = SESS_OPENING;
    s->deadline_connect = now + s->o->connect_timeout_ms;
    tracef(s, PETREL_LOG_INFO, "connecting to %s port %u", s->o->host, s->o->port);
    uint32_t gen = s->conn_gen;
    int rc = s->io.open(s->io.ctx);
    if (rc != PETREL_OK && s->conn_gen == gen && s->state == SESS_OPENING)
        lost(s, now, rc);
}

int sess_start(struct sess *s, int64_t now)
{
    if (s->state != SESS_IDLE)
        return PETREL_ESTATE;
    s->retries = 0;
    begin_attempt(s, now);
    return PETREL_OK;
}

/* A transport ended or an attempt failed: report it, then wait and retry
 * or stop. */
static void lost(struct sess *s, int64_t now, int reason)
{
    enum sess_state was = s->state;
    if (was == SESS_IDLE || was == SESS_BACKOFF)
        return;
    connection_ended(s);
    if (was == SESS_CLOSING) {
        /* The application asked for this; a failed flush changes nothing. */
        s->state = SESS_IDLE;
        tracef(s, PETREL_LOG_INFO, "disconnected");
        s->io.disconnected(s->io.ctx, PETREL_OK, false);
        return;
    }
    if (reason == PETREL_OK)
        reason = PETREL_ECONNLOST;
    if (!s->o->reconnect || is_permanent(reason)) {
        s->state = SESS_IDLE;
        tracef(s, PETREL_LOG_INFO, "%s: %s; not reconnecting",
               was == SESS_CONNECTED ? "connection lost" : "connection failed",
               petrel_strerror(reason));
        s->io.disconnected(s->io.ctx, reason, false);
        return;
    }
    uint32_t delay = backoff_delay_ms(s->o->reconnect_min_ms, s->o->reconnect_max_ms, s->retries,
                                      s->io.random(s->io.ctx));
    if (s->retries < 64)
        s->retries++;
    s->state = SESS_BACKOFF;
    s->deadline_retry = now + delay;
    tracef(s, PETREL_LOG_INFO, "%s: %s; reconnecting in %u ms",
           was == SESS_CONNECTED ? "connection lost" : "connection failed",
           petrel_strerror(reason), delay);
    s->io.disconnected(s->io.ctx, reason, true);
}

void sess_stop(struct sess *s, int64_t now)
{
    if (s->in_message && s->state == SESS_CONNECTED) {
        s->stop_after_message = true;
        return;
    }
    switch (s->state) {
    case SESS_IDLE:
    case SESS_CLOSING:
        return;
    case SESS_BACKOFF:
        s->state = SESS_IDLE;
        tracef(s, PETREL_LOG_INFO, "stopped reconnecting");
        s->io.disconnected(s->io.ctx, PETREL_OK, false);
        return;
    case SESS_OPENING:
    case SESS_HANDSHAKE:
        s->io.close(s->io.ctx, false);
        connection_ended(s);
        s->state = SESS_IDLE;
        tracef(s, PETREL_LOG_INFO, "connection attempt abandoned");
        s->io.disconnected(s->io.ctx, PETREL_OK, false);
        return;
    case SESS_CONNECTED: {
        struct mqtt_packet p = {.type = MQTT_DISCONNECT};
        tracef(s, PETREL_LOG_DEBUG, "sending DISCONNECT");
        /* CLOSING first: if the write fails, lost() reports a requested
         * disconnect rather than a lost connection. */
        s->state = SESS_CLOSING;
        s->deadline_close = now + CLOSE_TIMEOUT_MS;
        if (send_packet(s, now, &p))
            s->io.close(s->io.ctx, true);
        return;
    }
    }
}

/* The CONNECT properties: the application's, plus what the session adds
 * unless the application set it: a Session Expiry Interval that keeps a
 * persistent session as 3.1.1 would (forever), and our Maximum Packet Size.
 * Also prepares the table for the Topic Alias Maximum announced.  Returns
 * the malloc'd block (free it after sending) or NULL when out of memory. */
static uint8_t *connect_props(struct sess *s, struct mqtt_props *out)
{
    const struct petrel_options *o = s->o;
    struct mqtt_props user = {o->connect_props, (uint32_t)o->connect_props_len};
    struct mqtt_prop pr;
    size_t cap = o->connect_props_len + 16;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return NULL;
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, buf, cap);
    if (o->connect_props_len)
        mqtt_pb_raw(&b, o->connect_props, o->connect_props_len);
    if (!o->clean_session && !mqtt_props_find(&user, MQTT_PROP_SESSION_EXPIRY, &pr))
        mqtt_pb_num(&b, MQTT_PROP_SESSION_EXPIRY, 0xFFFFFFFFu);
    if (!mqtt_props_find(&user, MQTT_PROP_MAXIMUM_PACKET_SIZE, &pr) &&
        o->max_packet_size < MQTT_MAX_REMAINING_LENGTH + MQTT_MAX_FIXED_HEADER)
        mqtt_pb_num(&b, MQTT_PROP_MAXIMUM_PACKET_SIZE, o->max_packet_size);
    s->alias_max = 0;
    if (mqtt_props_find(&user, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, &pr) && pr.num > 0) {
        s->aliases = calloc((size_t)pr.num + 1, sizeof *s->aliases);
        if (!s->aliases) {
            free(buf);
            return NULL;
        }
        s->alias_max = (uint16_t)pr.num;
    }
    *out = mqtt_pb_props(&b);
    return buf;
}

void sess_transport_up(struct sess *s, int64_t now)
{
    if (s->state != SESS_OPENING)
        return;
    s->conn_gen++;
    s->state = SESS_HANDSHAKE;
    s->last_rx = now;
    s->ping_sent = -1;

    const struct petrel_options *o = s->o;
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &p.u.connect;
    c->level = s->level;
    uint8_t *props = NULL;
    if (s->level == MQTT_LEVEL_5) {
        props = connect_props(s, &c->props);
        if (!props) {
            drop(s, now, PETREL_ENOMEM);
            return;
        }
        c->will_props = (struct mqtt_props){o->will_props, (uint32_t)o->will_props_len};
    }
    c->clean_session = o->clean_session;
    c->keepalive = o->keepalive;
    c->client_id = mqtt_str(o->client_id);
    if (o->will_topic) {
        c->will_flag = true;
        c->will_qos = o->will_qos;
        c->will_retain = o->will_retain;
        c->will_topic = mqtt_str(o->will_topic);
        c->will_payload = (struct mqtt_bytes){o->will_payload, (uint32_t)o->will_payload_len};
    }
    if (o->username) {
        c->has_username = true;
        c->username = mqtt_str(o->username);
        if (o->password) {
            c->has_password = true;
            c->password = (struct mqtt_bytes){o->password, (uint32_t)o->password_len};
        }
    }
    tracef(s, PETREL_LOG_DEBUG,
           "sending CONNECT (MQTT %s, client id '%.64s', clean %s %d, keep alive %u)",
           s->level == MQTT_LEVEL_5 ? "5.0" : "3.1.1", o->client_id,
           s->level == MQTT_LEVEL_5 ? "start" : "session", o->clean_session, o->keepalive);
    send_packet(s, now, &p);
    free(props);
}

void sess_transport_down(struct sess *s, int64_t now, int reason)
{
    if (s->state == SESS_IDLE || s->state == SESS_BACKOFF)
        return;
    lost(s, now, reason);
}

/* ------------------------------------------------------------------------
 * Outgoing publications
 */

/* Finishes a publication: frees it, then tells the application. */
static void complete(struct sess *s, struct out_msg *m, int result)
{
    uint64_t id = m->id;
    if (m->packet_id)
        packet_ids_remove(&s->ids, m->packet_id);
    outbox_remove(&s->out, m);
    s->io.published(s->io.ctx, id, result);
}

static bool send_publish(struct sess *s, int64_t now, struct out_msg *m)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    struct mqtt_publish *pub = &p.u.publish;
    pub->dup = m->sent && m->qos > 0;
    pub->qos = m->qos;
    pub->retain = m->retain;
    pub->topic = (struct mqtt_bytes){m->data, (uint32_t)m->topic_len};
    pub->packet_id = m->packet_id;
    pub->payload = (struct mqtt_bytes){out_payload(m), (uint32_t)m->payload_len};
    pub->props = (struct mqtt_props){out_props(m), (uint32_t)m->props_len};
    tracef(s, PETREL_LOG_DEBUG, "sending PUBLISH (id %u, q%u, r%d, d%d, " TOPIC_FMT ", %zu bytes)",
           m->packet_id, m->qos, m->retain, pub->dup, TOPIC_ARG(m->data, m->topic_len),
           m->payload_len);
    return send_packet(s, now, &p);
}

/* The encoded size of a PUBLISH: fixed header, topic, packet identifier,
 * properties (with their length prefix), payload. */
static uint64_t publish_size(uint8_t level, size_t topic_len, int qos, size_t props_len,
                             size_t payload_len)
{
    uint64_t body = 2 + (uint64_t)topic_len + (qos ? 2 : 0) + (uint64_t)payload_len;
    if (level == MQTT_LEVEL_5) {
        uint8_t tmp[4];
        body += props_len + (props_len <= MQTT_MAX_REMAINING_LENGTH
                                 ? mqtt_encode_varint((uint32_t)props_len, tmp)
                                 : 4);
    }
    uint8_t tmp[4];
    size_t hdr = body <= MQTT_MAX_REMAINING_LENGTH ? mqtt_encode_varint((uint32_t)body, tmp) : 4;
    return 1 + hdr + body;
}

/* Larger than the server's Maximum Packet Size (MQTT 5.0)? */
static bool too_large(const struct sess *s, const struct out_msg *m)
{
    return s->server_max_packet &&
           publish_size(s->level, m->topic_len, m->qos, m->props_len, m->payload_len) >
               s->server_max_packet;
}

/* Sends queued publications while the transport takes data and the
 * inflight window has room, in publication order. */
static void pump(struct sess *s, int64_t now)
{
    uint32_t gen = s->conn_gen;
    struct out_msg *m;
    if (s->resuming)
        return;
    while (s->state == SESS_CONNECTED && s->conn_gen == gen &&
           (m = TAILQ_FIRST(&s->out.queued)) && s->io.can_write(s->io.ctx)) {
        if (too_large(s, m)) {
            /* Queued before this connection told us the limit. */
            tracef(s, PETREL_LOG_ERROR, "PUBLISH of %zu bytes exceeds the server's maximum "
                   "packet size %u; not sent", m->payload_len, s->server_max_packet);
            complete(s, m, PETREL_ETOO_LARGE);
            continue;
        }
        if (m->qos > 0) {
            /* MQTT 5.0: the server's Receive Maximum bounds the window too. */
            if (s->out.n_inflight >= s->o->max_inflight || s->out.n_inflight >= s->send_max)
                return;
            uint16_t pid = packet_ids_alloc(&s->ids);
            if (pid == 0)
                return;
            m->packet_id = pid;
            if (!send_publish(s, now, m)) {
                /* Still queued: it gets a fresh identifier next time. */
                packet_ids_remove(&s->ids, pid);
                m->packet_id = 0;
                return;
            }
            /* After the write: had it failed, the message would still be
             * queued and go out on the next connection. */
            m->sent = true;
            outbox_to_inflight(&s->out, m);
            m->stage = OUT_WAIT_ACK;
        } else {
            if (!send_publish(s, now, m))
                return;
            complete(s, m, PETREL_OK);
        }
    }
}

int sess_publish(struct sess *s, int64_t now, const char *topic, size_t topic_len,
                 const void *payload, size_t payload_len, int qos, bool retain, uint64_t *id)
{
    return sess_publish_props(s, now, topic, topic_len, payload, payload_len, qos, retain, NULL,
                              0, id);
}

int sess_publish_props(struct sess *s, int64_t now, const char *topic, size_t topic_len,
                       const void *payload, size_t payload_len, int qos, bool retain,
                       const uint8_t *props, size_t props_len, uint64_t *id)
{
    if (!topic || qos < 0 || qos > 2 || (!payload && payload_len))
        return PETREL_EINVAL;
    if (!mqtt_topic_name_valid((const uint8_t *)topic, topic_len))
        return PETREL_EINVAL;
    if (props_len && s->level != MQTT_LEVEL_5)
        return PETREL_EINVAL;
    uint64_t size = publish_size(s->level, topic_len, qos, props_len, payload_len);
    if (size - 1 - 4 > MQTT_MAX_REMAINING_LENGTH)
        return PETREL_ETOO_LARGE;
    /* While connected the server's limit is known: say so now rather than
     * through the published callback. */
    if (s->state == SESS_CONNECTED && s->server_max_packet && size > s->server_max_packet)
        return PETREL_ETOO_LARGE;
    uint64_t handle = s->next_id;
    int rc = outbox_add(&s->out, handle, topic, topic_len, payload, payload_len, (uint8_t)qos,
                        retain, props, props_len);
    if (rc != PETREL_OK)
        return rc;
    s->next_id++;
    if (id)
        *id = handle;
    pump(s, now);
    return PETREL_OK;
}

/* ------------------------------------------------------------------------
 * Subscription requests
 */

/* Encodes a request with packet id `pid`; with buf NULL, only sizes it.
 * Returns the encoded size, 0 if unencodable. */
static size_t encode_request(uint8_t level, const struct sub_req *r, uint16_t pid, uint8_t *buf,
                             size_t cap)
{
    struct mqtt_topic_entry *e = malloc(r->count * sizeof *e);
    if (!e)
        return 0;
    for (size_t i = 0; i < r->count; i++) {
        e[i].filter = (struct mqtt_bytes){(const uint8_t *)r->entries[i].filter,
                                          (uint32_t)r->entries[i].len};
        e[i].options = r->entries[i].qos;
    }
    struct mqtt_packet p = {.type = r->unsubscribe ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE};
    p.u.subscribe.packet_id = pid;
    p.u.subscribe.count = (uint32_t)r->count;
    p.u.subscribe.entries = e;
    p.u.subscribe.props = (struct mqtt_props){r->props, (uint32_t)r->props_len};
    size_t n = mqtt_encode(level, &p, buf, cap);
    free(e);
    return n;
}

static bool send_request(struct sess *s, int64_t now, struct sub_req *r)
{
    size_t n = encode_request(s->level, r, r->packet_id, NULL, 0);
    if (n == 0)
        return false;
    if (n > s->cap) {
        uint8_t *b = realloc(s->buf, n);
        if (!b)
            return false;
        s->buf = b;
        s->cap = n;
    }
    encode_request(s->level, r, r->packet_id, s->buf, n);
    tracef(s, PETREL_LOG_DEBUG, "sending %s (id %u, %zu filter%s, first " TOPIC_FMT ")",
           r->unsubscribe ? "UNSUBSCRIBE" : "SUBSCRIBE", r->packet_id, r->count,
           r->count == 1 ? "" : "s", TOPIC_ARG(r->entries[0].filter, r->entries[0].len));
    if (s->io.write(s->io.ctx, s->buf, n) != 0) {
        drop(s, now, PETREL_ENETWORK);
        return false;
    }
    s->last_tx = now;
    return true;
}

/* Sends every request not yet sent on this connection, in order. */
static void flush_requests(struct sess *s, int64_t now)
{
    uint32_t gen = s->conn_gen;
    struct sub_req *r;
    if (s->resuming)
        return;
    TAILQ_FOREACH(r, &s->subs.reqs, link) {
        if (s->state != SESS_CONNECTED || s->conn_gen != gen)
            return;
        if (r->packet_id)
            continue;
        uint16_t pid = packet_ids_alloc(&s->ids);
        if (pid == 0)
            return; /* retried when an acknowledgement frees an identifier */
        r->packet_id = pid;
        if (!send_request(s, now, r)) {
            if (s->conn_gen == gen) {
                /* Out of memory: try again on the next acknowledgement. */
                packet_ids_remove(&s->ids, pid);
                r->packet_id = 0;
            }
            return;
        }
    }
}

/* Subscription options a request may carry: the QoS, plus with MQTT 5.0
 * no local, retain as published and retain handling 0..2. */
static bool options_ok(const struct sess *s, int opt)
{
    if (s->level != MQTT_LEVEL_5)
        return opt >= 0 && opt <= 2;
    return opt >= 0 && (opt & ~0x3F) == 0 && MQTT_SUBOPT_QOS(opt) <= 2 &&
           MQTT_SUBOPT_RETAIN_HANDLING(opt) != 3;
}

static int add_request(struct sess *s, int64_t now, bool unsubscribe, const char *const *filters,
                       const int *qos, size_t count, const uint8_t *props, size_t props_len,
                       uint64_t *id)
{
    if (!filters || count == 0 || count > 65535)
        return PETREL_EINVAL;
    if (props_len && s->level != MQTT_LEVEL_5)
        return PETREL_EINVAL;
    for (size_t i = 0; i < count; i++) {
        if (!filters[i] ||
            !mqtt_topic_filter_valid((const uint8_t *)filters[i], strlen(filters[i])))
            return PETREL_EINVAL;
        if (!unsubscribe && !options_ok(s, qos[i]))
            return PETREL_EINVAL;
    }
    struct sub_req *r = subs_request_new(s->next_id, unsubscribe, filters, qos, count);
    if (!r)
        return PETREL_ENOMEM;
    if (props_len) {
        r->props = malloc(props_len);
        if (!r->props) {
            subs_request_free(r);
            return PETREL_ENOMEM;
        }
        memcpy(r->props, props, props_len);
        r->props_len = props_len;
    }
    if (encode_request(s->level, r, 1, NULL, 0) == 0) {
        subs_request_free(r);
        return PETREL_ETOO_LARGE;
    }
    if (id)
        *id = s->next_id;
    s->next_id++;
    TAILQ_INSERT_TAIL(&s->subs.reqs, r, link);
    if (s->state == SESS_CONNECTED)
        flush_requests(s, now);
    return PETREL_OK;
}

int sess_subscribe(struct sess *s, int64_t now, const char *const *filters, const int *qos,
                   size_t count, uint64_t *id)
{
    return sess_subscribe_props(s, now, filters, qos, count, NULL, 0, id);
}

int sess_subscribe_props(struct sess *s, int64_t now, const char *const *filters,
                         const int *options, size_t count, const uint8_t *props,
                         size_t props_len, uint64_t *id)
{
    if (!options)
        return PETREL_EINVAL;
    return add_request(s, now, false, filters, options, count, props, props_len, id);
}

int sess_unsubscribe(struct sess *s, int64_t now, const char *const *filters, size_t count,
                     uint64_t *id)
{
    return add_request(s, now, true, filters, NULL, count, NULL, 0, id);
}

/* ------------------------------------------------------------------------
 * Incoming packets
 */

/* After CONNACK 0: resume or restart what was in flight, then send what
 * waited for the connection. */
static void resume(struct sess *s, int64_t now, bool session_present)
{
    uint32_t gen = s->conn_gen;
    struct out_msg *m, *next;
    for (m = TAILQ_FIRST(&s->out.inflight); m; m = next) {
        next = TAILQ_NEXT(m, link);
        if (m->stage == OUT_WAIT_COMP) {
            if (session_present) {
                if (!send_ack(s, now, MQTT_PUBREL, m->packet_id))
                    return;
            } else {
                /* The server acknowledged it (PUBREC) and has no session
                 * left to release it from: it is as delivered as it gets. */
                complete(s, m, PETREL_OK);
            }
        } else {
            /* Resumed session: the resend the spec requires.  New session:
             * the server may never have got it, so it goes again rather
             * than being lost; DUP tells the receiver it may be a copy. */
            if (!send_publish(s, now, m))
                return;
        }
        if (s->state != SESS_CONNECTED || s->conn_gen != gen)
            return;
    }
    flush_requests(s, now);
    pump(s, now);
}

/* MQTT 5.0: what the CONNACK says about the server's limits, which hold
 * for this connection.  False when out of memory. */
static bool apply_connack_props(struct sess *s, const struct mqtt_props *props)
{
    struct mqtt_prop pr;
    if (mqtt_props_find(props, MQTT_PROP_SERVER_KEEP_ALIVE, &pr)) {
        tracef(s, PETREL_LOG_INFO, "server keep alive %u s", pr.num);
        s->keepalive = (uint16_t)pr.num;
    }
    if (mqtt_props_find(props, MQTT_PROP_RECEIVE_MAXIMUM, &pr))
        s->send_max = pr.num;
    if (mqtt_props_find(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &pr))
        s->server_max_packet = pr.num;
    uint8_t *copy = NULL;
    if (props->len && !(copy = malloc(props->len)))
        return false;
    if (props->len)
        memcpy(copy, props->data, props->len);
    free(s->connack_props);
    s->connack_props = copy;
    s->connack_props_len = props->len;
    s->has_connack_props = true;
    return true;
}

/* After a CONNACK without session: the subscriptions go again, ahead of
 * the requests the application made meanwhile. */
static void renew_subscriptions(struct sess *s)
{
    struct sub_req_list renew;
    TAILQ_INIT(&renew);
    if (subs_renewal_requests(&s->subs, &renew) != PETREL_OK) {
        tracef(s, PETREL_LOG_ERROR, "out of memory: subscriptions not renewed");
        return;
    }
    struct sub_req *r;
    while ((r = TAILQ_LAST(&renew, sub_req_list))) {
        TAILQ_REMOVE(&renew, r, link);
        if (encode_request(s->level, r, 1, NULL, 0) == 0) {
            tracef(s, PETREL_LOG_ERROR, "subscriptions too large to renew in one packet");
            subs_request_free(r);
            continue;
        }
        TAILQ_INSERT_HEAD(&s->subs.reqs, r, link);
    }
}

static void on_connack(struct sess *s, int64_t now, const struct mqtt_connack *ca)
{
    tracef(s, PETREL_LOG_DEBUG, "received CONNACK (rc 0x%02x, session present %d)",
           ca->return_code, ca->session_present);
    if (ca->return_code != MQTT_CONNACK_ACCEPTED) {
        if (s->level == MQTT_LEVEL_5) {
            tracef(s, PETREL_LOG_INFO, "connection refused: %s (0x%02x)",
                   mqtt_reason_str(ca->return_code), ca->return_code);
            reason_set(s, ca->return_code, ca->props);
            drop(s, now, connack_error5(ca->return_code));
            reason_clear(s);
            return;
        }
        drop(s, now, connack_error(ca->return_code));
        return;
    }
    if (s->level == MQTT_LEVEL_5 && !apply_connack_props(s, &ca->props)) {
        drop(s, now, PETREL_ENOMEM);
        return;
    }
    bool present = ca->session_present && !s->o->clean_session;
    s->state = SESS_CONNECTED;
    s->retries = 0;
    s->last_rx = now;
    if (!present) {
        packet_ids_init(&s->qos2_in);
        renew_subscriptions(s);
    }
    tracef(s, PETREL_LOG_INFO, "connected (session present %d)", present);
    uint32_t gen = s->conn_gen;
    s->resuming = true;
    s->io.connected(s->io.ctx, present);
    s->resuming = false;
    if (s->state != SESS_CONNECTED || s->conn_gen != gen)
        return;
    resume(s, now, present);
}

/* Delivers to the application; a disconnect requested from inside waits
 * (see in_message).  False: not delivered, and the connection is closed
 * so that the unacknowledged message comes again. */
static bool deliver(struct sess *s, int64_t now, const struct mqtt_publish *p)
{
    s->in_message = true;
    bool ok = s->io.message(s->io.ctx, p);
    s->in_message = false;
    if (!ok) {
        s->stop_after_message = false;
        tracef(s, PETREL_LOG_ERROR, "message not delivered (out of memory); reconnecting");
        drop(s, now, PETREL_ENOMEM);
    }
    return ok;
}

/* MQTT 5.0 Topic Alias (3.3.2.3.4): a PUBLISH with a topic and an alias
 * (re)defines the alias; one with an empty topic uses it.  Rewrites
 * p->topic to the full name.  False (after failing the connection) for an
 * alias outside what we announced or one never defined. */
static bool resolve_alias(struct sess *s, int64_t now, struct mqtt_publish *p)
{
    struct mqtt_prop pr;
    if (s->level != MQTT_LEVEL_5 || !mqtt_props_find(&p->props, MQTT_PROP_TOPIC_ALIAS, &pr))
        return true;
    if (pr.num == 0 || pr.num > s->alias_max || !s->aliases) {
        tracef(s, PETREL_LOG_ERROR, "topic alias %u outside our maximum %u", pr.num,
               s->alias_max);
        fail(s, now, MQTT_RC_TOPIC_ALIAS_INVALID, PETREL_EPROTOCOL);
        return false;
    }
    struct mqtt_bytes *a = &s->aliases[pr.num];
    if (p->topic.len == 0) {
        if (!a->data) {
            tracef(s, PETREL_LOG_ERROR, "topic alias %u used before it was defined", pr.num);
            fail(s, now, MQTT_RC_PROTOCOL_ERROR, PETREL_EPROTOCOL);
            return false;
        }
        p->topic = *a;
        return true;
    }
    uint8_t *copy = malloc(p->topic.len);
    if (!copy) {
        drop(s, now, PETREL_ENOMEM);
        return false;
    }
    memcpy(copy, p->topic.data, p->topic.len);
    free((void *)(uintptr_t)a->data);
    *a = (struct mqtt_bytes){copy, p->topic.len};
    return true;
}

static void on_publish(struct sess *s, int64_t now, struct mqtt_publish *p)
{
    if (!resolve_alias(s, now, p))
        return;
    tracef(s, PETREL_LOG_DEBUG, "received PUBLISH (id %u, q%u, r%d, d%d, " TOPIC_FMT ", %u bytes)",
           p->packet_id, p->qos, p->retain, p->dup, TOPIC_ARG(p->topic.data, p->topic.len),
           p->payload.len);
    uint32_t gen = s->conn_gen;
    switch (p->qos) {
    case 0:
        if (!deliver(s, now, p))
            return;
        break;
    case 1:
        if (!deliver(s, now, p))
            return;
        if (s->state == SESS_CONNECTED && s->conn_gen == gen)
            send_ack(s, now, MQTT_PUBACK, p->packet_id);
        break;
    case 2:
        /* Delivered once, on first sight; a resend (before our PUBREC got
         * through) only needs another PUBREC. */
        if (packet_ids_add(&s->qos2_in, p->packet_id) && !deliver(s, now, p)) {
            packet_ids_remove(&s->qos2_in, p->packet_id);
            return;
        }
        if (s->state == SESS_CONNECTED && s->conn_gen == gen)
            send_ack(s, now, MQTT_PUBREC, p->packet_id);
        break;
    }
    if (s->stop_after_message) {
        /* Even if the connection broke meanwhile: the request to stop
         * still stands (sess_stop handles every state). */
        s->stop_after_message = false;
        sess_stop(s, now);
    }
}

static void on_pub_ack(struct sess *s, int64_t now, uint8_t type, const struct mqtt_ack *ack)
{
    uint16_t pid = ack->packet_id;
    if (ack->reason_code)
        tracef(s, PETREL_LOG_DEBUG, "received %s (id %u, reason 0x%02x %s)",
               mqtt_type_name(type), pid, ack->reason_code, mqtt_reason_str(ack->reason_code));
    else
        tracef(s, PETREL_LOG_DEBUG, "received %s (id %u)", mqtt_type_name(type), pid);
    if (type == MQTT_PUBREL) {
        packet_ids_remove(&s->qos2_in, pid);
        send_ack(s, now, MQTT_PUBCOMP, pid);
        return;
    }
    struct out_msg *m = outbox_find_inflight(&s->out, pid);
    bool expected = m && ((type == MQTT_PUBACK && m->qos == 1 && m->stage == OUT_WAIT_ACK) ||
                          (type == MQTT_PUBREC && m->qos == 2) ||
                          (type == MQTT_PUBCOMP && m->stage == OUT_WAIT_COMP));
    if (!expected) {
        /* Late or duplicate acknowledgements are harmless; MQTT 3.1.1 has
         * no way to complain about them. */
        tracef(s, PETREL_LOG_INFO, "ignoring unexpected %s (id %u)", mqtt_type_name(type), pid);
        return;
    }
    /* MQTT 5.0: a PUBACK or PUBREC with a failure code ends the exchange
     * (no PUBREL); the message was refused.  A PUBCOMP failure (packet
     * identifier not found) comes after the server took the message at
     * PUBREC, so it still counts as delivered; the code is reported. */
    bool refused = ack->reason_code >= 0x80 && type != MQTT_PUBCOMP;
    if (type == MQTT_PUBREC && !refused) {
        m->stage = OUT_WAIT_COMP;
        send_ack(s, now, MQTT_PUBREL, pid);
        return;
    }
    uint32_t gen = s->conn_gen;
    reason_set(s, ack->reason_code, ack->props);
    complete(s, m, refused ? PETREL_EREJECTED : PETREL_OK);
    reason_clear(s);
    if (s->state != SESS_CONNECTED || s->conn_gen != gen)
        return;
    flush_requests(s, now);
    pump(s, now);
}

/* MQTT 5.0 DISCONNECT from the server: report its reason, then close. */
static void on_server_disconnect(struct sess *s, int64_t now, const struct mqtt_disconnect *d)
{
    struct mqtt_prop pr;
    if (mqtt_props_find(&d->props, MQTT_PROP_REASON_STRING, &pr))
        tracef(s, PETREL_LOG_INFO, "server sent DISCONNECT: %s (0x%02x): %.*s",
               mqtt_reason_str(d->reason_code), d->reason_code, (int)(pr.str.len > 200 ? 200 : pr.str.len),
               (const char *)pr.str.data);
    else
        tracef(s, PETREL_LOG_INFO, "server sent DISCONNECT: %s (0x%02x)",
               mqtt_reason_str(d->reason_code), d->reason_code);
    reason_set(s, d->reason_code, d->props);
    drop(s, now, PETREL_ESERVER_DISCONNECT);
    reason_clear(s);
}

static void on_suback(struct sess *s, int64_t now, const struct mqtt_packet *p)
{
    bool unsub = p->type == MQTT_UNSUBACK;
    /* 3.1.1 UNSUBACK is a bare acknowledgement; 5.0 has codes like SUBACK. */
    uint16_t pid = unsub && s->level != MQTT_LEVEL_5 ? p->u.ack.packet_id
                                                      : p->u.suback.packet_id;
    tracef(s, PETREL_LOG_DEBUG, "received %s (id %u)", mqtt_type_name(p->type), pid);
    struct sub_req *r = subs_find_sent(&s->subs, unsub, pid);
    if (!r) {
        tracef(s, PETREL_LOG_INFO, "ignoring unexpected %s (id %u)", mqtt_type_name(p->type), pid);
        return;
    }
    int *granted = NULL;
    if (!unsub) {
        if (p->u.suback.codes.len != r->count) {
            tracef(s, PETREL_LOG_ERROR, "SUBACK has %u codes for %zu filters",
                   p->u.suback.codes.len, r->count);
            drop(s, now, PETREL_EPROTOCOL);
            return;
        }
        granted = malloc(r->count * sizeof *granted);
        if (!granted) {
            drop(s, now, PETREL_ENOMEM);
            return;
        }
        for (size_t i = 0; i < r->count; i++) {
            uint8_t code = p->u.suback.codes.data[i];
            granted[i] = code;
            /* The table keeps the requested QoS: a renewal asks again for
             * what the application wanted, not what one server granted. */
            if (code >= 0x80)
                subs_remove_active(&s->subs, r->entries[i].filter, r->entries[i].len);
            else if (subs_set_active(&s->subs, r->entries[i].filter, r->entries[i].len,
                                     r->entries[i].qos, r->props, r->props_len) != PETREL_OK)
                tracef(s, PETREL_LOG_ERROR, "out of memory: subscription not remembered");
        }
    } else {
        for (size_t i = 0; i < r->count; i++)
            subs_remove_active(&s->subs, r->entries[i].filter, r->entries[i].len);
    }
    packet_ids_remove(&s->ids, pid);
    TAILQ_REMOVE(&s->subs.reqs, r, link);
    uint64_t id = r->id;
    size_t count = r->count;
    subs_request_free(r);
    uint32_t gen = s->conn_gen;
    if (s->level == MQTT_LEVEL_5)
        reason_set(s, 0, p->u.suback.props);
    if (unsub)
        s->io.unsubscribed(s->io.ctx, id);
    else
        s->io.subscribed(s->io.ctx, id, count, granted);
    reason_clear(s);
    free(granted);
    if (s->state == SESS_CONNECTED && s->conn_gen == gen) {
        flush_requests(s, now);
        pump(s, now);
    }
}

void sess_packet(struct sess *s, int64_t now, uint8_t first_byte, const uint8_t *body,
                 uint32_t len)
{
    if (s->state != SESS_HANDSHAKE && s->state != SESS_CONNECTED)
        return; /* e.g. data that raced a graceful close: nobody wants it */
    s->last_rx = now;
    s->ping_sent = -1; /* any packet proves the link is alive */

    struct mqtt_packet p;
    const char *why = NULL;
    enum mqtt_err err = mqtt_decode(s->level, first_byte, body, len, &p, &why);
    if (err != MQTT_OK) {
        tracef(s, PETREL_LOG_ERROR, "bad packet from the server (%s): %s", mqtt_err_str(err),
               why ? why : "?");
        fail(s, now, err == MQTT_E_MALFORMED ? MQTT_RC_MALFORMED : MQTT_RC_PROTOCOL_ERROR,
             PETREL_EPROTOCOL);
        return;
    }
    if (s->state == SESS_HANDSHAKE) {
        if (p.type != MQTT_CONNACK) {
            tracef(s, PETREL_LOG_ERROR, "%s from the server before CONNACK",
                   mqtt_type_name(p.type));
            drop(s, now, PETREL_EPROTOCOL);
            return;
        }
        on_connack(s, now, &p.u.connack);
        return;
    }
    switch (p.type) {
    case MQTT_PUBLISH:
        on_publish(s, now, &p.u.publish);
        return;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        on_pub_ack(s, now, p.type, &p.u.ack);
        return;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        on_suback(s, now, &p);
        return;
    case MQTT_PINGRESP:
        tracef(s, PETREL_LOG_DEBUG, "received PINGRESP");
        return;
    case MQTT_DISCONNECT:
        if (s->level == MQTT_LEVEL_5) {
            on_server_disconnect(s, now, &p.u.disconnect);
            return;
        }
        break;
    default:
        break;
    }
    /* CONNACK twice, AUTH (no enhanced authentication was asked for), or a
     * packet only clients send. */
    tracef(s, PETREL_LOG_ERROR, "unexpected %s from the server", mqtt_type_name(p.type));
    fail(s, now, MQTT_RC_PROTOCOL_ERROR, PETREL_EPROTOCOL);
}

/* ------------------------------------------------------------------------
 * MQTT 5.0 details for the client (see client_session.h)
 */

uint8_t sess_reason(const struct sess *s, struct mqtt_props *props)
{
    if (props)
        *props = s->reason_props;
    return s->reason;
}

bool sess_connack_props(const struct sess *s, struct mqtt_props *props)
{
    if (!s->has_connack_props || s->state != SESS_CONNECTED)
        return false;
    *props = (struct mqtt_props){s->connack_props, (uint32_t)s->connack_props_len};
    return true;
}

uint8_t sess_level(const struct sess *s)
{
    return s->level;
}

/* ------------------------------------------------------------------------
 * Time and flow control
 */

void sess_writable(struct sess *s, int64_t now)
{
    if (s->state == SESS_CONNECTED)
        pump(s, now);
}

void sess_set_reading(struct sess *s, int64_t now, bool reading)
{
    if (reading && !s->reading && s->ping_sent >= 0)
        s->ping_sent = now; /* the answer may be sitting unread: start over */
    s->reading = reading;
}

int64_t sess_deadline(const struct sess *s)
{
    switch (s->state) {
    case SESS_OPENING:
    case SESS_HANDSHAKE:
        return s->deadline_connect;
    case SESS_CLOSING:
        return s->deadline_close;
    case SESS_BACKOFF:
        return s->deadline_retry;
    case SESS_CONNECTED:
        if (s->o->keepalive == 0)
            return -1;
        if (s->ping_sent >= 0)
            return s->reading ? s->ping_sent + ping_timeout_ms(s) : -1;
        return (s->last_tx < s->last_rx ? s->last_tx : s->last_rx) + keepalive_ms(s);
    case SESS_IDLE:
        break;
    }
    return -1;
}

void sess_tick(struct sess *s, int64_t now)
{
    int64_t due = sess_deadline(s);
    if (due < 0 || now < due)
        return;
    switch (s->state) {
    case SESS_OPENING:
    case SESS_HANDSHAKE:
        tracef(s, PETREL_LOG_INFO, "no %s within %u ms",
               s->state == SESS_OPENING ? "TCP connection" : "CONNACK", s->o->connect_timeout_ms);
        drop(s, now, PETREL_ETIMEDOUT);
        return;
    case SESS_CLOSING:
        tracef(s, PETREL_LOG_INFO, "DISCONNECT not flushed in time; closing");
        s->io.close(s->io.ctx, false);
        lost(s, now, PETREL_OK);
        return;
    case SESS_BACKOFF:
        begin_attempt(s, now);
        return;
    case SESS_CONNECTED:
        if (s->ping_sent >= 0) {
            tracef(s, PETREL_LOG_INFO, "no PINGRESP within %lld ms: dead link",
                   (long long)ping_timeout_ms(s));
            drop(s, now, PETREL_EKEEPALIVE);
            return;
        }
        {
            struct mqtt_packet p = {.type = MQTT_PINGREQ};
            tracef(s, PETREL_LOG_DEBUG, "sending PINGREQ");
            if (send_packet(s, now, &p))
                s->ping_sent = now;
        }
        return;
    case SESS_IDLE:
        return;
    }
}
