/*
 * conn_timer.h - the connections' deadlines (connect_timeout, keep alive,
 * the flush before a close) on one broker-wide timer wheel, instead of a
 * timer event per connection: an idle client then costs a few bytes here.
 */
#ifndef PETREL_CONN_TIMER_H
#define PETREL_CONN_TIMER_H

#include <stdint.h>

struct conn;

/* Ticks of this length: deadlines are met to within one tick. */
#define CONN_TICK_MS 100

/* The current tick (monotonic clock; never 0). */
uint32_t conn_timer_now(void);

/* Checks `c` at `tick` (or at the first tick after, when the loop was
 * busy), replacing any check already set.  Returns 0, or -1 when the timer
 * cannot be armed. */
int conn_timer_set(struct conn *c, uint32_t tick);
/* Cancels the check of `c`, if any. */
void conn_timer_clear(struct conn *c);

/* Called (from the wheel, in conn.c) for each connection whose tick has
 * come; it is off the wheel then: conn_timer_due either closes it or sets
 * its next check. */
void conn_timer_due(struct conn *c, uint32_t now);

/* Frees the wheel's event (every connection must be gone). */
void conn_timer_shutdown(void);

#endif
