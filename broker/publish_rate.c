/*
 * publish_rate.c - token buckets of the per-client publish rate limits
 * (publish_rate.h).  Tokens are kept in thousandths of a message and in
 * bytes, refilled from the ticks elapsed since the last PUBLISH; a
 * connection that sends nothing costs nothing.
 */
#include "publish_rate.h"

#include "broker.h"
#include "conn.h"
#include "conn_timer.h"
#include "log.h"

#define TICKS_PER_SEC (1000 / CONN_TICK_MS)

static struct log_ratelimit rate_log;

bool publish_rate_on(void)
{
    return broker.cfg.max_publish_rate || broker.cfg.max_publish_bytes_rate;
}

/* Ticks for a bucket refilled at `cap` a second to gain `need`, or
 * `at_least` if that is more. */
static int64_t refill_ticks(int64_t need, int64_t cap, int64_t at_least)
{
    int64_t t = (need * TICKS_PER_SEC + cap - 1) / cap;
    return t > at_least ? t : at_least;
}

bool publish_rate_admit(struct conn *c, size_t bytes, uint32_t now)
{
    int64_t msg_cap = (int64_t)broker.cfg.max_publish_rate * 1000;
    int64_t byte_cap = (int64_t)broker.cfg.max_publish_bytes_rate;
    int64_t msgs = c->rate_msgs, nbytes = c->rate_bytes;
    if (!c->rate_tick) { /* first PUBLISH: full buckets */
        msgs = msg_cap;
        nbytes = byte_cap;
    } else {
        int64_t ticks = (int32_t)(now - c->rate_tick);
        if (ticks > 0) {
            if (ticks > 100 * TICKS_PER_SEC)
                ticks = 100 * TICKS_PER_SEC; /* full anyway */
            msgs += msg_cap * ticks / TICKS_PER_SEC;
            nbytes += byte_cap * ticks / TICKS_PER_SEC;
        }
    }
    c->rate_tick = now;
    if (msgs > msg_cap)
        msgs = msg_cap;
    if (nbytes > byte_cap)
        nbytes = byte_cap;
    bool msgs_ok = !msg_cap || msgs >= 1000;
    bool bytes_ok = !byte_cap || nbytes > 0;
    if (msgs_ok && bytes_ok) {
        if (msg_cap)
            msgs -= 1000;
        if (byte_cap)
            nbytes -= (int64_t)bytes;
    }
    c->rate_msgs = (int32_t)msgs;
    c->rate_bytes = nbytes;
    if (msgs_ok && bytes_ok)
        return true;
    /* Ticks until both buckets allow the packet (at least one). */
    int64_t wait = 1;
    if (!msgs_ok) {
        wait = refill_ticks(1000 - msgs, msg_cap, wait);
        broker.stats.publish_rate_paused++;
    }
    if (!bytes_ok) {
        wait = refill_ticks(1 - nbytes, byte_cap, wait);
        broker.stats.publish_bytes_rate_paused++;
    }
    c->rate_paused = true;
    c->rate_resume = now + (uint32_t)wait;
    long n = log_ratelimit_check(&rate_log, 10);
    if (n >= 0)
        log_info("%s: over %s: not read for %lld ms%s", conn_name(c),
                 msgs_ok ? "max_publish_bytes_rate" : "max_publish_rate",
                 (long long)wait * CONN_TICK_MS, log_suppressed(n));
    return false;
}
