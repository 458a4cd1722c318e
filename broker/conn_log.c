/*
 * conn_log.c - connection log lines, at most max_connection_log_rate per
 * second (conn_log.h).  Counted per second of the monotonic clock; what is
 * left out is summed up in one line when the next second starts, or from
 * a timer if no line comes then, so the log says how much it left out.
 */
#include "conn_log.h"

#include <time.h>
#include <event2/event.h>

#include "broker.h"
#include "log.h"

static long window;          /* monotonic second being counted */
static uint32_t written;     /* lines written in it */
static unsigned long left_out; /* lines not written since the last summary */
static struct event *summary_ev;

static long now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

static void summarize(void)
{
    if (!left_out)
        return;
    log_notice("%lu connection log lines (connected, disconnected, refused) not written: "
               "max_connection_log_rate is %u per second", left_out,
               broker.cfg.max_connection_log_rate);
    left_out = 0;
}

static void summary_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    long now = now_sec();
    if (now != window) {
        summarize();
        window = now;
        written = 0;
    } else if (left_out) {
        /* Armed in an earlier second and fired within the one whose lines
         * are being left out: come back once it is over, or they would
         * wait for the next connection to be summed up. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        struct timeval tv = {0, (suseconds_t)((1000000000L - ts.tv_nsec) / 1000 + 1000)};
        if (tv.tv_usec >= 1000000) {
            tv.tv_sec = 1;
            tv.tv_usec -= 1000000;
        }
        evtimer_add(summary_ev, &tv);
    }
}

bool conn_log_allow(void)
{
    uint32_t max = broker.cfg.max_connection_log_rate;
    if (max == 0)
        return true;
    long now = now_sec();
    if (now != window) {
        summarize();
        window = now;
        written = 0;
    }
    if (written < max) {
        written++;
        return true;
    }
    left_out++;
    broker.stats.conn_log_left_out++;
    if (!summary_ev && broker.base)
        summary_ev = evtimer_new(broker.base, summary_cb, NULL);
    if (summary_ev && !evtimer_pending(summary_ev, NULL)) {
        struct timeval tv = {1, 0};
        evtimer_add(summary_ev, &tv);
    }
    return false;
}

void conn_log_shutdown(void)
{
    summarize();
    if (summary_ev)
        event_free(summary_ev);
    summary_ev = NULL;
    window = 0;
    written = 0;
}
