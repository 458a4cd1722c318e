/*
 * flow.c - which publishers wait for which sessions, and letting them go.
 * See flow.h.  A wait is one link in two lists, the session's and the
 * connection's, so that either side ending unlinks it at once.
 */
#include "flow.h"

#include <stdlib.h>

#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "conn_timer.h"
#include "conn_wait.h"
#include "log.h"
#include "session.h"

struct flow_link {
    struct flow_link *s_prev, *s_next; /* the session's waiters */
    struct flow_link *c_prev, *c_next; /* the connection's waits */
    struct session *s;
    struct conn *c;
};

static struct conn *publisher;
static struct log_ratelimit slow_log;

void flow_set_publisher(struct conn *c) { publisher = c; }
struct conn *flow_publisher(void) { return publisher; }

bool flow_wait_for(struct session *s, uint32_t size)
{
    struct conn *c = publisher;
    if (!c || c->state != CONN_ACTIVE || c->session == s)
        return false;
    c->flow_over_bytes += size;
    for (struct flow_link *l = c->flow_waits; l; l = l->c_next)
        if (l->s == s)
            return true;
    struct flow_link *l = calloc(1, sizeof *l);
    if (!l)
        return false; /* not slowed: the queue goes past its bound */
    l->s = s;
    l->c = c;
    l->s_next = s->flow_waiters;
    if (l->s_next)
        l->s_next->s_prev = l;
    s->flow_waiters = l;
    l->c_next = c->flow_waits;
    if (l->c_next)
        l->c_next->c_prev = l;
    c->flow_waits = l;
    if (!c->flow_blocked) {
        c->flow_blocked = true;
        broker.stats.flow_slowed++;
        long n = log_ratelimit_check(&slow_log, 10);
        if (n >= 0)
            log_info("%s slowed: the queue of client %s is full (queue_full_policy block)%s",
                     conn_name(c), s->log_id, log_suppressed(n));
    }
    return true;
}

/* c waits for nothing any more: its acknowledgements and input go on. */
static void resume(struct conn *c)
{
    c->flow_blocked = false;
    c->flow_over_bytes = 0;
    conn_wait_unhold(c);
    if (c->flow_paused) {
        c->flow_paused = false;
        c->last_rx = conn_timer_now(); /* nothing was read meanwhile */
        conn_io_update(c, 1);
    }
}

static void unlink_conn_side(struct flow_link *l)
{
    if (l->c_prev)
        l->c_prev->c_next = l->c_next;
    else
        l->c->flow_waits = l->c_next;
    if (l->c_next)
        l->c_next->c_prev = l->c_prev;
}

static void unlink_session_side(struct flow_link *l)
{
    if (l->s_prev)
        l->s_prev->s_next = l->s_next;
    else
        l->s->flow_waiters = l->s_next;
    if (l->s_next)
        l->s_next->s_prev = l->s_prev;
}

void flow_release(struct session *s)
{
    struct flow_link *l = s->flow_waiters;
    s->flow_waiters = NULL;
    while (l) {
        struct flow_link *next = l->s_next;
        struct conn *c = l->c;
        unlink_conn_side(l);
        free(l);
        if (!c->flow_waits)
            resume(c);
        l = next;
    }
}

void flow_conn_gone(struct conn *c)
{
    struct flow_link *l = c->flow_waits;
    c->flow_waits = NULL;
    while (l) {
        struct flow_link *next = l->c_next;
        unlink_session_side(l);
        free(l);
        l = next;
    }
    c->flow_blocked = false;
    c->flow_paused = false;
    c->flow_over_bytes = 0;
    if (publisher == c)
        publisher = NULL;
}

bool flow_should_pause(struct conn *c)
{
    if (!c->flow_blocked || c->flow_paused ||
        (conn_wait_held(c) < FLOW_MAX_HELD && c->flow_over_bytes < FLOW_MAX_OVER_BYTES))
        return c->flow_paused;
    c->flow_paused = true;
    broker.stats.flow_paused++;
    conn_io_update(c, 0);
    return true;
}
