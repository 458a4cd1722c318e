/*
 * sync.c - the blocking facade: a petrel_client on a private event base,
 * with each call running that loop until its own work is done or its
 * timeout expires.  Messages that arrive meanwhile wait in a bounded FIFO
 * for petrel_sync_receive; when it is full the client stops reading from
 * the socket, so a slow reader pushes back on the server instead of losing
 * messages or memory.  A call waiting for an acknowledgement reads anyway:
 * its answer may be behind the messages (it is bounded by its timeout).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "client.h"
#include "petrel.h"
#include "properties.h"

/* Received messages held before reading from the socket pauses. */
#define RX_LIMIT 1000

struct rx {
    struct rx *next;
    petrel_message *m;
};

struct petrel_sync {
    struct event_base *base;
    petrel_client *c;
    struct event *wake;
    struct rx *rx_head;
    struct rx **rx_tail;
    size_t rx_count;
    bool paused;
    bool connected;
    bool ever_connected;
    bool stopped;          /* disconnected with no reconnection coming */
    int last_error;
    /* The operation a call is waiting for. */
    bool waiting;
    uint64_t wait_id;
    bool wait_done;
    int wait_result;
    int granted;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_connected(petrel_client *c, bool session_present, void *arg)
{
    (void)c;
    (void)session_present;
    petrel_sync *s = arg;
    s->connected = s->ever_connected = true;
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    petrel_sync *s = arg;
    s->connected = false;
    if (reason != PETREL_OK)
        s->last_error = reason;
    if (!s->ever_connected && reconnecting) {
        /* The first connection must work: report its failure rather than
         * retrying until the caller's timeout. */
        petrel_disconnect(c);
        s->stopped = true;
        return;
    }
    if (!reconnecting)
        s->stopped = true;
}

static void on_published(petrel_client *c, uint64_t id, int result, void *arg)
{
    (void)c;
    petrel_sync *s = arg;
    if (id == s->wait_id) {
        s->wait_done = true;
        s->wait_result = result;
    }
}

static void on_subscribed(petrel_client *c, uint64_t id, size_t count, const int *granted,
                          void *arg)
{
    (void)c;
    petrel_sync *s = arg;
    if (id == s->wait_id && id != 0) {
        s->wait_done = true;
        s->wait_result = PETREL_OK;
        s->granted = count ? granted[0] : PETREL_SUBSCRIBE_FAILED;
    }
}

static void on_unsubscribed(petrel_client *c, uint64_t id, void *arg)
{
    (void)c;
    petrel_sync *s = arg;
    if (id == s->wait_id) {
        s->wait_done = true;
        s->wait_result = PETREL_OK;
    }
}

/* One allocation: the struct, the MQTT 5.0 properties (object and block),
 * the topic and the payload, each followed by a NUL so that text payloads
 * can be used as C strings. */
static petrel_message *copy_message(const petrel_message *m)
{
    size_t plen = m->props ? m->props->len : 0;
    size_t pobj = m->props ? sizeof(petrel_properties) : 0;
    petrel_message *c = malloc(sizeof *c + pobj + plen + m->topic_len + 1 + m->payload_len + 1);
    if (!c)
        return NULL;
    petrel_properties *props = m->props ? (petrel_properties *)(void *)(c + 1) : NULL;
    uint8_t *pdata = (uint8_t *)(c + 1) + pobj;
    char *topic = (char *)(pdata + plen);
    char *payload = topic + m->topic_len + 1;
    memcpy(topic, m->topic, m->topic_len);
    topic[m->topic_len] = '\0';
    if (m->payload_len)
        memcpy(payload, m->payload, m->payload_len);
    payload[m->payload_len] = '\0';
    *c = *m;
    c->topic = topic;
    c->payload = payload;
    c->props = NULL;
    if (props) {
        if (plen)
            memcpy(pdata, m->props->data, plen);
        /* A view (cap 0): freed with the message, never on its own. */
        *props = props_view((struct mqtt_props){pdata, (uint32_t)plen});
        c->props = props;
    }
    return c;
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    petrel_sync *s = arg;
    struct rx *r = malloc(sizeof *r);
    petrel_message *copy = r ? copy_message(m) : NULL;
    if (!copy) {
        free(r);
        /* Dropping it silently would break the QoS contract; losing the
         * connection gets it redelivered (QoS 1/2, persistent session). */
        s->last_error = PETREL_ENOMEM;
        return;
    }
    r->m = copy;
    r->next = NULL;
    *s->rx_tail = r;
    s->rx_tail = &r->next;
    if (++s->rx_count >= RX_LIMIT && !s->paused && !s->waiting) {
        s->paused = true;
        client_set_reading(c, false);
    }
}

static void wakecb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until done(s), the client stops, or the timeout. */
static int run(petrel_sync *s, bool (*done)(const petrel_sync *), int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int rc;
    for (;;) {
        if (done(s)) {
            rc = PETREL_OK;
            break;
        }
        if (s->stopped) {
            rc = PETREL_ESTOPPED;
            break;
        }
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                rc = PETREL_ETIMEDOUT;
                break;
            }
            struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
            evtimer_add(s->wake, &tv);
        }
        if (event_base_loop(s->base, EVLOOP_ONCE) < 0) {
            rc = PETREL_ENETWORK;
            break;
        }
    }
    evtimer_del(s->wake);
    return rc;
}

static bool is_connected(const petrel_sync *s)
{
    return s->connected;
}

static bool is_wait_done(const petrel_sync *s)
{
    return s->wait_done;
}

static bool has_message(const petrel_sync *s)
{
    return s->rx_head != NULL;
}

static bool is_stopped(const petrel_sync *s)
{
    return s->stopped;
}

static void destroy(petrel_sync *s)
{
    petrel_client_free(s->c);
    struct rx *r;
    while ((r = s->rx_head)) {
        s->rx_head = r->next;
        free(r->m);
        free(r);
    }
    if (s->wake)
        event_free(s->wake);
    if (s->base) {
        /* A host name lookup the client gave up on (a connect timeout)
         * ends in deferred callbacks that free its memory: let them run. */
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        event_base_free(s->base);
    }
    free(s);
}

petrel_sync *petrel_sync_connect(const petrel_options *o, int timeout_ms, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    petrel_sync *s = calloc(1, sizeof *s);
    if (!s) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    s->rx_tail = &s->rx_head;
    s->base = event_base_new();
    s->wake = s->base ? evtimer_new(s->base, wakecb, s) : NULL;
    if (!s->wake) {
        destroy(s);
        *err = PETREL_ENOMEM;
        return NULL;
    }
    s->c = petrel_client_new(s->base, o, err);
    if (!s->c) {
        destroy(s);
        return NULL;
    }
    petrel_on_connected(s->c, on_connected, s);
    petrel_on_disconnected(s->c, on_disconnected, s);
    petrel_on_message(s->c, on_message, s);
    petrel_on_published(s->c, on_published, s);
    petrel_on_subscribed(s->c, on_subscribed, s);
    petrel_on_unsubscribed(s->c, on_unsubscribed, s);
    int rc = petrel_connect(s->c);
    if (rc == PETREL_OK) {
        rc = run(s, is_connected, timeout_ms);
        if (rc == PETREL_ESTOPPED)
            rc = s->last_error ? s->last_error : PETREL_ECONNLOST;
    }
    if (rc != PETREL_OK) {
        destroy(s);
        *err = rc;
        return NULL;
    }
    *err = PETREL_OK;
    return s;
}

/* Waits for the operation `id` that was just started; `answered` when
 * its completion is a packet from the server (everything but QoS 0). */
static int wait_for(petrel_sync *s, uint64_t id, bool answered, int timeout_ms)
{
    s->wait_id = id;
    s->wait_done = false;
    s->wait_result = PETREL_OK;
    s->waiting = answered;
    if (answered && s->paused) {
        s->paused = false;
        client_set_reading(s->c, true);
    }
    int rc = run(s, is_wait_done, timeout_ms);
    s->waiting = false;
    s->wait_id = 0;
    if (s->rx_count >= RX_LIMIT && !s->paused) {
        s->paused = true;
        client_set_reading(s->c, false);
    }
    return rc == PETREL_OK ? s->wait_result : rc;
}

int petrel_sync_publish(petrel_sync *s, const char *topic, const void *payload,
                        size_t payload_len, int qos, bool retain, int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    if (s->stopped)
        return PETREL_ESTOPPED;
    uint64_t id;
    int rc = petrel_publish(s->c, topic, payload, payload_len, qos, retain, &id);
    return rc == PETREL_OK ? wait_for(s, id, qos > 0, timeout_ms) : rc;
}

int petrel_sync_subscribe(petrel_sync *s, const char *filter, int qos, int *granted,
                          int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    if (s->stopped)
        return PETREL_ESTOPPED;
    uint64_t id;
    int rc = petrel_subscribe(s->c, filter, qos, &id);
    if (rc == PETREL_OK)
        rc = wait_for(s, id, true, timeout_ms);
    if (rc == PETREL_OK && granted)
        *granted = s->granted;
    return rc;
}

int petrel_sync_publish_props(petrel_sync *s, const char *topic, const void *payload,
                              size_t payload_len, int qos, bool retain,
                              const petrel_properties *props, int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    if (s->stopped)
        return PETREL_ESTOPPED;
    uint64_t id;
    int rc = petrel_publish_props(s->c, topic, payload, payload_len, qos, retain, props, &id);
    return rc == PETREL_OK ? wait_for(s, id, qos > 0, timeout_ms) : rc;
}

int petrel_sync_subscribe_props(petrel_sync *s, const char *filter, int options,
                                const petrel_properties *props, int *granted, int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    if (s->stopped)
        return PETREL_ESTOPPED;
    uint64_t id;
    int rc = petrel_subscribe_props(s->c, &filter, &options, 1, props, &id);
    if (rc == PETREL_OK)
        rc = wait_for(s, id, true, timeout_ms);
    if (rc == PETREL_OK && granted)
        *granted = s->granted;
    return rc;
}

int petrel_sync_unsubscribe(petrel_sync *s, const char *filter, int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    if (s->stopped)
        return PETREL_ESTOPPED;
    uint64_t id;
    int rc = petrel_unsubscribe(s->c, filter, &id);
    return rc == PETREL_OK ? wait_for(s, id, true, timeout_ms) : rc;
}

int petrel_sync_receive(petrel_sync *s, petrel_message **out, int timeout_ms)
{
    if (!s || !out)
        return PETREL_EINVAL;
    *out = NULL;
    if (!s->rx_head) {
        int rc = run(s, has_message, timeout_ms);
        if (rc != PETREL_OK)
            return rc;
    }
    struct rx *r = s->rx_head;
    s->rx_head = r->next;
    if (!s->rx_head)
        s->rx_tail = &s->rx_head;
    s->rx_count--;
    *out = r->m;
    free(r);
    if (s->paused && s->rx_count <= RX_LIMIT / 2) {
        s->paused = false;
        client_set_reading(s->c, true);
    }
    return PETREL_OK;
}

void petrel_message_free(petrel_message *m)
{
    free(m);
}

int petrel_sync_last_error(const petrel_sync *s)
{
    return s ? s->last_error : PETREL_EINVAL;
}

petrel_client *petrel_sync_client(petrel_sync *s)
{
    return s ? s->c : NULL;
}

int petrel_sync_disconnect(petrel_sync *s, int timeout_ms)
{
    if (!s)
        return PETREL_EINVAL;
    int rc = PETREL_OK;
    if (!s->stopped) {
        petrel_disconnect(s->c);
        rc = run(s, is_stopped, timeout_ms);
    }
    destroy(s);
    return rc;
}
