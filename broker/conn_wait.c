/*
 * conn_wait.c - a connection's packets waiting for a durable store batch,
 * and its acknowledgements held by flow control.  See conn_wait.h.
 *
 * The packets are kept encoded, in one buffer per connection, with marks
 * that say how many of its bytes belong to which batch.  Batches only grow,
 * so a release takes bytes from the front while their batch is durable,
 * and packets of one turn share one mark.
 */
#include "conn_wait.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <event2/buffer.h>

#include "array_grow.h"
#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "log.h"
#include "mqtt_codec.h"
#include "packet_fit.h"
#include "store.h"
#include "turn.h"

struct wait_mark {
    uint64_t batch;     /* the bytes leave once this batch is durable */
    uint32_t bytes;
    uint32_t pubacks;   /* PUBACKs among them: they stop counting against
                           the Receive Maximum the broker announced */
};

struct conn_wait {
    struct conn *c;
    LIST_ENTRY(conn_wait) link;    /* in `waiting`: connections with marks */
    bool listed;
    uint32_t n_marks;
    struct evbuffer *buf;          /* waiting packets, in order */
    struct wait_mark *marks;       /* n_marks of them, room for cap_marks */
    size_t cap_marks;
    struct evbuffer *held;         /* acknowledgements held by flow control */
    uint32_t n_held, held_pubacks;
    uint64_t held_first, held_last; /* batches the held ones wait for */
};

static LIST_HEAD(, conn_wait) waiting = LIST_HEAD_INITIALIZER(waiting);

static void list_add(struct conn_wait *w)
{
    if (w->listed)
        return;
    LIST_INSERT_HEAD(&waiting, w, link);
    w->listed = true;
}

static void list_remove(struct conn_wait *w)
{
    if (!w->listed)
        return;
    LIST_REMOVE(w, link);
    w->listed = false;
}

static struct conn_wait *get(struct conn *c)
{
    if (c->wait)
        return c->wait;
    struct conn_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->buf = evbuffer_new();
    if (!w->buf) {
        free(w);
        return NULL;
    }
    w->c = c;
    c->wait = w;
    return w;
}

/* Appends `bytes` already in w->buf to the mark of `batch`. */
static int add_mark(struct conn_wait *w, uint64_t batch, uint32_t bytes, uint32_t pubacks)
{
    if (w->n_marks) {
        struct wait_mark *last = &w->marks[w->n_marks - 1];
        if (batch <= last->batch) { /* never ahead of what came before */
            last->bytes += bytes;
            last->pubacks += pubacks;
            return 0;
        }
    }
    if (w->n_marks == w->cap_marks) {
        struct wait_mark *m =
            array_grow(w->marks, &w->cap_marks, (size_t)w->n_marks + 1, sizeof *m, 4);
        if (!m)
            return -1;
        w->marks = m;
    }
    w->marks[w->n_marks++] = (struct wait_mark){batch, bytes, pubacks};
    list_add(w);
    turn_schedule();
    return 0;
}

bool conn_wait_pending(const struct conn *c) { return c->wait && c->wait->n_marks > 0; }

uint32_t conn_wait_held(const struct conn *c) { return c->wait ? c->wait->n_held : 0; }

/* Encodes p at the end of `buf`, within a 5.0 client's Maximum Packet
 * Size as conn_send_packet does (packet_fit.h); returns its length or 0. */
static size_t encode_into(struct conn *c, const struct mqtt_packet *p, struct evbuffer *buf)
{
    struct packet_fit fit;
    fit.heap = NULL;
    size_t len;
    if (c->level == MQTT_LEVEL_5 && c->max_packet_out && p->type != MQTT_PUBLISH) {
        p = packet_fit(p, c->max_packet_out, &fit, &len);
        if (!p) {
            broker.stats.publish_too_large++;
            conn_close_later(c, "a packet the protocol needs is over the client's maximum "
                                "packet size");
            len = 0;
        }
    } else {
        len = mqtt_encode(c->level, p, NULL, 0);
    }
    struct evbuffer_iovec vec;
    if (len == 0 || evbuffer_reserve_space(buf, (ev_ssize_t)len, &vec, 1) != 1 ||
        vec.iov_len < len) {
        packet_fit_release(&fit);
        return 0;
    }
    mqtt_encode(c->level, p, vec.iov_base, len);
    packet_fit_release(&fit);
    vec.iov_len = len;
    if (evbuffer_commit_space(buf, &vec, 1) != 0)
        return 0;
    return len;
}

/* How a packet goes out that waits for nothing: conn_send_packet, given
 * by conn_wait_init. */
static int (*send_now)(struct conn *c, const struct mqtt_packet *p);

void conn_wait_init(int (*send)(struct conn *c, const struct mqtt_packet *p)) { send_now = send; }

void conn_wait_send(struct conn *c, const struct mqtt_packet *p, bool holdable)
{
    if (c->state == CONN_DEAD)
        return;
    uint64_t batch = store_wait_batch();
    bool puback = p->type == MQTT_PUBACK;
    holdable = holdable && c->flow_blocked && c->state == CONN_ACTIVE;
    if (!holdable && batch == 0 && !conn_wait_pending(c)) {
        /* Nothing to wait for: straight to the output. */
        if (send_now(c, p) == 0 && puback && c->in_qos1_unacked > 0)
            c->in_qos1_unacked--;
        return;
    }
    struct conn_wait *w = get(c);
    if (!w)
        goto oom;
    if (holdable) {
        /* In order: they all are held while c is slowed, and all follow
         * once it is not (conn_wait_unhold). */
        if (!w->held && !(w->held = evbuffer_new()))
            goto oom;
        if (encode_into(c, p, w->held) == 0)
            goto oom;
        if (w->n_held++ == 0)
            w->held_first = batch;
        w->held_last = batch;
        w->held_pubacks += puback;
        return;
    }
    size_t len = encode_into(c, p, w->buf);
    if (len == 0 || add_mark(w, batch, (uint32_t)len, puback) != 0)
        goto oom;
    return;
oom:
    conn_close_later(c, "out of memory");
}

void conn_wait_unhold(struct conn *c)
{
    struct conn_wait *w = c->wait;
    if (!w || w->n_held == 0)
        return;
    size_t len = evbuffer_get_length(w->held);
    if (evbuffer_add_buffer(w->buf, w->held) != 0 ||
        add_mark(w, w->held_last, (uint32_t)len, w->held_pubacks) != 0) {
        conn_close_later(c, "out of memory");
        return;
    }
    w->n_held = w->held_pubacks = 0;
    w->held_first = w->held_last = 0;
}

static void release(struct conn_wait *w, uint64_t durable)
{
    struct conn *c = w->c;
    uint32_t i = 0;
    for (; i < w->n_marks && w->marks[i].batch <= durable; i++) {
        struct evbuffer *out = conn_output(c);
        uint32_t n = w->marks[i].bytes;
        if (!out || evbuffer_remove_buffer(w->buf, out, n) != (int)n) {
            conn_close_later(c, "out of memory");
            return;
        }
        broker.stats.bytes_sent += n;
        uint32_t acks = w->marks[i].pubacks;
        c->in_qos1_unacked -= acks < c->in_qos1_unacked ? acks : c->in_qos1_unacked;
    }
    if (i == 0)
        return;
    memmove(w->marks, w->marks + i, (w->n_marks - i) * sizeof *w->marks);
    w->n_marks -= i;
    if (w->n_marks == 0)
        list_remove(w); /* once written, conn_drained sees it is all out */
}

void conn_wait_release(uint64_t durable)
{
    struct conn_wait *w = LIST_FIRST(&waiting);
    while (w) {
        struct conn_wait *next = LIST_NEXT(w, link);
        if (w->c->state != CONN_DEAD && !w->c->close_marked)
            release(w, durable);
        w = next;
    }
}

void conn_wait_fail(uint64_t batch)
{
    struct conn_wait *w;
    LIST_FOREACH(w, &waiting, link) {
        for (uint32_t i = 0; i < w->n_marks; i++) {
            if (w->marks[i].batch == batch) {
                conn_close_later(w->c, "store write failed: acknowledgement withheld");
                break;
            }
        }
    }
    /* Held acknowledgements are not on the list when nothing else waits. */
    for (struct conn *c = broker.conns; c; c = c->next) {
        struct conn_wait *w = c->wait;
        if (w && w->n_held && w->held_first <= batch && batch <= w->held_last)
            conn_close_later(c, "store write failed: acknowledgement withheld");
    }
}

void conn_wait_free(struct conn *c)
{
    struct conn_wait *w = c->wait;
    if (!w)
        return;
    list_remove(w);
    evbuffer_free(w->buf);
    if (w->held)
        evbuffer_free(w->held);
    free(w->marks);
    free(w);
    c->wait = NULL;
}
