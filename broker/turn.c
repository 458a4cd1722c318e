/*
 * turn.c - the end of each turn of the event loop, in its fixed order: see
 * turn.h.  One libevent event, activated by whatever leaves work for the
 * end of the turn; activating it puts it behind every callback that the
 * turn's poll made ready, so it runs once they all have.
 */
#include "turn.h"

#include <stdbool.h>
#include <time.h>
#include <event2/event.h>

#include "log.h"

/* Rounds of the end of a turn before the loop polls again: a step may
 * leave work for an earlier one (see turn.h), rarely more than twice. */
#define MAX_ROUNDS 8

static struct event *end_ev;
static const struct turn_steps *step;
static bool scheduled;   /* end_ev is active */
static bool again;       /* turn_schedule called while turn_end ran */
static bool running;
static int64_t began_ns; /* first callback of the turn, 0 = none yet */
static struct turn_stats stats;
static struct log_ratelimit stall_log;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void turn_begin(void)
{
    if (began_ns == 0)
        began_ns = now_ns();
}

void turn_schedule(void)
{
    if (running) {
        again = true;
        return;
    }
    if (scheduled || !end_ev)
        return;
    scheduled = true;
    turn_begin();
    event_active(end_ev, 0, 0);
}

static void note_length(void)
{
    if (began_ns == 0)
        return;
    int64_t us = (now_ns() - began_ns) / 1000;
    began_ns = 0;
    stats.turns++;
    if ((uint64_t)us > stats.max_us)
        stats.max_us = (uint64_t)us;
    if (us > TURN_STALL_US) {
        stats.stalls++;
        long n = log_ratelimit_check(&stall_log, 1);
        if (n >= 0)
            log_debug("event loop: a turn took %lld ms%s", (long long)(us / 1000),
                      log_suppressed(n));
    }
}

void turn_end(void)
{
    scheduled = false;
    running = true;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        again = false;
        /* 1. Input that waited: a hold released, reads resumed. */
        step->run_kicked();
        /* Output that waits for nothing (deliveries, QoS 0 and 1) leaves
         * before the commit: the commit's writes are not on its way. */
        step->flush();
        /* 2. One transaction for everything the turn wrote. */
        uint64_t failed = step->commit();
        if (failed)
            step->commit_failed(failed);
        step->close_marked();
        /* 3. What waited for a durable batch goes to its connection. */
        step->release(step->durable());
        step->after_release(failed); /* the cluster: publish, acknowledge */
        /* 4. Output: one write per connection. */
        step->flush();
        step->after_output(); /* publishers paused at the budget */
        if (!again)
            break;
    }
    /* 5. Connections closed during the turn. */
    step->close_marked();
    step->free_closed();
    running = false;
    if (again)
        turn_schedule(); /* still more: after the callbacks now ready */
    note_length();
}

static void end_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    turn_end();
}

int turn_init(struct event_base *base, const struct turn_steps *steps)
{
    step = steps;
    end_ev = event_new(base, -1, 0, end_cb, NULL);
    return end_ev ? 0 : -1;
}

void turn_shutdown(void)
{
    if (end_ev)
        event_free(end_ev);
    end_ev = NULL;
    scheduled = false;
}

const struct turn_stats *turn_stats(void) { return &stats; }
