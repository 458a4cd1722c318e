/*
 * conn_name.h - how a connection is named in log lines (conn_name.c).
 * Every layer that logs about a connection uses these, so they stand
 * below conn.c and call nothing of it.
 */
#ifndef PETREL_CONN_NAME_H
#define PETREL_CONN_NAME_H

struct conn;

/* The name to put in log lines: "client <id>" once known, else the peer. */
const char *conn_name(const struct conn *c);

/* "addr:port" of the peer, for logs (kept in 20 bytes, formatted on
 * demand).  Returns a static buffer. */
const char *conn_peer(const struct conn *c);

#endif
