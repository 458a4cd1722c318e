/*
 * http_server.c - the HTTP listener: evhttp on the broker's loop, the
 * bounds on connections, TLS, routing and who may call what (see
 * http_server.h).
 *
 * evhttp in libevent 2.1 has no connection limit, and tells of a new
 * connection only by asking for its bufferevent (new_bev): the connection
 * it then makes is found from that bufferevent later in the same turn
 * (adopt), given a close callback, and counted; at HTTP_MAX_CONNECTIONS
 * the listening socket stops accepting until one closes.
 */
#include "http_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "array_grow.h"
#include "broker.h"
#include "http_api.h"
#include "http_json.h"
#include "http_metrics.h"
#include "http_tokens.h"
#include "log.h"
#include "tls.h"
#include "turn.h"
#include "web_assets.h"

struct http_server {
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct ssl_ctx_st *tls;        /* NULL for plain HTTP; replaced on SIGHUP */
    struct listener_tls_conf tls_conf;
    uint8_t anonymous;             /* enum http_role without a token */
    bool loopback;
    unsigned n_conns;
    bool paused;                   /* accepting stopped at HTTP_MAX_CONNECTIONS */
    char name[96];                 /* "http://127.0.0.1:9883/" */
};

static struct http_server *server;
static bool shutting_down;
static struct http_server_stats stats;
static struct log_ratelimit refused_log, denied_log, source_log;

/* ---- connections ---------------------------------------------------------- */

/* Bufferevents made for accepted connections whose evhttp connection is
 * not known yet (evhttp creates it right after new_bev returns). */
struct pending_bev {
    struct bufferevent *bev;
    bool refuse;               /* TLS port, but no SSL could be made */
};
static struct pending_bev *pending;
static size_t n_pending, cap_pending;
static struct event *adopt_ev;
/* The open connections; the slots past HTTP_MAX_CONNECTIONS are for those
 * accepted in the same batch as the last one allowed, closed at once. */
static struct evhttp_connection *live[HTTP_MAX_CONNECTIONS];
_Static_assert(HTTP_MAX_PER_SOURCE_LIMIT == HTTP_MAX_CONNECTIONS, "config.h's bound");

/* How many live connections came from `addr` (evhttp's numeric peer
 * address).  A scan of 64 slots per accepted connection: cheaper than
 * keeping a map in step with evhttp's own closing. */
static unsigned from_source(const char *addr)
{
    unsigned n = 0;
    for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
        char *peer = NULL;
        ev_uint16_t port;
        if (!live[i])
            continue;
        evhttp_connection_get_peer(live[i], &peer, &port);
        if (peer && strcmp(peer, addr) == 0)
            n++;
    }
    return n;
}

static void set_accepting(bool on)
{
    if (!server || !server->bound || server->paused == !on)
        return;
    struct evconnlistener *l = evhttp_bound_socket_get_listener(server->bound);
    if (on)
        evconnlistener_enable(l);
    else
        evconnlistener_disable(l);
    server->paused = !on;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)arg;
    http_api_connection_closed(evcon);
    for (size_t i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
        if (live[i] == evcon) {
            live[i] = NULL;
            if (server) {
                server->n_conns--;
                set_accepting(true);
            }
            return;
        }
    }
}

/* Runs in the same loop turn as the accept, before the new sockets are
 * first polled, so no connection can have gone yet: each one's evhttp
 * connection is its bufferevent's callback argument. */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (size_t k = 0; k < n_pending; k++) {
        void *cbarg = NULL;
        bufferevent_getcb(pending[k].bev, NULL, NULL, NULL, &cbarg);
        struct evhttp_connection *evcon = cbarg;
        if (!evcon || !server)
            continue;
        if (pending[k].refuse) {
            evhttp_connection_free(evcon);
            continue;
        }
        size_t slot = HTTP_MAX_CONNECTIONS;
        for (size_t i = 0; i < HTTP_MAX_CONNECTIONS && slot == HTTP_MAX_CONNECTIONS; i++)
            if (!live[i])
                slot = i;
        if (slot == HTTP_MAX_CONNECTIONS) {
            evhttp_connection_free(evcon);
            continue;
        }
        /* One address may not take every slot (a client trickling its
         * headers holds one for HTTP_TIMEOUT_S): past its share it is
         * closed at once, and the others are still served. */
        char *peer = NULL;
        ev_uint16_t port;
        evhttp_connection_get_peer(evcon, &peer, &port);
        uint32_t per_source = broker.cfg.http.max_per_source;
        if (per_source && peer && from_source(peer) >= per_source) {
            stats.source_limit_hits++;
            long n = log_ratelimit_check(&source_log, 10);
            if (n >= 0)
                log_warning("http: %s already has %u connections open (max_per_source): "
                            "closing its next ones%s", peer, (unsigned)per_source,
                            log_suppressed(n));
            evhttp_connection_free(evcon);
            continue;
        }
        live[slot] = evcon;
        evhttp_connection_set_closecb(evcon, conn_closed, NULL);
        server->n_conns++;
    }
    n_pending = 0;
    if (server && server->n_conns >= HTTP_MAX_CONNECTIONS && !server->paused) {
        stats.limit_hits++;
        long n = log_ratelimit_check(&refused_log, 10);
        if (n >= 0)
            log_warning("http: %u connections open (the limit): not accepting more until one "
                        "closes%s", HTTP_MAX_CONNECTIONS, log_suppressed(n));
        set_accepting(false);
    }
}

/* evhttp's constructor for each accepted connection's bufferevent (the
 * socket is set on it afterwards).  NULL would make evhttp use a plain
 * socket, so on a TLS port a connection that cannot get its SSL gets a
 * plain one that adopt() closes before it reads anything. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
    struct http_server *s = arg;
    struct bufferevent *bev = NULL;
    bool refuse = false;
    if (s->tls) {
        SSL *ssl = SSL_new(s->tls);
        if (ssl) {
            bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
            if (bev)
                bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
            else
                SSL_free(ssl);
        }
        refuse = bev == NULL;
    }
    if (!bev)
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL; /* so does evhttp's own attempt: the connection is dropped */
    if (n_pending == cap_pending) {
        /* as many as one accept callback took: the listen backlog's worth */
        struct pending_bev *p =
            array_grow(pending, &cap_pending, n_pending + 1, sizeof *p, 16);
        if (!p)
            return bev; /* served, but not counted: out of memory is rarer than a limit */
        pending = p;
    }
    pending[n_pending].bev = bev;
    pending[n_pending].refuse = refuse;
    n_pending++;
    event_active(adopt_ev, EV_TIMEOUT, 1);
    return bev;
}

/* ---- replies --------------------------------------------------------------- */

void http_reply(struct http_call *call, int code, const char *content_type,
                struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(call->req);
    if (content_type)
        evhttp_add_header(h, "Content-Type", content_type);
    /* The API's answers are live state and may hold client ids. */
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    /* The dashboard loads nothing from elsewhere and has no inline script:
     * the strictest policy fits it; frame-ancestors keeps it from being
     * framed and clickjacked into its buttons. */
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                      "base-uri 'none'; form-action 'none'");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    if (code == 401)
        evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"petrel\"");
    const char *reason = code == 200   ? "OK"
                         : code == 400 ? "Bad Request"
                         : code == 401 ? "Unauthorized"
                         : code == 403 ? "Forbidden"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 413 ? "Payload Too Large"
                         : code == 503 ? "Service Unavailable"
                                       : NULL;
    if (code >= 100 && code < 600)
        stats.replies[code / 100]++;
    if (call->method == EVHTTP_REQ_HEAD && body)
        evbuffer_drain(body, evbuffer_get_length(body)); /* evhttp sends the length */
    evhttp_send_reply(call->req, code, reason, body);
}

void http_reply_json(struct http_call *call, int code, struct evbuffer *body)
{
    http_reply(call, code, "application/json", body);
}

struct evbuffer *http_body_new(struct http_call *call)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        http_reply_error(call, 503, "unavailable", "out of memory");
    return b;
}

void http_reply_json_free(struct http_call *call, int code, struct evbuffer *body)
{
    http_reply_json(call, code, body);
    evbuffer_free(body);
}

bool http_only_get(struct http_call *call)
{
    if (call->method == EVHTTP_REQ_GET || call->method == EVHTTP_REQ_HEAD)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(call->req), "Allow", "GET");
    http_reply_error(call, 405, "method_not_allowed", "only GET here");
    return false;
}

void http_reply_error(struct http_call *call, int code, const char *error, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(call->req, code, NULL); /* without the JSON, out of memory */
        return;
    }
    evbuffer_add_printf(b, "{\"error\":\"%s\",\"message\":", error);
    json_string0(b, msg);
    evbuffer_add(b, "}\n", 2);
    http_reply_json(call, code, b);
    evbuffer_free(b);
}

/* ---- routing ----------------------------------------------------------------- */

static void serve_asset(struct http_call *call, const struct web_asset *a)
{
    if (!http_only_get(call))
        return;
    struct evbuffer *b = http_body_new(call);
    if (!b)
        return;
    evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
    http_reply(call, 200, a->content_type, b);
    evbuffer_free(b);
}

/* Which role the request's Authorization header grants: the listener's
 * anonymous role without one; NONE (after a 401 reply) for a bad one. */
static bool authorize(struct http_call *call)
{
    const char *auth =
        evhttp_find_header(evhttp_request_get_input_headers(call->req), "Authorization");
    if (!auth) {
        call->role = server->anonymous;
        call->who = "anonymous";
        return true;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0) {
        http_reply_error(call, 401, "unauthorized", "use 'Authorization: Bearer TOKEN'");
        return false;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    const char *name = NULL;
    uint8_t role = http_tokens_check(tok, strlen(tok), &name);
    if (role == HTTP_ROLE_NONE) {
        long n = log_ratelimit_check(&denied_log, 10);
        if (n >= 0)
            log_warning("http: %s: unknown token refused%s", call->peer, log_suppressed(n));
        http_reply_error(call, 401, "unauthorized", "unknown token");
        return false;
    }
    call->role = role;
    call->who = name;
    return true;
}

static bool host_is_loopback(const char *host);

/* Is the Host header a loopback address or "localhost", with or without a
 * port?  On a listener that lets requests in without a token, another name
 * is a page whose DNS name was rebound to 127.0.0.1 (DNS rebinding). */
static bool host_header_loopback(const char *h)
{
    char name[256];
    size_t n;
    if (h[0] == '[') { /* [::1] or [::1]:port */
        const char *end = strchr(h, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
        n = (size_t)(end - h - 1);
        h++;
    } else {
        const char *colon = strchr(h, ':');
        n = colon ? (size_t)(colon - h) : strlen(h);
    }
    if (n == 0 || n >= sizeof name)
        return false;
    memcpy(name, h, n);
    name[n] = '\0';
    if (strcasecmp(name, "localhost") == 0)
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, name, a) == 1)
        return a[0] == 127; /* a literal address, not a name starting "127." */
    return inet_pton(AF_INET6, name, a) == 1 && memcmp(a, &in6addr_loopback, 16) == 0;
}

/* A request that changes something and comes from a page of another site:
 * a browser sends such "simple" POSTs without asking first, so on a
 * listener open without a token any page the operator visits could make
 * them.  Its Origin (scheme and host) must name this listener's own Host,
 * and Sec-Fetch-Site, when sent, must not say cross-site. */
static bool cross_site_change(struct http_call *call)
{
    if (call->method == EVHTTP_REQ_GET || call->method == EVHTTP_REQ_HEAD)
        return false;
    struct evkeyvalq *in = evhttp_request_get_input_headers(call->req);
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    if (site && strcasecmp(site, "cross-site") == 0)
        return true;
    const char *origin = evhttp_find_header(in, "Origin");
    if (!origin)
        return false; /* not a browser's cross-origin request (curl, petrel admin) */
    const char *host = evhttp_find_header(in, "Host");
    const char *rest = strncasecmp(origin, "https://", 8) == 0  ? origin + 8
                       : strncasecmp(origin, "http://", 7) == 0 ? origin + 7
                                                                : NULL;
    return !host || !rest || strcasecmp(rest, host) != 0;
}

static void route(struct evhttp_request *req, void *arg)
{
    (void)arg;
    turn_begin();
    struct http_call call;
    memset(&call, 0, sizeof call);
    call.req = req;
    call.method = evhttp_request_get_command(req);
    call.who = "anonymous";
    char *host = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
    snprintf(call.peer, sizeof call.peer, "%s:%u", host ? host : "?", (unsigned)port);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || path[0] != '/') {
        http_reply_error(&call, 400, "bad_request", "the request target must be a path");
        return;
    }
    call.path = path;
    call.query = evhttp_uri_get_query(uri);

    /* The dashboard's own files and the health checks need no token: a
     * load balancer has none, and the page asks for one itself. */
    const struct web_asset *a = web_asset_find(path);
    if (a) {
        serve_asset(&call, a);
        return;
    }
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (!http_only_get(&call))
            return;
        if (path[1] == 'h')
            http_health_healthz(&call);
        else
            http_health_readyz(&call);
        return;
    }
    if (strncmp(path, "/static/", 8) == 0) {
        http_reply_error(&call, 404, "not_found", "no such file");
        return;
    }
    if (!authorize(&call))
        return;
    if (server->anonymous != HTTP_ROLE_NONE) {
        const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
        if (!h || !host_header_loopback(h)) {
            http_reply_error(&call, 403, "forbidden",
                             "this listener answers requests without a token only for a "
                             "loopback Host (localhost, 127.0.0.1, [::1])");
            return;
        }
    }
    if (cross_site_change(&call)) {
        http_reply_error(&call, 403, "forbidden", "a change requested by a page of another site");
        return;
    }
    if (call.role == HTTP_ROLE_NONE) {
        http_reply_error(&call, 401, "unauthorized", "a token is needed (Authorization: Bearer "
                         "TOKEN)");
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        http_metrics_get(&call);
        return;
    }
    if (strncmp(path, "/api/v1/", 8) == 0) {
        http_api_handle(&call);
        return;
    }
    http_reply_error(&call, 404, "not_found", "no such endpoint");
}

/* ---- life cycle -------------------------------------------------------------- */

static bool host_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

int http_server_open(void)
{
    const struct http_listen_conf *hc = &broker.cfg.http;
    if (!hc->enabled)
        return 0;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->anonymous = hc->anonymous;
    s->loopback = host_is_loopback(hc->host);
    s->tls_conf = hc->tls;
    if (hc->tls.enabled) {
        char err[768];
        s->tls = tls_server_ctx_new(&hc->tls, err, sizeof err);
        if (!s->tls) {
            log_error("http_listen: %s", err);
            free(s);
            return -1;
        }
    }
    s->http = evhttp_new(broker.base);
    if (!adopt_ev)
        adopt_ev = event_new(broker.base, -1, 0, adopt, NULL);
    if (!s->http || !adopt_ev)
        goto fail;
    evhttp_set_max_headers_size(s->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(s->http, HTTP_MAX_BODY);
    evhttp_set_timeout(s->http, HTTP_TIMEOUT_S);
    /* Every method reaches route(), which answers 405 in JSON itself. */
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, route, s);
    evhttp_set_bevcb(s->http, new_bev, s);
    s->bound = evhttp_bind_socket_with_handle(s->http, hc->host, hc->port);
    if (!s->bound) {
        log_error("http_listen %s%s%s:%u: cannot listen: %s", strchr(hc->host, ':') ? "[" : "",
                  hc->host, strchr(hc->host, ':') ? "]" : "", (unsigned)hc->port,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    unsigned port = hc->port;
    if (getsockname(evhttp_bound_socket_get_fd(s->bound), (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    bool v6 = strchr(hc->host, ':') != NULL;
    snprintf(s->name, sizeof s->name, "%s://%s%s%s:%u/", s->tls ? "https" : "http",
             v6 ? "[" : "", hc->host, v6 ? "]" : "", port);
    server = s;
    log_notice("http listener on %s (anonymous requests: %s)", s->name,
               s->anonymous == HTTP_ROLE_ADMIN  ? "admin"
               : s->anonymous == HTTP_ROLE_READ ? "read"
                                                : "health checks and the dashboard's files only");
    if (!s->loopback && !s->tls)
        log_warning("http listener %s is not on a loopback address and has no TLS: tokens "
                    "cross the network in clear (add tls certfile= keyfile=)", s->name);
    return 0;
fail:
    if (s->http)
        evhttp_free(s->http);
    SSL_CTX_free(s->tls);
    free(s);
    return -1;
}

void http_server_close(void)
{
    struct http_server *s = server;
    if (!s)
        return;
    /* Connections freed by evhttp_free count themselves out of nothing. */
    server = NULL;
    evhttp_free(s->http);
    memset(live, 0, sizeof live);
    free(pending);
    pending = NULL;
    n_pending = cap_pending = 0;
    if (adopt_ev)
        event_free(adopt_ev);
    adopt_ev = NULL;
    SSL_CTX_free(s->tls);
    free(s);
}

void http_server_reload_tls(void)
{
    if (!server || !server->tls)
        return;
    char err[768];
    struct ssl_ctx_st *fresh = tls_server_ctx_new(&server->tls_conf, err, sizeof err);
    if (!fresh) {
        log_error("SIGHUP: http_listen: keeping the certificates in use: %s", err);
        return;
    }
    SSL_CTX_free(server->tls);
    server->tls = fresh;
    log_notice("SIGHUP: http_listen: certificates reloaded");
}

const struct http_server_stats *http_server_stats(void)
{
    stats.connections = server ? server->n_conns : 0;
    return &stats;
}

void http_server_shutting_down(void)
{
    shutting_down = true;
}

bool http_server_is_shutting_down(void)
{
    return shutting_down;
}
