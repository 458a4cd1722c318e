/*
 * ws_client.c - the client side of MQTT over WebSocket (see ws_client.h).
 * The server's answer is read with http-parser, bounded to 8 KiB; frames
 * with wslay's event layer: data frames unbuffered, straight into the
 * transport's input; each write of the transport becomes one masked binary
 * frame.  No state is shared between connections (applications may run
 * clients on several threads).
 */
#include "ws_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "petrel.h"
#include "ws_accept.h"

#define RESPONSE_MAX 8192
#define HEADER_MAX 128

enum { H_UPGRADE, H_ACCEPT, H_PROTOCOL, N_HEADERS };
static const char *const header_names[N_HEADERS] = {
    "upgrade", "sec-websocket-accept", "sec-websocket-protocol",
};

struct wsc {
    struct bufferevent *under, *top;
    int *failure;
    uint64_t max_frame;
    /* the handshake */
    http_parser parser;
    size_t fed;
    char accept[WS_ACCEPT_LEN];     /* the value the server must answer */
    char field[32];
    size_t field_len;
    bool in_value;
    int cur;
    char val[N_HEADERS][HEADER_MAX];
    size_t val_len[N_HEADERS];
    bool complete;
    /* then the frames */
    wslay_event_context_ptr ev;
    struct evbuffer *src, *dst;
    uint8_t cur_opcode;
    bool failed;
};

/* ---- the handshake -------------------------------------------------------- */

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct wsc *w = p->data;
    if (w->in_value) {
        w->in_value = false;
        w->field_len = 0;
    }
    size_t room = sizeof w->field - w->field_len;
    size_t n = len < room ? len : room;
    memcpy(w->field + w->field_len, at, n);
    w->field_len += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct wsc *w = p->data;
    if (!w->in_value) {
        w->in_value = true;
        w->cur = -1;
        for (int i = 0; i < N_HEADERS; i++)
            if (strlen(header_names[i]) == w->field_len &&
                strncasecmp(header_names[i], w->field, w->field_len) == 0)
                w->cur = i;
    }
    if (w->cur < 0)
        return 0;
    size_t *n = &w->val_len[w->cur];
    size_t room = HEADER_MAX - 1 - *n;
    size_t k = len < room ? len : room;
    memcpy(w->val[w->cur] + *n, at, k);
    *n += k;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct wsc *w = p->data;
    w->complete = true;
    /* A 101 has no body; a refusal's body is not read. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

static bool value_is(const struct wsc *w, int h, const char *want)
{
    return w->val_len[h] == strlen(want) && strncasecmp(w->val[h], want, w->val_len[h]) == 0;
}

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
    if (n > RESPONSE_MAX - w->fed)
        n = RESPONSE_MAX - w->fed;
    const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)n);
    size_t done = http_parser_execute(&w->parser, &settings, p, n);
    w->fed += done;
    if (!w->complete) {
        if (HTTP_PARSER_ERRNO(&w->parser) != HPE_OK || w->fed >= RESPONSE_MAX)
            return -1;
        evbuffer_drain(src, done);
        return 0;
    }
    /* Paused in on_headers_complete at the final LF: it is the answer's. */
    evbuffer_drain(src, done + 1);
    if (w->parser.status_code != 101 || !value_is(w, H_UPGRADE, "websocket") ||
        w->val_len[H_ACCEPT] != WS_ACCEPT_LEN - 1 ||
        memcmp(w->val[H_ACCEPT], w->accept, WS_ACCEPT_LEN - 1) != 0 ||
        w->val_len[H_PROTOCOL] != 4 || memcmp(w->val[H_PROTOCOL], "mqtt", 4) != 0)
        return -1;
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
    http_parser_init(&w->parser, HTTP_RESPONSE);
    w->parser.data = w;
    w->cur = -1;
    uint8_t nonce[16];
    char key[32];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        free(w);
        *err = PETREL_ENOMEM;
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    if (ws_accept_compute(key, strlen(key), w->accept) != 0) {
        free(w);
        *err = PETREL_ENOMEM;
        return NULL;
    }
    bool v6 = strchr(host, ':') != NULL;
    char req[1024 + 512];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\n"
                       "Host: %s%s%s:%u\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: mqtt\r\n"
                       "\r\n",
                       path, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port, key);
    if (len <= 0 || (size_t)len >= sizeof req) {
        free(w);
        *err = PETREL_EINVAL;
        return NULL;
    }
    if (evbuffer_add(bufferevent_get_output(under), req, (size_t)len) != 0) {
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
