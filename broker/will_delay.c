/*
 * will_delay.c - a session's will: kept until the connection ends, then
 * published at once or after the 5.0 Will Delay Interval on a timer of its
 * own, restored with the session after a restart, and checked against the
 * ACL in force when it goes out.  See session.h for the contract.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "acl_session.h"
#include "array_grow.h"
#include "broker.h"
#include "hashmap.h"
#include "log.h"
#include "message.h"
#include "router.h"
#include "store.h"

void session_drop_will(struct session *s)
{
    if (s->will_timer)
        event_free(s->will_timer);
    s->will_timer = NULL;
    message_unref(s->will);
    s->will = NULL;
}

/* Publishes the pending will and forgets it, in memory and in the store. */
void session_publish_will(struct session *s)
{
    struct message *will = s->will;
    s->will = NULL;
    session_drop_will(s);
    if (!will)
        return;
    store_session_will(s);
    if (!acl_may_publish_will(s, will)) {
        message_unref(will);
        return;
    }
    log_info("client %s: publishing its delayed will on '%s'", s->log_id,
             log_str(will->topic, will->topic_len));
    message_start_expiry(will);
    router_publish(will, NULL); /* a will has no origin: No Local does not apply */
    message_unref(will);
}

static void arm_will(struct session *s, int64_t ms);

static void will_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    /* The loop's timers count from its cached time, which can be behind
     * by what the turn has spent: the delay must have passed for real. */
    int64_t left = s->will_at - message_now_ms();
    if (left > 0) {
        event_free(s->will_timer);
        s->will_timer = NULL;
        arm_will(s, left);
        return;
    }
    session_publish_will(s);
}

/* Arms the timer of s->will for `ms` from now, or publishes it if it
 * cannot wait. */
static void arm_will(struct session *s, int64_t ms)
{
    s->will_timer = evtimer_new(broker.base, will_due, s);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_base_update_cache_time(broker.base); /* counted from now, not the turn's start */
    if (!s->will_timer || evtimer_add(s->will_timer, &tv) != 0)
        session_publish_will(s); /* cannot wait: better early than never */
}

void session_set_will(struct session *s, struct message *will, uint32_t delay)
{
    session_drop_will(s);
    s->will = will;
    s->will_at = message_now_ms() + (int64_t)delay * 1000;
    /* In the batch of the session's detach: a restart finds both or
     * neither. */
    store_session_will(s);
    arm_will(s, (int64_t)delay * 1000);
}

void session_cancel_will(struct session *s)
{
    if (!s->will)
        return;
    log_info("client %s: back in time, its delayed will is dropped", s->log_id);
    session_drop_will(s);
    store_session_will(s);
}

void session_restore_will(struct session *s, struct message *will, int64_t due_ms)
{
    session_drop_will(s);
    s->will = will;
    s->will_at = due_ms;
}

/* Sessions holding a restored will not yet armed. */
struct will_list {
    struct session **v;
    size_t n, cap;
};

static void collect_will(void *value, void *arg)
{
    struct session *s = value;
    struct will_list *l = arg;
    if (!s->will || s->will_timer)
        return;
    if (l->n == l->cap) {
        struct session **v = array_grow(l->v, &l->cap, l->n + 1, sizeof *v, 16);
        if (!v) {
            session_publish_will(s); /* cannot wait: better early than never */
            return;
        }
        l->v = v;
    }
    l->v[l->n++] = s;
}

void session_start_wills(void)
{
    if (!broker.sessions)
        return;
    /* Publishing routes to other sessions: walk a list, not the table. */
    struct will_list l = {NULL, 0, 0};
    hashmap_foreach(broker.sessions, collect_will, &l);
    int64_t now = message_now_ms();
    for (size_t i = 0; i < l.n; i++) {
        struct session *s = l.v[i];
        if (s->will_at <= now)
            session_publish_will(s); /* came due while petreld was stopped */
        else
            arm_will(s, s->will_at - now);
    }
    free(l.v);
}
