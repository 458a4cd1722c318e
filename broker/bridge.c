/*
 * bridge.c - the life of the bridges (bridge.h): made from the
 * configuration, each with its local session, a timer and its state;
 * failures go to a backoff with jitter and the next address; SIGHUP
 * restarts only the bridges whose section changed.
 */
#include "bridge_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "backoff.h"
#include "broker.h"
#include "log.h"
#include "message.h"
#include "options.h"
#include "router.h"
#include "session.h"
#include "tls_client.h"

static struct bridge *bridges[BRIDGE_MAX];
static size_t n_bridges;

int64_t bridge_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *state_name(uint8_t st)
{
    switch (st) {
    case BRIDGE_BACKOFF: return "backoff";
    case BRIDGE_RESOLVING:
    case BRIDGE_CONNECTING:
    case BRIDGE_ATTACHING: return "connecting";
    case BRIDGE_UP: return "connected";
    default: return "stopped";
    }
}

/* $SYS/broker/bridges/NAME/state, retained: "connected" or "disconnected". */
static void publish_state(const struct bridge *b, bool up)
{
    char topic[BRIDGE_NAME_LEN + 32];
    snprintf(topic, sizeof topic, "$SYS/broker/bridges/%s/state", b->conf.name);
    const char *v = up ? "connected" : "disconnected";
    struct message *m = message_new(topic, strlen(topic), (const uint8_t *)v, strlen(v), 0, true);
    if (!m)
        return;
    router_publish(m, NULL);
    message_unref(m);
}

void bridge_set_state(struct bridge *b, enum bridge_state st)
{
    bool was_up = b->state == BRIDGE_UP;
    b->state = (uint8_t)st;
    if (st == BRIDGE_UP && !was_up) {
        b->attempt = 0;
        b->connects++;
        b->last_error[0] = '\0';
        log_notice("bridge %s: connected to %s", b->conf.name, b->remote_name);
        publish_state(b, true);
    } else if (was_up && st != BRIDGE_UP) {
        publish_state(b, false);
    }
}

static void close_both(struct bridge *b, bool graceful)
{
    bridge_local_close(b);
    bridge_remote_close(b, graceful);
    b->inflight_out = 0;
    b->oldest_sent_ms = 0;
}

void bridge_fail(struct bridge *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->last_error, sizeof b->last_error, fmt, ap);
    va_end(ap);
    bool was_up = b->state == BRIDGE_UP;
    close_both(b, false);
    if (b->stopping) {
        bridge_set_state(b, BRIDGE_STOPPED);
        return;
    }
    /* The next address at once while there is one left in this round; a
     * delay once every address has failed (or the connection had been up:
     * the same address gets the first new try). */
    uint32_t delay = 0;
    if (!was_up)
        b->addr_index = (b->addr_index + 1) % b->conf.n_addresses;
    if (was_up || b->addr_index == 0) {
        b->rng = b->rng * 1103515245u + 12345u;
        delay = backoff_delay_ms(b->conf.reconnect_min_ms, b->conf.reconnect_max_ms,
                                 b->attempt++, b->rng >> 8);
    }
    log_warning("bridge %s: %s; trying %s again in %u ms", b->conf.name, b->last_error,
                was_up ? "it" : "the next address", delay);
    b->retry_at = bridge_now_ms() + delay;
    bridge_set_state(b, BRIDGE_BACKOFF);
}

int bridge_encode(uint8_t level, const struct mqtt_packet *p,
                  int (*write)(struct bridge *b, const void *data, size_t len), struct bridge *b)
{
    uint8_t small[512];
    size_t n = mqtt_encode(level, p, NULL, 0);
    if (n == 0)
        return -1;
    uint8_t *buf = n <= sizeof small ? small : malloc(n);
    if (!buf)
        return -1;
    mqtt_encode(level, p, buf, n);
    int rc = write(b, buf, n);
    if (buf != small)
        free(buf);
    return rc;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bridge *b = arg;
    int64_t now = bridge_now_ms();
    if (b->state == BRIDGE_BACKOFF && now >= b->retry_at) {
        bridge_remote_connect(b);
        return;
    }
    if ((b->state == BRIDGE_UP || b->state == BRIDGE_ATTACHING) && b->local &&
        !bridge_local_alive(b)) {
        bridge_fail(b, "the broker closed the local connection");
        return;
    }
    bridge_remote_tick(b, now);
    if (b->state == BRIDGE_UP)
        bridge_local_tick(b, now);
}

/* The password is the first line of password_file, read once at start. */
static int read_password(struct bridge *b)
{
    if (!b->conf.password_file[0])
        return 0;
    FILE *f = fopen(b->conf.password_file, "r");
    if (!f) {
        log_error("bridge %s: password_file %s: %s", b->conf.name, b->conf.password_file,
                  strerror(errno));
        return -1;
    }
    char line[1024];
    size_t n = 0;
    if (fgets(line, sizeof line, f)) {
        n = strcspn(line, "\r\n");
        line[n] = '\0';
    }
    fclose(f);
    b->password = malloc(n + 1);
    if (!b->password)
        return -1;
    memcpy(b->password, line, n + 1);
    b->password_len = n;
    return 0;
}

static int make_tls(struct bridge *b)
{
    if (!b->conf.tls)
        return 0;
    struct petrel_options o;
    memset(&o, 0, sizeof o);
    o.tls = true;
    o.tls_cafile = b->conf.cafile[0] ? b->conf.cafile : NULL;
    o.tls_certfile = b->conf.certfile[0] ? b->conf.certfile : NULL;
    o.tls_keyfile = b->conf.keyfile[0] ? b->conf.keyfile
                                       : (b->conf.certfile[0] ? b->conf.certfile : NULL);
    o.tls_insecure = b->conf.tls_insecure;
    int err = 0;
    b->tls = tlsc_ctx_new(&o, &err);
    if (!b->tls) {
        log_error("bridge %s: TLS: %s", b->conf.name, petrel_tls_error_detail());
        return -1;
    }
    return 0;
}

/* The local session "$bridge/NAME": made once, kept across restarts; its
 * subscriptions are set to the out rules (those of an older configuration
 * are removed, so nothing is forwarded that the file no longer says). */
static int setup_session(struct bridge *b)
{
    size_t idlen = strlen(b->local_id);
    struct session *s = session_find(b->local_id, idlen);
    if (!s)
        s = session_create(b->local_id, idlen, true);
    if (!s)
        return -1;
    /* A bridge's queue waits for its remote however long it is down; the
     * session of a bridge taken out of the file expires (bridge_free). */
    session_set_expiry(s, true, UINT32_MAX);
    s->own_bounds = b->conf.max_queued_messages || b->conf.max_queued_bytes_given;
    s->own_max_messages = b->conf.max_queued_messages ? b->conf.max_queued_messages
                                                      : broker.cfg.max_queued_messages;
    s->own_max_bytes = b->conf.max_queued_bytes_given ? b->conf.max_queued_bytes
                                                      : broker.cfg.max_queued_bytes;
    for (struct subscription *sub = s->subs, *next; sub; sub = next) {
        next = sub->next;
        bool wanted = false;
        for (size_t i = 0; i < b->conf.n_rules && !wanted; i++)
            wanted = b->conf.rules[i].out && strcmp(b->sub_filter[i], sub->filter) == 0;
        if (!wanted)
            session_unsubscribe(s, sub->filter, sub->len);
    }
    for (size_t i = 0; i < b->conf.n_rules; i++) {
        const struct bridge_rule *r = &b->conf.rules[i];
        if (!r->out)
            continue;
        /* No Local: what the bridge itself publishes (the in side) is not
         * sent back; retain as published: the remote keeps retained
         * messages retained. */
        uint8_t options = (uint8_t)(r->qos | MQTT_SUBOPT_NO_LOCAL |
                                    MQTT_SUBOPT_RETAIN_AS_PUBLISHED);
        if (session_subscribe(s, b->sub_filter[i], strlen(b->sub_filter[i]), options, 0) < 0)
            return -1;
    }
    return 0;
}

/* graceful: DISCONNECT to the remote (it then drops the will).  Not at
 * shutdown: the loop no longer runs, and a write still pending would keep
 * the TLS connection from ever being freed. */
static void bridge_free(struct bridge *b, bool graceful)
{
    if (!b)
        return;
    b->stopping = true;
    close_both(b, graceful);
    if (graceful) {
        /* Taken out of the file (SIGHUP): what it queued is kept for
         * session_expiry, in case the section comes back. */
        struct session *s = session_find(b->local_id, strlen(b->local_id));
        if (s) {
            session_set_expiry(s, false, 0);
            s->own_bounds = false;
        }
    }
    if (b->timer)
        event_free(b->timer);
    if (b->tls)
        tlsc_ctx_free(b->tls);
    free(b->password);
    free(b);
}

static struct bridge *bridge_new(const struct bridge_conf *conf)
{
    struct bridge *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->conf = *conf;
    snprintf(b->local_id, sizeof b->local_id, "%s%s", BRIDGE_CLIENT_ID_PREFIX, conf->name);
    for (size_t i = 0; i < conf->n_rules; i++) {
        const struct bridge_rule *r = &conf->rules[i];
        snprintf(b->sub_filter[i], sizeof b->sub_filter[i], "%s%s",
                 r->out ? r->local_prefix : r->remote_prefix, r->filter);
    }
    b->rng = (uint32_t)bridge_now_ms() ^ (uint32_t)getpid() ^ (uint32_t)(uintptr_t)b;
    b->timer = event_new(broker.base, -1, EV_PERSIST, tick, b);
    struct timeval tv = {1, 0};
    if (!b->timer || event_add(b->timer, &tv) != 0 || read_password(b) != 0 || make_tls(b) != 0 ||
        setup_session(b) != 0) {
        bridge_free(b, false);
        return NULL;
    }
    log_notice("bridge %s: %zu rule(s), first address %s:%u", conf->name, conf->n_rules,
               conf->addresses[0].host, (unsigned)conf->addresses[0].port);
    bridge_remote_connect(b);
    return b;
}

int bridges_start(void)
{
    for (size_t i = 0; i < broker.cfg.bridges.n; i++) {
        struct bridge *b = bridge_new(&broker.cfg.bridges.list[i]);
        if (!b) {
            log_error("bridge %s: cannot start", broker.cfg.bridges.list[i].name);
            return -1;
        }
        bridges[n_bridges++] = b;
    }
    return 0;
}

void bridges_stop(void)
{
    for (size_t i = 0; i < n_bridges; i++)
        bridge_free(bridges[i], false);
    n_bridges = 0;
    bridge_remote_shutdown();
}

void bridges_reload(const struct bridges_conf *fresh)
{
    struct bridge *keep[BRIDGE_MAX];
    size_t n = 0;
    for (size_t i = 0; i < n_bridges; i++) {
        struct bridge *b = bridges[i];
        const struct bridge_conf *c = bridge_config_find(fresh, b->conf.name);
        if (c && bridge_config_same(c, &b->conf)) {
            keep[n++] = b;
            continue;
        }
        log_notice("SIGHUP: bridge %s %s", b->conf.name, c ? "changed: restarting" : "removed");
        bridge_free(b, true);
    }
    for (size_t i = 0; i < fresh->n; i++) {
        const struct bridge_conf *c = &fresh->list[i];
        bool have = false;
        for (size_t j = 0; j < n && !have; j++)
            have = strcmp(keep[j]->conf.name, c->name) == 0;
        if (have)
            continue;
        struct bridge *b = bridge_new(c);
        if (!b) {
            log_error("SIGHUP: bridge %s cannot start", c->name);
            continue;
        }
        keep[n++] = b;
    }
    memcpy(bridges, keep, n * sizeof keep[0]);
    n_bridges = n;
}

bool bridge_owns_conn(const struct conn *c)
{
    for (size_t i = 0; i < n_bridges; i++)
        if (bridges[i]->local_conn == c && bridges[i]->local)
            return true;
    return false;
}

size_t bridges_count(void)
{
    return n_bridges;
}

bool bridge_get_status(size_t i, struct bridge_status *out)
{
    if (i >= n_bridges)
        return false;
    const struct bridge *b = bridges[i];
    memset(out, 0, sizeof *out);
    out->name = b->conf.name;
    out->state = state_name(b->state);
    out->remote = b->remote_name;
    out->last_error = b->last_error;
    const struct session *s = session_find(b->local_id, strlen(b->local_id));
    out->queued = s ? s->n_queued : 0;
    out->inflight = s ? s->inflight.count : 0;
    out->forwarded_out = b->forwarded_out;
    out->forwarded_in = b->forwarded_in;
    out->connects = b->connects;
    /* Lag: the age of the oldest message the remote has not acknowledged
     * (sent or still queued in memory); the age counts from when this run
     * of petreld made or read it back. */
    const struct delivery *d = s ? s->inflight.head : NULL;
    while (d && !d->msg)
        d = d->next;
    if (!d && s)
        d = s->queued.head;
    if (d && d->msg) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        out->lag_ms = now_ns > d->msg->born_ns ? (int64_t)((now_ns - d->msg->born_ns) / 1000000)
                                               : 0;
    }
    return true;
}
