/*
 * listener.h - the broker's listening sockets.  Each configured address gets
 * an evconnlistener; accepted sockets are tuned (TCP keepalive,
 * TCP_USER_TIMEOUT, no Nagle) and handed to conn_new, unless the connection
 * limit is reached.
 */
#ifndef PETREL_LISTENER_H
#define PETREL_LISTENER_H

/* Opens every listener of broker.cfg and logs "listening on ADDR:PORT" with
 * the real port.  Returns 0, or -1 after logging which address failed (all
 * listeners opened so far are closed again). */
int listeners_open(void);
/* Stops accepting and frees the listeners. */
void listeners_close(void);

#endif
