/*
 * conn.c - a client connection: framing, timeouts and its end.  The read
 * path frames packets and refuses an oversized one from its fixed header,
 * before any of its body is buffered.  The write path is bounded: past
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

#include "broker.h"
#include "conn_io.h"
#include "conn_timer.h"
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

const char *conn_name(const struct conn *c)
{
    static char buf[4200];
    if (c->session)
        snprintf(buf, sizeof buf, "client %s", c->session->log_id);
    else
        snprintf(buf, sizeof buf, "connection from %s", conn_peer(c));
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

const char *conn_peer(const struct conn *c)
{
    static char buf[INET6_ADDRSTRLEN + 16];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(conn_io_fd(c), (struct sockaddr *)&ss, &len) != 0)
        snprintf(buf, sizeof buf, "unknown (%s)", strerror(errno));
    else
        format_peer(buf, sizeof buf, (const struct sockaddr *)&ss);
    return buf;
}

/* Links a new connection in and starts its connect_timeout. */
static struct conn *conn_start(struct conn *c)
{
    c->level = MQTT_LEVEL_311;
    c->last_rx = conn_timer_now();
    c->next = broker.conns;
    if (broker.conns)
        broker.conns->prev = c;
    broker.conns = c;
    broker.n_conns++;
    if (conn_timer_set(c, c->last_rx + broker.cfg.connect_timeout * (1000 / CONN_TICK_MS)) != 0) {
        conn_close(c, "cannot set its connect timeout", false);
        return NULL;
    }
    return c;
}

struct conn *conn_new(int fd, const struct sockaddr *addr, int addrlen)
{
    (void)addrlen;
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
    if (log_enabled(LOG_DEBUG)) {
        char peer[INET6_ADDRSTRLEN + 16];
        format_peer(peer, sizeof peer, addr);
        log_debug("new connection from %s", peer);
    }
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
    log_debug("new connection from %s", conn_peer(c));
    return conn_start(c);
}

void conn_close(struct conn *c, const char *why, bool publish_will)
{
    if (c->state == CONN_ACTIVE || c->session)
        log_notice("%s disconnected: %s", conn_name(c), why);
    else if (log_enabled(LOG_INFO)) /* (naming the peer costs a system call) */
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
            if (log_enabled(LOG_INFO))
                log_info("publishing will of %s on '%s'", conn_peer(c), c->will->topic);
            router_publish(c->will);
        }
        message_unref(c->will);
    }
    conn_io_close(c);
    free(c);
}

void conn_close_all(void)
{
    while (broker.conns)
        conn_close(broker.conns, "broker shutting down", false);
    conn_io_shutdown();
    conn_timer_shutdown();
}

bool conn_can_write(const struct conn *c)
{
    return conn_output_length(c) < broker.cfg.max_output_buffer;
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

void conn_set_keepalive(struct conn *c, uint16_t secs)
{
    c->keepalive = secs;
    if (secs == 0) {
        conn_timer_clear(c);
        return;
    }
    c->last_rx = conn_timer_now();
    conn_timer_set(c, c->last_rx + keepalive_ticks(c));
}

void conn_stop_connect_timeout(struct conn *c)
{
    if (c->state == CONN_AWAIT_CONNECT)
        conn_timer_clear(c);
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

void conn_timer_due(struct conn *c, uint32_t now)
{
    if (c->state == CONN_CLOSING) {
        conn_close(c, c->close_reason, false);
    } else if (c->state == CONN_AWAIT_CONNECT) {
        char why[64];
        snprintf(why, sizeof why, "no CONNECT within connect_timeout (%u s)",
                 broker.cfg.connect_timeout);
        broker.stats.connect_timeouts++;
        conn_close(c, why, false);
    } else if (c->keepalive) {
        if (c->read_paused || c->input_held) {
            /* Nothing is read from it meanwhile: its packets wait in the
             * socket.  Counted again from when reads resume. */
            conn_timer_set(c, now + keepalive_ticks(c));
            return;
        }
        uint32_t deadline = c->last_rx + keepalive_ticks(c);
        if ((int32_t)(deadline - now) > 0) {
            conn_timer_set(c, deadline);
            return;
        }
        char why[96];
        snprintf(why, sizeof why, "keep alive timeout (nothing received for 1.5 x %u s)",
                 c->keepalive);
        conn_close(c, why, true);
    }
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
    struct evbuffer *out = conn_output(c);
    if (!out)
        return -1;
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
        struct evbuffer *out = conn_output(c);
        if (!out)
            return -1;
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
    conn_io_update(c, 0);
    if (c->bev)
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    conn_timer_set(c, conn_timer_now() + CLOSE_FLUSH_SECONDS * (1000 / CONN_TICK_MS));
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

int conn_process(struct conn *c, struct conn_input *in)
{
    for (;;) {
        if (c->state == CONN_CLOSING || c->auth_wait || c->input_held)
            return 0;
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
        if (err == MQTT_INCOMPLETE)
            return 0;
        if (err == MQTT_E_TOO_LARGE) {
            char why[128];
            snprintf(why, sizeof why, "packet of %zu bytes exceeds max_packet_size (%u)",
                     hlen + remaining, broker.cfg.max_packet_size);
            broker.stats.protocol_errors++;
            broker.stats.packet_too_large++;
            conn_close(c, why, true);
            return -1;
        }
        if (err != MQTT_OK) {
            protocol_violation(c, "malformed remaining length");
            return -1;
        }
        size_t total = hlen + remaining;
        if (avail < total)
            return 0;
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
            protocol_violation(c, msg);
            return -1;
        }
        if (protocol_handle(c, &p) < 0)
            return -1; /* closed and freed */
        input_consume(in, total);
    }
}

void conn_drained(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        if (conn_output_length(c) == 0)
            conn_close(c, c->close_reason, false);
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
