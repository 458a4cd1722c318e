/*
 * bench_conn.c - one simulated MQTT client of `petrel bench`: a lean state
 * machine on a non-blocking socket (TCP connect, CONNECT/CONNACK,
 * SUBSCRIBE/SUBACK, publish with a QoS 1/2 window, receive and acknowledge,
 * keep alive, DISCONNECT).  Packets are built and parsed by the shared
 * codec.  Hot paths allocate nothing: reads go through one shared buffer,
 * a PUBLISH is a copy of a header encoded once per topic, and everything a
 * callback produces goes out in one send().
 */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "array_grow.h"
#include "bench_pace.h"
#include "bench_tls.h"
#include "bench_ws.h"
#include "mqtt_codec.h"

/* A publisher stops filling its output buffer at this many bytes: enough
 * for one large send(), small enough that a broker that reads slowly
 * pushes back through TCP rather than through our memory. */
#define OUT_HIGH (64 * 1024)
#define OUT_INITIAL 256
/* Rounds of fill-and-send per callback for a publisher that could go on:
 * bounded so that one fast connection does not starve the others. */
#define PUMP_ROUNDS 4
/* How long the broker gets to close a connection after our DISCONNECT. */
#define CLOSE_WAIT_NS (2 * 1000000000ull)

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_resume(evutil_socket_t fd, short what, void *arg);

static const char *role_name(const struct bench_conn *c)
{
    return c->role == ROLE_PUB ? "publisher" : c->role == ROLE_SUB ? "subscriber" : "client";
}

/* Closes a connection whose end is normal (after our DISCONNECT, or one
 * never made) and counts it closed. */
static void close_and_count(struct bench_conn *c)
{
    bench_conn_close(c);
    bench_conn_closed(c->b, c);
}

/* Ends a connection that broke; the bench decides what it means. */
void bench_conn_fail(struct bench_conn *c, enum bench_conn_fail why, const char *fmt, ...)
{
    struct bench *b = c->b;
    if (c->state == CS_FAILED || c->state == CS_CLOSED)
        return;
    bool was_ready = c->state == CS_READY || c->state == CS_CLOSING;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->state == CS_CLOSING) {
        /* The broker closing first, or resetting, after our DISCONNECT
         * is the normal end. */
        close_and_count(c);
        return;
    }
    if (why == FAIL_TLS) {
        /* A wrong CA fails every handshake alike: the first one says why,
         * the report counts them all. */
        if (b->tls_failed++ == 0)
            snprintf(b->tls_first_error, sizeof b->tls_first_error, "%s", msg);
        if (b->tls_failed == 1 || b->o.debug)
            bench_error(b, "%s %u: %s", role_name(c), (unsigned)c->index, msg);
    } else {
        bench_error(b, "%s %u: %s", role_name(c), (unsigned)c->index, msg);
    }
    bench_conn_close(c);
    c->state = CS_FAILED;
    c->fail = (uint8_t)why;
    if (c->pub) {
        b->in_window_total -= c->pub->in_window;
        b->unacked += c->pub->in_window;
        c->pub->in_window = 0;
        if (!c->pub->finished) {
            c->pub->finished = true;
            b->pubs_finished++;
        }
    }
    bench_conn_failed(b, c, was_ready);
}

static void want_write(struct bench_conn *c, bool on)
{
    if (on == c->wr_added)
        return;
    if (on)
        event_add(&c->wr, NULL);
    else
        event_del(&c->wr);
    c->wr_added = on;
}

void bench_want_write(struct bench_conn *c, bool on) { want_write(c, on); }

/* Room for n more bytes in the output buffer.  0, or -1 (connection failed). */
static int out_reserve(struct bench_conn *c, size_t n)
{
    if (c->out_len + n <= c->out_cap)
        return 0;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n <= c->out_cap)
            return 0;
    }
    uint8_t *p = array_grow(c->out, &c->out_cap, c->out_len + n, 1, OUT_INITIAL);
    if (!p) {
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return -1;
    }
    c->out = p;
    return 0;
}

int bench_out_reserve(struct bench_conn *c, size_t n) { return out_reserve(c, n); }

/* Appends an encoded packet.  0, or -1 (connection failed). */
static int put_packet(struct bench_conn *c, const struct mqtt_packet *p)
{
    if (out_reserve(c, 8) != 0)
        return -1;
    size_t avail = c->out_cap - c->out_len;
    size_t n = mqtt_encode(MQTT_LEVEL_311, p, c->out + c->out_len, avail);
    if (n == 0) {
        bench_conn_fail(c, FAIL_PROTOCOL, "cannot encode %s", mqtt_type_name(p->type));
        return -1;
    }
    if (n > avail) {
        if (out_reserve(c, n) != 0)
            return -1;
        n = mqtt_encode(MQTT_LEVEL_311, p, c->out + c->out_len, c->out_cap - c->out_len);
    }
    c->out_len += n;
    return 0;
}

static int put_ack(struct bench_conn *c, uint8_t type, uint16_t id)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    return put_packet(c, &p);
}

/* A TLS failure before the connection was ready is a refused handshake
 * (TLS 1.3 servers refuse a client certificate only after it); after, a
 * lost connection. */
static enum bench_conn_fail tls_fail_kind(const struct bench_conn *c)
{
    return c->state == CS_READY ? FAIL_LOST : FAIL_TLS;
}

/* flush() over TLS. */
static int tls_flush(struct bench_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = bench_tls_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_tx = c->b->now;
            continue;
        }
        if (n == TLS_WANT_WRITE) {
            want_write(c, true);
            return 0;
        }
        if (n == TLS_WANT_READ)
            return 0; /* the read event brings us back: on_read flushes */
        bench_conn_fail(c, tls_fail_kind(c), "%s", bench_tls_error(c));
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* flush() over TCP. */
static int tcp_flush(struct bench_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_tx = c->b->now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c, true);
            return 0;
        }
        bench_conn_fail(c, FAIL_LOST, "send: %s", strerror(errno));
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Sends what is buffered (over WebSocket, framed first).  0 (all sent, or
 * the rest waits for EV_WRITE), -1 (connection failed). */
static int flush(struct bench_conn *c)
{
    if (c->ws && bench_ws_frame(c) != 0)
        return -1;
    bool had = c->out_len > c->out_off;
    int r = c->ssl ? tls_flush(c) : tcp_flush(c);
    if (r == 0)
        bench_ws_sent(c);
    /* QoS 0 is published once it is written: a short run buffered in one
     * turn would otherwise end at its start (0 s, "0 msg/s"). */
    if (r == 0 && had && c->pub && c->b->o.qos == 0)
        c->b->t_last_pub = bench_now();
    return r;
}

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench_conn *c = arg;
    c->b->now = bench_now();
    if (c->state == CS_READY)
        bench_conn_pump(c);
}

int bench_conn_setup(struct bench *b, struct bench_conn *c)
{
    c->b = b;
    c->fd = -1;
    c->state = CS_WAITING;
    if (c->role == ROLE_PUB) {
        c->pub = calloc(1, sizeof *c->pub);
        if (!c->pub)
            return -1;
        if (b->o.qos > 0) {
            c->pub->slots = calloc(b->o.inflight, sizeof *c->pub->slots);
            if (!c->pub->slots)
                return -1;
        }
        evtimer_assign(&c->pub->pace, b->base, on_pace, c);
        c->pub->next_pid = 1;
        c->pub->pid_limit = (uint16_t)(65535 / b->o.inflight * b->o.inflight);
    } else if (c->role == ROLE_SUB) {
        c->sub = calloc(1, sizeof *c->sub);
        if (!c->sub)
            return -1;
        evtimer_assign(&c->sub->resume, b->base, on_resume, c);
    }
    return 0;
}

void bench_conn_start(struct bench_conn *c)
{
    struct bench *b = c->b;
    c->t_start = b->now;
    c->state = CS_TCP;
    if (!c->out && out_reserve(c, OUT_INITIAL) != 0)
        return;
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bench_conn_fail(c, FAIL_REFUSED, "socket: %s%s", strerror(errno),
                        errno == EMFILE ? " (raise ulimit -n)" : "");
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    event_assign(&c->rd, b->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wr, b->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    const struct sockaddr_storage *to = c->role == ROLE_SUB ? &b->sub_addr : &b->addr;
    if (connect(fd, (const struct sockaddr *)to, b->addr_len) != 0 &&
        errno != EINPROGRESS) {
        bench_conn_fail(c, errno == ECONNREFUSED ? FAIL_REFUSED : FAIL_LOST, "connect: %s",
                        strerror(errno));
        return;
    }
    want_write(c, true); /* writable = TCP handshake done (or failed) */
}

/* TCP is up: CONNECT. */
static void send_connect(struct bench_conn *c)
{
    struct bench *b = c->b;
    const struct bench_options *o = &b->o;
    char id[128];
    int n = snprintf(id, sizeof id, "%s-%c%u", o->id_prefix,
                     c->role == ROLE_PUB ? 'p' : c->role == ROLE_SUB ? 's' : 'c',
                     (unsigned)c->index);
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *ct = &p.u.connect;
    /* --persistent: the subscribers' sessions (and so their queues)
     * outlive a connection; publishers keep -c's choice. */
    ct->clean_session = o->clean && !(c->sub && o->persistent);
    ct->keepalive = o->keepalive;
    ct->client_id = (struct mqtt_bytes){(const uint8_t *)id, (uint32_t)n};
    if (o->username) {
        ct->has_username = true;
        ct->username = mqtt_str(o->username);
        if (o->password) {
            ct->has_password = true;
            ct->password = mqtt_str(o->password);
        }
    }
    if (o->will_topic) {
        const char *wp = o->will_payload ? o->will_payload : "";
        ct->will_flag = true;
        ct->will_qos = o->will_qos;
        ct->will_retain = o->will_retain;
        ct->will_topic = mqtt_str(o->will_topic);
        ct->will_payload = mqtt_str(wp);
    }
    if (put_packet(c, &p) != 0)
        return;
    c->state = CS_CONNACK;
    event_add(&c->rd, NULL);
    flush(c);
}

static void send_subscribe(struct bench_conn *c)
{
    struct mqtt_topic_entry e = {
        .filter = mqtt_str(c->sub->filter),
        .options = c->b->o.sub_qos,
    };
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    if (put_packet(c, &p) == 0)
        c->state = CS_SUBACK;
}

/* TCP (and TLS) is up: CONNECT, or over WebSocket the upgrade first. */
static void start_mqtt(struct bench_conn *c)
{
    if (!c->b->o.ws) {
        send_connect(c);
        return;
    }
    if (bench_ws_start(c) != 0)
        return;
    event_add(&c->rd, NULL);
    flush(c);
}

/* One step of the TLS handshake; CONNECT once it is done. */
static void tls_step(struct bench_conn *c)
{
    struct bench *b = c->b;
    int r = bench_tls_handshake(c);
    if (r == 1) {
        hist_add(&b->handshake_latency, b->now - c->t_start);
        bench_tls_note_established(c);
        want_write(c, false);
        start_mqtt(c);
        return;
    }
    if (r == TLS_FAILED) {
        bench_conn_fail(c, FAIL_TLS, "%s", bench_tls_error(c));
        return;
    }
    event_add(&c->rd, NULL);
    want_write(c, r == TLS_WANT_WRITE);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct bench_conn *c = arg;
    struct bench *b = c->b;
    if (c->tls_rd_wants_wr) {
        /* OpenSSL had to write before it could go on reading. */
        c->tls_rd_wants_wr = false;
        on_read(fd, EV_READ, c);
        if (c->fd < 0)
            return;
    }
    b->now = bench_now();
    if (c->state == CS_TLS) {
        tls_step(c);
        return;
    }
    if (c->state == CS_TCP) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            bench_conn_fail(c, err == ECONNREFUSED ? FAIL_REFUSED : FAIL_LOST, "connect: %s",
                            strerror(err));
            return;
        }
        if (b->tls_ctx) {
            if (bench_tls_attach(c) != 0) {
                bench_conn_fail(c, FAIL_LOST, "out of memory");
                return;
            }
            c->state = CS_TLS;
            tls_step(c);
            return;
        }
        want_write(c, false);
        start_mqtt(c);
        return;
    }
    if (c->pub && c->state == CS_READY) {
        bench_conn_pump(c);
        return;
    }
    if (flush(c) == 0 && c->out_len == 0)
        want_write(c, false);
}

/* Completes the QoS 1/2 handshake of `pid`, freeing its window slot. */
static void pub_completed(struct bench_conn *c, uint16_t pid, uint8_t expect)
{
    struct bench *b = c->b;
    struct bench_pub *p = c->pub;
    if (!p || !p->slots || pid == 0 || pid > p->pid_limit)
        return;
    struct pub_slot *s = &p->slots[(pid - 1) % b->o.inflight];
    if (s->state != expect || s->pid != pid)
        return; /* a stray or repeated ack: nothing of ours */
    if (expect == SLOT_ACK) {
        /* PUBACK or PUBREC: the broker has taken the message on; from now
         * on every matching subscriber must get it. */
        uint32_t adv;
        if (track_add(&p->acked_set, s->stream, s->seq, &adv) == TRACK_NEW)
            b->accepted++;
    }
    if (expect == SLOT_ACK && b->o.qos == 2) {
        /* PUBREC: release it and wait for PUBCOMP. */
        s->state = SLOT_COMP;
        struct mqtt_packet rel = {.type = MQTT_PUBREL};
        rel.u.ack.packet_id = pid;
        put_packet(c, &rel);
        return;
    }
    s->state = SLOT_FREE;
    p->in_window--;
    p->acked++;
    b->in_window_total--;
    b->completed++;
    b->t_last_pub = b->t_progress = b->now;
    hist_add(&b->ack_latency, b->now - s->sent_ns);
}

/* `n` more deliveries of `stream` arrived (or were skipped: lost at QoS 0):
 * its publisher may have room again. */
static void delivered(struct bench *b, uint32_t stream, uint32_t n)
{
    struct bench_conn *pc = &b->conns[b->o.subs + stream / b->o.topics];
    struct bench_pub *p = pc->pub;
    p->outstanding -= n < p->outstanding ? n : p->outstanding;
    /* Woken at half the limit, so that it sends in batches. */
    if (p->blocked && p->outstanding <= p->limit / 2) {
        p->blocked = false;
        b->wake[b->n_wake++] = pc;
    }
}

static void got_publish(struct bench_conn *c, const struct mqtt_publish *m)
{
    struct bench *b = c->b;
    if (m->qos == 1)
        put_ack(c, MQTT_PUBACK, m->packet_id);
    else if (m->qos == 2)
        put_ack(c, MQTT_PUBREC, m->packet_id);
    b->received++;
    if (b->t_first_rx == 0)
        b->t_first_rx = b->now;
    b->t_last_rx = b->t_progress = b->now;
    if (c->sub)
        c->sub->received++;
    struct bench_stamp st;
    if (m->payload.len < BENCH_STAMP_SIZE) {
        b->foreign++;
        return;
    }
    memcpy(&st, m->payload.data, sizeof st);
    if (st.magic != BENCH_MAGIC) {
        b->foreign++;
        return;
    }
    if (b->o.pubs > 0 && (st.run != b->run_id || st.stream >= b->n_streams)) {
        b->foreign++; /* left over in a session by an earlier run */
        return;
    }
    if (st.sent_ns <= b->now) {
        hist_add(&b->latency, b->now - st.sent_ns);
        if (b->o.rate > 0 && st.sent_ns + st.lag_ns <= b->now)
            hist_add(&b->latency_sent, b->now - st.sent_ns - st.lag_ns);
    }
    if (!c->sub)
        return;
    uint32_t advance;
    switch (track_add(&c->sub->track, st.stream, st.seq, &advance)) {
    case TRACK_NEW:
        b->unique++;
        if (advance && b->o.pubs > 0)
            delivered(b, st.stream, advance);
        break;
    case TRACK_DUP:
        b->dups++;
        break;
    case TRACK_REFUSED:
        b->foreign++;
        break;
    }
}

/* One decoded packet.  0, or -1 when the connection failed. */
static int handle_packet(struct bench_conn *c, const struct mqtt_packet *p)
{
    struct bench *b = c->b;
    switch (p->type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNACK)
            break;
        if (p->u.connack.return_code != MQTT_CONNACK_ACCEPTED) {
            uint8_t rc = p->u.connack.return_code;
            bench_conn_fail(c, rc >= MQTT_CONNACK_BAD_CREDENTIALS ? FAIL_AUTH : FAIL_REFUSED,
                            "CONNACK refused the connection (return code %u)", rc);
            return -1;
        }
        hist_add(&b->connect_latency, b->now - c->t_start);
        if (p->u.connack.session_present)
            b->sessions_present++;
        if (c->sub) {
            send_subscribe(c);
            return c->state == CS_FAILED ? -1 : 0;
        }
        c->state = CS_READY;
        bench_conn_ready(b, c);
        return 0;
    case MQTT_SUBACK:
        if (c->state != CS_SUBACK)
            break;
        if (p->u.suback.codes.len < 1 || p->u.suback.codes.data[0] == MQTT_SUBACK_FAILURE) {
            bench_conn_fail(c, FAIL_AUTH, "subscription to '%s' refused", c->sub->filter);
            return -1;
        }
        c->state = CS_READY;
        bench_conn_ready(b, c);
        return 0;
    case MQTT_PUBLISH:
        if (c->state != CS_READY && c->state != CS_SUBACK)
            break;
        got_publish(c, &p->u.publish);
        return 0;
    case MQTT_PUBACK:
        pub_completed(c, p->u.ack.packet_id, SLOT_ACK);
        return 0;
    case MQTT_PUBREC:
        pub_completed(c, p->u.ack.packet_id, SLOT_ACK);
        return 0;
    case MQTT_PUBCOMP:
        pub_completed(c, p->u.ack.packet_id, SLOT_COMP);
        return 0;
    case MQTT_PUBREL:
        return put_ack(c, MQTT_PUBCOMP, p->u.ack.packet_id);
    case MQTT_PINGRESP:
        c->ping_out = false;
        return 0;
    default:
        break;
    }
    bench_conn_fail(c, FAIL_PROTOCOL, "unexpected %s from the broker", mqtt_type_name(p->type));
    return -1;
}

/* Keeps the unparsed tail of the shared buffer for the next read. */
static int keep_partial(struct bench_conn *c, const uint8_t *data, size_t len)
{
    c->in_len = 0;
    if (len == 0)
        return 0;
    if (len > c->in_cap) {
        size_t cap = c->in_cap;
        /* below 2^31 bytes, the doubled capacity fits in_cap's 32 bits */
        uint8_t *p = len <= UINT32_MAX / 2 ? array_grow(c->in, &cap, len, 1, 256) : NULL;
        if (!p) {
            bench_conn_fail(c, FAIL_LOST, "out of memory");
            return -1;
        }
        c->in = p;
        c->in_cap = (uint32_t)cap;
    }
    memmove(c->in, data, len);
    c->in_len = (uint32_t)len;
    return 0;
}

static int grow_rbuf(struct bench *b, size_t need)
{
    size_t cap = b->rbuf_cap;
    while (cap < need)
        cap *= 2;
    uint8_t *p = malloc(cap);
    if (!p)
        return -1;
    free(b->rbuf);
    b->rbuf = p;
    b->rbuf_cap = cap;
    return 0;
}

/* recv() over TLS: the same results (errno EAGAIN when it must wait), or
 * -2 when the connection failed (handled). */
static ssize_t tls_recv(struct bench_conn *c, uint8_t *buf, size_t len)
{
    ssize_t n = bench_tls_recv(c, buf, len);
    if (n >= 0)
        return n;
    if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
        if (n == TLS_WANT_WRITE) {
            c->tls_rd_wants_wr = true;
            want_write(c, true);
        }
        errno = EAGAIN;
        return -1;
    }
    c->b->now = bench_now();
    bench_conn_fail(c, tls_fail_kind(c), "%s", bench_tls_error(c));
    return -2;
}

/* --sub-rate: may subscriber c handle one more PUBLISH now?  Tokens accrue
 * at the rate, up to a burst of 10 ms worth; the limit holds only while
 * publishing lasts, so that the drain is not slowed. */
static bool take_token(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct bench_sub *s = c->sub;
    double rate = b->o.sub_rate;
    if (!s || rate <= 0 || b->phase != PHASE_RUNNING)
        return true;
    double burst = rate / 100 > 1 ? rate / 100 : 1;
    if (!s->t_tokens) {
        s->tokens = burst;
    } else if (b->now > s->t_tokens) {
        s->tokens += (double)(b->now - s->t_tokens) * rate / 1e9;
        if (s->tokens > burst)
            s->tokens = burst;
    }
    s->t_tokens = b->now;
    if (s->tokens >= 1) {
        s->tokens -= 1;
        return true;
    }
    /* Stop reading the socket until the next token: the broker sees a
     * subscriber that is slow, not one that is gone. */
    uint64_t wait = (uint64_t)((1 - s->tokens) * 1e9 / rate) + 1;
    struct timeval tv = {(time_t)(wait / 1000000000u), (suseconds_t)(wait % 1000000000u / 1000)};
    event_del(&c->rd);
    evtimer_add(&s->resume, &tv);
    s->paused = true;
    return false;
}

/* Handles the packets in the shared buffer's first `len` bytes, keeps a
 * partial one (or, when --sub-rate paused us, all that is left) for later,
 * and sends what they produced. */
static void consume_input(struct bench_conn *c, size_t len)
{
    struct bench *b = c->b;
    size_t off = 0;
    const uint8_t *buf = b->rbuf;
    while (off < len) {
        uint8_t first;
        uint32_t rem;
        size_t hl;
        enum mqtt_err e = mqtt_frame_header(buf + off, len - off, 0, &first, &rem, &hl);
        if (e == MQTT_INCOMPLETE)
            break;
        if (e != MQTT_OK) {
            bench_conn_fail(c, FAIL_PROTOCOL, "bad packet from the broker: %s", mqtt_err_str(e));
            return;
        }
        if (hl + rem > len - off)
            break;
        if ((first >> 4) == MQTT_PUBLISH && !take_token(c))
            break;
        struct mqtt_packet p;
        const char *why = NULL;
        e = mqtt_decode(MQTT_LEVEL_311, first, buf + off + hl, rem, &p, &why);
        if (e != MQTT_OK) {
            bench_conn_fail(c, FAIL_PROTOCOL, "bad packet from the broker: %s",
                            why ? why : mqtt_err_str(e));
            return;
        }
        off += hl + rem;
        if (handle_packet(c, &p) != 0)
            return;
    }
    /* The partial packet is copied out before the shared buffer is reused
     * (or replaced by a larger one for a packet bigger than it). */
    if (keep_partial(c, buf + off, len - off) != 0)
        return;
    if (c->in_len >= 2) {
        /* Room for all of a large packet, so that it arrives in few reads. */
        uint8_t first;
        uint32_t rem;
        size_t hl;
        if (mqtt_frame_header(c->in, c->in_len, 0, &first, &rem, &hl) == MQTT_OK &&
            hl + rem + 4096 > b->rbuf_cap && grow_rbuf(b, hl + rem + 4096) != 0) {
            bench_conn_fail(c, FAIL_LOST, "out of memory");
            return;
        }
    }
    if (c->pub && c->state == CS_READY)
        bench_conn_pump(c); /* acks freed window slots: refill, send once */
    else if (c->out_len)
        flush(c);
    /* Publishers this read unblocked, now that it is over. */
    for (size_t i = 0; i < b->n_wake; i++)
        if (b->wake[i]->state == CS_READY)
            bench_conn_pump(b->wake[i]);
    b->n_wake = 0;
    if (b->phase == PHASE_DRAINING)
        bench_check_done(b); /* this may have been the last delivery */
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct bench_conn *c = arg;
    struct bench *b = c->b;
    if (c->state == CS_TLS) {
        b->now = bench_now();
        tls_step(c);
        return;
    }
    if (c->sub && c->sub->paused)
        return; /* a TLS write wakeup while --sub-rate holds reading */
    size_t have = c->in_len;
    if (have + 4096 > b->rbuf_cap && grow_rbuf(b, have + 4096) != 0) {
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return;
    }
    if (have)
        memcpy(b->rbuf, c->in, have);
    /* Over WebSocket the frames are read into a buffer of their own and
     * what they carry decoded after the carried partial packet. */
    uint8_t *to = b->rbuf + have;
    size_t room = b->rbuf_cap - have;
    if (c->ws) {
        room -= BENCH_WS_SLACK;
        if (b->ws_raw_cap < room) {
            free(b->ws_raw);
            b->ws_raw_cap = 0;
            if (!(b->ws_raw = malloc(room))) {
                bench_conn_fail(c, FAIL_LOST, "out of memory");
                return;
            }
            b->ws_raw_cap = room;
        }
        to = b->ws_raw;
    }
    ssize_t n = c->ssl ? tls_recv(c, to, room) : recv(fd, to, room, 0);
    b->now = bench_now();
    if (n <= 0) {
        if (n == -2)
            return;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (c->state == CS_CLOSING) {
            close_and_count(c);
            return;
        }
        if (n == 0)
            bench_conn_fail(c, c->state == CS_READY ? FAIL_LOST : FAIL_REFUSED,
                            "the broker closed the connection");
        else
            bench_conn_fail(c, FAIL_LOST, "recv: %s", strerror(errno));
        return;
    }
    c->last_rx = b->now;
    if (c->state == CS_CLOSING) {
        c->in_len = 0; /* after our DISCONNECT nothing is answered */
        return;
    }
    size_t got = (size_t)n;
    if (c->ws) {
        int r = bench_ws_input(c, to, (size_t)n, b->rbuf + have, &got);
        if (r < 0)
            return;
        if (r == 1)
            send_connect(c);
        if (c->state == CS_WS)
            return; /* more of the answer to come */
    }
    consume_input(c, have + got);
}

/* --sub-rate: the next token is due (or publishing ended): handle what was
 * read and held, then read the socket again. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench_conn *c = arg;
    struct bench *b = c->b;
    if (!c->sub->paused || c->fd < 0)
        return;
    c->sub->paused = false;
    b->now = bench_now();
    event_add(&c->rd, NULL);
    if (c->state == CS_CLOSING) {
        c->in_len = 0;
        return;
    }
    size_t have = c->in_len;
    if (have + 4096 > b->rbuf_cap && grow_rbuf(b, have + 4096) != 0) {
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return;
    }
    memcpy(b->rbuf, c->in, have);
    consume_input(c, have);
    /* Over TLS, records already decrypted would not wake the socket. */
    if (c->fd >= 0 && c->ssl && !c->sub->paused)
        on_read(c->fd, EV_READ, c);
}

void bench_conn_unpause(struct bench_conn *c)
{
    if (!c->sub || !c->sub->paused)
        return;
    /* Deferred: the caller may be inside another connection's read, which
     * owns the shared buffer. */
    struct timeval now = {0, 0};
    evtimer_add(&c->sub->resume, &now);
}

/* --rate: each publisher sends rate/pubs msgs/s; message k of publisher i
 * is due at t0(i) + k / (rate/pubs), and the publishers' t0 are spread over
 * one period, so together they send one message every 1/rate s. */
static double pub_rate(const struct bench *b)
{
    return b->o.pubs ? b->o.rate / (double)b->o.pubs : 0;
}

static uint64_t due_time(const struct bench_conn *c, uint64_t k)
{
    return bench_pace_due_time(c->pub->t0, pub_rate(c->b), k);
}

uint64_t bench_conn_due(const struct bench_conn *c, uint64_t now)
{
    const struct bench_pub *p = c->pub;
    if (!p || c->b->o.rate <= 0 || !p->t0)
        return 0;
    return bench_pace_due_count(p->t0, pub_rate(c->b), now);
}

/* Writes one PUBLISH of publisher c into its output buffer. */
static int emit_publish(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct bench_pub *p = c->pub;
    /* Open loop: a message that waited for the window (or for us) is
     * stamped with the time it was due, so that the wait counts in its
     * latency instead of vanishing from it (no coordinated omission). */
    uint64_t stamp = b->now, lag = 0;
    if (b->o.rate > 0) {
        uint64_t due = due_time(c, p->sent);
        if (due < stamp) {
            lag = stamp - due;
            stamp = due;
        }
        hist_add(&b->send_lag, lag);
    }
    uint32_t t = p->next_topic;
    if (++p->next_topic == b->o.topics)
        p->next_topic = 0;
    uint32_t sid = c->index * (uint32_t)b->o.topics + t;
    struct bench_stream *s = &b->streams[sid];
    size_t need = s->prefix_len + b->o.payload;
    if (out_reserve(c, need) != 0)
        return -1;
    uint8_t *w = c->out + c->out_len;
    memcpy(w, b->prefixes + s->prefix_off, s->prefix_len);
    if (b->o.qos > 0) {
        uint16_t pid = p->next_pid;
        w[s->prefix_len - 2] = (uint8_t)(pid >> 8);
        w[s->prefix_len - 1] = (uint8_t)pid;
        struct pub_slot *slot = &p->slots[(pid - 1) % b->o.inflight];
        slot->pid = pid;
        slot->state = SLOT_ACK;
        slot->stream = sid;
        slot->seq = s->sent;
        slot->sent_ns = stamp;
        p->in_window++;
        b->in_window_total++;
        p->next_pid = pid == p->pid_limit ? 1 : (uint16_t)(pid + 1);
    }
    memcpy(w + s->prefix_len, b->payload, b->o.payload);
    if (b->o.payload >= BENCH_STAMP_SIZE) {
        struct bench_stamp st = {BENCH_MAGIC, sid, s->sent, b->run_id, stamp,
                                 lag < UINT32_MAX ? (uint32_t)lag : UINT32_MAX, 0};
        memcpy(w + s->prefix_len, &st, sizeof st);
    }
    c->out_len += need;
    p->outstanding += s->fanout;
    s->sent++;
    p->sent++;
    b->published++;
    if (b->o.qos == 0) {
        p->acked++;
        b->completed++;
        b->t_last_pub = b->now;
    }
    return 0;
}

/* Fills the output buffer with what may go out now.  Returns 1 if it
 * stopped only because the buffer is full (more could follow at once), 0
 * otherwise, -1 if the connection failed. */
static int pub_fill(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct bench_pub *p = c->pub;
    const struct bench_options *o = &b->o;
    if (b->phase != PHASE_RUNNING || p->finished)
        return 0;
    uint64_t due = o->rate > 0 ? bench_conn_due(c, b->now) : UINT64_MAX;
    for (;;) {
        if (o->count_set && p->sent >= o->count) {
            p->finished = true;
            b->pubs_finished++;
            return 0;
        }
        if (p->sent >= due)
            return 0;
        if (o->qos > 0 && (p->in_window >= o->inflight ||
                           p->slots[(p->next_pid - 1) % o->inflight].state != SLOT_FREE))
            return 0;
        if (c->out_len - c->out_off >= OUT_HIGH)
            return 1;
        /* The backlog closes the loop; a fixed rate is open loop. */
        if (o->backlog && o->rate <= 0 && p->outstanding &&
            p->outstanding + b->streams[c->index * o->topics + p->next_topic].fanout > p->limit) {
            p->blocked = true;
            return 0;
        }
        if (emit_publish(c) != 0)
            return -1;
    }
}

void bench_conn_pump(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct bench_pub *p = c->pub;
    int more = 0;
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        more = pub_fill(c);
        if (more < 0 || flush(c) != 0)
            return;
        if (c->out_len || !more)
            break;
    }
    want_write(c, c->out_len > 0 || more > 0);
    if (p->finished || b->phase != PHASE_RUNNING) {
        bench_check_done(b);
        return;
    }
    if (b->o.rate > 0) {
        /* Wake up when the next message is due (unless the window is what
         * holds it back: then an ack calls us). */
        uint64_t next = due_time(c, p->sent);
        if (next > b->now) {
            uint64_t d = next - b->now;
            struct timeval tv = {(time_t)(d / 1000000000u), (suseconds_t)(d % 1000000000u / 1000)};
            evtimer_add(&p->pace, &tv);
        }
    }
}

void bench_conn_catch_up(struct bench_conn *c)
{
    if (c->pub && c->state == CS_READY && c->b->phase == PHASE_RUNNING && pub_fill(c) >= 0)
        flush(c);
}

void bench_conn_tick(struct bench_conn *c)
{
    struct bench *b = c->b;
    uint64_t timeout = (uint64_t)b->o.timeout * 1000000000u;
    switch (c->state) {
    case CS_TCP:
    case CS_TLS:
    case CS_WS:
    case CS_CONNACK:
    case CS_SUBACK:
        if (b->now - c->t_start > timeout)
            bench_conn_fail(c, FAIL_TIMEOUT, "no %s within %lu s",
                            c->state == CS_TCP       ? "TCP connection"
                            : c->state == CS_TLS     ? "TLS handshake"
                            : c->state == CS_WS      ? "WebSocket upgrade"
                            : c->state == CS_CONNACK ? "CONNACK"
                                               : "SUBACK",
                      b->o.timeout);
        break;
    case CS_READY:
        /* Ping at three quarters of the keep alive: the tick is coarse and
         * the broker allows one and a half. */
        if (b->o.keepalive && !c->ping_out &&
            b->now - c->last_tx >= (uint64_t)b->o.keepalive * 750000000u) {
            struct mqtt_packet ping = {.type = MQTT_PINGREQ};
            if (put_packet(c, &ping) == 0) {
                c->ping_out = true;
                b->pings++;
                flush(c);
            }
        } else if (c->ping_out && b->o.keepalive &&
                   b->now - c->last_rx > (uint64_t)b->o.keepalive * 2000000000u) {
            bench_conn_fail(c, FAIL_LOST, "no answer to PINGREQ");
        }
        break;
    case CS_CLOSING:
        if (b->now - c->t_start > CLOSE_WAIT_NS) {
            close_and_count(c);
        }
        break;
    default:
        break;
    }
}

void bench_conn_disconnect(struct bench_conn *c)
{
    struct bench *b = c->b;
    switch (c->state) {
    case CS_CONNACK:
    case CS_SUBACK:
    case CS_READY: {
        if (c->pub)
            evtimer_del(&c->pub->pace);
        bench_conn_unpause(c); /* what arrives now is read, and not answered */
        struct mqtt_packet d = {.type = MQTT_DISCONNECT};
        if (put_packet(c, &d) != 0)
            return;
        c->state = CS_CLOSING;
        c->t_start = b->now; /* the close wait starts now */
        flush(c);
        return;
    }
    case CS_WAITING:
    case CS_TCP:
    case CS_TLS:
    case CS_WS:
        close_and_count(c);
        return;
    default:
        return;
    }
}

void bench_conn_close(struct bench_conn *c)
{
    if (c->ssl)
        bench_tls_detach(c);
    c->tls_rd_wants_wr = false;
    bench_ws_free(c);
    if (c->fd >= 0) {
        event_del(&c->rd);
        event_del(&c->wr);
        close(c->fd);
        c->fd = -1;
    }
    if (c->pub)
        evtimer_del(&c->pub->pace);
    if (c->sub) {
        evtimer_del(&c->sub->resume);
        c->sub->paused = false;
    }
    c->wr_added = false;
    if (c->state != CS_FAILED)
        c->state = CS_CLOSED;
}

void bench_conn_free(struct bench_conn *c)
{
    bench_conn_close(c);
    if (c->pub) {
        free(c->pub->slots);
        track_free(&c->pub->acked_set);
        free(c->pub);
    }
    if (c->sub) {
        free(c->sub->filter);
        track_free(&c->sub->track);
        free(c->sub);
    }
    free(c->in);
    free(c->out);
}
