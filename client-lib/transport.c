/*
 * transport.c - TCP transport on a bufferevent.  Packets are framed with
 * the codec's mqtt_frame_header, so an oversized packet is refused from its
 * fixed header before its body is buffered.  Owners may close the
 * transport from inside its own callbacks; the memory then goes away when
 * the outermost callback returns.
 */
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "mqtt_codec.h"
#include "petrel.h"
#include "resolver.h"
#include "tls_client.h"
#include "ws_client.h"

/* Output beyond this makes can_write false; the session then keeps
 * publications in its queue (bounded) instead of in socket buffers
 * (unbounded). */
#define HIGH_WATER (256u * 1024u)

struct transport {
    struct event_base *base;
    struct bufferevent *bev;
    struct evutil_addrinfo *addrs;  /* resolved list, kept until connected */
    struct evutil_addrinfo *next;   /* next address to try */
    struct resolver_lookup *lookup; /* the host name being looked up */
    bool opening;                   /* inside transport_open */
    uint32_t max_packet;
    struct transport_events ev;
    struct event *later;            /* deferred "closed" of a graceful close */
    int depth;                      /* nesting of our own callbacks */
    bool dead;                      /* transport_close called */
    bool connected;
    bool flushing;
    bool reading;
    int last_error;
    bool use_tls;
    bool tls_started;               /* TCP is up, the handshake runs */
    struct transport_tls tls;
    struct bufferevent *tls_bev;    /* the TLS bufferevent: bev, or under the WebSocket one */
    const char *host;               /* for the WebSocket upgrade request */
    uint16_t port;
    const char *ws_path;            /* MQTT over WebSocket to this path; NULL = plain */
    bool ws_started;                /* TCP (and TLS) are up, the upgrade runs */
    int ws_failure;                 /* why the WebSocket layer ended it (ws_client.h) */
    struct evbuffer_cb_entry *tcp_watch; /* graceful close: TCP output drains */
};

static struct evbuffer *tcp_output(struct transport *t);
static void readcb(struct bufferevent *bev, void *arg);
static void writecb(struct bufferevent *bev, void *arg);
static void eventcb(struct bufferevent *bev, short what, void *arg);

static int socket_error_code(int e)
{
    switch (e) {
    case ECONNREFUSED: return PETREL_ECONNREFUSED;
    case ENOMEM:
    case ENOBUFS: return PETREL_ENOMEM;
    default: return PETREL_ENETWORK;
    }
}

static void really_free(struct transport *t)
{
    struct evbuffer *tcp = t->bev ? tcp_output(t) : NULL;
    if (tcp && t->tcp_watch)
        evbuffer_remove_cb_entry(tcp, t->tcp_watch);
    if (t->bev)
        bufferevent_free(t->bev);
    if (t->later)
        event_free(t->later);
    if (t->addrs)
        evutil_freeaddrinfo(t->addrs);
    resolver_abandon(t->lookup);
    free(t);
}

/* Brackets around every libevent callback: a transport closed inside one
 * is freed on the way out. */
static void enter(struct transport *t)
{
    t->depth++;
}

static bool leave(struct transport *t)
{
    if (--t->depth == 0 && t->dead) {
        really_free(t);
        return false;
    }
    return !t->dead;
}

/* Starts connecting to the next address that accepts a connect() call.
 * Returns 0, or a petrel error when every address failed at once. */
static int try_next(struct transport *t)
{
    int err = t->last_error ? t->last_error : PETREL_ENETWORK;
    while (t->next) {
        struct evutil_addrinfo *ai = t->next;
        t->next = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = socket_error_code(errno);
            continue;
        }
        if (connect(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = socket_error_code(errno);
            close(fd);
            continue;
        }
        struct bufferevent *bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            close(fd);
            err = PETREL_ENOMEM;
            continue;
        }
        bufferevent_setcb(bev, readcb, writecb, eventcb, t);
        /* With no address, libevent waits for the connect already in
         * progress and reports its outcome through eventcb with errno set
         * from SO_ERROR. */
        if (bufferevent_socket_connect(bev, NULL, 0) != 0) {
            bufferevent_free(bev);
            err = PETREL_ENETWORK;
            continue;
        }
        t->bev = bev;
        return 0;
    }
    t->last_error = err;
    return err;
}

static void report_closed(struct transport *t, int reason);

/* The resolver's answer: connect to each address in turn.  Inside
 * transport_open (a name from /etc/hosts) it only keeps the outcome. */
static void resolved(void *arg, struct evutil_addrinfo *addrs, int err)
{
    struct transport *t = arg;
    t->lookup = NULL;
    t->addrs = t->next = addrs;
    if (!addrs)
        t->last_error = err;
    if (t->opening)
        return;
    enter(t);
    if (t->flushing) {
        ; /* closed gracefully meanwhile: closed(PETREL_OK) is on its way */
    } else if (!addrs) {
        report_closed(t, err);
    } else {
        if (t->ev.resolved)
            t->ev.resolved(t->ev.ctx);
        int rc = t->dead ? 0 : try_next(t);
        if (rc != 0)
            report_closed(t, rc);
    }
    leave(t);
}

struct transport *transport_open(struct event_base *base, struct resolver *dns, const char *host,
                                 uint16_t port, uint32_t max_packet,
                                 const struct transport_tls *tls, const char *ws_path,
                                 const struct transport_events *ev, int *err)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    t->base = base;
    t->max_packet = max_packet;
    t->ev = *ev;
    t->reading = true;
    t->host = host;
    t->port = port;
    t->ws_path = ws_path;
    if (tls) {
        t->use_tls = true;
        t->tls = *tls;
    }

    /* A numeric address needs no resolver (and getaddrinfo does not
     * block on one). */
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICHOST;
    if (evutil_getaddrinfo(host, service, &hints, &t->addrs) != 0 || !t->addrs) {
        t->addrs = NULL;
        if (!dns) {
            free(t);
            *err = PETREL_ERESOLVE;
            return NULL;
        }
        t->opening = true;
        t->lookup = resolver_lookup(dns, host, port, resolved, t);
        t->opening = false;
        if (t->lookup)
            return t; /* the answer comes from the loop */
        if (!t->addrs) {
            *err = t->last_error;
            free(t);
            return NULL;
        }
        t->last_error = 0;
    }
    t->next = t->addrs;
    int rc = try_next(t);
    if (rc != 0) {
        really_free(t);
        *err = rc;
        return NULL;
    }
    return t;
}

bool transport_resolving(const struct transport *t)
{
    return t->lookup != NULL;
}

int transport_write(struct transport *t, const void *data, size_t len)
{
    if (t->dead || !t->connected || t->flushing)
        return PETREL_ESTATE;
    if (evbuffer_add(bufferevent_get_output(t->bev), data, len) != 0)
        return PETREL_ENOMEM;
    return 0;
}

bool transport_can_write(const struct transport *t)
{
    return !t->dead && t->connected && !t->flushing &&
           evbuffer_get_length(bufferevent_get_output(t->bev)) < HIGH_WATER;
}

void transport_set_reading(struct transport *t, bool reading)
{
    t->reading = reading;
    if (!t->dead && t->connected)
        transport_bev_reading(t->bev, reading);
}

void transport_bev_reading(struct bufferevent *bev, bool reading)
{
    if (reading) {
        bufferevent_enable(bev, EV_READ);
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    } else {
        bufferevent_disable(bev, EV_READ);
    }
}

static void report_closed(struct transport *t, int reason)
{
    if (t->dead)
        return;
    if (t->bev)
        bufferevent_disable(t->bev, EV_READ | EV_WRITE);
    t->ev.closed(t->ev.ctx, reason);
}

static void latercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct transport *t = arg;
    enter(t);
    report_closed(t, PETREL_OK);
    leave(t);
}

/* Reports closed(PETREL_OK) from the loop, not from inside the caller. */
static void report_later(struct transport *t)
{
    if (!t->later)
        t->later = event_new(t->base, -1, 0, latercb, t);
    if (t->later)
        event_active(t->later, EV_TIMEOUT, 0);
}

/* With TLS or WebSocket, the output drained into the TCP bufferevent at
 * the bottom, and may still sit there: closing now would lose the
 * DISCONNECT. */
static struct evbuffer *tcp_output(struct transport *t)
{
    struct bufferevent *b = t->bev, *under;
    if (!b || !(t->tls_started || t->ws_started))
        return NULL;
    while ((under = bufferevent_get_underlying(b)))
        b = under;
    return b != t->bev ? bufferevent_get_output(b) : NULL;
}

static void tcp_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)info;
    if (evbuffer_get_length(buf) == 0)
        report_later(arg);
}

/* The output is empty: closed(PETREL_OK) once TCP has taken it all; at
 * once if `now` and nothing waits under TLS, else from the loop. */
static void flushed(struct transport *t, bool now)
{
    struct evbuffer *tcp = tcp_output(t);
    if (tcp && evbuffer_get_length(tcp) > 0) {
        if (!t->tcp_watch)
            t->tcp_watch = evbuffer_add_cb(tcp, tcp_drained, t);
        if (t->tcp_watch)
            return;
    }
    if (now)
        report_closed(t, PETREL_OK);
    else
        report_later(t);
}

void transport_close_gracefully(struct transport *t)
{
    if (t->dead || t->flushing)
        return;
    t->flushing = true;
    /* Nothing more to read: answers to a DISCONNECT do not exist. */
    if (t->bev)
        bufferevent_disable(t->bev, EV_READ);
    if (t->connected && evbuffer_get_length(bufferevent_get_output(t->bev)) > 0) {
        /* writecb runs when the output is empty. */
        bufferevent_setwatermark(t->bev, EV_WRITE, 0, 0);
        return;
    }
    if (t->connected)
        flushed(t, false);
    else
        report_later(t);
}

void transport_close(struct transport *t)
{
    if (!t || t->dead)
        return;
    t->dead = true;
    resolver_abandon(t->lookup);
    t->lookup = NULL;
    if (t->depth > 0) {
        /* Inside one of our callbacks: stop everything now, free later. */
        if (t->bev) {
            bufferevent_disable(t->bev, EV_READ | EV_WRITE);
            bufferevent_setcb(t->bev, NULL, NULL, NULL, NULL);
        }
        if (t->later)
            event_del(t->later);
        return;
    }
    really_free(t);
}

static void readcb(struct bufferevent *bev, void *arg)
{
    struct transport *t = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(t);
    while (!t->dead && !t->flushing && t->reading) {
        size_t avail = evbuffer_get_length(in);
        if (avail < 2)
            break;
        uint8_t hdr[MQTT_MAX_FIXED_HEADER];
        ev_ssize_t n = evbuffer_copyout(in, hdr, avail < sizeof hdr ? avail : sizeof hdr);
        if (n < 2)
            break;
        uint8_t first;
        uint32_t remaining;
        size_t hlen;
        enum mqtt_err err = mqtt_frame_header(hdr, (size_t)n, t->max_packet, &first, &remaining,
                                              &hlen);
        if (err == MQTT_INCOMPLETE)
            break;
        if (err != MQTT_OK) {
            report_closed(t, err == MQTT_E_TOO_LARGE ? PETREL_ETOO_LARGE : PETREL_EPROTOCOL);
            break;
        }
        size_t total = hlen + remaining;
        if (avail < total)
            break;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)total);
        if (!p) {
            report_closed(t, PETREL_ENOMEM);
            break;
        }
        t->ev.packet(t->ev.ctx, first, p + hlen, remaining);
        if (t->dead)
            break;
        evbuffer_drain(in, total);
    }
    leave(t);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    struct transport *t = arg;
    enter(t);
    if (t->flushing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            flushed(t, true);
    } else if (t->connected) {
        t->ev.drained(t->ev.ctx);
    }
    leave(t);
}

/* TCP (and TLS) are up: the owner may send. */
static void finish_connect(struct transport *t, struct bufferevent *bev)
{
    t->connected = true;
    bufferevent_setwatermark(bev, EV_WRITE, HIGH_WATER / 2, 0);
    bufferevent_enable(bev, t->reading ? EV_READ | EV_WRITE : EV_WRITE);
    if (!t->reading)
        bufferevent_disable(bev, EV_READ); /* enabled for the TLS handshake */
    t->ev.connected(t->ev.ctx);
}

void transport_tls_info(const struct transport *t, char *out, size_t len)
{
    if (t->use_tls && t->connected && t->tls_bev)
        tlsc_describe(t->tls_bev, out, len);
    else if (len)
        out[0] = '\0';
}

/* TCP (and TLS) are up: the WebSocket upgrade request goes out, and the
 * filter's BEV_EVENT_CONNECTED says when the server took it. */
static void start_ws(struct transport *t, struct bufferevent *bev)
{
    int err = PETREL_OK;
    /* A frame may hold a packet and a few small ones besides. */
    struct bufferevent *ws = wsc_start(bev, t->host, t->port, t->ws_path,
                                       (uint64_t)t->max_packet + 4096, &t->ws_failure, &err);
    if (!ws) {
        report_closed(t, err);
        return;
    }
    t->bev = ws;
    t->ws_started = true;
    bufferevent_setcb(ws, readcb, writecb, eventcb, t);
    bufferevent_enable(ws, EV_READ | EV_WRITE);
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct transport *t = arg;
    int e = EVUTIL_SOCKET_ERROR();
    enter(t);
    if (!t->connected && t->ws_started) {
        if (what & BEV_EVENT_CONNECTED)
            finish_connect(t, bev);
        else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
            report_closed(t, t->ws_failure ? t->ws_failure : PETREL_EPROTOCOL);
        leave(t);
        return;
    }
    if (!t->connected && t->tls_started) {
        if (what & BEV_EVENT_CONNECTED) {
            if (t->ws_path)
                start_ws(t, bev);
            else
                finish_connect(t, bev);
        } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
            /* Another address would present the same certificate. */
            report_closed(t, tlsc_failure(bev, t->tls.server_name));
        }
        leave(t);
        return;
    }
    if (!t->connected) {
        if (what & BEV_EVENT_CONNECTED) {
            evutil_freeaddrinfo(t->addrs);
            t->addrs = t->next = NULL;
            int one = 1;
            /* MQTT packets are small and latency-bound. */
            setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (t->use_tls) {
                int err = PETREL_OK;
                struct bufferevent *ssl = tlsc_start(t->base, bev, t->tls.ctx,
                                                     t->tls.server_name, t->tls.verify, &err);
                if (!ssl) {
                    report_closed(t, err);
                } else {
                    t->bev = t->tls_bev = ssl;
                    t->tls_started = true;
                    bufferevent_setcb(ssl, readcb, writecb, eventcb, t);
                    bufferevent_enable(ssl, EV_READ | EV_WRITE);
                }
                leave(t);
                return;
            }
            if (t->ws_path)
                start_ws(t, bev);
            else
                finish_connect(t, bev);
        } else {
            t->last_error = socket_error_code(e);
            bufferevent_free(bev);
            t->bev = NULL;
            int rc = try_next(t);
            if (rc != 0)
                t->ev.closed(t->ev.ctx, rc);
        }
        leave(t);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        int reason;
        if (t->flushing)
            reason = PETREL_OK;
        else if (t->ws_failure)
            reason = t->ws_failure; /* a close frame, or a protocol violation */
        else if (t->use_tls && (what & BEV_EVENT_ERROR) && (reason = tlsc_broken(t->tls_bev)) != 0)
            ; /* an alert from the server */
        else if (what & BEV_EVENT_EOF)
            reason = PETREL_ECONNLOST;
        else
            reason = e == ECONNRESET || e == EPIPE ? PETREL_ECONNLOST : socket_error_code(e);
        report_closed(t, reason);
    }
    leave(t);
}
