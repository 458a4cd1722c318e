/*
 * conn_close_later.h - connections marked to be closed at the end of the
 * turn (conn_close_later.c): for paths that must not end a connection
 * under their caller's feet.  Below conn.c, which runs the closes, so the
 * layers that only mark a connection call nothing above them.
 */
#ifndef PETREL_CONN_CLOSE_LATER_H
#define PETREL_CONN_CLOSE_LATER_H

#include <stdbool.h>

struct conn;

/* Marks c to be closed at the end of the turn, with its will; `why` must
 * be a static string.  Without memory to note it, c is no longer read and
 * its timeouts end it. */
void conn_close_later(struct conn *c, const char *why);

/* End of turn (conn_close_marked): `close_one` each marked connection, in the
 * order marked, those marked meanwhile included. */
void conn_close_later_run(void (*close_one)(struct conn *c, const char *why, bool publish_will));

/* Frees the list (no connection is left). */
void conn_close_later_free(void);

#endif
