/*
 * ws_transport.c - MQTT over WebSocket (see ws_transport.h).  Input: the
 * handshake, then wslay's event layer reads frames without buffering them
 * (no_buffering: each chunk of a binary frame's payload goes straight into
 * the connection's input, so a frame costs nothing while it arrives) and
 * answers pings and close frames itself.  Output: every write of the
 * connection becomes one binary frame, its header made by a wslay frame
 * context shared by all connections (a server's frames are not masked, so
 * nothing in it outlives the frame) and its payload moved, not copied.
 * wslay's reading context is 8 KiB (two 4 KiB buffers): a connection holds
 * one only while it is inside a frame or a fragmented message; between
 * frames (an idle client) it has none, and the next bytes borrow the
 * broker's spare one (see lend_ev).
 * When the connection is freed the socket lingers, outside the broker's
 * count, only to flush the last frames (two seconds at most).
 */
#include "ws_transport.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <wslay/wslay.h>

#include "ws_handshake.h"

/* How long a closed connection's socket may take to send its last bytes. */
#define LINGER_SECONDS 2

struct ws_conn {
    struct ws_conn *prev, *next;       /* lingering list */
    struct bufferevent *under;         /* the socket (or TLS) bufferevent */
    struct bufferevent *top;           /* the filter the connection uses */
    const struct ws_transport_conf *conf;
    struct ws_handshake *hs;           /* until the upgrade */
    wslay_event_context_ptr ev;        /* while inside a frame or message */
    uint64_t unframed;                 /* bytes given to wslay that no complete
                                          frame has accounted for yet */
    uint64_t frame_bytes;              /* header + payload of the frame being read */
    struct evbuffer *src, *dst;        /* during an input filter call */
    struct evbuffer_cb_entry *out_cb;  /* on under's output */
    struct event *linger_timer;
    char *why;                         /* why it failed (malloc'd), for the log */
    uint16_t close_code;               /* the next close frame's (0 = 1000) */
    uint8_t cur_opcode;                /* of the frame being read */
    bool in_message : 1;               /* a fragmented data message goes on */
    bool upgraded : 1;
    bool failed : 1;                   /* nothing more is read */
    bool close_sent : 1;               /* nothing more is sent */
    bool fin_after_drain : 1;          /* FIN once under's output is empty */
    bool shut : 1;                     /* FIN sent */
    bool lingering : 1;                /* the connection is gone */
};

struct ws_stats ws_stats;

/* The connection whose bytes wslay's callbacks handle now: a context is
 * lent from one connection to the next, so its user data cannot say. */
static struct ws_conn *cur;
/* A reading context in its initial state, for the next connection that
 * has bytes at a frame boundary. */
static wslay_event_context_ptr spare_ev;
static struct ws_conn *lingering;
static bool shutting_down;

/* ---- frames out ----------------------------------------------------------- */

static wslay_frame_context_ptr framer;
static struct evbuffer *framer_dst;
/* Stands for a payload that the caller moves itself: the framer's send
 * callback does not copy it. */
static const uint8_t moved_payload;

static ssize_t framer_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    (void)user;
    if (data == &moved_payload)
        return (ssize_t)len;
    return evbuffer_add(framer_dst, data, len) == 0 ? (ssize_t)len : -1;
}

static ssize_t framer_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)buf;
    (void)len;
    (void)flags;
    (void)user;
    return -1; /* only used to send */
}

static int framer_ready(void)
{
    static const struct wslay_frame_callbacks cbs = {framer_send, framer_recv, NULL};
    return framer || wslay_frame_context_init(&framer, &cbs, NULL) == 0 ? 0 : -1;
}

/* One whole frame to `dst`: its header, then `len` payload bytes taken from
 * `payload_buf` (moved) or `payload` (copied).  Returns 0 or -1. */
static int frame_out(struct evbuffer *dst, uint8_t opcode, struct evbuffer *payload_buf,
                     const uint8_t *payload, size_t len)
{
    if (framer_ready() != 0)
        return -1;
    struct wslay_frame_iocb io = {
        .fin = 1, .opcode = opcode, .mask = 0, .payload_length = len,
        .data = payload_buf ? &moved_payload : payload, .data_length = len,
    };
    framer_dst = dst;
    ssize_t r = wslay_frame_send(framer, &io);
    if (r < 0 || (size_t)r != len) {
        /* Half a frame in the shared context: start it afresh. */
        wslay_frame_context_free(framer);
        framer = NULL;
        return -1;
    }
    if (payload_buf && evbuffer_remove_buffer(payload_buf, dst, len) != (int)len)
        return -1;
    return 0;
}

static void send_close(struct ws_conn *ws, uint16_t code)
{
    if (ws->close_sent || !ws->upgraded)
        return;
    ws->close_sent = true;
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    frame_out(bufferevent_get_output(ws->under), WSLAY_CONNECTION_CLOSE, NULL, body, 2);
}

/* ---- failures ------------------------------------------------------------- */

/* Ends the connection from below: the close frame `code` (0 = none, e.g.
 * after an HTTP error) is queued; report() then tells the connection. */
static void fail(struct ws_conn *ws, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct ws_conn *ws, uint16_t code, const char *fmt, ...)
{
    if (ws->failed)
        return;
    ws->failed = true;
    if (code)
        send_close(ws, code);
    ws->close_sent = true;
    if (ws->ev) {
        wslay_event_shutdown_read(ws->ev);
        wslay_event_shutdown_write(ws->ev);
    }
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ws->why = strdup(why); /* NULL: the connection layer's own words stand */
}

/* The connection hears of it as of the end of its socket, after the bytes
 * that came before (a DISCONNECT just before a close frame must count):
 * the filter's deferred callbacks run the read callback first. */
static void report(struct ws_conn *ws, short what)
{
    bufferevent_trigger_event(ws->top, what | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- frames in ------------------------------------------------------------ */

static ssize_t ev_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    (void)flags;
    (void)user;
    struct ws_conn *ws = cur;
    int n = evbuffer_remove(ws->src, buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->unframed += (uint64_t)n;
    return n;
}

/* wslay's own frames: pongs and close frames. */
static ssize_t ev_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    (void)user;
    struct ws_conn *ws = cur;
    if (evbuffer_add(bufferevent_get_output(ws->under), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)ctx;
    (void)user;
    struct ws_conn *ws = cur;
    ws->cur_opcode = arg->opcode;
    /* Its header's size follows from the length (wslay refuses lengths
     * not in their shortest form, and unmasked client frames). */
    uint64_t n = arg->payload_length;
    ws->frame_bytes = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4 + n;
    if (arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME ||
        arg->opcode == WSLAY_TEXT_FRAME)
        ws->in_message = !arg->fin;
    if (ws->failed)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        ws_stats.protocol_errors++;
        fail(ws, WSLAY_CODE_UNSUPPORTED_DATA, "WebSocket text frame (MQTT needs binary frames)");
    } else if ((arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME) &&
               arg->payload_length > ws->conf->max_frame) {
        ws_stats.frame_too_large++;
        fail(ws, WSLAY_CODE_MESSAGE_TOO_BIG,
             "WebSocket frame of %llu bytes over the limit (%llu: max_packet_size + %d)",
             (unsigned long long)arg->payload_length, (unsigned long long)ws->conf->max_frame,
             WS_FRAME_SLACK);
    } else if (arg->opcode == WSLAY_PING) {
        ws_stats.pings++;
    }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    (void)ctx;
    (void)user;
    struct ws_conn *ws = cur;
    /* Continuation frames follow a binary one: a text one failed. */
    if (ws->failed || arg->data_length == 0 ||
        (ws->cur_opcode != WSLAY_BINARY_FRAME && ws->cur_opcode != WSLAY_CONTINUATION_FRAME))
        return;
    if (evbuffer_add(ws->dst, arg->data, arg->data_length) != 0)
        fail(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    (void)user;
    cur->unframed -= cur->frame_bytes < cur->unframed ? cur->frame_bytes : cur->unframed;
    cur->frame_bytes = 0;
}

/* The reading context for ws's bytes: its own while it is inside a frame
 * or a message, else the spare one (or a new one).  NULL when out of
 * memory. */
static wslay_event_context_ptr lend_ev(struct ws_conn *ws)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ev_recv,
        .send_callback = ev_send,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_frame_chunk,
        .on_frame_recv_end_callback = on_frame_end,
    };
    if (!ws->ev && spare_ev) {
        ws->ev = spare_ev;
        spare_ev = NULL;
    } else if (!ws->ev) {
        if (wslay_event_context_server_init(&ws->ev, &cbs, NULL) != 0)
            return ws->ev = NULL;
        wslay_event_config_set_no_buffering(ws->ev, 1);
    }
    return ws->ev;
}

/* After a read: at a frame boundary, outside any message, with nothing
 * queued (wslay_event_send ran) and no close, the context is as new and
 * goes back to be lent again; a failed connection's is thrown away. */
static void return_ev(struct ws_conn *ws)
{
    if (!ws->ev)
        return;
    if (ws->failed || !wslay_event_get_read_enabled(ws->ev) ||
        wslay_event_get_queued_msg_count(ws->ev) || wslay_event_get_close_received(ws->ev) ||
        wslay_event_get_close_sent(ws->ev)) {
        if (!ws->failed)
            return; /* it lives on with the connection */
        wslay_event_context_free(ws->ev);
        ws->ev = NULL;
        return;
    }
    if (ws->unframed || ws->in_message)
        return;
    if (spare_ev)
        wslay_event_context_free(ws->ev);
    else
        spare_ev = ws->ev;
    ws->ev = NULL;
}

static int upgrade(struct ws_conn *ws)
{
    ws_handshake_free(ws->hs);
    ws->hs = NULL;
    ws->upgraded = true;
    ws_stats.handshakes++;
    return 0;
}

/* The handshake's bytes.  Returns 1 once upgraded, 0 for more, -1 failed. */
static int handshake_input(struct ws_conn *ws, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src);
    if (n > WS_HANDSHAKE_MAX)
        n = WS_HANDSHAKE_MAX;
    const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)n);
    if (!p && n) {
        fail(ws, 0, "out of memory");
        return -1;
    }
    struct ws_handshake_conf hc = {ws->conf->path, ws->conf->origins};
    size_t used = 0;
    enum ws_handshake_status st = ws_handshake_feed(ws->hs, &hc, p, n, &used);
    if (st == WS_HS_MORE) {
        evbuffer_drain(src, used);
        return 0;
    }
    char resp[1024];
    size_t rlen = ws_handshake_response(ws->hs, resp, sizeof resp);
    evbuffer_drain(src, used);
    if (rlen)
        evbuffer_add(bufferevent_get_output(ws->under), resp, rlen);
    if (st != WS_HS_ACCEPTED) {
        ws_stats.handshake_refused++;
        fail(ws, 0, "WebSocket handshake refused (HTTP %d): %s", (int)st,
             ws_handshake_reason(ws->hs));
        return -1;
    }
    if (!rlen || upgrade(ws) != 0) {
        fail(ws, 0, "out of memory");
        return -1;
    }
    return 1;
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    (void)lim; /* the layer above bounds its input by pausing reads */
    (void)mode;
    struct ws_conn *ws = ctx;
    if (ws->failed) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    if (!ws->upgraded) {
        int r = handshake_input(ws, src);
        if (r < 0) {
            evbuffer_drain(src, evbuffer_get_length(src));
            report(ws, BEV_EVENT_ERROR);
            return BEV_NEED_MORE;
        }
        if (r == 0)
            return BEV_NEED_MORE;
    }
    if (!lend_ev(ws)) {
        fail(ws, 0, "out of memory");
        evbuffer_drain(src, evbuffer_get_length(src));
        report(ws, BEV_EVENT_ERROR);
        return BEV_NEED_MORE;
    }
    size_t before = evbuffer_get_length(dst);
    ws->src = src;
    ws->dst = dst;
    cur = ws;
    int r = wslay_event_recv(ws->ev);
    if (!ws->failed) {
        if (r == WSLAY_ERR_CALLBACK_FAILURE) {
            /* A frame wslay cannot take (a fragmented or long control
             * frame, a bad length): its own close frame would have no
             * code. */
            ws_stats.protocol_errors++;
            fail(ws, WSLAY_CODE_PROTOCOL_ERROR, "malformed WebSocket frame");
        } else if (r != 0) {
            fail(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
        } else {
            /* Pongs, and the close frame wslay answers or sends. */
            wslay_event_send(ws->ev);
            if (wslay_event_get_close_received(ws->ev)) {
                ws->close_sent = true;
                fail(ws, 0, "WebSocket closed by the client (code %u)",
                     (unsigned)wslay_event_get_status_code_received(ws->ev));
            } else if (!wslay_event_get_read_enabled(ws->ev)) {
                /* wslay refused a frame (unmasked, reserved bits or
                 * opcode, a data frame inside a fragmented message). */
                ws_stats.protocol_errors++;
                ws->close_sent = true;
                fail(ws, 0, "WebSocket protocol error (closed with code %u)",
                     (unsigned)wslay_event_get_status_code_sent(ws->ev));
            }
        }
    }
    ws->src = ws->dst = NULL;
    bool closed_by_client = ws->ev && wslay_event_get_close_received(ws->ev);
    return_ev(ws);
    cur = NULL;
    if (ws->failed) {
        evbuffer_drain(src, evbuffer_get_length(src));
        report(ws, closed_by_client ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
        /* What came before the failure is still the connection's. */
        return evbuffer_get_length(dst) > before ? BEV_OK : BEV_NEED_MORE;
    }
    /* OK even when only pings came: the connection layer then sees that
     * its output is over the bound (pongs count) and stops reading. */
    return BEV_OK;
}

/* ---- output --------------------------------------------------------------- */

/* ctx_of's answer: the output filter gives its context instead of working. */
static bool looking_up;
static struct ws_conn *found;

static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                 void *ctx)
{
    (void)lim; /* the layer above bounds its output */
    struct ws_conn *ws = ctx;
    if (looking_up) {
        found = ws;
        return BEV_NEED_MORE;
    }
    size_t n = evbuffer_get_length(src);
    if (n && (ws->close_sent || !ws->upgraded)) {
        /* Nothing may follow a close frame. */
        evbuffer_drain(src, n);
        n = 0;
    }
    if (n && frame_out(dst, WSLAY_BINARY_FRAME, src, NULL, n) != 0) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_ERROR;
    }
    if (mode == BEV_FINISHED && ws->upgraded && !ws->fin_after_drain) {
        send_close(ws, ws->close_code ? ws->close_code : WSLAY_CODE_NORMAL_CLOSURE);
        ws->fin_after_drain = true;
        if (evbuffer_get_length(dst) == 0 && !ws->shut) {
            ws->shut = true;
            shutdown(bufferevent_getfd(ws->under), SHUT_WR);
        }
    }
    return n ? BEV_OK : BEV_NEED_MORE;
}

/* The state of a bufferevent ws_transport_wrap made: a filter's context
 * cannot be asked for, but a flush hands it to the output filter. */
static struct ws_conn *ctx_of(struct bufferevent *bev)
{
    if (!bufferevent_get_underlying(bev))
        return NULL;
    looking_up = true;
    found = NULL;
    bufferevent_flush(bev, EV_WRITE, BEV_FLUSH);
    looking_up = false;
    return found;
}

/* Bytes left the socket: the connection hears that its output drained
 * (its bound counts these bytes, see ws_transport_pending), and a close
 * frame, once out, is followed by the FIN. */
static void under_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    struct ws_conn *ws = arg;
    if (!info->n_deleted || ws->lingering)
        return;
    size_t left = info->orig_size + info->n_added - info->n_deleted;
    if (left == 0 && ws->fin_after_drain && !ws->shut) {
        ws->shut = true;
        shutdown(bufferevent_getfd(ws->under), SHUT_WR);
    }
    size_t low = 0;
    bufferevent_getwatermark(ws->top, EV_WRITE, &low, NULL);
    if (left == 0 || (info->orig_size > low && left <= low))
        bufferevent_trigger(ws->top, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- the end -------------------------------------------------------------- */

static void linger_end(struct ws_conn *ws)
{
    if (ws->prev)
        ws->prev->next = ws->next;
    else if (lingering == ws)
        lingering = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    if (ws->linger_timer)
        event_free(ws->linger_timer);
    bufferevent_free(ws->under);
    free(ws);
}

static void linger_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    linger_end(arg);
}

static void linger_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void linger_write(struct bufferevent *bev, void *arg)
{
    struct ws_conn *ws = arg;
    if (!ws->shut && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        ws->shut = true;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
    }
}

static void linger_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        linger_end(arg);
}

/* The filter is being freed (the connection is gone): the socket stays
 * until its last frames are out and the client's FIN came, or the
 * deadline. */
static void ws_destroy(void *arg)
{
    struct ws_conn *ws = arg;
    if (!ws->lingering) {
        if (!shutting_down)
            send_close(ws, ws->close_code ? ws->close_code : WSLAY_CODE_NORMAL_CLOSURE);
        ws_handshake_free(ws->hs);
        ws->hs = NULL;
        if (ws->ev)
            wslay_event_context_free(ws->ev);
        ws->ev = NULL;
        free(ws->why);
        ws->why = NULL;
        struct evbuffer *out = bufferevent_get_output(ws->under);
        if (ws->out_cb)
            evbuffer_remove_cb_entry(out, ws->out_cb);
        ws->out_cb = NULL;
        ws->lingering = true;
        ws->top = NULL;
        struct timeval tv = {LINGER_SECONDS, 0};
        if (!shutting_down)
            ws->linger_timer = evtimer_new(bufferevent_get_base(ws->under), linger_timeout, ws);
        if (!ws->linger_timer || evtimer_add(ws->linger_timer, &tv) != 0) {
            if (ws->linger_timer)
                event_free(ws->linger_timer);
            bufferevent_free(ws->under);
            free(ws);
            return;
        }
        ws->next = lingering;
        if (lingering)
            lingering->prev = ws;
        lingering = ws;
        bufferevent_setcb(ws->under, linger_read, linger_write, linger_event, ws);
        bufferevent_setwatermark(ws->under, EV_WRITE, 0, 0);
        bufferevent_enable(ws->under, EV_READ | EV_WRITE);
        linger_write(ws->under, ws);
    }
}

void ws_transport_shutdown(void)
{
    shutting_down = true;
    while (lingering)
        linger_end(lingering);
    if (framer)
        wslay_frame_context_free(framer);
    framer = NULL;
    if (spare_ev)
        wslay_event_context_free(spare_ev);
    spare_ev = NULL;
}

/* ---- the rest of the contract --------------------------------------------- */

struct bufferevent *ws_transport_wrap(struct bufferevent *under, const struct ws_transport_conf *conf)
{
    struct ws_conn *ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->hs = ws_handshake_new())) {
        free(ws);
        bufferevent_free(under);
        return NULL;
    }
    ws->under = under;
    ws->conf = conf;
    shutting_down = false; /* a broker runs (again, in tests) */
    /* Not CLOSE_ON_FREE: ws_destroy keeps `under` to linger.  Deferred
     * callbacks: the filter's write callback would otherwise run inside
     * the connection's own writes. */
    ws->top = bufferevent_filter_new(under, in_filter, out_filter, BEV_OPT_DEFER_CALLBACKS,
                                     ws_destroy, ws);
    if (!ws->top) {
        ws_handshake_free(ws->hs);
        free(ws);
        bufferevent_free(under);
        return NULL;
    }
    /* What the connection writes while the socket still has bytes to send
     * waits in the filter, and goes out as one frame once they are sent:
     * a frame per packet would cost a callback per packet. */
    bufferevent_setwatermark(under, EV_WRITE, 0, 1);
    ws->out_cb = evbuffer_add_cb(bufferevent_get_output(under), under_out_cb, ws);
    if (!ws->out_cb) {
        bufferevent_free(ws->top); /* runs ws_destroy */
        return NULL;
    }
    return ws->top;
}

bool ws_transport_is(struct bufferevent *bev)
{
    return bufferevent_get_underlying(bev) != NULL;
}

size_t ws_transport_pending(struct bufferevent *bev)
{
    struct bufferevent *under = bufferevent_get_underlying(bev);
    return evbuffer_get_length(bufferevent_get_output(bev)) +
           (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

void ws_transport_free(struct bufferevent *bev)
{
    struct ws_conn *ws = ctx_of(bev);
    /* Nothing may touch the filter once it is freed. */
    if (ws && ws->out_cb) {
        evbuffer_remove_cb_entry(bufferevent_get_output(ws->under), ws->out_cb);
        ws->out_cb = NULL;
    }
    bufferevent_free(bev);
}

void ws_transport_finish(struct bufferevent *bev)
{
    bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
}

bool ws_transport_error_reason(struct bufferevent *bev, char *why, size_t len)
{
    struct ws_conn *ws = ctx_of(bev);
    if (!ws || !ws->why)
        return false;
    snprintf(why, len, "%s", ws->why);
    return true;
}

void ws_transport_set_close_code(struct bufferevent *bev, uint16_t code)
{
    struct ws_conn *ws = ctx_of(bev);
    if (ws && !ws->close_code)
        ws->close_code = code;
}
