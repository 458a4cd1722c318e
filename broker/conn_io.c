/*
 * conn_io.c - reading and writing a connection's socket.  A plain socket
 * costs an idle client one struct event (inside struct conn) and nothing
 * else: it is read into one broker-wide buffer, and only the start of a
 * packet that has not fully arrived is kept per connection; its output
 * buffer exists while it holds unsent bytes.  Output is written at the end
 * of the event loop's turn, in one write per connection for everything the
 * turn produced, and the event waits for EV_WRITE only when the socket is
 * full.  A bufferevent (TLS) connection keeps its bufferevent's buffers and
 * callbacks.  Timeouts are on the timer wheel (conn_timer.c) for both.
 */
#include "conn_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "conn_timer.h"

/* One read takes at most this much; more waits for the next turn, so that
 * a fast publisher does not hold the loop. */
#define READ_MAX (64 * 1024)
/* Empty output buffers kept for reuse: a busy connection gets and drops
 * one every turn. */
#define SPARE_BUFFERS 64

static uint8_t read_buf[READ_MAX];
static struct evbuffer *spare[SPARE_BUFFERS];
static size_t n_spare;

/* Plain connections with output to write at the end of this turn. */
static struct conn **flush_q;
static size_t n_flush, cap_flush;
static struct event *flush_ev;

static void io_cb(evutil_socket_t fd, short what, void *arg);
static void bev_readcb(struct bufferevent *bev, void *arg);
static void bev_writecb(struct bufferevent *bev, void *arg);
static void bev_eventcb(struct bufferevent *bev, short what, void *arg);
static void flush_cb(evutil_socket_t fd, short what, void *arg);

static struct event *ev_of(struct conn *c) { return (struct event *)(void *)c->ev; }

int conn_io_fd(const struct conn *c)
{
    if (c->bev)
        return (int)bufferevent_getfd(c->bev);
    return (int)event_get_fd((const struct event *)(const void *)c->ev);
}

static bool reads_allowed(const struct conn *c)
{
    return c->state != CONN_CLOSING && !c->read_paused && !c->input_held;
}

int conn_io_start(struct conn *c, int fd)
{
    if (!flush_ev) {
        flush_ev = event_new(broker.base, -1, 0, flush_cb, NULL);
        if (!flush_ev)
            return -1;
    }
    if (event_assign(ev_of(c), broker.base, fd, EV_READ | EV_PERSIST, io_cb, c) != 0 ||
        event_add(ev_of(c), NULL) != 0)
        return -1;
    c->io_events = EV_READ;
    return 0;
}

int conn_io_start_bufferevent(struct conn *c)
{
    bufferevent_setcb(c->bev, bev_readcb, bev_writecb, bev_eventcb, c);
    /* The write callback fires when the output drains to half the bound:
     * that is when paused deliveries and paused input resume. */
    bufferevent_setwatermark(c->bev, EV_WRITE, broker.cfg.max_output_buffer / 2, 0);
    return bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void put_spare(struct evbuffer *b)
{
    if (n_spare < SPARE_BUFFERS)
        spare[n_spare++] = b;
    else
        evbuffer_free(b);
}

void conn_io_close(struct conn *c)
{
    conn_timer_clear(c);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        return;
    }
    if (c->flush_idx) {
        flush_q[c->flush_idx - 1] = NULL;
        c->flush_idx = 0;
    }
    event_del(ev_of(c));
    evutil_closesocket(event_get_fd(ev_of(c)));
    if (c->in)
        evbuffer_free(c->in);
    /* Freeing runs the cleanups of the references it still holds. */
    if (c->out)
        evbuffer_free(c->out);
    c->in = c->out = NULL;
}

void conn_io_shutdown(void)
{
    while (n_spare)
        evbuffer_free(spare[--n_spare]);
    free(flush_q);
    flush_q = NULL;
    n_flush = cap_flush = 0;
    if (flush_ev)
        event_free(flush_ev);
    flush_ev = NULL;
}

/* ---- output --------------------------------------------------------------- */

static int queue_flush(struct conn *c)
{
    if (n_flush == cap_flush) {
        size_t cap = cap_flush ? cap_flush * 2 : 256;
        struct conn **q = realloc(flush_q, cap * sizeof *q);
        if (!q)
            return -1;
        flush_q = q;
        cap_flush = cap;
    }
    if (n_flush == 0)
        event_active(flush_ev, EV_WRITE, 0);
    flush_q[n_flush++] = c;
    c->flush_idx = (uint32_t)n_flush;
    return 0;
}

struct evbuffer *conn_output(struct conn *c)
{
    if (c->bev)
        return bufferevent_get_output(c->bev);
    if (!c->out) {
        c->out = n_spare ? spare[--n_spare] : evbuffer_new();
        if (!c->out)
            return NULL;
    }
    /* Waiting for EV_WRITE already: the event writes it. */
    if (!c->flush_idx && !c->io_want_write && queue_flush(c) != 0)
        return NULL;
    return c->out;
}

size_t conn_output_length(const struct conn *c)
{
    if (c->bev)
        return evbuffer_get_length(bufferevent_get_output(c->bev));
    return c->out ? evbuffer_get_length(c->out) : 0;
}

void conn_io_update(struct conn *c, int kick)
{
    bool read = reads_allowed(c);
    if (c->bev) {
        if (read)
            bufferevent_enable(c->bev, EV_READ);
        else
            bufferevent_disable(c->bev, EV_READ);
        if (read && kick)
            /* What arrived while reads were off: run the read callback
             * from the loop, as if it had just arrived. */
            bufferevent_trigger(c->bev, EV_READ,
                                BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
        return;
    }
    short want = (short)((read ? EV_READ : 0) | (c->io_want_write ? EV_WRITE : 0));
    struct event *ev = ev_of(c);
    if (want != c->io_events) {
        /* (Re-assigning drops a pending activation: bytes still unread are
         * reported again by the poll, those already buffered are kicked
         * below.) */
        event_del(ev);
        event_assign(ev, broker.base, event_get_fd(ev), (short)(want | EV_PERSIST), io_cb, c);
        if (want)
            event_add(ev, NULL);
        c->io_events = (uint8_t)want;
        kick = 1;
    }
    /* Bytes already read (the socket does not report them again). */
    if (read && kick && c->in)
        event_active(ev, EV_READ, 0);
}

/* Writes what the socket takes.  Returns -1 if the connection was closed. */
static int plain_write(struct conn *c)
{
    int fd = event_get_fd(ev_of(c));
    while (c->out && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, fd);
        if (n > 0)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            char why[128];
            snprintf(why, sizeof why, "socket error: %s", strerror(errno));
            conn_close(c, why, true);
            return -1;
        }
        break;
    }
    size_t left = c->out ? evbuffer_get_length(c->out) : 0;
    if (left == 0 && c->out) {
        put_spare(c->out);
        c->out = NULL;
    }
    bool want_write = left > 0;
    if (want_write != c->io_want_write) {
        c->io_want_write = want_write;
        conn_io_update(c, 0);
    }
    if (left <= broker.cfg.max_output_buffer / 2)
        conn_drained(c);
    return 0;
}

/* The turn's output, written once the turn's callbacks have produced it:
 * this event is activated by the first output of a turn, which puts it
 * behind the callbacks already made ready by the turn's poll. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* Connections queued while this runs (by writes that re-open a
     * session's window) are written in the next run, in this same turn. */
    size_t n = n_flush;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = flush_q[i];
        if (!c)
            continue; /* closed */
        flush_q[i] = NULL;
        c->flush_idx = 0;
        plain_write(c);
    }
    size_t kept = 0;
    for (size_t i = n; i < n_flush; i++) {
        struct conn *c = flush_q[i];
        if (!c)
            continue;
        flush_q[kept++] = c;
        c->flush_idx = (uint32_t)kept;
    }
    n_flush = kept;
    if (n_flush)
        event_active(flush_ev, EV_WRITE, 0);
}

/* ---- input ---------------------------------------------------------------- */

static void plain_read(struct conn *c)
{
    int fd = event_get_fd(ev_of(c));
    ssize_t n = read(fd, read_buf, sizeof read_buf);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        char why[128];
        snprintf(why, sizeof why, "socket error: %s", strerror(errno));
        conn_close(c, why, true);
        return;
    }
    if (n > 0)
        c->last_rx = conn_timer_now();
    if (c->in) {
        /* The rest of a packet: add to its start, then frame from there. */
        if (n > 0 && evbuffer_add(c->in, read_buf, (size_t)n) != 0) {
            conn_close(c, "out of memory", true);
            return;
        }
        struct conn_input in = {.buf = c->in};
        if (conn_process(c, &in) < 0)
            return;
        if (evbuffer_get_length(c->in) == 0) {
            evbuffer_free(c->in);
            c->in = NULL;
        }
    } else if (n > 0) {
        struct conn_input in = {.flat = read_buf, .len = (size_t)n};
        if (conn_process(c, &in) < 0)
            return;
        if (in.off < in.len) {
            /* Keep what is left: the start of a packet, or packets that
             * wait while the input is held or paused. */
            c->in = evbuffer_new();
            if (!c->in || evbuffer_add(c->in, read_buf + in.off, in.len - in.off) != 0) {
                conn_close(c, "out of memory", true);
                return;
            }
        }
    }
    /* End of file: once what came before it is handled.  If the input is
     * held meanwhile, the socket reports it again when reads resume. */
    if (n == 0 && reads_allowed(c))
        conn_close(c, "connection closed by peer", true);
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    if ((what & EV_WRITE) && plain_write(c) < 0)
        return;
    if ((what & EV_READ) && reads_allowed(c))
        plain_read(c);
}

/* ---- bufferevent ---------------------------------------------------------- */

static void bev_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    c->last_rx = conn_timer_now();
    struct conn_input in = {.buf = bufferevent_get_input(bev)};
    conn_process(c, &in);
}

static void bev_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_drained(arg);
}

static void bev_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        conn_close(c, c->close_reason, false);
    } else if (what & BEV_EVENT_EOF) {
        conn_close(c, "connection closed by peer", true);
    } else if (what & BEV_EVENT_ERROR) {
        char why[128];
        snprintf(why, sizeof why, "socket error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_close(c, why, true);
    }
}
