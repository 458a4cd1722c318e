/*
 * input_bound.c - the deadline of an incomplete packet and the broker-wide
 * budget of unfinished input (input_bound.h).  The budget is enforced by
 * closing, not by pausing: a paused connection holding half a packet can
 * never finish it, so pausing would only keep the memory pinned.  The
 * connections holding the most go first, so that one large partial packet
 * from an abuser is cut before many small ones of honest clients.
 */
#include "input_bound.h"

#include "broker.h"
#include "conn.h"
#include "conn_timer.h"
#include "log.h"

static struct log_ratelimit shed_log;

/* Past the budget: marks the largest holders to be closed until what is
 * left is within it.  A scan per victim; it runs only at the limit, and
 * each victim frees at least the average holding. */
static void shed(void)
{
    uint64_t limit = broker.cfg.max_input_buffer_total;
    for (;;) {
        uint64_t marked = 0;
        struct conn *worst = NULL;
        for (struct conn *c = broker.conns; c; c = c->next) {
            if (c->close_marked)
                marked += c->in_held;
            else if (c->state < CONN_CLOSING && (!worst || c->in_held > worst->in_held))
                worst = c;
        }
        if (broker.input_held - marked <= limit || !worst || worst->in_held == 0)
            return;
        broker.stats.input_total_closed++;
        long n = log_ratelimit_check(&shed_log, 10);
        if (n >= 0)
            log_warning("max_input_buffer_total (%llu bytes) reached: closing %s, which holds "
                        "%u bytes of unfinished input%s",
                        (unsigned long long)limit, conn_name(worst), worst->in_held,
                        log_suppressed(n));
        conn_close_later(worst, "max_input_buffer_total reached: it held the most unfinished input");
        if (!worst->close_marked)
            return; /* could not be marked: its reads are paused instead */
    }
}

bool input_bound_account(struct conn *c, size_t held, bool partial, bool consumed)
{
    if (held > UINT32_MAX)
        held = UINT32_MAX;
    broker.input_held += held;
    broker.input_held -= c->in_held;
    c->in_held = (uint32_t)held;
    bool began = false;
    if (!partial) {
        if (held == 0)
            c->partial_since = 0;
    } else if (consumed || !c->partial_since) {
        c->partial_since = conn_timer_now();
        began = true;
    }
    if (broker.cfg.max_input_buffer_total && broker.input_held > broker.cfg.max_input_buffer_total)
        shed();
    return began;
}

void input_bound_forget(struct conn *c)
{
    broker.input_held -= c->in_held;
    c->in_held = 0;
    c->partial_since = 0;
}

uint32_t input_bound_ticks(const struct conn *c)
{
    uint32_t ticks = broker.cfg.partial_packet_timeout * (1000 / CONN_TICK_MS);
    if (c->keepalive) {
        uint32_t ka = ((uint32_t)c->keepalive * 1500 + CONN_TICK_MS - 1) / CONN_TICK_MS + 1;
        if (!ticks || ka < ticks)
            ticks = ka;
    }
    return ticks;
}
