/*
 * conn_name.c - a connection's name in the log (see conn_name.h): its
 * client identifier once the session is bound, else the peer's address.
 */
#include "conn_name.h"

#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/util.h>

#include "conn.h"
#include "session.h"

const char *conn_name(const struct conn *c)
{
    static char buf[4200];
    if (c->session)
        snprintf(buf, sizeof buf, "client %s", c->session->log_id);
    else
        snprintf(buf, sizeof buf, "connection from %s", conn_peer(c));
    return buf;
}

const char *conn_peer(const struct conn *c)
{
    static char buf[INET6_ADDRSTRLEN + 16];
    char host[INET6_ADDRSTRLEN] = "?";
    if (c->peer.family == AF_INET) {
        evutil_inet_ntop(AF_INET, c->peer.addr, host, sizeof host);
        snprintf(buf, sizeof buf, "%s:%u", host, c->peer.port);
    } else if (c->peer.family == AF_INET6) {
        evutil_inet_ntop(AF_INET6, c->peer.addr, host, sizeof host);
        snprintf(buf, sizeof buf, "[%s]:%u", host, c->peer.port);
    } else if (c->peer.family == AF_UNSPEC) {
        snprintf(buf, sizeof buf, "in-process"); /* a bridge's own connection */
    } else {
        snprintf(buf, sizeof buf, "unknown");
    }
    return buf;
}
