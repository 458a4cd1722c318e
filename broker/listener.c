/*
 * listener.c - listening sockets and accepted-socket tuning.
 *
 * Accepted sockets get TCP keepalive and TCP_USER_TIMEOUT: MQTT keep alive
 * finds silent clients, but a client with keep alive 0, or a peer that
 * vanished while we had unacknowledged data queued to it, is only found by
 * the kernel.  With the values below such a peer is dropped within about two
 * minutes.
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "conn_ws.h"
#include "log.h"
#include "memory_budget.h"
#include "source_limit.h"
#include "tls.h"
#include "ws_transport.h"

#define TCP_KEEPALIVE_IDLE_S 60
#define TCP_KEEPALIVE_INTERVAL_S 10
#define TCP_KEEPALIVE_COUNT 3
#define TCP_USER_TIMEOUT_MS 60000
#define LISTEN_BACKLOG 1024
/* After an accept error such as EMFILE, accepting pauses this long so the
 * loop does not spin on a connection it cannot take. */
#define ACCEPT_PAUSE_MS 500

struct listener {
    struct listener *next;
    struct evconnlistener *ev;
    struct event *resume;
    char name[80];
    bool loopback;              /* bound to 127.0.0.0/8 or ::1 */
    uint8_t allow_anonymous;    /* enum anonymous_policy */
    uint32_t max_connections;   /* 0 = only the global limit */
    uint32_t n_conns;
    struct ssl_ctx_st *tls;     /* NULL for plain MQTT; replaced on SIGHUP
                                   (each SSL holds a reference to its own) */
    bool tls_identity;          /* use_identity_as_username */
    struct listener_tls_conf tls_conf; /* for reloading */
    char origin[160];           /* config file:line, for messages */
    bool is_ws;                 /* MQTT over WebSocket (ws_transport.h) */
    struct ws_transport_conf ws;  /* its strings point at the two below */
    char ws_path[128];
    char ws_origins[1024];
};

static struct log_ratelimit refused_log, listener_refused_log, accept_error_log, source_refused_log;

static void tune_socket(int fd)
{
    int one = 1, idle = TCP_KEEPALIVE_IDLE_S, intvl = TCP_KEEPALIVE_INTERVAL_S,
        cnt = TCP_KEEPALIVE_COUNT;
    unsigned int user_timeout = TCP_USER_TIMEOUT_MS;
    /* Failures only lose an optimisation or an early dead-peer signal. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

/* A WebSocket connection.  ws: a plain one, made WebSocket by accept_cb
 * (conn_ws.h).  wss: the TLS bufferevent under the WebSocket filter, and
 * the connection on top as on any bufferevent. */
static struct conn *ws_conn_new(struct listener *l, int fd, const struct sockaddr *addr)
{
    l->ws.max_frame = (uint64_t)broker.cfg.max_packet_size + WS_FRAME_SLACK;
    if (!l->tls)
        return conn_new(fd, addr, NULL);
    struct bufferevent *bev = tls_accept_bufferevent(broker.base, fd, l->tls);
    if (!bev)
        return NULL; /* tls_accept_bufferevent closed it */
    struct bufferevent *top = ws_transport_wrap(bev, &l->ws);
    return top ? conn_new_bufferevent(top) : NULL;
}

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)ev;
    (void)addrlen; /* the address family tells its length */
    struct listener *l = arg;
    if (l->max_connections && l->n_conns >= l->max_connections) {
        broker.stats.listener_refused++;
        long n = log_ratelimit_check(&listener_refused_log, 10);
        if (n >= 0)
            log_warning("connection to %s refused: its max_connections (%u) reached%s", l->name,
                        l->max_connections, log_suppressed(n));
        evutil_closesocket(fd);
        return;
    }
    if (broker.cfg.max_connections && broker.n_conns >= broker.cfg.max_connections) {
        broker.stats.connections_refused++;
        long n = log_ratelimit_check(&refused_log, 10);
        if (n >= 0)
            log_warning("connection refused: max_connections (%u) reached%s",
                        broker.cfg.max_connections, log_suppressed(n));
        evutil_closesocket(fd);
        return;
    }
    if (!memory_budget_admit()) {
        evutil_closesocket(fd);
        return;
    }
    if (!source_limit_admit(addr)) {
        broker.stats.source_refused++;
        long n = log_ratelimit_check(&source_refused_log, 10);
        if (n >= 0)
            log_warning("connection refused: max_connections_per_source (%u) reached by its "
                        "address%s", broker.cfg.max_connections_per_source, log_suppressed(n));
        evutil_closesocket(fd);
        return;
    }
    tune_socket(fd);
    struct conn *c = l->is_ws ? ws_conn_new(l, fd, addr) : conn_new(fd, addr, l->tls);
    if (!c) {
        log_error("out of memory accepting a connection");
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        source_limit_release(addr->sa_family, addr->sa_family == AF_INET6
                                                  ? (const uint8_t *)&in6->sin6_addr
                                                  : (const uint8_t *)&in->sin_addr);
        return;
    }
    c->listener = l;
    l->n_conns++;
    if (l->is_ws && !l->tls && conn_ws_attach(c, &l->ws) != 0)
        conn_close(c, "out of memory", false);
}

void listener_conn_closed(struct conn *c)
{
    if (c->listener) {
        c->listener->n_conns--;
        source_limit_release(c->peer.family, c->peer.addr);
    }
    c->listener = NULL;
}

bool listener_allows_anonymous(const struct listener *l)
{
    uint8_t policy = broker.cfg.allow_anonymous;
    if (l && l->allow_anonymous != ANON_INHERIT)
        policy = l->allow_anonymous;
    switch (policy) {
    case ANON_TRUE: return true;
    case ANON_FALSE: return false;
    default: return !l || l->loopback;
    }
}

const struct listener *listener_next(const struct listener *l)
{
    return l ? l->next : broker.listeners;
}

const char *listener_name(const struct listener *l)
{
    return l ? l->name : "";
}

const char *listener_transport(const struct listener *l)
{
    if (!l)
        return "tcp";
    if (l->is_ws)
        return l->tls ? "wss" : "ws";
    return l->tls ? "tls" : "tcp";
}

bool listener_uses_identity(const struct listener *l)
{
    return l && l->tls_identity;
}

/* "petreld.conf:12: listen 0.0.0.0:8883" - where a listener came from. */
static void describe(char *out, size_t len, const char *origin, const char *addr)
{
    snprintf(out, len, "%s%slisten %s", origin, origin[0] ? ": " : "", addr);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    evconnlistener_enable(l->ev);
}

static void accept_error_cb(struct evconnlistener *ev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    long n = log_ratelimit_check(&accept_error_log, 10);
    if (n >= 0)
        log_error("accept on %s failed: %s%s", l->name, evutil_socket_error_to_string(err),
                  log_suppressed(n));
    evconnlistener_disable(ev);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(l->resume, &tv);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
    }
}

static int open_one(const struct listener_conf *lc)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, lc->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(lc->port);
        sslen = sizeof *a4;
    } else if (inet_pton(AF_INET6, lc->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(lc->port);
        sslen = sizeof *a6;
    } else {
        log_error("listen %s:%u: not a numeric address", lc->host, lc->port);
        return -1;
    }

    /* Certificates are checked before anything listens: a broken one stops
     * the start with the file and OpenSSL's reason. */
    struct ssl_ctx_st *tls = NULL;
    if (lc->tls.enabled) {
        char err[768], where[400], addr[96];
        snprintf(addr, sizeof addr, "%s%s%s:%u", ss.ss_family == AF_INET6 ? "[" : "", lc->host,
                 ss.ss_family == AF_INET6 ? "]" : "", lc->port);
        describe(where, sizeof where, lc->origin, addr);
        tls = tls_server_ctx_new(&lc->tls, err, sizeof err);
        if (!tls) {
            log_error("%s: %s", where, err);
            return -1;
        }
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        SSL_CTX_free(tls);
        log_error("listen %s:%u: socket: %s", lc->host, lc->port, strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* "::" must not also take the IPv4 port: an operator who lists both
     * 0.0.0.0 and :: means two sockets. */
    if (ss.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        log_error("listen %s%s%s:%u: %s", ss.ss_family == AF_INET6 ? "[" : "", lc->host,
                  ss.ss_family == AF_INET6 ? "]" : "", lc->port, strerror(errno));
        close(fd);
        SSL_CTX_free(tls);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0)
        bound = ss;

    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        SSL_CTX_free(tls);
        return -1;
    }
    l->tls = tls;
    l->tls_identity = lc->tls.use_identity_as_username;
    l->tls_conf = lc->tls;
    snprintf(l->origin, sizeof l->origin, "%s", lc->origin);
    format_addr(&bound, l->name, sizeof l->name);
    l->loopback = is_loopback(&bound);
    l->allow_anonymous = lc->allow_anonymous;
    l->max_connections = lc->max_connections;
    if (lc->ws) {
        l->is_ws = true;
        snprintf(l->ws_path, sizeof l->ws_path, "%s", lc->ws_path);
        snprintf(l->ws_origins, sizeof l->ws_origins, "%s", lc->allowed_origins);
        l->ws.path = l->ws_path;
        l->ws.origins = l->ws_origins;
    }
    l->ev = evconnlistener_new(broker.base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                               -1, fd);
    l->resume = evtimer_new(broker.base, resume_cb, l);
    if (!l->ev || !l->resume) {
        if (l->ev)
            evconnlistener_free(l->ev);
        else
            close(fd);
        if (l->resume)
            event_free(l->resume);
        SSL_CTX_free(l->tls);
        free(l);
        return -1;
    }
    evconnlistener_set_error_cb(l->ev, accept_error_cb);
    l->next = broker.listeners;
    broker.listeners = l;
    log_notice("listening on %s", l->name);
    if (l->tls)
        log_notice("listener %s: TLS (%s or later%s%s)", l->name,
                   lc->tls.min_version == TLS_MIN_1_3 ? "TLSv1.3" : "TLSv1.2",
                   lc->tls.require_certificate ? ", client certificate required" : "",
                   l->tls_identity ? ", certificate CN is the user name" : "");
    if (l->is_ws)
        log_notice("listener %s: MQTT over WebSocket (%s), path %s, origins %s", l->name,
                   listener_transport(l), l->ws_path, l->ws_origins[0] ? l->ws_origins : "any");
    char limit[48] = "";
    if (l->max_connections)
        snprintf(limit, sizeof limit, ", max_connections %u", l->max_connections);
    log_info("listener %s: anonymous clients %s%s", l->name,
             listener_allows_anonymous(l) ? "allowed" : "refused", limit);
    if (!listener_allows_anonymous(l) && !auth_current())
        log_warning("listener %s refuses anonymous clients and there is no password_file: "
                    "no client can connect there (set password_file, or allow_anonymous = "
                    "true)", l->name);
    return 0;
}

int listeners_open(void)
{
    for (size_t i = 0; i < broker.cfg.n_listeners; i++) {
        if (open_one(&broker.cfg.listeners[i]) != 0) {
            listeners_close();
            return -1;
        }
    }
    return 0;
}

void listeners_close(void)
{
    /* Connections outlive the listeners at shutdown: they must not count
     * themselves out of freed ones. */
    for (struct conn *c = broker.conns; c; c = c->next)
        c->listener = NULL;
    struct listener *l = broker.listeners;
    while (l) {
        struct listener *next = l->next;
        evconnlistener_free(l->ev);
        event_free(l->resume);
        SSL_CTX_free(l->tls);
        free(l);
        l = next;
    }
    broker.listeners = NULL;
}

void listeners_reload_tls(void)
{
    for (struct listener *l = broker.listeners; l; l = l->next) {
        if (!l->tls)
            continue;
        char err[768], where[400];
        describe(where, sizeof where, l->origin, l->name);
        struct ssl_ctx_st *fresh = tls_server_ctx_new(&l->tls_conf, err, sizeof err);
        if (!fresh) {
            log_error("SIGHUP: %s: keeping the certificates in use: %s", where, err);
            continue;
        }
        /* Connections that exist keep the old context through their SSL's
         * reference; it goes when the last of them does. */
        SSL_CTX_free(l->tls);
        l->tls = fresh;
        log_notice("SIGHUP: %s: certificates reloaded", where);
    }
}
