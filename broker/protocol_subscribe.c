/*
 * protocol_subscribe.c - SUBSCRIBE and UNSUBSCRIBE, for MQTT 3.1.1 and 5.0.
 * Each filter of a SUBSCRIBE gets its own verdict in the SUBACK:
 *
 *   refusal                                   3.1.1   5.0
 *   invalid share name ("$share//x")          0x80    0x8F topic filter invalid
 *   over max_topic_length / max_topic_levels  0x80    0x8F
 *   not allowed by the ACL                    0x80    0x87 not authorized
 *   max_subscriptions_per_client reached      0x80    0x97 quota exceeded
 *   out of memory                             0x80    0x80 unspecified
 *
 * A filter that is not well-formed (empty, misplaced wildcards) is refused
 * by the decoder for the whole packet: a malformed packet, closed with 0x81.
 * The others are granted min(requested, max_qos).  The retained messages
 * they match follow the SUBACK, except for shared subscriptions (never) and,
 * in 5.0, as Retain Handling asks (1: only for a new subscription; 2: not).
 * A shared subscription ("$share/{group}/{filter}", shared_subs.h) is checked
 * against the limits and the ACL with its filter proper.  No Local on a
 * shared subscription is a protocol error (MQTT-3.8.3-4) and closes the
 * connection before any filter of the packet is applied.
 *
 * A packet may hold a hundred thousand filters: they are worked through a
 * few hundred per turn of the event loop (the connection's input held
 * meanwhile), each costing O(1) in the session (session.h), so that one
 * client's SUBSCRIBE never stalls the others.
 */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "acl_session.h"
#include "broker.h"
#include "conn.h"
#include "conn_wait.h"
#include "log.h"
#include "message.h"
#include "mqtt_codec.h"
#include "protocol.h"
#include "retain.h"
#include "session.h"
#include "shared_subs.h"
#include "store.h"

/* The code for a refusal: the 5.0 reason, or 0x80 in 3.1.1. */
static uint8_t refused(const struct conn *c, uint8_t reason)
{
    return c->level == MQTT_LEVEL_5 ? reason : MQTT_SUBACK_FAILURE;
}

/* True if the filter is valid, shared ones included: *inner is where the
 * filter proper starts (0 if not shared). */
static bool filter_ok(const char *filter, size_t len, size_t *inner)
{
    *inner = 0;
    if (!mqtt_topic_filter_valid((const uint8_t *)filter, len))
        return false;
    int shared = share_parse(filter, len, inner);
    return shared == 0 ||
           (shared == 1 && mqtt_topic_filter_valid((const uint8_t *)filter + *inner, len - *inner));
}

/* 0 if the session may subscribe to the valid filter (filter proper at
 * `inner`), else the refusal code; *why says why for the log. */
static uint8_t refusal(struct conn *c, const char *filter, size_t len, size_t inner,
                       const char **why)
{
    struct session *s = c->session;
    *why = topic_over_limits((const uint8_t *)filter + inner, len - inner);
    if (*why)
        return refused(c, MQTT_RC_TOPIC_FILTER_INVALID);
    if (!acl_may_subscribe(s, filter + inner, len - inner) ||
        (inner && !acl_may_share(s, filter, inner))) {
        broker.stats.acl_subscribe_denied++;
        *why = "not allowed by the ACL";
        return refused(c, MQTT_RC_NOT_AUTHORIZED);
    }
    uint32_t max = broker.cfg.max_subscriptions_per_client;
    if (max && s->n_subs >= max && !session_subscription(s, filter, len)) {
        broker.stats.subscriptions_refused++;
        *why = "max_subscriptions_per_client";
        return refused(c, MQTT_RC_QUOTA_EXCEEDED);
    }
    return 0;
}

/* The Subscription Identifier of a 5.0 SUBSCRIBE, 0 if none (the decoder
 * has checked that there is at most one, in 1..268435455). */
static uint32_t subscription_id(const struct conn *c, const struct mqtt_packet *p)
{
    struct mqtt_prop prop;
    if (c->level != MQTT_LEVEL_5 ||
        !mqtt_props_find(&p->u.subscribe.props, MQTT_PROP_SUBSCRIPTION_ID, &prop))
        return 0;
    return prop.num;
}

/* Work done per turn of the event loop for one packet, in filters handled
 * and retained messages sent: a SUBSCRIBE or UNSUBSCRIBE of 100,000
 * filters, or one that brings 100,000 retained messages, is spread over
 * many turns, and other clients are served in between.  Its connection's
 * input is held meanwhile, so the client's next packets wait for it, in
 * order. */
#define WORK_PER_TURN 256
/* Log lines about the filters of one packet; then one line for the rest. */
#define LOG_LINES_PER_PACKET 10
/* A client whose output buffer is full gets its retained messages later. */
#define OUTPUT_FULL_RETRY_MS 10

enum job_phase { PHASE_FILTERS = 0, PHASE_RETAINED, PHASE_DONE };

/* A SUBSCRIBE or UNSUBSCRIBE being worked through.  Small packets are done
 * at once, on the stack; a large one moves to the heap with a copy of its
 * entries and goes on from an event of its own. */
struct sub_job {
    struct conn *c;
    struct session *s;
    struct event *ev;
    uint8_t type;            /* MQTT_SUBSCRIBE or MQTT_UNSUBSCRIBE */
    uint8_t phase;           /* enum job_phase */
    uint16_t packet_id;
    uint32_t sub_id;         /* Subscription Identifier (SUBSCRIBE, 5.0) */
    uint32_t count, done;    /* entries in the packet, entries handled */
    uint64_t stamp;          /* marks the subscriptions this packet touched */
    uint8_t *codes;          /* codes[i]: SUBACK/UNSUBACK code of entry i */
    uint8_t *retained;       /* SUBSCRIBE: send retained for entry i */
    uint8_t *wire;           /* heap job: its copy of the entries */
    const uint8_t *wire_start; /* where the entries start (copy or packet) */
    size_t wire_len;
    struct mqtt_topic_iter it; /* the next entry (filters, then retained) */
    uint32_t k;              /* retained phase: index of the entry at `it` */
    struct message **snap;   /* retained messages of the current filter, */
    size_t snap_n, snap_pos; /* each with a reference, and the next to send */
    uint8_t snap_qos;        /* its granted QoS */
    uint32_t logged;         /* log lines written about its filters */
};

/* Generation of SUBSCRIBE packets, for subscription.job_stamp. */
static uint64_t job_stamps;

static bool log_filter_line(struct sub_job *j)
{
    return j->logged++ < LOG_LINES_PER_PACKET;
}

static void log_refusal(struct sub_job *j, const char *filter, size_t len, const char *why)
{
    if (log_filter_line(j))
        log_info("%s: subscription to '%s' refused: %s", conn_name(j->c),
                 log_str(filter, len), why);
}

/* The summary line for the filters not logged one by one. */
static void log_rest(struct sub_job *j)
{
    if (j->logged > LOG_LINES_PER_PACKET)
        log_info("%s: %u more filters of that %s not logged one by one", conn_name(j->c),
                 j->logged - LOG_LINES_PER_PACKET,
                 j->type == MQTT_SUBSCRIBE ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

static void subscribe_one(struct sub_job *j, const struct mqtt_topic_entry *e)
{
    struct conn *c = j->c;
    struct session *s = j->s;
    uint32_t i = j->done;
    const char *filter = (const char *)e->filter.data;
    size_t len = e->filter.len, inner;
    /* 3.1.1 carries the QoS alone; the decoder has checked the rest. */
    uint8_t options = c->level == MQTT_LEVEL_5 ? e->options : MQTT_SUBOPT_QOS(e->options);
    if (c->bridge_peer && c->level != MQTT_LEVEL_5 && !(len >= 7 && memcmp(filter, "$share/", 7) == 0))
        options |= MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RETAIN_AS_PUBLISHED; /* a bridge (0x84) */
    uint8_t granted = MQTT_SUBOPT_QOS(options);
    if (granted > broker.cfg.max_qos)
        granted = broker.cfg.max_qos;
    options = (uint8_t)((options & ~3u) | granted);
    const char *why = NULL;
    uint8_t code;
    int added = -1;
    j->retained[i] = 0;
    if (!filter_ok(filter, len, &inner)) {
        why = "invalid topic filter or share name";
        code = refused(c, MQTT_RC_TOPIC_FILTER_INVALID);
    } else if ((code = refusal(c, filter, len, inner, &why)) != 0) {
        /* code and why set */
    } else if ((added = session_subscribe(s, filter, len, options, j->sub_id)) < 0) {
        why = "out of memory";
        code = MQTT_SUBACK_FAILURE;
    } else {
        code = granted;
        /* Within one packet the last occurrence of a filter wins: retained
         * messages go once per distinct filter, as its last occurrence
         * asks, "new" meaning new before this packet. */
        struct subscription *sb = session_subscription(s, filter, len);
        bool is_new = added == 1;
        if (sb && sb->job_stamp == j->stamp) {
            j->retained[sb->job_index] = 0;
            is_new = sb->job_new;
        } else if (sb) {
            sb->job_new = is_new;
        }
        if (sb) {
            sb->job_stamp = j->stamp;
            sb->job_index = i;
        }
        uint8_t rh = MQTT_SUBOPT_RETAIN_HANDLING(options);
        j->retained[i] = !inner && (rh == 0 || (rh == 1 && is_new));
    }
    if (why)
        log_refusal(j, filter, len, why);
    else if (log_filter_line(j))
        log_info("%s subscribed to '%s' (QoS %u)", conn_name(c), log_str(filter, len), granted);
    j->codes[i] = code;
}

static void unsubscribe_one(struct sub_job *j, const struct mqtt_topic_entry *e)
{
    const char *filter = (const char *)e->filter.data;
    size_t inner;
    uint8_t code = MQTT_RC_SUCCESS;
    if (session_unsubscribe(j->s, filter, e->filter.len)) {
        if (log_filter_line(j))
            log_info("%s unsubscribed from '%s'", conn_name(j->c),
                     log_str(filter, e->filter.len));
    } else if (!filter_ok(filter, e->filter.len, &inner)) {
        code = MQTT_RC_TOPIC_FILTER_INVALID;
    } else {
        code = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    j->codes[j->done] = code;
}

/* Handles entries while *budget lasts; true when all are done. */
static bool run_filters(struct sub_job *j, uint32_t *budget)
{
    struct mqtt_topic_entry e;
    bool all = false;
    while (*budget > 0) {
        if (!mqtt_topic_iter_next(&j->it, &e)) {
            all = true;
            break;
        }
        if (j->type == MQTT_SUBSCRIBE)
            subscribe_one(j, &e);
        else
            unsubscribe_one(j, &e);
        j->done++;
        (*budget)--;
    }
    acl_session_subs_changed(j->s);
    session_note_changed(j->s);
    return all || j->done == j->count;
}

/* All entries handled: the acknowledgement. */
static void send_ack(struct sub_job *j)
{
    struct conn *c = j->c;
    log_rest(j);
    struct mqtt_packet ack = {.type = j->type == MQTT_SUBSCRIBE ? MQTT_SUBACK : MQTT_UNSUBACK};
    if (j->type == MQTT_SUBSCRIBE || c->level == MQTT_LEVEL_5) {
        ack.u.suback.packet_id = j->packet_id;
        ack.u.suback.codes.data = j->codes;
        ack.u.suback.codes.len = j->done;
    } else {
        ack.u.ack.packet_id = j->packet_id;
    }
    conn_wait_send(c, &ack, false);
}

static void snap_release(struct sub_job *j)
{
    for (size_t i = j->snap_pos; i < j->snap_n; i++)
        message_unref(j->snap[i]);
    free(j->snap);
    j->snap = NULL;
    j->snap_n = j->snap_pos = 0;
}

/* Sends retained messages while *budget lasts: those of the current
 * filter, then those of the next entry marked for them.  Retained
 * messages go after the SUBACK, also for a subscription that replaced an
 * existing one (MQTT-3.8.4-3) unless Retain Handling says otherwise.
 * True when all are sent. */
static bool run_retained(struct sub_job *j, uint32_t *budget)
{
    while (*budget > 0) {
        if (j->snap_pos < j->snap_n) {
            struct message *m = j->snap[j->snap_pos++];
            session_deliver(j->s, m, m->qos < j->snap_qos ? m->qos : j->snap_qos, true);
            message_unref(m);
            (*budget)--;
            continue;
        }
        snap_release(j);
        struct mqtt_topic_entry e;
        uint32_t k;
        do {
            if (!mqtt_topic_iter_next(&j->it, &e))
                return true;
            k = j->k++;
        } while (!j->retained[k]);
        j->snap = retain_collect(j->s, (const char *)e.filter.data, e.filter.len, &j->snap_n);
        j->snap_qos = j->codes[k];
        /* The walk costs about what sending does. */
        uint32_t cost = 1 + (uint32_t)(j->snap_n > *budget ? *budget : j->snap_n) / 2;
        *budget -= cost < *budget ? cost : *budget;
    }
    return false;
}

/* One turn's work; true when the job is done. */
static bool job_step(struct sub_job *j)
{
    uint32_t budget = WORK_PER_TURN;
    if (j->phase == PHASE_FILTERS) {
        if (!run_filters(j, &budget))
            return false;
        send_ack(j);
        j->phase = j->type == MQTT_SUBSCRIBE ? PHASE_RETAINED : PHASE_DONE;
        j->it.pos = j->wire_start;
        j->it.end = j->wire_start + j->wire_len;
        j->k = 0;
    }
    if (j->phase == PHASE_RETAINED && !run_retained(j, &budget))
        return false;
    j->phase = PHASE_DONE;
    return true;
}

static void job_free(struct sub_job *j)
{
    if (j->s && j->s->sub_job == j)
        j->s->sub_job = NULL;
    if (j->ev)
        event_free(j->ev);
    snap_release(j);
    free(j->codes);
    free(j->wire);
    free(j);
}

void subscribe_job_cancel(struct session *s)
{
    if (s->sub_job)
        job_free(s->sub_job);
}

static void job_continue(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sub_job *j = arg;
    struct conn *c = j->c;
    /* The connection ended (or another took the session over): the rest
     * of the packet is dropped; the client never had its answer. */
    if (j->s->conn != c || c->session != j->s) {
        job_free(j);
        return;
    }
    if (j->phase == PHASE_RETAINED && !conn_can_write(c)) {
        /* It does not read what it has: the rest waits rather than being
         * dropped, as for any slow consumer. */
        static const struct timeval later = {0, OUTPUT_FULL_RETRY_MS * 1000};
        evtimer_add(j->ev, &later);
        return;
    }
    if (!job_step(j)) {
        static const struct timeval now = {0, 0};
        evtimer_add(j->ev, &now);
        return;
    }
    job_free(j);
    conn_release_input(c);
}

/* Moves a job that did not finish at once to the heap, with a copy of the
 * entries left, and goes on from the event loop.  Returns 0, or -1 when
 * out of memory (the connection is closed). */
static int job_defer(struct sub_job *stack)
{
    struct conn *c = stack->c;
    struct sub_job *j = malloc(sizeof *j);
    if (j) {
        *j = *stack;
        j->codes = NULL;
        j->wire = malloc(stack->wire_len ? stack->wire_len : 1);
        j->ev = evtimer_new(broker.base, job_continue, j);
        if (j->wire)
            j->codes = malloc(2 * (size_t)stack->count);
    }
    if (!j || !j->wire || !j->ev || !j->codes) {
        if (j) {
            j->s = NULL;
            job_free(j); /* with the retained messages it took over */
        } else {
            snap_release(stack);
        }
        free(stack->codes);
        conn_close(c, "out of memory", true);
        return -1;
    }
    memcpy(j->wire, stack->wire_start, stack->wire_len);
    memcpy(j->codes, stack->codes, 2 * (size_t)stack->count);
    free(stack->codes);
    j->retained = j->codes + j->count;
    j->it.pos = j->wire + (stack->it.pos - stack->wire_start);
    j->it.end = j->wire + j->wire_len;
    j->wire_start = j->wire;
    stack->snap = NULL; /* moved */
    j->s->sub_job = j;
    conn_hold_input(c);
    static const struct timeval now = {0, 0};
    evtimer_add(j->ev, &now);
    return 0;
}

/* Starts the job for a decoded SUBSCRIBE or UNSUBSCRIBE. */
static int job_start(struct conn *c, const struct mqtt_packet *p, uint32_t sub_id)
{
    const struct mqtt_subscribe *sub = &p->u.subscribe;
    struct sub_job j = {.c = c, .s = c->session, .type = p->type,
                        .packet_id = sub->packet_id, .sub_id = sub_id, .count = sub->count,
                        .wire_start = sub->wire.data, .wire_len = sub->wire.len};
    /* codes[i]: the acknowledgement's code; codes[count + i]: retained. */
    j.codes = malloc(2 * (size_t)sub->count);
    if (!j.codes) {
        conn_close(c, "out of memory", true);
        return -1;
    }
    j.retained = j.codes + j.count;
    j.stamp = ++job_stamps;
    mqtt_topic_iter_init(&j.it, p);
    if (!job_step(&j))
        return job_defer(&j);
    free(j.codes);
    return 0;
}

int handle_subscribe(struct conn *c, const struct mqtt_packet *p)
{
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    size_t inner;

    /* Protocol errors first, so that a bad packet changes nothing. */
    if (c->level == MQTT_LEVEL_5) {
        mqtt_topic_iter_init(&it, p);
        while (mqtt_topic_iter_next(&it, &e))
            if ((e.options & MQTT_SUBOPT_NO_LOCAL) &&
                share_parse((const char *)e.filter.data, e.filter.len, &inner) == 1)
                return protocol_violation(c, "No Local on a shared subscription");
    }
    return job_start(c, p, subscription_id(c, p));
}

int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p)
{
    return job_start(c, p, 0);
}
