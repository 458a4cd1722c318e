/*
 * conn.c - a client connection: framing, dispatch, timeouts and its end.
 * The read path frames packets, refusing an oversized one from its fixed
 * header before any of its body is buffered, decodes them and hands each
 * to its handler (protocol.h).  The write path is bounded: past
 * max_output_buffer a connection gets no new QoS 0 messages and its own
 * input is paused, so one slow reader cannot eat the broker's memory.  The
 * socket itself is handled in conn_io.c, the deadlines in conn_timer.c.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "acl_session.h"
#include "array_grow.h"
#include "broker.h"
#include "conn_io.h"
#include "conn_log.h"
#include "conn_timer.h"
#include "conn_wait.h"
#include "flow.h"
#include "input_bound.h"
#include "log.h"
#include "memory_budget.h"
#include "message.h"
#include "mqtt_codec.h"
#include "packet_fit.h"
#include "protocol.h"
#include "publish_rate.h"
#include "router.h"
#include "session.h"
#include "store.h"
#include "tls.h"
#include "turn.h"

/* Payloads at least this large are referenced, not copied, into the output
 * buffer; below it a copy is cheaper than a reference chain. */
#define SHARE_MIN_BYTES 1024
/* How long a connection that is being closed may take to flush its last
 * packet. */
#define CLOSE_FLUSH_SECONDS 2

static void conn_drained(struct conn *c);

/* Keeps the peer's address for the logs. */
static void remember_peer(struct conn *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        c->peer.family = AF_INET;
        memcpy(c->peer.addr, &in->sin_addr, 4);
        c->peer.port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        c->peer.family = AF_INET6;
        memcpy(c->peer.addr, &in6->sin6_addr, 16);
        c->peer.port = ntohs(in6->sin6_port);
    }
}

/* Links a new connection in and starts its connect_timeout. */
static struct conn *conn_start(struct conn *c)
{
    c->level = MQTT_LEVEL_311;
    c->receive_max_out = UINT16_MAX;
    c->last_rx = conn_timer_now();
    c->next = broker.conns;
    if (broker.conns)
        broker.conns->prev = c;
    broker.conns = c;
    broker.n_conns++;
    if (conn_timer_set(&c->timer,
                       c->last_rx + broker.cfg.connect_timeout * (1000 / CONN_TICK_MS)) != 0) {
        conn_close(c, "cannot set its connect timeout", false);
        return NULL;
    }
    return c;
}

struct conn *conn_new(int fd, const struct sockaddr *addr, struct ssl_ctx_st *tls)
{
    if (tls) {
        /* A TLS bufferevent runs the handshake first; connect_timeout,
         * started by conn_start, covers it. */
        struct bufferevent *bev = tls_accept_bufferevent(broker.base, fd, tls);
        return bev ? conn_new_bufferevent(bev) : NULL; /* fd closed on failure */
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return NULL;
    }
    if (conn_io_start(c, fd) != 0) {
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    remember_peer(c, addr);
    log_debug("new connection from %s", conn_peer(c));
    return conn_start(c);
}

struct conn *conn_new_bufferevent(struct bufferevent *bev)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        bufferevent_free(bev);
        return NULL;
    }
    c->bev = bev;
    if (conn_io_start_bufferevent(c) != 0) {
        bufferevent_free(bev);
        free(c);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(conn_io_fd(c), (struct sockaddr *)&ss, &len) == 0)
        remember_peer(c, (const struct sockaddr *)&ss);
    log_debug("new connection from %s", conn_peer(c));
    return conn_start(c);
}

/* The protocol side of the end of a connection: its session is detached
 * and its will published (or, with a Will Delay Interval, handed to the
 * session, which publishes it later unless the client comes back). */
static void end_session(struct conn *c, bool publish_will)
{
    if (c->auth_wait)
        connect_abort(c);
    /* Detach first: the will must not be written to this dying socket. */
    struct session *s = c->session;
    bool delayed = false;
    if (s) {
        broker.n_clients--;
        c->session = NULL;
        /* The ACL in force now decides, not the one at CONNECT. */
        if (c->will && publish_will && !acl_may_publish_will(s, c->will)) {
            message_unref(c->will);
            c->will = NULL;
        }
        /* A will may wait only as long as the session lives on. */
        delayed = publish_will && c->will && c->will_delay > 0 && s->persistent;
        session_detach(s);
        if (delayed) {
            session_set_will(s, c->will, c->will_delay);
            c->will = NULL;
        }
    }
    if (c->will) {
        if (publish_will) {
            if (log_enabled(LOG_INFO))
                log_info("publishing will of %s on '%s'", conn_peer(c),
                         log_str(c->will->topic, c->will->topic_len));
            message_start_expiry(c->will);
            router_publish(c->will, NULL);
        }
        message_unref(c->will);
        c->will = NULL;
    }
}

static void free_aliases(char **v, uint16_t n)
{
    if (!v)
        return;
    for (uint16_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Connections closed in this turn, freed at its end (linked by next). */
static struct conn *closed;
/* Told when a connection ends (conn_init): listener_conn_closed. */
static void (*on_closed)(struct conn *c);

void conn_close(struct conn *c, const char *why, bool publish_will)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->state == CONN_ACTIVE || c->session) {
        if (conn_log_allow())
            log_notice("%s disconnected: %s", conn_name(c), why);
    } else if (c->state == CONN_CLOSING && c->level == MQTT_LEVEL_5)
        log_debug("%s closed: %s", conn_name(c), why);
    else
        log_info("%s closed: %s", conn_name(c), why);

    if (c->prev)
        c->prev->next = c->next;
    else
        broker.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    broker.n_conns--;
    c->state = CONN_DEAD;
    input_bound_forget(c);
    if (c->mem_paused) {
        c->mem_paused = false;
        memory_budget_forget(c);
    }
    if (on_closed)
        on_closed(c);
    conn_wait_free(c);
    flow_conn_gone(c);
    end_session(c, publish_will);
    free_aliases(c->alias_out, c->alias_max_out);
    if (c->alias_in) {
        for (uint32_t i = 0; i < broker.cfg.topic_alias_maximum; i++)
            free(c->alias_in[i].topic);
        free(c->alias_in);
    }
    c->alias_out = NULL;
    c->alias_in = NULL;
    conn_io_close(c);
    /* Freed at the end of the turn: callers up the stack may still look
     * at it (its state says it is gone). */
    c->prev = NULL;
    c->next = closed;
    closed = c;
    turn_schedule();
}

void conn_close_marked(void) { conn_close_later_run(conn_close); }

void conn_free_closed(void)
{
    while (closed) {
        struct conn *c = closed;
        closed = c->next;
        free(c);
    }
    if (!broker.conns)
        conn_close_later_free();
}

/* Keeps the socket only to flush what is written, then closes it (or after
 * a short deadline).  Input is still read, and thrown away: closing a
 * socket with unread input resets it, and the client would lose the last
 * packet; once the output is out, conn_io sends a FIN and waits for the
 * client's. */
static void linger(struct conn *c, const char *why)
{
    c->state = CONN_CLOSING;
    c->close_reason = why;
    /* Slowed no more: what was held goes out before the end. */
    flow_conn_gone(c);
    conn_wait_unhold(c);
    conn_io_update(c, 0);
    if (c->bev)
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    conn_timer_set(&c->timer,
                   conn_timer_now() + CLOSE_FLUSH_SECONDS * (1000 / CONN_TICK_MS));
    if (!c->bev && conn_output_length(c) == 0)
        conn_drained(c); /* nothing to flush: the FIN goes now */
}

/* A DISCONNECT with a reason code, and a reason string unless the client
 * asked for none. */
static void build_disconnect(const struct conn *c, uint8_t reason, const char *why,
                             struct mqtt_packet *p, struct mqtt_props_builder *b, uint8_t *buf,
                             size_t cap)
{
    memset(p, 0, sizeof *p);
    p->type = MQTT_DISCONNECT;
    p->u.disconnect.reason_code = reason;
    mqtt_pb_init(b, buf, cap);
    if (why && c->problem_info) {
        size_t n = strlen(why);
        mqtt_pb_bytes(b, MQTT_PROP_REASON_STRING, why, n > 200 ? 200 : n);
    }
    if (!b->overflow)
        p->u.disconnect.props = mqtt_pb_props(b);
}

void conn_disconnect(struct conn *c, uint8_t reason, const char *why, bool publish_will)
{
    if (c->level != MQTT_LEVEL_5 || c->state != CONN_ACTIVE) {
        conn_close(c, why, publish_will);
        return;
    }
    if (conn_log_allow())
        log_notice("%s disconnected: %s (DISCONNECT 0x%02x %s)", conn_name(c), why, reason,
                   mqtt_reason_str(reason));
    struct mqtt_packet p;
    struct mqtt_props_builder b;
    uint8_t buf[256];
    build_disconnect(c, reason, why, &p, &b, buf, sizeof buf);
    conn_send_packet(c, &p); /* behind what waits for a commit, if anything */
    end_session(c, publish_will);
    /* `why` may be on the caller's stack: the log has it already. */
    linger(c, "DISCONNECT sent");
}

void conn_close_all(void)
{
    while (broker.conns) {
        struct conn *c = broker.conns;
        if (c->level == MQTT_LEVEL_5 && c->state == CONN_ACTIVE && !conn_wait_pending(c)) {
            /* Best effort: the loop is not running any more, so write what
             * is buffered and the DISCONNECT straight to the socket. */
            struct mqtt_packet p;
            struct mqtt_props_builder b;
            uint8_t buf[64];
            build_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down", &p, &b,
                             buf, sizeof buf);
            if (conn_send_packet(c, &p) == 0)
                conn_io_flush_now(c);
        }
        conn_close(c, "broker shutting down", false);
    }
    conn_free_closed();
    conn_log_shutdown();
    conn_io_shutdown();
    conn_timer_shutdown();
}

bool conn_owes_acks(const struct conn *c)
{
    return c->session && c->session->inflight.count > 0;
}

bool conn_can_write(const struct conn *c)
{
    size_t len = conn_output_length(c);
    return len < broker.cfg.max_output_buffer && memory_budget_may_write(c, len);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
    struct evbuffer *out = conn_output(c);
    if (!out || evbuffer_add(out, data, len) != 0)
        return -1;
    broker.stats.bytes_sent += len;
    return 0;
}

/* Ticks of 1.5 x keep alive, rounded up, plus one: the last read may have
 * come at the very end of its tick. */
static uint32_t keepalive_ticks(const struct conn *c)
{
    return ((uint32_t)c->keepalive * 1500 + CONN_TICK_MS - 1) / CONN_TICK_MS + 1;
}

/* The next deadline of an active connection: its keep alive, or the
 * arrival of the incomplete packet it holds, whichever comes first; 0 =
 * none. */
static uint32_t active_deadline(const struct conn *c)
{
    uint32_t at = c->keepalive ? c->last_rx + keepalive_ticks(c) : 0;
    uint32_t ticks = c->partial_since ? input_bound_ticks(c) : 0;
    if (ticks && (!at || (int32_t)(c->partial_since + ticks - at) < 0))
        at = c->partial_since + ticks;
    /* Reads resume after a rate limit's pause (publish_rate.h). */
    if (c->rate_paused && (!at || (int32_t)(c->rate_resume - at) < 0))
        at = c->rate_resume;
    return at;
}

/* Sets c's check to its next deadline, or none. */
static void rearm(struct conn *c)
{
    uint32_t at = active_deadline(c);
    if (at)
        conn_timer_set(&c->timer, at);
    else
        conn_timer_clear(&c->timer);
}

/* Sets c's check to `at` if that comes before the one set. */
static void arm_earlier(struct conn *c, uint32_t at)
{
    if (!c->timer.tick || (int32_t)(at - c->timer.tick) < 0)
        conn_timer_set(&c->timer, at);
}

void conn_set_keepalive(struct conn *c, uint16_t secs)
{
    c->keepalive = secs;
    c->last_rx = conn_timer_now();
    rearm(c);
}

void conn_stop_connect_timeout(struct conn *c)
{
    if (c->state == CONN_AWAIT_CONNECT)
        conn_timer_clear(&c->timer);
}

void conn_hold_input(struct conn *c)
{
    c->input_held = true;
    conn_io_update(c, 0);
}

void conn_release_input(struct conn *c)
{
    c->input_held = false;
    /* Keep alive counts from now: nothing was read meanwhile. */
    c->last_rx = conn_timer_now();
    conn_io_update(c, 1);
}

/* A deadline of c's has come (conn_timer calls it: see conn_init). */
static void deadline_due(struct conn_timer_entry *e, uint32_t now)
{
    struct conn *c = (struct conn *)((char *)e - offsetof(struct conn, timer));
    if (c->state == CONN_CLOSING) {
        conn_close(c, c->close_reason, false);
    } else if (c->state == CONN_AWAIT_CONNECT) {
        char why[64];
        snprintf(why, sizeof why, "no CONNECT within connect_timeout (%u s)",
                 broker.cfg.connect_timeout);
        broker.stats.connect_timeouts++;
        conn_close(c, why, false);
    } else if (c->keepalive || c->partial_since || c->rate_paused) {
        if (c->rate_paused && (int32_t)(now - c->rate_resume) >= 0) {
            /* Within its rate again: what it sent meanwhile is read. */
            c->rate_paused = false;
            c->last_rx = now;
            if (c->partial_since)
                c->partial_since = now;
            conn_io_update(c, 1);
        }
        if (c->read_paused || c->input_held || c->flow_paused || c->rate_paused ||
            c->mem_paused) {
            /* Nothing is read from it meanwhile: its packets wait in the
             * socket.  Counted again from when reads resume. */
            if (c->partial_since)
                c->partial_since = now;
            c->last_rx = now;
            rearm(c);
            return;
        }
        if (c->keepalive && (int32_t)(c->last_rx + keepalive_ticks(c) - now) <= 0) {
            char why[96];
            snprintf(why, sizeof why, "keep alive timeout (nothing received for 1.5 x %u s)",
                     c->keepalive);
            conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, why, true);
            return;
        }
        uint32_t pticks = c->partial_since ? input_bound_ticks(c) : 0;
        if (pticks && (int32_t)(c->partial_since + pticks - now) <= 0) {
            /* Bytes trickling in keep the keep alive happy, not this. */
            char why[128];
            snprintf(why, sizeof why, "partial packet timeout (a packet not complete after "
                     "%u s: partial_packet_timeout or 1.5 x keep alive)",
                     (pticks * CONN_TICK_MS + 999) / 1000);
            broker.stats.partial_timeouts++;
            conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, why, true);
            return;
        }
        rearm(c);
    }
}

int conn_send_packet(struct conn *c, const struct mqtt_packet *p)
{
    if (c->state == CONN_DEAD)
        return -1;
    if (conn_wait_pending(c)) {
        /* Something for this client waits for a commit: what follows
         * waits behind it, so the client sees packets in order. */
        conn_wait_send(c, p, false);
        return 0;
    }
    size_t need;
    struct packet_fit fit; /* not zeroed: acks go through here */
    fit.heap = NULL;
    if (c->level == MQTT_LEVEL_5 && c->max_packet_out && p->type != MQTT_PUBLISH) {
        /* Within the client's Maximum Packet Size, leaving out what may
         * be (packet_fit.h); a PUBLISH was sized by its sender. */
        const struct mqtt_packet *fitted = packet_fit(p, c->max_packet_out, &fit, &need);
        if (!fitted) {
            packet_fit_release(&fit);
            broker.stats.publish_too_large++;
            log_info("%s: %s cannot fit the client's maximum packet size %u: closing",
                     conn_name(c), mqtt_type_name(p->type), c->max_packet_out);
            conn_close_later(c, "a packet the protocol needs is over the client's maximum "
                                "packet size");
            return -1;
        }
        p = fitted;
    } else {
        need = mqtt_encode(c->level, p, NULL, 0);
    }
    int rc = -1;
    struct evbuffer *out;
    struct evbuffer_iovec vec;
    if (need == 0) {
        log_error("%s: cannot encode %s", conn_name(c), mqtt_type_name(p->type));
    } else if ((out = conn_output(c)) != NULL &&
               evbuffer_reserve_space(out, (ev_ssize_t)need, &vec, 1) == 1 &&
               vec.iov_len >= need) {
        mqtt_encode(c->level, p, vec.iov_base, need);
        vec.iov_len = need;
        if (evbuffer_commit_space(out, &vec, 1) == 0) {
            broker.stats.bytes_sent += need;
            rc = 0;
        }
    }
    packet_fit_release(&fit);
    return rc;
}

static void release_message(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    message_unref(arg);
}

/* The PUBLISH of `msg` as one delivery: its topic and payload, no
 * properties. */
static void publish_packet(struct mqtt_packet *p, const struct message *msg, uint8_t qos,
                           uint16_t packet_id, bool dup, bool retain)
{
    memset(p, 0, sizeof *p);
    p->type = MQTT_PUBLISH;
    p->u.publish.dup = dup;
    p->u.publish.qos = qos;
    p->u.publish.retain = retain;
    p->u.publish.topic.data = (const uint8_t *)msg->topic;
    p->u.publish.topic.len = msg->topic_len;
    p->u.publish.packet_id = packet_id;
    p->u.publish.payload.data = msg->payload;
    p->u.publish.payload.len = msg->payload_len;
}

/* Server -> client topic alias for `topic`: an existing one (*known set),
 * a new one when the client allows more, or 0. */
static uint16_t alias_for(struct conn *c, const struct message *msg, bool *known)
{
    *known = false;
    for (uint16_t i = 0; i < c->n_alias_out; i++) {
        if (strcmp(c->alias_out[i], msg->topic) == 0) {
            *known = true;
            return (uint16_t)(i + 1);
        }
    }
    if (c->n_alias_out >= c->alias_max_out)
        return 0;
    if (!c->alias_out) {
        c->alias_out = calloc(c->alias_max_out, sizeof *c->alias_out);
        if (!c->alias_out)
            return 0;
    }
    return (uint16_t)(c->n_alias_out + 1);
}

/* The PUBLISH of a message for a 5.0 client: its own properties, the
 * remaining expiry, subscription identifiers and a topic alias. */
static int send_publish5(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                         bool dup, bool retain, bool durable)
{
    uint32_t remaining = 0;
    if (msg->expires_at) {
        int64_t left = msg->expires_at - message_now_ms();
        if (left <= 0)
            return CONN_EXPIRED;
        remaining = (uint32_t)((left + 999) / 1000);
    }
    uint8_t stack[512];
    size_t cap = msg->props_len + 5 + 3 + 16 * 5;
    uint8_t *buf = cap <= sizeof stack ? stack : malloc(cap);
    if (!buf)
        return CONN_SEND_FAILED;
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, buf, cap);
    if (remaining)
        mqtt_pb_num(&b, MQTT_PROP_MESSAGE_EXPIRY, remaining);
    if (msg->props_len)
        mqtt_pb_raw(&b, msg->props, msg->props_len);
    /* Subscription identifiers of the client's filters matching the topic. */
    if (c->session) {
        uint32_t ids[16];
        size_t n = session_subscription_ids(c->session, msg->topic, msg->topic_len, ids, 16);
        for (size_t i = 0; i < n; i++)
            mqtt_pb_num(&b, MQTT_PROP_SUBSCRIPTION_ID, ids[i]);
    }
    bool known = false;
    uint16_t alias = c->alias_max_out ? alias_for(c, msg, &known) : 0;
    if (alias)
        mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS, alias);
    if (b.overflow) {
        if (buf != stack)
            free(buf);
        return CONN_SEND_FAILED;
    }
    struct mqtt_packet p;
    publish_packet(&p, msg, qos, packet_id, dup, retain);
    if (known)
        p.u.publish.topic.len = 0; /* the alias stands for it */
    p.u.publish.props = mqtt_pb_props(&b);
    size_t need = mqtt_encode(MQTT_LEVEL_5, &p, NULL, 0);
    int rc = CONN_SENT;
    if (c->max_packet_out && need > c->max_packet_out) {
        /* The client would have to treat it as malformed: never sent. */
        broker.stats.publish_too_large++;
        log_debug("%s: PUBLISH of %zu bytes on '%s' over the client's maximum packet size %u: "
                  "dropped", conn_name(c), need, log_str(msg->topic, msg->topic_len),
                  c->max_packet_out);
        rc = CONN_TOO_LARGE;
    } else {
        if (alias && !known) {
            char *copy = strdup(msg->topic);
            if (copy) {
                c->alias_out[c->n_alias_out++] = copy;
            } else { /* no alias then */
                p.u.publish.props.len = (uint32_t)(b.len - 3);
            }
        }
        if (durable)
            conn_wait_send(c, &p, false);
        else if (conn_send_packet(c, &p) != 0)
            rc = CONN_SEND_FAILED;
    }
    if (buf != stack)
        free(buf);
    return rc;
}

/* Counts a PUBLISH going out, for /metrics; a first send (not a resend)
 * also gives the message's time through the broker.  A fan-out sends one
 * message to many subscribers in one go: the clock is read once for it
 * (in this loop turn), not once per subscriber, which would cost a few
 * per cent of fan-out throughput. */
static void count_sent(const struct message *msg, uint8_t qos, bool dup)
{
    static const struct message *last_msg;
    static uint64_t last_born, last_turn, last_now;
    uint8_t q = qos > 2 ? 2 : qos;
    broker.stats.msgs_sent_qos[q]++;
    broker.stats.payload_sent_qos[q] += msg->payload_len;
    if (dup)
        return;
    uint64_t turn = turn_stats()->turns;
    if (msg != last_msg || msg->born_ns != last_born || turn != last_turn) {
        last_msg = msg;
        last_born = msg->born_ns;
        last_turn = turn;
        last_now = histogram_now_ns();
    }
    histogram_observe_ns(&broker.delivery_latency,
                         last_now > msg->born_ns ? last_now - msg->born_ns : 0);
}

int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                      bool dup, bool retain)
{
    broker.stats.msgs_sent++;
    count_sent(msg, qos, dup);
    if (c->level == MQTT_LEVEL_5)
        return send_publish5(c, msg, qos, packet_id, dup, retain, false);
    if (qos == 0 && !retain && !conn_wait_pending(c)) {
        /* The common fan-out case: every QoS 0 subscriber gets the same
         * bytes, encoded once per message. */
        size_t len;
        const uint8_t *wire = message_wire_qos0(msg, &len);
        if (!wire)
            return CONN_SEND_FAILED;
        struct evbuffer *out = conn_output(c);
        if (!out)
            return CONN_SEND_FAILED;
        int rc;
        if (len >= SHARE_MIN_BYTES)
            rc = evbuffer_add_reference(out, wire, len, release_message, message_ref(msg));
        else
            rc = evbuffer_add(out, wire, len);
        if (rc != 0) {
            if (len >= SHARE_MIN_BYTES)
                message_unref(msg);
            return CONN_SEND_FAILED;
        }
        broker.stats.bytes_sent += len;
        return CONN_SENT;
    }
    struct mqtt_packet p;
    publish_packet(&p, msg, qos, packet_id, dup, retain);
    return conn_send_packet(c, &p) == 0 ? CONN_SENT : CONN_SEND_FAILED;
}

int conn_send_publish_durable(struct conn *c, struct message *msg, uint8_t qos,
                              uint16_t packet_id, bool dup, bool retain)
{
    broker.stats.msgs_sent++;
    count_sent(msg, qos, dup);
    if (c->level == MQTT_LEVEL_5)
        return send_publish5(c, msg, qos, packet_id, dup, retain, true);
    struct mqtt_packet p;
    publish_packet(&p, msg, qos, packet_id, dup, retain);
    conn_wait_send(c, &p, false);
    return CONN_SENT;
}

void conn_send_and_close(struct conn *c, const struct mqtt_packet *p, const char *why)
{
    conn_send_packet(c, p);
    linger(c, why);
}

static size_t input_avail(const struct conn_input *in)
{
    return in->buf ? evbuffer_get_length(in->buf) : in->len - in->off;
}

static void input_copyout(const struct conn_input *in, uint8_t *to, size_t n)
{
    if (in->buf)
        evbuffer_copyout(in->buf, to, n);
    else
        memcpy(to, in->flat + in->off, n);
}

/* The first `total` bytes, contiguous; NULL when out of memory. */
static const uint8_t *input_packet(const struct conn_input *in, size_t total)
{
    return in->buf ? evbuffer_pullup(in->buf, (ev_ssize_t)total) : in->flat + in->off;
}

static void input_consume(struct conn_input *in, size_t total)
{
    if (in->buf)
        evbuffer_drain(in->buf, total);
    else
        in->off += total;
}

/* A CONNECT whose first body bytes say "MQTT" level 5: the client reads
 * 5.0 CONNACKs.  Used before the CONNECT could be decoded. */
static bool peek_level5_connect(const struct conn_input *in, uint8_t first, size_t hlen)
{
    uint8_t b[MQTT_MAX_FIXED_HEADER + 7];
    if ((first >> 4) != MQTT_CONNECT || input_avail(in) < hlen + 7)
        return false;
    input_copyout(in, b, hlen + 7);
    return memcmp(b + hlen, "\0\4MQTT\5", 7) == 0;
}

/* Refuses a CONNECT that cannot be taken: a 5.0 client hears why. */
static void refuse_connect5(struct conn *c, uint8_t reason, const char *why)
{
    c->level = MQTT_LEVEL_5;
    c->problem_info = true;
    log_info("connection from %s refused: %s", conn_peer(c), why);
    connect_refuse(c, MQTT_CONNACK_BAD_PROTOCOL, reason, why, "CONNECT refused");
}

/* Hands a decoded packet to its handler (protocol.h), after the rules
 * about the order of packets; returns as the handlers do. */
static int dispatch(struct conn *c, const struct mqtt_packet *p)
{
    if (c->state == CONN_AWAIT_CONNECT) {
        if (p->type != MQTT_CONNECT)
            return protocol_violation(c, "first packet is not CONNECT");
        return handle_connect(c, &p->u.connect);
    }
    switch (p->type) {
    case MQTT_CONNECT:
        return protocol_violation(c, "second CONNECT on one connection");
    case MQTT_PUBLISH:
        return handle_publish(c, &p->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_publish_ack(c, p->u.ack.packet_id, p->type, p->u.ack.reason_code);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, p);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, p);
    case MQTT_PINGREQ:
        return handle_pingreq(c);
    case MQTT_DISCONNECT:
        return handle_disconnect(c, &p->u.disconnect);
    case MQTT_AUTH:
        /* No CONNECT here had an Authentication Method (those are refused
         * with 0x8C), so there is no exchange an AUTH could continue. */
        return protocol_error(c, MQTT_RC_PROTOCOL_ERROR,
                              "AUTH without an authentication method in CONNECT");
    default: {
        char why[64];
        snprintf(why, sizeof why, "%s sent by a client", mqtt_type_name(p->type));
        return protocol_violation(c, why);
    }
    }
}

/* Frames and handles the complete packets of `in`; *partial is set when
 * it stopped at an incomplete packet, *consumed when it handled one. */
static int process_packets(struct conn *c, struct conn_input *in, bool *partial, bool *consumed)
{
    for (;;) {
        if (c->state == CONN_DEAD)
            return -1;
        if (c->state == CONN_CLOSING || c->auth_wait || c->input_held || c->rate_paused)
            return 0;
        if (c->mem_paused ||
            (c->state == CONN_ACTIVE && memory_budget_pause(c, conn_owes_acks(c))))
            return 0; /* read again below 7/8 of memory_budget */
        if (c->flow_blocked && flow_should_pause(c))
            return 0; /* slowed past FLOW_MAX_HELD: the rest waits */
        if (!conn_can_write(c)) {
            /* The peer does not read what we send it: stop reading what
             * it sends until it catches up. */
            c->read_paused = true;
            conn_io_update(c, 0);
            broker.stats.output_buffer_full++;
            return 0;
        }
        size_t avail = input_avail(in);
        if (avail == 0)
            return 0;
        uint8_t hdr[MQTT_MAX_FIXED_HEADER];
        size_t n = avail < sizeof hdr ? avail : sizeof hdr;
        input_copyout(in, hdr, n);
        uint8_t first;
        uint32_t remaining;
        size_t hlen;
        enum mqtt_err err = mqtt_frame_header(hdr, n, broker.cfg.max_packet_size, &first,
                                              &remaining, &hlen);
        if (err == MQTT_INCOMPLETE) {
            *partial = true;
            return 0;
        }
        if (err == MQTT_E_TOO_LARGE) {
            char why[128];
            snprintf(why, sizeof why, "packet of %zu bytes exceeds max_packet_size (%u)",
                     hlen + remaining, broker.cfg.max_packet_size);
            broker.stats.protocol_errors++;
            broker.stats.packet_too_large++;
            conn_io_close_code(c, 1009); /* over WebSocket: message too big */
            if (c->state == CONN_AWAIT_CONNECT && peek_level5_connect(in, first, hlen))
                refuse_connect5(c, MQTT_RC_PACKET_TOO_LARGE, why);
            else
                conn_disconnect(c, MQTT_RC_PACKET_TOO_LARGE, why, true);
            return -1;
        }
        if (err != MQTT_OK) {
            protocol_error(c, MQTT_RC_MALFORMED, "malformed remaining length");
            return -1;
        }
        size_t total = hlen + remaining;
        if (avail < total) {
            *partial = true;
            return 0;
        }
        if ((first >> 4) == MQTT_PUBLISH && c->state == CONN_ACTIVE && publish_rate_on() &&
            !publish_rate_admit(c, total, conn_timer_now())) {
            /* Over its rate: not read until it is within it again. */
            conn_io_update(c, 0);
            arm_earlier(c, c->rate_resume);
            return 0;
        }
        const uint8_t *buf = input_packet(in, total);
        if (!buf) {
            conn_close(c, "out of memory", true);
            return -1;
        }
        broker.stats.bytes_received += total;

        struct mqtt_packet p;
        const char *why = NULL;
        err = mqtt_decode(c->level, first, buf + hlen, remaining, &p, &why);
        if (err == MQTT_E_UNSUPPORTED_LEVEL && c->state == CONN_AWAIT_CONNECT) {
            struct mqtt_packet ack = {.type = MQTT_CONNACK};
            ack.u.connack.return_code = MQTT_CONNACK_BAD_PROTOCOL;
            conn_send_and_close(c, &ack, "unsupported protocol level");
            input_consume(in, total);
            return 0;
        }
        if (err != MQTT_OK) {
            char msg[160];
            snprintf(msg, sizeof msg, "malformed %s: %s", mqtt_type_name(first >> 4),
                     why ? why : mqtt_err_str(err));
            uint8_t rc = err == MQTT_E_PROTOCOL ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED;
            if (c->state == CONN_AWAIT_CONNECT && peek_level5_connect(in, first, hlen)) {
                /* Before CONNACK a 5.0 client is answered with a CONNACK. */
                broker.stats.protocol_errors++;
                refuse_connect5(c, rc, msg);
                return -1;
            }
            protocol_error(c, rc, msg);
            return -1;
        }
        if (dispatch(c, &p) < 0)
            return -1; /* closed (freed at the end of the turn) */
        input_consume(in, total);
        *consumed = true;
    }
}

/* conn_io's process handler: see conn_io.h.  What is left unhandled is
 * counted, and an incomplete packet gets its deadline (input_bound.h). */
static int conn_process(struct conn *c, struct conn_input *in)
{
    bool partial = false, consumed = false;
    if (process_packets(c, in, &partial, &consumed) < 0)
        return -1;
    if (c->state >= CONN_CLOSING) {
        input_bound_account(c, 0, false, false); /* what it still sends is thrown away */
        return 0;
    }
    /* A WebSocket frame half read counts as an incomplete packet, from
     * when it began (later packets do not restart its deadline). */
    bool hold_began;
    size_t hold = conn_io_held(c, &hold_began);
    if (hold)
        consumed = consumed && hold_began;
    if (input_bound_account(c, input_avail(in) + hold, partial || hold, consumed) &&
        c->state == CONN_ACTIVE && input_bound_ticks(c)) {
        arm_earlier(c, active_deadline(c));
    }
    return 0;
}

/* conn_io's drained handler: see conn_io.h. */
static void conn_drained(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        if (conn_output_length(c) == 0 && !conn_wait_pending(c))
            conn_io_finish(c);
        return;
    }
    if (c->session)
        session_pump(c->session);
    if (c->read_paused && conn_can_write(c)) {
        c->read_paused = false;
        /* Keep alive counts from now: nothing was read meanwhile. */
        c->last_rx = conn_timer_now();
        conn_io_update(c, 1); /* input may already be waiting */
    }
}

/* The memory budget's pause and resume (memory_budget.h). */
static void budget_pause(struct conn *c)
{
    c->mem_paused = true;
    conn_io_update(c, 0);
}

static void budget_resume(struct conn *c, uint32_t now)
{
    c->mem_paused = false;
    c->last_rx = now; /* keep alive counts from now */
    if (c->partial_since)
        c->partial_since = now;
    conn_io_update(c, 1);
}

void conn_init(void (*closed_fn)(struct conn *c))
{
    static const struct conn_io_handlers io = {
        .process = conn_process,
        .drained = conn_drained,
        .owes_acks = conn_owes_acks,
        .close = conn_close,
    };
    on_closed = closed_fn;
    conn_io_init(&io);
    conn_timer_init(deadline_due);
    conn_wait_init(conn_send_packet);
    memory_budget_init(budget_pause, budget_resume);
}
