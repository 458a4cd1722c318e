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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "broker.h"
#include "conn.h"
#include "log.h"

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
};

static struct log_ratelimit refused_log, accept_error_log;

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

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)ev;
    (void)arg;
    if (broker.cfg.max_connections && broker.n_conns >= broker.cfg.max_connections) {
        broker.stats.connections_refused++;
        long n = log_ratelimit_check(&refused_log, 10);
        if (n >= 0)
            log_warning("connection refused: max_connections (%u) reached%s",
                        broker.cfg.max_connections, log_suppressed(n));
        evutil_closesocket(fd);
        return;
    }
    tune_socket(fd);
    if (!conn_new(fd, addr, addrlen))
        log_error("out of memory accepting a connection");
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

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
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
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0)
        bound = ss;

    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return -1;
    }
    format_addr(&bound, l->name, sizeof l->name);
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
        free(l);
        return -1;
    }
    evconnlistener_set_error_cb(l->ev, accept_error_cb);
    l->next = broker.listeners;
    broker.listeners = l;
    log_notice("listening on %s", l->name);
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
    struct listener *l = broker.listeners;
    while (l) {
        struct listener *next = l->next;
        evconnlistener_free(l->ev);
        event_free(l->resume);
        free(l);
        l = next;
    }
    broker.listeners = NULL;
}
