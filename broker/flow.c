/*
 * flow.c - which publishers wait for which sessions, and letting them go.
 * See flow.h.  A wait is one link in two lists, the session's and the
 * connection's, so that either side ending unlinks it at once.
 */
#include "flow.h"

#include <stdlib.h>
#include <sys/queue.h>

#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "conn_timer.h"
#include "conn_wait.h"
#include "log.h"
#include "session.h"

struct flow_link {
    LIST_ENTRY(flow_link) s_link; /* the session's waiters */
    LIST_ENTRY(flow_link) c_link; /* the connection's waits */
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
    struct flow_link *l;
    LIST_FOREACH(l, &c->flow_waits, c_link)
        if (l->s == s)
            return true;
    l = calloc(1, sizeof *l);
    if (!l)
        return false; /* not slowed: the queue goes past its bound */
    l->s = s;
    l->c = c;
    LIST_INSERT_HEAD(&s->flow_waiters, l, s_link);
    LIST_INSERT_HEAD(&c->flow_waits, l, c_link);
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

void flow_release(struct session *s)
{
    /* Taken off the session first: a wait made while these resume is a
     * new one, for the next release. */
    struct flow_link *l = LIST_FIRST(&s->flow_waiters);
    LIST_INIT(&s->flow_waiters);
    while (l) {
        struct flow_link *next = LIST_NEXT(l, s_link);
        struct conn *c = l->c;
        LIST_REMOVE(l, c_link);
        free(l);
        if (LIST_EMPTY(&c->flow_waits))
            resume(c);
        l = next;
    }
}

void flow_conn_gone(struct conn *c)
{
    struct flow_link *l = LIST_FIRST(&c->flow_waits);
    LIST_INIT(&c->flow_waits);
    while (l) {
        struct flow_link *next = LIST_NEXT(l, c_link);
        LIST_REMOVE(l, s_link);
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
