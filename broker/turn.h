/*
 * turn.h - the end of each turn of the event loop, in one fixed order (the
 * model is Redis's beforeSleep).  Whatever a turn's callbacks produced
 * (input parsed and routed, rows written, packets queued) is finished here:
 *
 *   1. input that waited (released holds, resumed reads) is processed,
 *      and output that waits for nothing (deliveries) is written;
 *   2. the store commits what the turn wrote, in one transaction;
 *   3. packets that waited for a durable batch are released to their
 *      connections (acknowledgements, QoS 2 deliveries, SUBACKs);
 *   4. output is written, one write per connection;
 *   5. connections closed during the turn are freed.
 *
 * A step may produce work for an earlier one (a write that drains a slow
 * subscriber opens its window: new deliveries, maybe new rows); the turn
 * then runs again before the loop polls, so nothing waits for a poll.
 */
#ifndef PETREL_TURN_H
#define PETREL_TURN_H

#include <stdint.h>

struct event_base;

/* Makes sure the end of this turn runs (behind the callbacks the poll made
 * ready).  Cheap; call it whenever something is left for the end. */
void turn_schedule(void);

/* The steps of the end of a turn, given by the broker's owner (broker.c)
 * so that this file calls no module by name: turn_end runs them in the
 * order above.  Every member is set. */
struct turn_steps {
    void (*run_kicked)(void);            /* 1. input that waited */
    void (*flush)(void);                 /* one write per connection */
    uint64_t (*commit)(void);            /* 2. the turn's transaction: 0, or
                                            the batch that failed */
    void (*commit_failed)(uint64_t batch);
    void (*close_marked)(void);          /* connections marked for closing */
    uint64_t (*durable)(void);           /* the latest durable batch */
    void (*release)(uint64_t durable);   /* 3. what waited for it */
    void (*after_release)(uint64_t failed); /* the cluster's JetStream work,
                                            with this round's failed batch */
    void (*after_output)(void);          /* after 4.: the memory budget */
    void (*free_closed)(void);           /* 5. */
};

/* Creates the end-of-turn event on `base`, to run `steps` (kept, not
 * copied).  Returns 0 or -1. */
int turn_init(struct event_base *base, const struct turn_steps *steps);
void turn_shutdown(void);

/* Runs the end of the turn now (shutdown, tests). */
void turn_end(void);

/* Loop health, for $SYS and the log: turns that took longer than
 * TURN_STALL_US, and the longest so far (microseconds, callbacks and end
 * together). */
#define TURN_STALL_US 5000
struct turn_stats {
    uint64_t turns;
    uint64_t stalls;
    uint64_t max_us;
};
const struct turn_stats *turn_stats(void);
/* A callback that starts a turn's work calls this first, so that the turn's
 * length is measured from its first callback. */
void turn_begin(void);

#endif
