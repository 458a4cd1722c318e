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

void conn_close(struct conn *c, const char *why, bool publish_will)
{
    if (c->state == CONN_ACTIVE || c->session)
        log_notice("%s disconnected: %s", conn_name(c), why);
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
    if (c->auth_wait)
        connect_abort(c);
    if (c->n_pending)
        store_forget_conn(c);

    /* Detach first: the will must not be written to this dying socket. */
    struct session *s = c->session;
    if (s) {
        broker.n_clients--;
        c->session = NULL;
        session_detach(s);
    }
    if (c->will) {
        if (publish_will) {
            log_info("publishing will of %s on '%s'", c->peer, c->will->topic);
            router_publish(c->will, NULL);
        }
        message_unref(c->will);
    }
    event_free(c->timer);
    bufferevent_free(c->bev);
    free(c);
}

void conn_close_all(void)
{
    while (broker.conns)
        conn_close(broker.conns, "broker shutting down", false);
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

int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t packet_id,
                      bool dup, bool retain)
{
    broker.stats.msgs_sent++;
    if (qos == 0 && !retain && c->level == MQTT_LEVEL_311 && c->n_pending == 0) {
        /* The common fan-out case: every QoS 0 subscriber gets the same
         * bytes, encoded once per message. */
        size_t len;
        const uint8_t *wire = message_wire_qos0(msg, &len);
        if (!wire)
            return -1;
        struct evbuffer *out = bufferevent_get_output(c->bev);
        int rc;
        if (len >= SHARE_MIN_BYTES)
            rc = evbuffer_add_reference(out, wire, len, release_message, message_ref(msg));
        else
            rc = evbuffer_add(out, wire, len);
        if (rc != 0) {
            if (len >= SHARE_MIN_BYTES)
                message_unref(msg);
            return -1;
        }
        broker.stats.bytes_sent += len;
        return 0;
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
    return conn_send_packet(c, &p);
}

void conn_send_and_close(struct conn *c, const struct mqtt_packet *p, const char *why)
{
    conn_send_packet(c, p);
    c->state = CONN_CLOSING;
    c->close_reason = why;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    struct timeval tv = {CLOSE_FLUSH_SECONDS, 0};
    evtimer_add(c->timer, &tv);
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
            char why[128];
            snprintf(why, sizeof why, "packet of %zu bytes exceeds max_packet_size (%u)",
                     hlen + remaining, broker.cfg.max_packet_size);
            broker.stats.protocol_errors++;
            broker.stats.packet_too_large++;
            conn_close(c, why, true);
            return;
        }
        if (err != MQTT_OK) {
            protocol_violation(c, "malformed remaining length");
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
            protocol_violation(c, msg);
            return;
        }
        if (protocol_handle(c, &p) < 0)
            return; /* closed and freed */
        evbuffer_drain(in, total);
    }
}

static void readcb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_close(c, c->close_reason, false);
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
        conn_close(c, why, true);
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
