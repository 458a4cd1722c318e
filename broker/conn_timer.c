/*
 * conn_timer.c - a hashed timer wheel for the connections' deadlines: one
 * slot per CONN_TICK_MS tick, WHEEL_SLOTS of them, each a list of the
 * connections to check at that tick (or at that tick plus whole turns of
 * the wheel).  One libevent timer is armed for the next tick that has a
 * connection in its slot, so an idle broker does not wake up for nothing.
 *
 * Keep alive is checked lazily: a read does not move the connection on the
 * wheel, it only records the tick; when the check comes, the due callback
 * (conn.c) sets a later one if the client was heard from meanwhile.  A busy
 * client is then looked at about once per 1.5 x keep alive, not once per
 * packet.
 */
#include "conn_timer.h"

#include <stdlib.h>
#include <time.h>
#include <event2/event.h>

#include "broker.h"

/* A power of two; one turn is 102.4 s. */
#define WHEEL_SLOTS 1024

static struct conn_timer_entry *slots[WHEEL_SLOTS];
static size_t n_entries;
static struct event *tick_ev;
static uint32_t armed_tick;  /* tick the event is armed for, 0 = not armed */
static uint32_t done_tick;   /* last tick whose slot was processed */
static conn_timer_fn *due_fn;
static struct conn_timer_entry *iter_next; /* the entry tick_cb looks at next */

uint32_t conn_timer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    return (uint32_t)(ms / CONN_TICK_MS) + 1;
}

/* Signed distance between ticks, correct across the 32-bit wrap. */
static int32_t tick_diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

static void tick_cb(evutil_socket_t fd, short what, void *arg);

void conn_timer_init(conn_timer_fn *due) { due_fn = due; }

static void unlink_entry(struct conn_timer_entry *e)
{
    if (e == iter_next)
        iter_next = e->next;
    if (e->prev)
        e->prev->next = e->next;
    else
        slots[e->tick % WHEEL_SLOTS] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
    e->tick = 0;
    n_entries--;
}

/* Arms the event for `tick` unless it is armed for an earlier one. */
static int arm(uint32_t tick, uint32_t now)
{
    if (armed_tick && tick_diff(armed_tick, tick) <= 0)
        return 0;
    if (!tick_ev) {
        tick_ev = evtimer_new(broker.base, tick_cb, NULL);
        if (!tick_ev)
            return -1;
    }
    int32_t ahead = tick_diff(tick, now);
    long ms = ahead > 0 ? (long)ahead * CONN_TICK_MS : 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_add(tick_ev, &tv) != 0)
        return -1;
    armed_tick = tick;
    return 0;
}

int conn_timer_set(struct conn_timer_entry *e, uint32_t tick)
{
    if (e->tick)
        unlink_entry(e);
    uint32_t now = conn_timer_now();
    if (n_entries == 0 || !done_tick)
        done_tick = now - 1;
    /* A tick already processed (or not yet reached by a late loop) is
     * checked at the next run. */
    if (tick_diff(tick, done_tick) <= 0)
        tick = done_tick + 1;
    struct conn_timer_entry **head = &slots[tick % WHEEL_SLOTS];
    e->tick = tick;
    e->prev = NULL;
    e->next = *head;
    if (*head)
        (*head)->prev = e;
    *head = e;
    n_entries++;
    /* More than a turn ahead: the slot comes round first, and the entry is
     * looked at (and set again) then. */
    if (tick_diff(tick, now) > WHEEL_SLOTS)
        tick = now + WHEEL_SLOTS;
    return arm(tick, now);
}

void conn_timer_clear(struct conn_timer_entry *e)
{
    if (e->tick)
        unlink_entry(e);
}

/* The next tick after done_tick with an entry in its slot (an entry may be
 * for a later turn: the slot is visited all the same). */
static uint32_t next_busy_tick(void)
{
    for (uint32_t t = done_tick + 1; t != done_tick + 1 + WHEEL_SLOTS; t++)
        if (slots[t % WHEEL_SLOTS])
            return t;
    return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    armed_tick = 0;
    uint32_t now = conn_timer_now();
    /* Every tick up to now, at most one turn of the wheel. */
    uint32_t from = done_tick + 1;
    if (tick_diff(now, from) >= WHEEL_SLOTS)
        from = now - WHEEL_SLOTS + 1;
    for (uint32_t t = from; tick_diff(t, now) <= 0; t++) {
        done_tick = t;
        /* Entries set again while this runs go to later ticks' slots, or
         * to this slot's head for a later turn: either way not visited. */
        for (struct conn_timer_entry *e = slots[t % WHEEL_SLOTS]; e; e = iter_next) {
            iter_next = e->next;
            /* Due means its tick has come, not merely its slot. */
            if (tick_diff(e->tick, now) > 0)
                continue;
            unlink_entry(e);
            due_fn(e, now); /* ends e's object or sets e again */
        }
        iter_next = NULL;
    }
    if (n_entries) {
        uint32_t next = next_busy_tick();
        if (next)
            arm(next, now);
    }
}

void conn_timer_shutdown(void)
{
    if (tick_ev)
        event_free(tick_ev);
    tick_ev = NULL;
    armed_tick = 0;
    done_tick = 0;
}
