/*
 * conn_wait.h - packets that may leave only once the store batch holding
 * what they promise is durable (the durability contract, store.h): each
 * connection keeps its own, in order, and the end of the turn releases
 * them (turn.h).  The store only hands out batch numbers and says which is
 * durable; it knows nothing of connections.
 *
 * Acknowledgements of the client's own PUBLISHes are "holdable": while flow
 * control slows the connection (flow.h) they are held back, so that a
 * publisher that keeps a window of unacknowledged messages stops sending.
 * Nothing else is held, so a publisher that is also a subscriber still
 * gets its deliveries and can let others go on.
 */
#ifndef PETREL_CONN_WAIT_H
#define PETREL_CONN_WAIT_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct mqtt_packet;

/* Gives the function that sends a packet which waits for nothing
 * (conn.c's conn_send_packet: conn_init passes it), so that this file
 * calls the connection's send path by no name. */
void conn_wait_init(int (*send)(struct conn *c, const struct mqtt_packet *p));

/* Sends p to c once everything the store was given so far is durable; at
 * once when nothing is waiting.  Packets sent later with conn_send_packet
 * queue behind it.  `holdable`: a PUBACK or PUBREC answering c's PUBLISH,
 * held while c is slowed.  Out of memory: c is closed at the end of the
 * turn (never here: the caller goes on using c). */
void conn_wait_send(struct conn *c, const struct mqtt_packet *p, bool holdable);

/* Something waits that later packets must follow (held acks excluded). */
bool conn_wait_pending(const struct conn *c);
/* Acknowledgements held by flow control. */
uint32_t conn_wait_held(const struct conn *c);

/* Flow control lets c go: its held acknowledgements follow, in order. */
void conn_wait_unhold(struct conn *c);

/* End of turn: writes out, for every connection, what waited for batches
 * up to `durable`. */
void conn_wait_release(uint64_t durable);
/* Batch `batch` was rolled back: the connections with a packet that
 * depended on it are closed (at the end of the turn), so that their
 * clients resend what was not acknowledged. */
void conn_wait_fail(uint64_t batch);

/* c is being closed: what waited for it is dropped. */
void conn_wait_free(struct conn *c);

#endif
