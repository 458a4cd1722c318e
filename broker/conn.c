/*
 * conn.c - a client connection on a libevent bufferevent.  The read path
 * frames packets and refuses an oversized one from its fixed header, before
 * any of its body is buffered.  The write path is bounded: past
 * max_output_buffer a connection gets no new QoS 0 messages and its own
 * input is paused, so one slow reader cannot eat the broker's memory.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "listener.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "router.h"
#include "session.h"
#include "store.h"

/* Payloads at least this large are referenced, not copied, into the output
 * buffer; below it a copy is cheaper than a reference chain. */
#define SHARE_MIN_BYTES 1024
/* How long a connection that is being closed may take to flush its last
 * packet. */
#define CLOSE_FLUSH_SECONDS 2

static void readcb(struct bufferevent *bev, void *arg);
static void writecb(struct bufferevent *bev, void *arg);
static void eventcb(struct bufferevent *bev, short what, void *arg);
static void timercb(evutil_socket_t fd, short what, void *arg);

const char *conn_name(const struct conn *c)
{
    static char buf[4200];
    if (c->session)
        snprintf(buf, sizeof buf, "client %s", c->session->log_id);
    else
        snprintf(buf, sizeof buf, "connection from %s", c->peer);
    return buf;
}

static void format_peer(char *out, size_t len, const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, len, "[%s]:%u", host, port);
    } else {
        snprintf(out, len, "unknown");
    }
}

struct conn *conn_new(int fd, const struct sockaddr *addr, int addrlen)
{
    (void)addrlen;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return NULL;
    }
    c->bev = bufferevent_socket_new(broker.base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(broker.base, timercb, c);
    if (!c->bev || !c->timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->timer)
            event_free(c->timer);
        free(c);
        return NULL;
    }
    format_peer(c->peer, sizeof c->peer, addr);
    c->level = MQTT_LEVEL_311;
    c->receive_max_out = UINT16_MAX;
    bufferevent_setcb(c->bev, readcb, writecb, eventcb, c);
    /* The write callback fires when the output drains to half the bound:
     * that is when paused deliveries and paused input resume. */
    bufferevent_setwatermark(c->bev, EV_WRITE, broker.cfg.max_output_buffer / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct timeval tv = {(time_t)broker.cfg.connect_timeout, 0};
    evtimer_add(c->timer, &tv);

    c->next = broker.conns;
    if (broker.conns)
        broker.conns->prev = c;
    broker.conns = c;
    broker.n_conns++;
    log_debug("new connection from %s", c->peer);
    return c;
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
            log_info("publishing will of %s on '%s'", c->peer, c->will->topic);
            message_start_expiry(c->will);
            router_publish(c->will);
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

void conn_close(struct conn *c, const char *why, bool publish_will)
{
    if (c->state == CONN_ACTIVE || c->session)
        log_notice("%s disconnected: %s", conn_name(c), why);
    else if (c->state == CONN_CLOSING && c->level == MQTT_LEVEL_5)
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
    listener_conn_closed(c);
    if (c->n_pending)
        store_forget_conn(c);
    end_session(c, publish_will);
    free_aliases(c->alias_out, c->alias_max_out);
    free_aliases(c->alias_in, broker.cfg.topic_alias_maximum);
    free(c->alias_in_len);
    event_free(c->timer);
    bufferevent_free(c->bev);
    free(c);
}

/* Keeps the socket only to flush what is written, then closes it (or after
 * a short deadline). */
static void linger(struct conn *c, const char *why)
{
    c->state = CONN_CLOSING;
    c->close_reason = why;
    /* Input is still read, and thrown away: closing a socket with unread
     * input resets it, and the client would lose the last packet. */
    if (!c->auth_wait)
        bufferevent_enable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    struct timeval tv = {CLOSE_FLUSH_SECONDS, 0};
    evtimer_add(c->timer, &tv);
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
        if (c->level == MQTT_LEVEL_5 && c->state == CONN_ACTIVE && c->n_pending == 0) {
            /* Best effort: the loop is not running any more, so write what
             * is buffered and the DISCONNECT straight to the socket. */
            struct mqtt_packet p;
            struct mqtt_props_builder b;
            uint8_t buf[64];
            build_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down", &p, &b,
                             buf, sizeof buf);
            if (conn_send_packet(c, &p) == 0) {
                struct evbuffer *out = bufferevent_get_output(c->bev);
                evutil_socket_t fd = bufferevent_getfd(c->bev);
                /* The bufferevent keeps the front of its output frozen
                 * while it owns the writing; it never will again. */
                evbuffer_unfreeze(out, 1);
                for (int i = 0; i < 8 && evbuffer_get_length(out) > 0; i++)
                    if (evbuffer_write(out, fd) <= 0)
                        break;
            }
        }
        conn_close(c, "broker shutting down", false);
    }
}

bool conn_can_write(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) < broker.cfg.max_output_buffer;
}


int conn_send_packet(struct conn *c, const struct mqtt_packet *p)
{
    if (c->n_pending) {
        /* Something for this client waits for a commit: what follows
         * waits behind it, so the client sees packets in order. */
        store_send_after_commit(c, p);
        return 0;
    }
    size_t need = mqtt_encode(c->level, p, NULL, 0);
    struct mqtt_packet bare;
    if (c->level == MQTT_LEVEL_5 && c->max_packet_out && need > c->max_packet_out &&
        p->type != MQTT_PUBLISH) {
        /* Too big for the client: what may go is the reason string (and
         * user properties), i.e. the properties of a non-PUBLISH packet. */
        bare = *p;
        memset(&bare.u.disconnect.props, 0, sizeof bare.u.disconnect.props);
        if (p->type == MQTT_CONNACK)
            memset(&bare.u.connack.props, 0, sizeof bare.u.connack.props);
        else if (p->type == MQTT_SUBACK || p->type == MQTT_UNSUBACK)
            memset(&bare.u.suback.props, 0, sizeof bare.u.suback.props);
        else if (p->type >= MQTT_PUBACK && p->type <= MQTT_PUBCOMP)
            memset(&bare.u.ack.props, 0, sizeof bare.u.ack.props);
        p = &bare;
        need = mqtt_encode(c->level, p, NULL, 0);
    }
    if (need == 0) {
        log_error("%s: cannot encode %s", conn_name(c), mqtt_type_name(p->type));
        return -1;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec vec;
    if (evbuffer_reserve_space(out, (ev_ssize_t)need, &vec, 1) != 1 || vec.iov_len < need)
        return -1;
    mqtt_encode(c->level, p, vec.iov_base, need);
    vec.iov_len = need;
    if (evbuffer_commit_space(out, &vec, 1) != 0)
        return -1;
    broker.stats.bytes_sent += need;
    return 0;
}

static void release_message(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    message_unref(arg);
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
#ifdef SESSION_HAS_SUBSCRIPTION_IDS
    /* Subscription identifiers of the client's filters matching the topic
     * (subscriptions helper, branch share: session_subscription_ids). */
    if (c->session) {
        uint32_t ids[16];
        size_t n = session_subscription_ids(c->session, msg->topic, msg->topic_len, ids, 16);
        for (size_t i = 0; i < n; i++)
            mqtt_pb_num(&b, MQTT_PROP_SUBSCRIPTION_ID, ids[i]);
    }
#endif
    bool known = false;
    uint16_t alias = c->alias_max_out ? alias_for(c, msg, &known) : 0;
    if (alias)
        mqtt_pb_num(&b, MQTT_PROP_TOPIC_ALIAS, alias);
    if (b.overflow) {
        if (buf != stack)
            free(buf);
        return CONN_SEND_FAILED;
    }
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.dup = dup;
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.topic.data = (const uint8_t *)msg->topic;
    p.u.publish.topic.len = known ? 0 : msg->topic_len;
    p.u.publish.packet_id = packet_id;
    p.u.publish.props = mqtt_pb_props(&b);
    p.u.publish.payload.data = msg->payload;
    p.u.publish.payload.len = msg->payload_len;
    size_t need = mqtt_encode(MQTT_LEVEL_5, &p, NULL, 0);
    int rc = CONN_SENT;
    if (c->max_packet_out && need > c->max_packet_out) {
        /* The client would have to treat it as malformed: never sent. */
        broker.stats.publish_too_large++;
        log_debug("%s: PUBLISH of %zu bytes on '%s' over the client's maximum packet size %u: "
                  "dropped", conn_name(c), need, msg->topic, c->max_packet_out);
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
            store_send_after_commit(c, &p);
        else if (conn_send_packet(c, &p) != 0)
            rc = CONN_SEND_FAILED;
    }
    if (buf != stack)
        free(buf);
    return rc;
}

int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                      bool dup, bool retain)
{
    broker.stats.msgs_sent++;
    if (c->level == MQTT_LEVEL_5)
        return send_publish5(c, msg, qos, packet_id, dup, retain, false);
    if (qos == 0 && !retain && c->n_pending == 0) {
        /* The common fan-out case: every QoS 0 subscriber gets the same
         * bytes, encoded once per message. */
        size_t len;
        const uint8_t *wire = message_wire_qos0(msg, &len);
        if (!wire)
            return CONN_SEND_FAILED;
        struct evbuffer *out = bufferevent_get_output(c->bev);
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
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.dup = dup;
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.topic.data = (const uint8_t *)msg->topic;
    p.u.publish.topic.len = msg->topic_len;
    p.u.publish.packet_id = packet_id;
    p.u.publish.payload.data = msg->payload;
    p.u.publish.payload.len = msg->payload_len;
    return conn_send_packet(c, &p) == 0 ? CONN_SENT : CONN_SEND_FAILED;
}

int conn_send_publish_durable(struct conn *c, struct message *msg, uint8_t qos,
                              uint16_t packet_id, bool dup, bool retain)
{
    broker.stats.msgs_sent++;
    if (c->level == MQTT_LEVEL_5)
        return send_publish5(c, msg, qos, packet_id, dup, retain, true);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.dup = dup;
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.topic.data = (const uint8_t *)msg->topic;
    p.u.publish.topic.len = msg->topic_len;
    p.u.publish.packet_id = packet_id;
    p.u.publish.payload.data = msg->payload;
    p.u.publish.payload.len = msg->payload_len;
    store_send_after_commit(c, &p);
    return CONN_SENT;
}

void conn_send_and_close(struct conn *c, const struct mqtt_packet *p, const char *why)
{
    conn_send_packet(c, p);
    linger(c, why);
}

/* A CONNECT whose first body bytes say "MQTT" level 5: the client reads
 * 5.0 CONNACKs.  Used before the CONNECT could be decoded. */
static bool peek_level5_connect(struct evbuffer *in, uint8_t first, size_t hlen)
{
    uint8_t b[MQTT_MAX_FIXED_HEADER + 7];
    if ((first >> 4) != MQTT_CONNECT || evbuffer_get_length(in) < hlen + 7)
        return false;
    evbuffer_copyout(in, b, hlen + 7);
    return memcmp(b + hlen, "\0\4MQTT\5", 7) == 0;
}

/* Refuses a CONNECT that cannot be taken: a 5.0 client hears why. */
static void refuse_connect5(struct conn *c, uint8_t reason, const char *why)
{
    c->level = MQTT_LEVEL_5;
    c->problem_info = true;
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.return_code = reason;
    struct mqtt_props_builder b;
    uint8_t buf[256];
    mqtt_pb_init(&b, buf, sizeof buf);
    mqtt_pb_bytes(&b, MQTT_PROP_REASON_STRING, why, strlen(why) > 200 ? 200 : strlen(why));
    if (!b.overflow)
        ack.u.connack.props = mqtt_pb_props(&b);
    log_info("connection from %s refused: %s", c->peer, why);
    conn_send_and_close(c, &ack, "CONNECT refused");
}

/* Frames and handles every complete packet in the input buffer. */
static void process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        if (c->state == CONN_CLOSING || c->auth_wait)
            return;
        if (!conn_can_write(c)) {
            /* The peer does not read what we send it: stop reading what
             * it sends until it catches up. */
            bufferevent_disable(c->bev, EV_READ);
            c->read_paused = true;
            broker.stats.output_buffer_full++;
            return;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        uint8_t hdr[MQTT_MAX_FIXED_HEADER];
        size_t n = avail < sizeof hdr ? avail : sizeof hdr;
        evbuffer_copyout(in, hdr, n);
        uint8_t first;
        uint32_t remaining;
        size_t hlen;
        enum mqtt_err err = mqtt_frame_header(hdr, n, broker.cfg.max_packet_size, &first,
                                              &remaining, &hlen);
        if (err == MQTT_INCOMPLETE)
            return;
        if (err == MQTT_E_TOO_LARGE) {
            /* mqtt_frame_header sets its outputs on MQTT_OK only: read the
             * (valid, complete) header again for the log and the peek. */
            first = hdr[0];
            remaining = 0;
            hlen = 1;
            for (size_t i = 1; i < n; i++) {
                remaining |= (uint32_t)(hdr[i] & 0x7F) << (7 * (i - 1));
                if (!(hdr[i] & 0x80)) {
                    hlen = i + 1;
                    break;
                }
            }
            char why[128];
            snprintf(why, sizeof why, "packet of %zu bytes exceeds max_packet_size (%u)",
                     hlen + remaining, broker.cfg.max_packet_size);
            broker.stats.protocol_errors++;
            broker.stats.packet_too_large++;
            if (c->state == CONN_AWAIT_CONNECT && peek_level5_connect(in, first, hlen))
                refuse_connect5(c, MQTT_RC_PACKET_TOO_LARGE, why);
            else
                conn_disconnect(c, MQTT_RC_PACKET_TOO_LARGE, why, true);
            return;
        }
        if (err != MQTT_OK) {
            protocol_error(c, MQTT_RC_MALFORMED, "malformed remaining length");
            return;
        }
        size_t total = hlen + remaining;
        if (avail < total)
            return;
        const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)total);
        if (!buf) {
            conn_close(c, "out of memory", true);
            return;
        }
        broker.stats.bytes_received += total;

        struct mqtt_packet p;
        const char *why = NULL;
        err = mqtt_decode(c->level, first, buf + hlen, remaining, &p, &why);
        if (err == MQTT_E_UNSUPPORTED_LEVEL && c->state == CONN_AWAIT_CONNECT) {
            struct mqtt_packet ack = {.type = MQTT_CONNACK};
            ack.u.connack.return_code = MQTT_CONNACK_BAD_PROTOCOL;
            conn_send_and_close(c, &ack, "unsupported protocol level");
            return;
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
                return;
            }
            protocol_error(c, rc, msg);
            return;
        }
        if (protocol_handle(c, &p) < 0)
            return; /* closed and freed */
        evbuffer_drain(in, total);
    }
}

static void readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    process_input(c);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        /* All written: say so with a FIN and wait for the client's (EOF in
         * eventcb), or for the deadline. */
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && c->n_pending == 0)
            shutdown(bufferevent_getfd(bev), SHUT_WR);
        return;
    }
    if (c->session)
        session_pump(c->session);
    if (c->read_paused && conn_can_write(c)) {
        c->read_paused = false;
        bufferevent_enable(c->bev, EV_READ);
        process_input(c); /* input may already be waiting */
    }
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        conn_close(c, c->close_reason, false);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        char why[96];
        snprintf(why, sizeof why, "keep alive timeout (nothing received for 1.5 x %u s)",
                 c->keepalive);
        conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, why, true);
    } else if (what & BEV_EVENT_EOF) {
        conn_close(c, "connection closed by peer", true);
    } else if (what & BEV_EVENT_ERROR) {
        char why[128];
        snprintf(why, sizeof why, "socket error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_close(c, why, true);
    }
}

static void timercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        conn_close(c, c->close_reason, false);
    } else if (c->state == CONN_AWAIT_CONNECT) {
        char why[64];
        snprintf(why, sizeof why, "no CONNECT within connect_timeout (%u s)",
                 broker.cfg.connect_timeout);
        broker.stats.connect_timeouts++;
        conn_close(c, why, false);
    }
}
