/*
 * ws_client.c - the client side of MQTT over WebSocket (see ws_client.h).
 * The server's answer is read by ws_upgrade.h (http-parser); frames
 * with wslay's event layer: data frames unbuffered, straight into the
 * transport's input; each write of the transport becomes one masked binary
 * frame.  No state is shared between connections (applications may run
 * clients on several threads).
 */
#include "ws_client.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "petrel.h"
#include "ws_upgrade.h"

struct wsc {
    struct bufferevent *under, *top;
    int *failure;
    uint64_t max_frame;
    struct ws_upgrade up;           /* the handshake */
    /* then the frames */
    wslay_event_context_ptr ev;
    struct evbuffer *src, *dst;
    uint8_t cur_opcode;
    bool failed;
};

/* ---- frames --------------------------------------------------------------- */

static void fail(struct wsc *w, int reason)
{
    if (w->failed)
        return;
    w->failed = true;
    *w->failure = reason;
    bufferevent_trigger_event(w->top, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
}

static ssize_t ev_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    (void)flags;
    struct wsc *w = user;
    int n = w->src ? evbuffer_remove(w->src, buf, len) : 0;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ev_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    struct wsc *w = user;
    if (evbuffer_add(bufferevent_get_output(w->under), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ev_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)ctx;
    struct wsc *w = user;
    w->cur_opcode = arg->opcode;
    if (arg->opcode == WSLAY_TEXT_FRAME ||
        ((arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME) &&
         arg->payload_length > w->max_frame)) {
        wslay_event_queue_close(w->ev, arg->opcode == WSLAY_TEXT_FRAME
                                           ? WSLAY_CODE_UNSUPPORTED_DATA
                                           : WSLAY_CODE_MESSAGE_TOO_BIG,
                                NULL, 0);
        wslay_event_shutdown_read(w->ev);
        fail(w, PETREL_EPROTOCOL);
    }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    (void)ctx;
    struct wsc *w = user;
    if (w->failed || !arg->data_length ||
        (w->cur_opcode != WSLAY_BINARY_FRAME && w->cur_opcode != WSLAY_CONTINUATION_FRAME))
        return;
    if (evbuffer_add(w->dst, arg->data, arg->data_length) != 0)
        fail(w, PETREL_ENOMEM);
}

static int upgraded(struct wsc *w)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ev_recv,
        .send_callback = ev_send,
        .genmask_callback = ev_genmask,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_frame_chunk,
    };
    if (wslay_event_context_client_init(&w->ev, &cbs, w) != 0)
        return PETREL_ENOMEM;
    wslay_event_config_set_no_buffering(w->ev, 1);
    return 0;
}

/* The server's answer; 1 once upgraded, 0 for more, -1 failed. */
static int handshake_input(struct wsc *w, struct evbuffer *src)
{
    size_t n = evbuffer_get_length(src);
    if (n > WS_UPGRADE_MAX)
        n = WS_UPGRADE_MAX;
    const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)n);
    size_t used = 0;
    int r = ws_upgrade_feed(&w->up, p, n, &used);
    evbuffer_drain(src, used);
    if (r <= 0)
        return r;
    return upgraded(w) == 0 ? 1 : -1;
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    (void)lim;
    (void)mode;
    struct wsc *w = ctx;
    if (w->failed) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_NEED_MORE;
    }
    if (!w->ev) {
        int r = handshake_input(w, src);
        if (r < 0) {
            fail(w, PETREL_EPROTOCOL);
            evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_NEED_MORE;
        }
        if (r == 0)
            return BEV_NEED_MORE;
        bufferevent_trigger_event(w->top, BEV_EVENT_CONNECTED, BEV_TRIG_DEFER_CALLBACKS);
    }
    w->src = src;
    w->dst = dst;
    size_t before = evbuffer_get_length(dst);
    int r = wslay_event_recv(w->ev);
    if (r != 0)
        fail(w, PETREL_EPROTOCOL);
    wslay_event_send(w->ev); /* pongs, and close frames */
    if (!w->failed && wslay_event_get_close_received(w->ev))
        fail(w, PETREL_ECONNLOST);
    else if (!w->failed && !wslay_event_get_read_enabled(w->ev))
        fail(w, PETREL_EPROTOCOL);
    w->src = w->dst = NULL;
    if (w->failed)
        evbuffer_drain(src, evbuffer_get_length(src));
    return evbuffer_get_length(dst) > before ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                 void *ctx)
{
    (void)dst; /* ev_send writes to it: it is under's output */
    (void)lim;
    (void)mode;
    struct wsc *w = ctx;
    size_t n = evbuffer_get_length(src);
    if (!n)
        return BEV_NEED_MORE;
    if (!w->ev || w->failed) {
        /* Nothing is written before the upgrade (the transport waits for
         * it) nor after a failure. */
        evbuffer_drain(src, n);
        return BEV_NEED_MORE;
    }
    const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)n);
    struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, p, n};
    int r = p ? wslay_event_queue_msg(w->ev, &msg) : WSLAY_ERR_NOMEM;
    evbuffer_drain(src, n);
    if (r != 0 || wslay_event_send(w->ev) != 0) {
        fail(w, PETREL_ENOMEM);
        return BEV_ERROR;
    }
    return BEV_OK;
}

static void wsc_free(void *arg)
{
    struct wsc *w = arg;
    if (w->ev)
        wslay_event_context_free(w->ev);
    free(w);
}

struct bufferevent *wsc_start(struct bufferevent *under, const char *host, uint16_t port,
                              const char *path, uint64_t max_frame, int *failure, int *err)
{
    struct wsc *w = calloc(1, sizeof *w);
    if (!w) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    w->under = under;
    w->failure = failure;
    w->max_frame = max_frame;
    char req[1024 + 512];
    size_t len = ws_upgrade_request(&w->up, host, port, path, req, sizeof req);
    if (!len) {
        free(w);
        *err = PETREL_EINVAL;
        return NULL;
    }
    if (evbuffer_add(bufferevent_get_output(under), req, len) != 0) {
        free(w);
        *err = PETREL_ENOMEM;
        return NULL;
    }
    /* Writes made while the socket still has bytes to send wait in the
     * filter and then go as one frame, not one frame (and mask) each. */
    bufferevent_setwatermark(under, EV_WRITE, 0, 1);
    /* Deferred: the transport's callbacks must not run inside its writes. */
    w->top = bufferevent_filter_new(under, in_filter, out_filter,
                                    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, wsc_free, w);
    if (!w->top) {
        free(w);
        *err = PETREL_ENOMEM;
        return NULL;
    }
    return w->top;
}
