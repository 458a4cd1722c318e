/*
 * conn_io.c - reading and writing a connection's socket.  Plain sockets
 * are watched by one epoll set of the broker's, itself one libevent event,
 * so that an idle client costs no libevent state: 10,000 idle clients are
 * the case to be small for.  A socket is read into one broker-wide buffer,
 * and only the start of a packet that has not fully arrived is kept per
 * connection; its output buffer exists while it holds unsent bytes.
 * Output is written at the end of the event loop's turn, in one write per
 * connection for everything the turn produced, and EPOLLOUT is watched
 * only while the socket is full.  A ws:// connection is a plain one whose
 * bytes go through conn_ws.h both ways.  A bufferevent (TLS, wss://)
 * connection keeps its bufferevent's buffers and callbacks.  Timeouts are
 * on the timer wheel (conn_timer.c) for both.
 */
#include "conn_io.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "array_grow.h"
#include "broker.h"
#include "conn.h"
#include "conn_timer.h"
#include "conn_ws.h"
#include "log.h"
#include "output_memory.h"
#include "tls.h"
#include "turn.h"
#include "ws_transport.h"

/* One read takes at most this much; more waits for the next turn, so that
 * a fast publisher does not hold the loop. */
#define READ_MAX (16 * 1024)
/* Input read from publishers in one turn, all of them together: past it,
 * the ready ones wait for the next turn, in the order they came (defer_q),
 * so that a thousand floods cannot make one turn long.  Connections that
 * owe acknowledgements (deliveries in flight) are read whatever the
 * budget: their input frees the broker's queues. */
#define TURN_READ_BUDGET (128 * 1024)
/* Empty output buffers kept for reuse: a busy connection gets and drops
 * one every turn. */
#define SPARE_BUFFERS 64

static uint8_t read_buf[READ_MAX];
/* What a WebSocket connection's frames of one read carry (conn_ws.h). */
static uint8_t ws_buf[READ_MAX + CONN_WS_SLACK];
static struct evbuffer *spare[SPARE_BUFFERS];
static size_t n_spare;

/* Freed heap that malloc keeps instead of giving it back to the system.
 * Output is written, and its chains freed, at the end of every turn, so the
 * heap top is free between turns; with glibc's default (128 KiB) it would
 * be given back and faulted in again each turn (under fan-out, megabytes
 * per turn: a quarter of the broker's time in page faults). */
#define HEAP_KEEP_BYTES (64 * 1024 * 1024)

/* Events taken from the epoll set at once. */
#define EPOLL_BATCH 256

/* The epoll set and its event in the loop. */
static int ep_fd = -1;
static struct event *ep_ev;
/* The batch being dispatched: a connection closed meanwhile is struck out
 * of what is left of it. */
static struct epoll_event batch[EPOLL_BATCH];
static int batch_n, batch_i;

/* Plain connections with buffered input to process (kicked) and with
 * output to write, both done at the end of this turn (turn.h); ready
 * publishers left for the next turn by the read budget (deferred). */
struct conn_queue {
    struct conn **q;
    size_t n, cap;
};
static struct conn_queue kick_q, flush_q, defer_q;

static void ep_cb(evutil_socket_t fd, short what, void *arg);
static void bev_readcb(struct bufferevent *bev, void *arg);
static void bev_writecb(struct bufferevent *bev, void *arg);
static void bev_eventcb(struct bufferevent *bev, short what, void *arg);

static struct conn_io_handlers handlers;

void conn_io_init(const struct conn_io_handlers *h) { handlers = *h; }

int conn_io_fd(const struct conn *c)
{
    if (c->bev && ws_transport_is(c->bev)) /* the socket is below the filter */
        return (int)bufferevent_getfd(bufferevent_get_underlying(c->bev));
    return c->bev ? (int)bufferevent_getfd(c->bev) : c->fd;
}

/* A closing connection is still read (and what it sends thrown away), so
 * that its socket ends with a FIN, not a reset that could destroy the last
 * packet before the client reads it. */
static bool reads_allowed(const struct conn *c)
{
    if (c->state == CONN_DEAD)
        return false;
    if (c->state == CONN_CLOSING)
        return !c->auth_wait;
    return !c->read_paused && !c->input_held && !c->flow_paused && !c->rate_paused &&
           !c->mem_paused;
}

/* Watches `events` (EPOLLIN, EPOLLOUT) of c's socket; 0 = none. */
static int watch(struct conn *c, uint32_t events)
{
    if (events == c->io_events)
        return 0;
    int rc;
    if (events == 0) {
        /* Off the set: with no events asked, a hang-up would still be
         * reported, again and again. */
        rc = epoll_ctl(ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
    } else {
        struct epoll_event ev = {.events = events, .data.ptr = c};
        rc = epoll_ctl(ep_fd, c->io_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    }
    if (rc == 0)
        c->io_events = (uint8_t)events;
    return rc;
}

int conn_io_start(struct conn *c, int fd)
{
    if (!ep_ev) {
        mallopt(M_TRIM_THRESHOLD, HEAP_KEEP_BYTES);
        ep_fd = epoll_create1(EPOLL_CLOEXEC);
        if (ep_fd < 0)
            return -1;
        ep_ev = event_new(broker.base, ep_fd, EV_READ | EV_PERSIST, ep_cb, NULL);
        if (!ep_ev || event_add(ep_ev, NULL) != 0) {
            if (ep_ev)
                event_free(ep_ev);
            ep_ev = NULL;
            close(ep_fd);
            ep_fd = -1;
            return -1;
        }
    }
    c->fd = fd;
    return watch(c, EPOLLIN);
}

int conn_io_start_bufferevent(struct conn *c)
{
    bufferevent_setcb(c->bev, bev_readcb, bev_writecb, bev_eventcb, c);
    /* The write callback fires when the output drains to half the bound:
     * that is when paused deliveries and paused input resume. */
    bufferevent_setwatermark(c->bev, EV_WRITE, broker.cfg.max_output_buffer / 2, 0);
    output_memory_watch(bufferevent_get_output(c->bev));
    return bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void put_spare(struct evbuffer *b)
{
    if (n_spare < SPARE_BUFFERS)
        spare[n_spare++] = b;
    else
        evbuffer_free(b);
}

static void unqueue(struct conn_queue *q, struct conn *c)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->q[i] == c)
            q->q[i] = NULL;
}

void conn_io_close(struct conn *c)
{
    conn_timer_clear(&c->timer);
    if (c->bev) {
        output_memory_freed(evbuffer_get_length(bufferevent_get_output(c->bev)));
        if (ws_transport_is(c->bev))
            ws_transport_free(c->bev);
        else
            bufferevent_free(c->bev);
        c->bev = NULL;
        return;
    }
    if (c->io_flush)
        unqueue(&flush_q, c);
    if (c->io_kick)
        unqueue(&kick_q, c);
    if (c->io_deferred)
        unqueue(&defer_q, c);
    for (int i = batch_i + 1; i < batch_n; i++)
        if (batch[i].data.ptr == c)
            batch[i].data.ptr = NULL;
    watch(c, 0);
    if (!c->ws || !conn_ws_close(c)) /* a WebSocket's socket lingers */
        close(c->fd);
    free(c->ws);
    c->ws = NULL;
    c->fd = -1;
    if (c->in)
        evbuffer_free(c->in);
    /* Freeing runs the cleanups of the references it still holds. */
    if (c->out) {
        output_memory_freed(evbuffer_get_length(c->out));
        evbuffer_free(c->out);
    }
    c->in = c->out = NULL;
}

void conn_io_shutdown(void)
{
    ws_transport_shutdown();
    while (n_spare)
        evbuffer_free(spare[--n_spare]);
    free(flush_q.q);
    free(kick_q.q);
    free(defer_q.q);
    memset(&flush_q, 0, sizeof flush_q);
    memset(&kick_q, 0, sizeof kick_q);
    memset(&defer_q, 0, sizeof defer_q);
    if (ep_ev)
        event_free(ep_ev);
    ep_ev = NULL;
    if (ep_fd >= 0)
        close(ep_fd);
    ep_fd = -1;
}

/* ---- output --------------------------------------------------------------- */

static int enqueue(struct conn_queue *q, struct conn *c)
{
    if (q->n == q->cap) {
        struct conn **nq = array_grow(q->q, &q->cap, q->n + 1, sizeof *nq, 256);
        if (!nq)
            return -1;
        q->q = nq;
    }
    if (q != &defer_q)
        turn_schedule();
    q->q[q->n++] = c;
    return 0;
}

struct evbuffer *conn_output(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return NULL;
    if (c->bev)
        return bufferevent_get_output(c->bev);
    if (!c->out) {
        if (n_spare) {
            c->out = spare[--n_spare];
        } else {
            c->out = evbuffer_new();
            output_memory_watch(c->out); /* kept when it becomes a spare */
        }
        if (!c->out)
            return NULL;
    }
    /* Waiting for EPOLLOUT already: that writes it. */
    if (!c->io_flush && !c->io_want_write) {
        if (enqueue(&flush_q, c) != 0)
            return NULL;
        c->io_flush = true;
    }
    return c->out;
}

size_t conn_output_length(const struct conn *c)
{
    if (c->bev && ws_transport_is(c->bev))
        return ws_transport_pending(c->bev); /* pongs and frames count */
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
    uint32_t want = (read ? EPOLLIN : 0) | (c->io_want_write ? EPOLLOUT : 0);
    if (watch(c, want) != 0) {
        /* Out of kernel memory: not closed here, in the middle of its
         * caller's work; its timeouts still apply. */
        log_error("%s: cannot watch its socket: %s", conn_name(c), strerror(errno));
    }
    /* Bytes already read are not reported by the socket again. */
    if (read && kick && c->in && !c->io_kick && enqueue(&kick_q, c) == 0)
        c->io_kick = true;
}

/* Writes what the socket takes.  Returns -1 if the connection was closed. */
static int plain_write(struct conn *c)
{
    int fd = c->fd;
    if (c->ws)
        conn_ws_frame(c);
    while (c->out && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, fd);
        if (n > 0)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            char why[128];
            snprintf(why, sizeof why, "socket error: %s", strerror(errno));
            handlers.close(c, why, true);
            return -1;
        }
        break;
    }
    size_t left = c->out ? evbuffer_get_length(c->out) : 0;
    if (c->ws)
        conn_ws_wrote(c, left);
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
        handlers.drained(c);
    return 0;
}

static ssize_t plain_read(struct conn *c);

/* Runs fn on each connection of q queued so far, taking it off the queue
 * first; connections queued meanwhile wait for the next run. */
static void drain_queue(struct conn_queue *q, void (*fn)(struct conn *))
{
    size_t n = q->n;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = q->q[i];
        if (!c)
            continue; /* closed */
        q->q[i] = NULL;
        fn(c);
    }
    size_t kept = 0;
    for (size_t i = n; i < q->n; i++)
        if (q->q[i])
            q->q[kept++] = q->q[i];
    q->n = kept;
}

static void run_kicked(struct conn *c)
{
    c->io_kick = false;
    if (c->in && reads_allowed(c))
        plain_read(c);
}

static void run_flush(struct conn *c)
{
    c->io_flush = false;
    plain_write(c);
}

void conn_io_run_kicked(void) { drain_queue(&kick_q, run_kicked); }

void conn_io_flush(void)
{
    /* A write that re-opens a session's window queues more output, maybe
     * for connections already written: they are written again. */
    for (int round = 0; round < 4 && flush_q.n; round++)
        drain_queue(&flush_q, run_flush);
    if (flush_q.n)
        turn_schedule();
}

void conn_io_flush_now(struct conn *c)
{
    /* A TLS connection's bytes need the loop's OpenSSL layer: not here. */
    if (c->bev || !c->out)
        return;
    if (c->ws)
        conn_ws_frame(c);
    for (int i = 0; i < 8 && evbuffer_get_length(c->out) > 0; i++)
        if (evbuffer_write(c->out, c->fd) <= 0)
            break;
    if (c->ws)
        conn_ws_wrote(c, evbuffer_get_length(c->out));
}

size_t conn_io_held(const struct conn *c, bool *began)
{
    *began = false;
    return c->ws ? conn_ws_held(c, began) : 0;
}

void conn_io_close_code(struct conn *c, uint16_t code)
{
    if (c->bev && ws_transport_is(c->bev))
        ws_transport_set_close_code(c->bev, code);
    else if (c->ws)
        conn_ws_close_code(c, code);
}

void conn_io_finish(struct conn *c)
{
    if (c->bev && ws_transport_is(c->bev)) {
        ws_transport_finish(c->bev); /* a close frame before the FIN */
        return;
    }
    if (c->ws) {
        conn_ws_finish(c);
        return;
    }
    shutdown(conn_io_fd(c), SHUT_WR);
}

/* ---- input ---------------------------------------------------------------- */

/* One read of at most READ_MAX, and the packets it completes.  Returns
 * the bytes read (0 at end of file or on error). */
static ssize_t plain_read(struct conn *c)
{
    int fd = c->fd;
    ssize_t n = read(fd, read_buf, sizeof read_buf);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        char why[128];
        snprintf(why, sizeof why, "socket error: %s", strerror(errno));
        handlers.close(c, why, true);
        return 0;
    }
    if (n > 0)
        c->last_rx = conn_timer_now();
    if (c->state == CONN_CLOSING) {
        /* Lingering: what the client still sends is thrown away, and its
         * FIN (or the deadline) ends the connection. */
        if (c->in) {
            evbuffer_free(c->in);
            c->in = NULL;
        }
        if (n == 0)
            handlers.close(c, c->close_reason, false);
        return n > 0 ? n : 0;
    }
    /* The MQTT bytes read: the socket's, or what its WebSocket frames
     * carry (a failure there ends it once they are handled). */
    const uint8_t *data = read_buf;
    size_t len = n > 0 ? (size_t)n : 0;
    char ws_why[192];
    int ws_end = 0;
    if (c->ws && n > 0) {
        ws_end = conn_ws_input(c, read_buf, (size_t)n, ws_buf, &len, ws_why, sizeof ws_why);
        data = ws_buf;
    }
    if (c->in) {
        /* The rest of a packet: add to its start, then frame from there. */
        if (len > 0 && evbuffer_add(c->in, data, len) != 0) {
            handlers.close(c, "out of memory", true);
            return n > 0 ? n : 0;
        }
        struct conn_input in = {.buf = c->in};
        if (handlers.process(c, &in) < 0)
            return n > 0 ? n : 0;
        if (evbuffer_get_length(c->in) == 0) {
            evbuffer_free(c->in);
            c->in = NULL;
        }
    } else if (n > 0) {
        struct conn_input in = {.flat = data, .len = len};
        if (handlers.process(c, &in) < 0)
            return n > 0 ? n : 0;
        if (in.off < in.len) {
            /* Keep what is left: the start of a packet, or packets that
             * wait while the input is held or paused. */
            c->in = evbuffer_new();
            if (!c->in || evbuffer_add(c->in, data + in.off, in.len - in.off) != 0) {
                handlers.close(c, "out of memory", true);
                return n > 0 ? n : 0;
            }
        }
    }
    if (ws_end) {
        handlers.close(c, ws_why, true);
        return n;
    }
    /* End of file: once what came before it is handled.  If the input is
     * held meanwhile, the socket reports it again when reads resume. */
    if (n == 0 && reads_allowed(c))
        handlers.close(c, "connection closed by peer", true);
    return n > 0 ? n : 0;
}

/* Some sockets of the epoll set are ready. */
static void ep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    turn_begin();
    size_t budget = TURN_READ_BUDGET;
    /* Those left from the last turn go first, oldest first. */
    size_t n_def = defer_q.n;
    size_t i_def = 0;
    for (; i_def < n_def && budget >= READ_MAX; i_def++) {
        struct conn *c = defer_q.q[i_def];
        if (!c)
            continue;
        defer_q.q[i_def] = NULL;
        c->io_deferred = false;
        if (reads_allowed(c)) {
            ssize_t got = plain_read(c);
            budget -= (size_t)got < budget ? (size_t)got : budget;
        }
    }
    size_t kept = 0;
    for (size_t i = i_def; i < defer_q.n; i++)
        if (defer_q.q[i])
            defer_q.q[kept++] = defer_q.q[i];
    defer_q.n = kept;

    batch_n = epoll_wait(ep_fd, batch, EPOLL_BATCH, 0);
    for (batch_i = 0; batch_i < batch_n; batch_i++) {
        struct conn *c = batch[batch_i].data.ptr;
        if (!c)
            continue; /* closed by an earlier one of the batch */
        uint32_t e = batch[batch_i].events;
        /* An error or hang-up shows in the write or the read. */
        if ((e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->io_want_write && plain_write(c) < 0)
            continue;
        if (!(e & (EPOLLIN | EPOLLERR | EPOLLHUP)) || !reads_allowed(c) || c->io_deferred)
            continue;
        if (handlers.owes_acks(c)) {
            plain_read(c);
        } else if (budget >= READ_MAX || (e & (EPOLLERR | EPOLLHUP))) {
            ssize_t got = plain_read(c);
            budget -= (size_t)got < budget ? (size_t)got : budget;
        } else if (enqueue(&defer_q, c) == 0) {
            c->io_deferred = true; /* still ready: epoll says so again */
        } else {
            plain_read(c);
        }
    }
    batch_n = batch_i = 0;
    /* The deferred ones are still ready: the epoll set stays readable and
     * the loop comes back to them next turn. */
}

/* ---- bufferevent ---------------------------------------------------------- */

static void bev_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    turn_begin();
    if (c->state == CONN_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    c->last_rx = conn_timer_now();
    struct conn_input in = {.buf = bufferevent_get_input(bev)};
    handlers.process(c, &in);
}

static void bev_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    handlers.drained(arg);
}

static void bev_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        handlers.close(c, c->close_reason, false);
        return;
    }
    if (what & BEV_EVENT_CONNECTED) { /* TLS handshake done */
        tls_handshake_done(bev, conn_peer(c));
        return;
    }
    char tls_why[320];
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
        (ws_transport_error_reason(bev, tls_why, sizeof tls_why) ||
         tls_error_reason(bev, what, tls_why, sizeof tls_why))) {
        handlers.close(c, tls_why, true);
    } else if (what & BEV_EVENT_EOF) {
        handlers.close(c, "connection closed by peer", true);
    } else if (what & BEV_EVENT_ERROR) {
        char why[128];
        snprintf(why, sizeof why, "socket error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        handlers.close(c, why, true);
    }
}
