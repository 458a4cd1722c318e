/*
 * flow.h - flow control: slowing publishers instead of dropping what they
 * were promised.  With queue_full_policy = block (the default), a QoS 1/2
 * message for an online session whose queue is at its bound is queued all
 * the same, and the connection that published it waits for that session:
 * its acknowledgements are held (conn_wait.h), so a publisher with a window
 * of unacknowledged messages stops, and past FLOW_MAX_HELD held ones its
 * socket is not read either.  It goes on when every session it waits for
 * is below its low watermark, goes offline or ends.
 *
 * The consequence, documented for operators: one slow subscriber slows the
 * publishers of its topics (head-of-line blocking), as in RabbitMQ's credit
 * flow.  A connection never waits for its own session, and its input is
 * still read while only its acknowledgements are held, so a client that
 * both publishes and subscribes cannot deadlock with another.
 */
#ifndef PETREL_FLOW_H
#define PETREL_FLOW_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct session;

/* Held acknowledgements past which a slowed connection is not read: a
 * publisher that does not wait for acknowledgements (or keeps more than
 * MQTT 3.1.1's packet ids can name in flight) is stopped at the socket. */
#define FLOW_MAX_HELD 4096
/* The same for the payload bytes a slowed connection has had queued past
 * full queues: large messages stop it sooner. */
#define FLOW_MAX_OVER_BYTES (1024 * 1024)

/* The connection whose PUBLISH is being routed, or NULL (wills, $SYS,
 * retained messages sent on subscribe): set around router_publish by the
 * PUBLISH handler. */
void flow_set_publisher(struct conn *c);
struct conn *flow_publisher(void);

/* The publisher being routed waits for s, whose queue is full and takes
 * its message of `size` bytes all the same.  Returns true if it now waits
 * (or already did), false when there is no publisher to slow (none, s's
 * own connection, closing). */
bool flow_wait_for(struct session *s, uint32_t size);

/* s fell below its low watermark, went offline or ends: the publishers
 * waiting for it go on (if they wait for nothing else). */
void flow_release(struct session *s);

/* c is being closed: it waits for nothing any more. */
void flow_conn_gone(struct conn *c);

/* Called for each packet c sends while slowed: true when its input must
 * pause now (too many held acknowledgements). */
bool flow_should_pause(struct conn *c);

#endif
