/*
 * client.c - the asynchronous petrel_client: binds the session state
 * machine (client_session.c) to a transport (transport.c), one libevent timer and
 * the application's callbacks.
 *
 * Callback discipline: application callbacks never run inside a petrel_*
 * call.  Events that arise during one (a QoS 0 message handed to the
 * socket, a disconnect that completes at once) are queued and delivered
 * from the event loop.  A client freed from inside a callback is torn down
 * when the outermost callback returns.
 */
#include "client.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "options.h"
#include "tls_client.h"
#include "properties.h"
#include "client_session.h"
#include "resolver.h"
#include "transport.h"

enum pending_type { EV_CONNECTED, EV_DISCONNECTED, EV_PUBLISHED, EV_SUBSCRIBED, EV_UNSUBSCRIBED };

/* An event waiting to be delivered from the loop. */
struct pending {
    struct pending *next;
    enum pending_type type;
    uint64_t id;
    int value;       /* reason, result */
    bool flag;       /* session present, reconnecting */
    size_t count;
    int *granted;
    /* MQTT 5.0 reason code and properties behind the event (see
     * petrel_reason_code); props is owned once the event is queued. */
    uint8_t rc;
    const uint8_t *props;
    size_t props_len;
};

struct petrel_client {
    struct event_base *base;
    struct petrel_options opts;
    struct sess *sess;
    struct transport *tr;
    struct resolver *dns;      /* host name lookups of this client's transports */
    struct ssl_ctx_st *tls;    /* when opts.tls: made once, used by every connection */
    struct event *timer;
    int64_t timer_at;          /* when the timer fires; -1 = not armed */
    struct event *deliver;     /* runs deliver_pending */
    struct pending *pending;   /* FIFO */
    struct pending **pending_tail;
    int api_depth;             /* inside a petrel_* call */
    int cb_depth;              /* inside a call from the event loop */
    bool freeing;              /* petrel_client_free was called */
    bool reading;
    uint64_t rng;
    char *topic;               /* NUL-terminated copy for petrel_message */
    size_t topic_cap;
    /* MQTT 5.0 views handed to the application. */
    uint8_t cur_rc;            /* the event being dispatched */
    petrel_properties cur_props;
    bool has_cur_props;
    petrel_properties connack_view;

    petrel_connected_cb on_connected;
    void *connected_arg;
    petrel_disconnected_cb on_disconnected;
    void *disconnected_arg;
    petrel_message_cb on_message;
    void *message_arg;
    petrel_published_cb on_published;
    void *published_arg;
    petrel_subscribed_cb on_subscribed;
    void *subscribed_arg;
    petrel_unsubscribed_cb on_unsubscribed;
    void *unsubscribed_arg;
    petrel_log_cb on_log;
    void *log_arg;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void destroy(petrel_client *c);

/* ------------------------------------------------------------------------
 * Timer and entry/exit bookkeeping
 */

/* Arms the timer for the session's next deadline.  A timer already armed
 * for an earlier moment is left alone: when it fires, sess_tick finds
 * nothing due and the timer moves to the real deadline. */
static void schedule(petrel_client *c)
{
    int64_t due = sess_deadline(c->sess);
    if (due < 0) {
        if (c->timer_at >= 0) {
            evtimer_del(c->timer);
            c->timer_at = -1;
        }
        return;
    }
    if (c->timer_at >= 0 && c->timer_at <= due)
        return;
    int64_t delay = due - now_ms();
    if (delay < 0)
        delay = 0;
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->timer_at = due;
}

static void cb_enter(petrel_client *c)
{
    c->cb_depth++;
}

/* Returns false when the client is gone. */
static bool cb_leave(petrel_client *c)
{
    if (--c->cb_depth == 0 && c->freeing) {
        destroy(c);
        return false;
    }
    if (!c->freeing)
        schedule(c);
    return true;
}

static void api_enter(petrel_client *c)
{
    c->api_depth++;
}

static void api_leave(petrel_client *c)
{
    if (--c->api_depth == 0 && c->pending && !c->freeing)
        event_active(c->deliver, EV_TIMEOUT, 0);
    if (!c->freeing)
        schedule(c);
}

static void timercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    petrel_client *c = arg;
    c->timer_at = -1;
    cb_enter(c);
    sess_tick(c->sess, now_ms());
    cb_leave(c);
}

/* ------------------------------------------------------------------------
 * Events to the application
 */

static void dispatch_one(petrel_client *c, const struct pending *p)
{
    switch (p->type) {
    case EV_CONNECTED:
        if (c->on_connected)
            c->on_connected(c, p->flag, c->connected_arg);
        break;
    case EV_DISCONNECTED:
        if (c->on_disconnected)
            c->on_disconnected(c, p->value, p->flag, c->disconnected_arg);
        break;
    case EV_PUBLISHED:
        if (c->on_published)
            c->on_published(c, p->id, p->value, c->published_arg);
        break;
    case EV_SUBSCRIBED:
        if (c->on_subscribed)
            c->on_subscribed(c, p->id, p->count, p->granted, c->subscribed_arg);
        break;
    case EV_UNSUBSCRIBED:
        if (c->on_unsubscribed)
            c->on_unsubscribed(c, p->id, c->unsubscribed_arg);
        break;
    }
}

static void dispatch(petrel_client *c, const struct pending *p)
{
    if (c->freeing)
        return;
    /* Saved and restored: a callback may cause a nested dispatch. */
    uint8_t old_rc = c->cur_rc;
    petrel_properties old_props = c->cur_props;
    bool old_has = c->has_cur_props;
    c->cur_rc = p->rc;
    c->cur_props = props_view((struct mqtt_props){p->props, (uint32_t)p->props_len});
    c->has_cur_props = p->props_len > 0;
    dispatch_one(c, p);
    c->cur_rc = old_rc;
    c->cur_props = old_props;
    c->has_cur_props = old_has;
}

static void free_pending(struct pending *p)
{
    free(p->granted);
    free((void *)(uintptr_t)p->props);
    free(p);
}

/* Delivers the queued events, oldest first.  Only from the event loop. */
static void flush_pending(petrel_client *c)
{
    struct pending *p;
    while (!c->freeing && (p = c->pending)) {
        c->pending = p->next;
        if (!c->pending)
            c->pending_tail = &c->pending;
        dispatch(c, p);
        free_pending(p);
    }
}

/* Delivers `ev` now, after any queued events so that order is kept; or
 * queues it when inside an API call. */
static void emit(petrel_client *c, const struct pending *ev)
{
    if (c->freeing)
        return;
    if (c->api_depth == 0) {
        flush_pending(c);
        dispatch(c, ev);
        return;
    }
    struct pending *p = malloc(sizeof *p);
    int *granted = NULL;
    uint8_t *props = NULL;
    if (p && ev->count) {
        granted = malloc(ev->count * sizeof *granted);
        if (!granted) {
            free(p);
            p = NULL;
        } else {
            memcpy(granted, ev->granted, ev->count * sizeof *granted);
        }
    }
    if (p && ev->props_len) {
        props = malloc(ev->props_len);
        if (!props) {
            free(granted);
            free(p);
            p = NULL;
        } else {
            memcpy(props, ev->props, ev->props_len);
        }
    }
    if (!p) {
        /* Out of memory: late delivery beats no delivery. */
        dispatch(c, ev);
        return;
    }
    *p = *ev;
    p->granted = granted;
    p->props = props;
    p->next = NULL;
    *c->pending_tail = p;
    c->pending_tail = &p->next;
}

static void delivercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    petrel_client *c = arg;
    cb_enter(c);
    flush_pending(c);
    cb_leave(c);
}

/* ------------------------------------------------------------------------
 * Session hooks
 */

static void tr_connected(void *ctx);
static void tr_packet(void *ctx, uint8_t first_byte, const uint8_t *body, uint32_t len);
static void tr_drained(void *ctx);
static void tr_closed(void *ctx, int reason);
static void tr_resolved(void *ctx);

static int io_open(void *ctx)
{
    petrel_client *c = ctx;
    struct transport_events ev = {c, tr_connected, tr_packet, tr_drained, tr_closed,
                                  tr_resolved};
    int err = PETREL_OK;
    if (c->tr) { /* cannot happen: the session closes before reopening */
        transport_close(c->tr);
        c->tr = NULL;
    }
    struct transport_tls tls = {
        c->tls, c->opts.tls_server_name ? c->opts.tls_server_name : c->opts.host,
        !c->opts.tls_insecure};
    c->tr = transport_open(c->base, c->dns, c->opts.host, c->opts.port, c->opts.max_packet_size,
                           c->tls ? &tls : NULL, c->opts.ws_path, &ev, &err);
    if (c->tr && !c->reading)
        transport_set_reading(c->tr, false);
    return c->tr ? PETREL_OK : err;
}

static int io_write(void *ctx, const uint8_t *data, size_t len)
{
    petrel_client *c = ctx;
    return c->tr ? transport_write(c->tr, data, len) : PETREL_ESTATE;
}

static bool io_can_write(void *ctx)
{
    petrel_client *c = ctx;
    return c->tr && transport_can_write(c->tr);
}

static void io_close(void *ctx, bool graceful)
{
    petrel_client *c = ctx;
    if (!c->tr)
        return;
    if (graceful) {
        transport_close_gracefully(c->tr);
    } else {
        struct transport *t = c->tr;
        c->tr = NULL;
        transport_close(t);
    }
}

static void io_connected(void *ctx, bool session_present)
{
    struct pending ev = {.type = EV_CONNECTED, .flag = session_present};
    emit(ctx, &ev);
}

/* The session's reason context for the event being reported. */
static void with_reason(petrel_client *c, struct pending *ev)
{
    struct mqtt_props mp;
    ev->rc = sess_reason(c->sess, &mp);
    ev->props = mp.data;
    ev->props_len = mp.len;
}

static void io_disconnected(void *ctx, int reason, bool reconnecting)
{
    struct pending ev = {.type = EV_DISCONNECTED, .value = reason, .flag = reconnecting};
    with_reason(ctx, &ev);
    emit(ctx, &ev);
}

static bool io_message(void *ctx, const struct mqtt_publish *p)
{
    petrel_client *c = ctx;
    if (c->api_depth == 0)
        flush_pending(c); /* e.g. a queued "connected" comes first */
    if (c->freeing || !c->on_message)
        return true;
    if (p->topic.len + 1 > c->topic_cap) {
        char *t = realloc(c->topic, p->topic.len + 1);
        if (!t)
            return false;
        c->topic = t;
        c->topic_cap = p->topic.len + 1;
    }
    memcpy(c->topic, p->topic.data, p->topic.len);
    c->topic[p->topic.len] = '\0';
    petrel_message m = {
        .topic = c->topic,
        .topic_len = p->topic.len,
        .payload = p->payload.len ? (const void *)p->payload.data : (const void *)"",
        .payload_len = p->payload.len,
        .qos = p->qos,
        .retain = p->retain,
        .dup = p->dup,
        .props = NULL,
    };
    petrel_properties props = props_view(p->props);
    if (sess_level(c->sess) == MQTT_LEVEL_5)
        m.props = &props;
    c->on_message(c, &m, c->message_arg);
    return true;
}

static void io_published(void *ctx, uint64_t id, int result)
{
    struct pending ev = {.type = EV_PUBLISHED, .id = id, .value = result};
    with_reason(ctx, &ev);
    emit(ctx, &ev);
}

static void io_subscribed(void *ctx, uint64_t id, size_t count, const int *granted)
{
    struct pending ev = {.type = EV_SUBSCRIBED, .id = id, .count = count, .granted = (int *)granted};
    with_reason(ctx, &ev);
    emit(ctx, &ev);
}

static void io_unsubscribed(void *ctx, uint64_t id)
{
    struct pending ev = {.type = EV_UNSUBSCRIBED, .id = id};
    with_reason(ctx, &ev);
    emit(ctx, &ev);
}

static void io_trace(void *ctx, int level, const char *line)
{
    petrel_client *c = ctx;
    if (c->on_log && !c->freeing)
        c->on_log(c, level, line, c->log_arg);
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint32_t io_random(void *ctx)
{
    petrel_client *c = ctx;
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (uint32_t)((c->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

/* ------------------------------------------------------------------------
 * Transport events
 */

static void tr_connected(void *ctx)
{
    petrel_client *c = ctx;
    cb_enter(c);
    if (c->tls && c->on_log) {
        char info[128], line[160];
        transport_tls_info(c->tr, info, sizeof info);
        snprintf(line, sizeof line, "TLS established (%s)", info);
        io_trace(c, PETREL_LOG_INFO, line);
    }
    sess_transport_up(c->sess, now_ms());
    cb_leave(c);
}

static void tr_packet(void *ctx, uint8_t first_byte, const uint8_t *body, uint32_t len)
{
    petrel_client *c = ctx;
    cb_enter(c);
    if (!c->freeing)
        sess_packet(c->sess, now_ms(), first_byte, body, len);
    cb_leave(c);
}

static void tr_drained(void *ctx)
{
    petrel_client *c = ctx;
    cb_enter(c);
    sess_writable(c->sess, now_ms());
    cb_leave(c);
}

static void tr_resolved(void *ctx)
{
    petrel_client *c = ctx;
    cb_enter(c);
    io_trace(c, PETREL_LOG_DEBUG, "host name resolved");
    cb_leave(c);
}

static void tr_closed(void *ctx, int reason)
{
    petrel_client *c = ctx;
    cb_enter(c);
    struct transport *t = c->tr;
    c->tr = NULL;
    transport_close(t);
    if (reason == PETREL_ETLS || reason == PETREL_ECERT) {
        char line[600];
        snprintf(line, sizeof line, "%s: %s", petrel_strerror(reason),
                 petrel_tls_error_detail());
        io_trace(c, PETREL_LOG_ERROR, line);
    }
    sess_transport_down(c->sess, now_ms(), reason);
    cb_leave(c);
}

/* ------------------------------------------------------------------------
 * Public API
 */

/* A write to a socket the broker has closed raises SIGPIPE, whose default
 * action kills the process: a library must not let a peer do that to its
 * application.  libevent writes with writev (no MSG_NOSIGNAL), so the only
 * lever is the disposition; it is changed only while it is the default, so
 * an application's own handler is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

petrel_client *petrel_client_new(struct event_base *base, const petrel_options *o, int *err)
{
    int dummy;
    ignore_sigpipe();
    if (!err)
        err = &dummy;
    if (!base || !o) {
        *err = PETREL_EINVAL;
        return NULL;
    }
    if (!o->clean_session && !o->client_id[0]) {
        /* Servers must refuse this (identifier rejected); say so early. */
        *err = PETREL_EINVAL;
        return NULL;
    }
    petrel_client *c = calloc(1, sizeof *c);
    if (!c) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    c->base = base;
    c->timer_at = -1;
    c->reading = true;
    c->pending_tail = &c->pending;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
             (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9E3779B97F4A7C15ull;
    if (options_copy(&c->opts, o) != PETREL_OK)
        goto oom;
    if (c->opts.tls) {
        /* Certificate files are read now, so that a wrong path is an
         * error here rather than a failed connection later. */
        int rc = PETREL_OK;
        c->tls = tlsc_ctx_new(&c->opts, &rc);
        if (!c->tls) {
            destroy(c);
            *err = rc;
            return NULL;
        }
    }
    struct sess_io io = {
        .ctx = c,
        .open = io_open,
        .write = io_write,
        .can_write = io_can_write,
        .close = io_close,
        .connected = io_connected,
        .disconnected = io_disconnected,
        .message = io_message,
        .published = io_published,
        .subscribed = io_subscribed,
        .unsubscribed = io_unsubscribed,
        .trace = io_trace,
        .random = io_random,
    };
    c->sess = sess_new(&c->opts, &io);
    c->timer = evtimer_new(base, timercb, c);
    c->deliver = event_new(base, -1, 0, delivercb, c);
    c->dns = resolver_new(base);
    if (!c->sess || !c->timer || !c->deliver || !c->dns)
        goto oom;
    *err = PETREL_OK;
    return c;
oom:
    destroy(c);
    *err = PETREL_ENOMEM;
    return NULL;
}

static void destroy(petrel_client *c)
{
    if (c->tr)
        transport_close(c->tr);
    resolver_free(c->dns); /* after its transports */
    if (c->timer)
        event_free(c->timer);
    if (c->deliver)
        event_free(c->deliver);
    struct pending *p;
    while ((p = c->pending)) {
        c->pending = p->next;
        free_pending(p);
    }
    sess_free(c->sess);
    tlsc_ctx_free(c->tls);
    options_clear(&c->opts);
    free(c->topic);
    free(c);
}

void petrel_client_free(petrel_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = true;
    if (c->tr) {
        transport_close(c->tr);
        c->tr = NULL;
    }
    if (c->cb_depth == 0)
        destroy(c);
    else
        evtimer_del(c->timer);
}

#define SETTER(name, type, field)                                        \
    void petrel_on_##name(petrel_client *c, type cb, void *arg)          \
    {                                                                    \
        if (!c)                                                          \
            return;                                                      \
        c->on_##field = cb;                                              \
        c->field##_arg = arg;                                            \
    }

SETTER(connected, petrel_connected_cb, connected)
SETTER(disconnected, petrel_disconnected_cb, disconnected)
SETTER(message, petrel_message_cb, message)
SETTER(published, petrel_published_cb, published)
SETTER(subscribed, petrel_subscribed_cb, subscribed)
SETTER(unsubscribed, petrel_unsubscribed_cb, unsubscribed)

void petrel_on_log(petrel_client *c, petrel_log_cb cb, void *arg)
{
    if (!c)
        return;
    c->on_log = cb;
    c->log_arg = arg;
    sess_set_trace(c->sess, cb != NULL);
}

int petrel_connect(petrel_client *c)
{
    if (!c || c->freeing)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_start(c->sess, now_ms());
    api_leave(c);
    return rc;
}

int petrel_disconnect(petrel_client *c)
{
    if (!c || c->freeing)
        return PETREL_EINVAL;
    api_enter(c);
    sess_stop(c->sess, now_ms());
    api_leave(c);
    return PETREL_OK;
}

int petrel_publish(petrel_client *c, const char *topic, const void *payload, size_t payload_len,
                   int qos, bool retain, uint64_t *id)
{
    if (!c || c->freeing || !topic)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_publish(c->sess, now_ms(), topic, strlen(topic), payload, payload_len, qos,
                          retain, id);
    api_leave(c);
    return rc;
}

int petrel_publish_props(petrel_client *c, const char *topic, const void *payload,
                         size_t payload_len, int qos, bool retain, const petrel_properties *props,
                         uint64_t *id)
{
    if (!c || c->freeing || !topic || props_check(props, PROPS_PUBLISH) != PETREL_OK)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_publish_props(c->sess, now_ms(), topic, strlen(topic), payload, payload_len,
                                qos, retain, props ? props->data : NULL, props ? props->len : 0,
                                id);
    api_leave(c);
    return rc;
}

int petrel_subscribe_props(petrel_client *c, const char *const *filters, const int *options,
                           size_t count, const petrel_properties *props, uint64_t *id)
{
    if (!c || c->freeing || props_check(props, PROPS_SUBSCRIBE) != PETREL_OK)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_subscribe_props(c->sess, now_ms(), filters, options, count,
                                  props ? props->data : NULL, props ? props->len : 0, id);
    api_leave(c);
    return rc;
}

int petrel_reason_code(const petrel_client *c)
{
    return c ? c->cur_rc : 0;
}

const petrel_properties *petrel_reason_properties(const petrel_client *c)
{
    return c && c->has_cur_props ? &c->cur_props : NULL;
}

const petrel_properties *petrel_connack_properties(const petrel_client *c)
{
    struct mqtt_props mp;
    if (!c || c->freeing || !sess_connack_props(c->sess, &mp))
        return NULL;
    /* The view lives in the client so the pointer stays valid; refreshing
     * it does not change what the client is. */
    petrel_client *mc = (petrel_client *)(uintptr_t)c;
    mc->connack_view = props_view(mp);
    return &mc->connack_view;
}

int petrel_subscribe_many(petrel_client *c, const char *const *filters, const int *qos,
                          size_t count, uint64_t *id)
{
    if (!c || c->freeing)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_subscribe(c->sess, now_ms(), filters, qos, count, id);
    api_leave(c);
    return rc;
}

int petrel_subscribe(petrel_client *c, const char *filter, int qos, uint64_t *id)
{
    return petrel_subscribe_many(c, &filter, &qos, 1, id);
}

int petrel_unsubscribe_many(petrel_client *c, const char *const *filters, size_t count,
                            uint64_t *id)
{
    if (!c || c->freeing)
        return PETREL_EINVAL;
    api_enter(c);
    int rc = sess_unsubscribe(c->sess, now_ms(), filters, count, id);
    api_leave(c);
    return rc;
}

int petrel_unsubscribe(petrel_client *c, const char *filter, uint64_t *id)
{
    return petrel_unsubscribe_many(c, &filter, 1, id);
}

bool petrel_is_connected(const petrel_client *c)
{
    return c && sess_state(c->sess) == SESS_CONNECTED;
}

size_t petrel_pending(const petrel_client *c)
{
    return c ? sess_pending(c->sess) : 0;
}

void client_set_reading(petrel_client *c, bool reading)
{
    if (c->reading == reading)
        return;
    c->reading = reading;
    if (c->tr)
        transport_set_reading(c->tr, reading);
    sess_set_reading(c->sess, now_ms(), reading);
    schedule(c);
}

int client_set_resolv_conf(petrel_client *c, const char *path)
{
    return resolver_set_conf(c->dns, path);
}
