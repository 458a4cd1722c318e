/*
 * conn_timer.h - the connections' deadlines (connect_timeout, keep alive,
 * the flush before a close) on one broker-wide timer wheel, instead of a
 * timer event per connection: an idle client then costs a few bytes here.
 * The wheel holds entries that its user embeds (struct conn has one) and
 * calls back the function given to conn_timer_init: it knows nothing of
 * connections.
 */
#ifndef PETREL_CONN_TIMER_H
#define PETREL_CONN_TIMER_H

#include <stdint.h>

/* A place on the wheel, inside the object it times.  All zero = not on
 * the wheel. */
struct conn_timer_entry {
    struct conn_timer_entry *prev, *next; /* in the slot of its tick */
    uint32_t tick;                        /* tick of the check, 0 = none */
};

/* Called for each entry whose tick has come; it is off the wheel then, and
 * the callee either ends its object or sets the entry again. */
typedef void conn_timer_fn(struct conn_timer_entry *e, uint32_t now);

/* Sets the function called for due entries (before the first is set). */
void conn_timer_init(conn_timer_fn *due);

/* Ticks of this length: deadlines are met to within one tick. */
#define CONN_TICK_MS 100

/* The current tick (monotonic clock; never 0). */
uint32_t conn_timer_now(void);

/* Checks `e` at `tick` (or at the first tick after, when the loop was
 * busy), replacing any check already set.  Returns 0, or -1 when the timer
 * cannot be armed. */
int conn_timer_set(struct conn_timer_entry *e, uint32_t tick);
/* Cancels the check of `e`, if any. */
void conn_timer_clear(struct conn_timer_entry *e);

/* Frees the wheel's event (every connection must be gone). */
void conn_timer_shutdown(void);

#endif
