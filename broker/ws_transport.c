/*
 * ws_transport.c - MQTT over WebSocket on a bufferevent, for wss:// (see
 * ws_transport.h): the filter feeds the handshake and the frames to
 * ws_frames.c and frames each flush of the connection's output as one
 * binary frame.  When the connection is freed the socket lingers
 * (ws_linger.h) to flush the last frames.
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
#include "ws_linger.h"

struct ws_conn {
    struct bufferevent *under;         /* the socket (or TLS) bufferevent */
    struct bufferevent *top;           /* the filter the connection uses */
    const struct ws_transport_conf *conf;
    struct ws_handshake *hs;           /* until the upgrade */
    struct ws_reader rd;
    struct evbuffer *dst;              /* during an input filter call */
    struct evbuffer_cb_entry *out_cb;  /* on under's output */
    char *why;                         /* why it failed (malloc'd), for the log */
    uint16_t close_code;               /* the next close frame's (0 = 1000) */
    bool upgraded : 1;
    bool failed : 1;                   /* nothing more is read */
    bool close_sent : 1;               /* nothing more is sent */
    bool fin_after_drain : 1;          /* FIN once under's output is empty */
    bool shut : 1;                     /* FIN sent */
    bool gone : 1;                     /* the connection is freed */
};

static bool shutting_down;

/* ---- frames out ----------------------------------------------------------- */

static void send_close(struct ws_conn *ws, uint16_t code)
{
    if (ws->close_sent || !ws->upgraded)
        return;
    ws->close_sent = true;
    ws_close_out(bufferevent_get_output(ws->under), code);
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

static int add_data(void *arg, const uint8_t *p, size_t n)
{
    struct ws_conn *ws = arg;
    return evbuffer_add(ws->dst, p, n);
}

static int add_control(void *arg, const uint8_t *p, size_t n)
{
    struct ws_conn *ws = arg;
    return evbuffer_add(bufferevent_get_output(ws->under), p, n);
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
    size_t used = 0;
    char why[160];
    int r = ws_handshake_step(ws->hs, ws->conf, p, n, &used,
                              bufferevent_get_output(ws->under), why, sizeof why);
    evbuffer_drain(src, used);
    if (r < 0) {
        fail(ws, 0, "%s", why);
        return -1;
    }
    if (r > 0) {
        ws_handshake_free(ws->hs);
        ws->hs = NULL;
        ws->upgraded = true;
    }
    return r;
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
    size_t before = evbuffer_get_length(dst);
    ws->dst = dst;
    struct ws_read_io io = {.src = src, .data = add_data, .send = add_control, .arg = ws};
    struct ws_read_end end;
    int r = ws_read(&ws->rd, ws->conf->max_frame, &io, &end);
    ws->dst = NULL;
    if (r < 0) {
        if (!end.close_code)
            ws->close_sent = true; /* wslay sent it, or the client's came */
        fail(ws, end.close_code, "%s", end.why);
        evbuffer_drain(src, evbuffer_get_length(src));
        report(ws, end.by_client ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
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
    if (n && ws_frame_out(dst, WSLAY_BINARY_FRAME, src, NULL, n) != 0) {
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
    if (!info->n_deleted || ws->gone)
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

/* The filter is being freed (the connection is gone): the socket lingers
 * until its last frames are out and the client's FIN came, or the
 * deadline. */
static void ws_destroy(void *arg)
{
    struct ws_conn *ws = arg;
    if (ws->gone)
        return;
    ws->gone = true;
    if (!shutting_down)
        send_close(ws, ws->close_code ? ws->close_code : WSLAY_CODE_NORMAL_CLOSURE);
    ws_handshake_free(ws->hs);
    ws_reader_free(&ws->rd);
    free(ws->why);
    if (ws->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(ws->under), ws->out_cb);
    if (shutting_down)
        bufferevent_free(ws->under);
    else
        ws_linger(ws->under);
    free(ws);
}

void ws_transport_shutdown(void)
{
    shutting_down = true;
    ws_linger_shutdown();
    ws_frames_shutdown();
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
