/*
 * notify.c - the sd_notify side of petreld under systemd (Type=notify):
 * readiness, a STATUS= line with the broker's figures, watchdog pings from
 * the event loop, and the start of shutdown.
 */
#include "notify.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "broker.h"
#include "hashmap.h"
#include "log.h"
#include "session.h"
#include "store.h"

#if PETREL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

/* How often STATUS= is refreshed when there is no faster watchdog tick:
 * `systemctl status` is read by people, so a few seconds old is fine. */
#define STATUS_INTERVAL_US 10000000ULL

static struct event *tick_ev;
static bool watchdog;        /* the manager expects WATCHDOG=1 pings */
static bool notify_failed;   /* logged once */
static char last_status[256];

struct queue_totals {
    uint64_t queued, queued_bytes, inflight;
};

static void add_session(void *value, void *arg)
{
    const struct session *s = value;
    struct queue_totals *t = arg;
    t->queued += s->n_queued;
    t->queued_bytes += s->queued_bytes;
    t->inflight += s->inflight.count;
}

static void format_status(char *buf, size_t len)
{
    struct queue_totals t = {0, 0, 0};
    /* One pass over the sessions per tick: about a millisecond for 100k
     * sessions, every few seconds at most. */
    hashmap_foreach(broker.sessions, add_session, &t);
    snprintf(buf, len,
             "%zu clients, %zu sessions, %llu queued messages (%llu bytes), %llu in flight%s%s",
             broker.n_clients, hashmap_count(broker.sessions), (unsigned long long)t.queued,
             (unsigned long long)t.queued_bytes, (unsigned long long)t.inflight,
             store_problem() ? ", store: " : "", store_problem() ? store_problem() : "");
}

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0 && !notify_failed) {
        /* Logged once: the manager would not hear a repetition anyway. */
        notify_failed = true;
        log_warning("sd_notify to NOTIFY_SOCKET failed: %s", strerror(-rc));
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    char status[sizeof last_status], msg[sizeof last_status + 32];
    format_status(status, sizeof status);
    bool changed = strcmp(status, last_status) != 0;
    if (!watchdog && !changed)
        return;
    snprintf(msg, sizeof msg, "%s%s%s", watchdog ? "WATCHDOG=1\n" : "",
             changed ? "STATUS=" : "", changed ? status : "");
    memcpy(last_status, status, sizeof last_status);
    send_state(msg);
}

void notify_status(void)
{
    if (!tick_ev)
        return; /* not ready yet (READY=1 carries the first status), or no manager */
    char status[sizeof last_status], msg[sizeof last_status + 32];
    format_status(status, sizeof status);
    if (strcmp(status, last_status) == 0)
        return;
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    memcpy(last_status, status, sizeof last_status);
    send_state(msg);
}

int notify_ready(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t wd_usec = 0;
    /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
    watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
    if (!sock || !*sock)
        return 0; /* not run by a service manager: nothing to tell */

    char msg[sizeof last_status + 32];
    format_status(last_status, sizeof last_status);
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", last_status);
    send_state(msg);

    uint64_t period = STATUS_INTERVAL_US;
    if (watchdog && wd_usec / 2 < period)
        period = wd_usec / 2;
    if (period < 1000)
        period = 1000;
    tick_ev = event_new(broker.base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {(time_t)(period / 1000000), (suseconds_t)(period % 1000000)};
    if (!tick_ev || event_add(tick_ev, &tv) != 0) {
        log_error("cannot set up the service manager notification timer");
        return -1;
    }
    if (watchdog)
        log_info("systemd watchdog: %llu ms, pinging every %llu ms",
                 (unsigned long long)(wd_usec / 1000), (unsigned long long)(period / 1000));
    return 0;
}

void notify_stopping(void)
{
    if (tick_ev)
        event_del(tick_ev);
    const char *sock = getenv("NOTIFY_SOCKET");
    if (sock && *sock)
        send_state("STOPPING=1\nSTATUS=shutting down");
}

void notify_close(void)
{
    if (tick_ev)
        event_free(tick_ev);
    tick_ev = NULL;
}

#else /* built without libsystemd: -Dsystemd=disabled or not found */

int notify_ready(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    /* A Type=notify unit would wait for READY=1 in vain: say why. */
    if (sock && *sock)
        log_warning("NOTIFY_SOCKET is set but this petreld was built without systemd "
                    "support: use Type=exec (or simple) in its unit");
    return 0;
}

void notify_stopping(void)
{
}

void notify_status(void)
{
}

void notify_close(void)
{
}

#endif
