/*
 * ws_frames.c - WebSocket handshake step, frames in and frames out (see
 * ws_frames.h).  Input: wslay's event layer reads frames without buffering
 * them (no_buffering: each chunk of a binary frame's payload goes straight
 * to the caller, so a frame costs nothing while it arrives) and answers
 * pings and close frames itself.  Output: a frame's header is made by a
 * wslay frame context shared by all connections (a server's frames are not
 * masked, so nothing in it outlives the frame) and its payload is moved,
 * not copied.
 */
#include "ws_frames.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <wslay/wslay.h>

#include "ws_handshake.h"

struct ws_stats ws_stats;

/* ---- the handshake -------------------------------------------------------- */

int ws_handshake_step(struct ws_handshake *hs, const struct ws_transport_conf *conf,
                      const uint8_t *p, size_t len, size_t *used, struct evbuffer *out,
                      char *why, size_t why_len)
{
    struct ws_handshake_conf hc = {conf->path, conf->origins};
    *used = 0;
    enum ws_handshake_status st = ws_handshake_feed(hs, &hc, p, len, used);
    if (st == WS_HS_MORE)
        return 0;
    char resp[1024];
    size_t rlen = ws_handshake_response(hs, resp, sizeof resp);
    if (rlen && evbuffer_add(out, resp, rlen) != 0)
        rlen = 0;
    if (st != WS_HS_ACCEPTED) {
        ws_stats.handshake_refused++;
        snprintf(why, why_len, "WebSocket handshake refused (HTTP %d): %s", (int)st,
                 ws_handshake_reason(hs));
        return -1;
    }
    if (!rlen) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    ws_stats.handshakes++;
    return 1;
}

/* ---- frames out ----------------------------------------------------------- */

static wslay_frame_context_ptr framer;
/* Where the framer's bytes go: an evbuffer, or the flat header buffer. */
static struct evbuffer *framer_dst;
static uint8_t *framer_flat;
static size_t framer_flat_len;
/* Stands for a payload that the caller moves itself: the framer's send
 * callback does not copy it. */
static const uint8_t moved_payload;

static ssize_t framer_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    (void)user;
    if (data == &moved_payload)
        return (ssize_t)len;
    if (framer_flat) {
        if (framer_flat_len + len > WS_HEADER_MAX)
            return -1;
        memcpy(framer_flat + framer_flat_len, data, len);
        framer_flat_len += len;
        return (ssize_t)len;
    }
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

/* One frame through the shared context.  Returns 0 or -1. */
static int framer_run(uint8_t opcode, const uint8_t *payload, size_t len)
{
    static const struct wslay_frame_callbacks cbs = {framer_send, framer_recv, NULL};
    if (!framer && wslay_frame_context_init(&framer, &cbs, NULL) != 0) {
        framer = NULL;
        return -1;
    }
    struct wslay_frame_iocb io = {
        .fin = 1, .opcode = opcode, .mask = 0, .payload_length = len,
        .data = payload, .data_length = len,
    };
    ssize_t r = wslay_frame_send(framer, &io);
    if (r < 0 || (size_t)r != len) {
        /* Half a frame in the shared context: start it afresh. */
        wslay_frame_context_free(framer);
        framer = NULL;
        return -1;
    }
    return 0;
}

int ws_frame_out(struct evbuffer *dst, uint8_t opcode, struct evbuffer *payload_buf,
                 const uint8_t *payload, size_t len)
{
    framer_dst = dst;
    framer_flat = NULL;
    if (framer_run(opcode, payload_buf ? &moved_payload : payload, len) != 0)
        return -1;
    if (payload_buf && evbuffer_remove_buffer(payload_buf, dst, len) != (int)len)
        return -1;
    return 0;
}

size_t ws_binary_header(uint8_t hdr[WS_HEADER_MAX], size_t len)
{
    framer_flat = hdr;
    framer_flat_len = 0;
    int r = framer_run(WSLAY_BINARY_FRAME, &moved_payload, len);
    framer_flat = NULL;
    return r == 0 ? framer_flat_len : 0;
}

int ws_close_out(struct evbuffer *dst, uint16_t code)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return ws_frame_out(dst, WSLAY_CONNECTION_CLOSE, NULL, body, 2);
}

/* ---- frames in ------------------------------------------------------------ */

/* The read in progress: a context is lent from one connection to the
 * next, so its user data cannot say whose bytes these are. */
static struct ws_reader *cur;
static struct ws_read_io *cur_io;
static struct ws_read_end *cur_end;
static uint64_t cur_max_frame;
/* A reading context in its initial state, for the next connection that
 * has bytes at a frame boundary. */
static wslay_event_context_ptr spare_ev;

/* Ends the read: `code` is the close frame to send (0 = none). */
static void fail(uint16_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(uint16_t code, const char *fmt, ...)
{
    if (cur->failed)
        return;
    cur->failed = true;
    cur_end->close_code = code;
    if (cur->ev) {
        wslay_event_shutdown_read(cur->ev);
        wslay_event_shutdown_write(cur->ev);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_end->why, sizeof cur_end->why, fmt, ap);
    va_end(ap);
}

static ssize_t ev_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    (void)flags;
    (void)user;
    struct ws_read_io *io = cur_io;
    size_t n;
    if (io->src) {
        int got = evbuffer_remove(io->src, buf, len);
        n = got > 0 ? (size_t)got : 0;
    } else {
        n = io->len - io->off;
        if (n > len)
            n = len;
        memcpy(buf, io->flat + io->off, n);
        io->off += n;
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    cur->unframed += n;
    return (ssize_t)n;
}

/* wslay's own frames: pongs and close frames. */
static ssize_t ev_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    (void)user;
    if (cur_io->send(cur_io->arg, data, len) != 0) {
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
    struct ws_reader *r = cur;
    r->cur_opcode = arg->opcode;
    /* Its header's size follows from the length (wslay refuses lengths
     * not in their shortest form, and unmasked client frames). */
    uint64_t n = arg->payload_length;
    r->frame_bytes = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4 + n;
    if (arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME ||
        arg->opcode == WSLAY_TEXT_FRAME)
        r->in_message = !arg->fin;
    if (r->failed)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        ws_stats.protocol_errors++;
        fail(WSLAY_CODE_UNSUPPORTED_DATA, "WebSocket text frame (MQTT needs binary frames)");
    } else if ((arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME) &&
               arg->payload_length > cur_max_frame) {
        ws_stats.frame_too_large++;
        fail(WSLAY_CODE_MESSAGE_TOO_BIG,
             "WebSocket frame of %llu bytes over the limit (%llu: max_packet_size + %d)",
             (unsigned long long)arg->payload_length, (unsigned long long)cur_max_frame,
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
    struct ws_reader *r = cur;
    /* Continuation frames follow a binary one: a text one failed. */
    if (r->failed || arg->data_length == 0 ||
        (r->cur_opcode != WSLAY_BINARY_FRAME && r->cur_opcode != WSLAY_CONTINUATION_FRAME))
        return;
    if (cur_io->data(cur_io->arg, arg->data, arg->data_length) != 0)
        fail(WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    (void)user;
    cur->unframed -= cur->frame_bytes < cur->unframed ? cur->frame_bytes : cur->unframed;
    cur->frame_bytes = 0;
}

/* The reading context for r's bytes: its own while it is inside a frame
 * or a message, else the spare one (or a new one).  NULL when out of
 * memory. */
static wslay_event_context_ptr lend_ev(struct ws_reader *r)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ev_recv,
        .send_callback = ev_send,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_frame_chunk,
        .on_frame_recv_end_callback = on_frame_end,
    };
    if (!r->ev && spare_ev) {
        r->ev = spare_ev;
        spare_ev = NULL;
    } else if (!r->ev) {
        if (wslay_event_context_server_init(&r->ev, &cbs, NULL) != 0)
            return r->ev = NULL;
        wslay_event_config_set_no_buffering(r->ev, 1);
    }
    return r->ev;
}

/* After a read: at a frame boundary, outside any message, with nothing
 * queued (wslay_event_send ran) and no close, the context is as new and
 * goes back to be lent again; a failed connection's is thrown away. */
static void return_ev(struct ws_reader *r)
{
    if (!r->ev)
        return;
    if (r->failed || !wslay_event_get_read_enabled(r->ev) ||
        wslay_event_get_queued_msg_count(r->ev) || wslay_event_get_close_received(r->ev) ||
        wslay_event_get_close_sent(r->ev)) {
        if (!r->failed)
            return; /* it lives on with the connection */
        ws_reader_free(r);
        return;
    }
    if (r->unframed || r->in_message)
        return;
    if (spare_ev)
        wslay_event_context_free(r->ev);
    else
        spare_ev = r->ev;
    r->ev = NULL;
}

int ws_read(struct ws_reader *r, uint64_t max_frame, struct ws_read_io *io,
            struct ws_read_end *end)
{
    memset(end, 0, sizeof *end);
    if (r->failed)
        return -1;
    cur = r;
    cur_io = io;
    cur_end = end;
    cur_max_frame = max_frame;
    if (!lend_ev(r)) {
        fail(0, "out of memory");
        cur = NULL;
        return -1;
    }
    int rc = wslay_event_recv(r->ev);
    if (!r->failed) {
        if (rc == WSLAY_ERR_CALLBACK_FAILURE) {
            /* A frame wslay cannot take (a fragmented or long control
             * frame, a bad length): its own close frame would have no
             * code. */
            ws_stats.protocol_errors++;
            fail(WSLAY_CODE_PROTOCOL_ERROR, "malformed WebSocket frame");
        } else if (rc != 0) {
            fail(WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
        } else {
            /* Pongs, and the close frame wslay answers or sends. */
            wslay_event_send(r->ev);
            if (wslay_event_get_close_received(r->ev)) {
                end->by_client = true;
                fail(0, "WebSocket closed by the client (code %u)",
                     (unsigned)wslay_event_get_status_code_received(r->ev));
            } else if (!wslay_event_get_read_enabled(r->ev)) {
                /* wslay refused a frame (unmasked, reserved bits or
                 * opcode, a data frame inside a fragmented message). */
                ws_stats.protocol_errors++;
                fail(0, "WebSocket protocol error (closed with code %u)",
                     (unsigned)wslay_event_get_status_code_sent(r->ev));
            }
        }
    }
    return_ev(r);
    cur = NULL;
    cur_io = NULL;
    cur_end = NULL;
    return r->failed ? -1 : 0;
}

void ws_reader_free(struct ws_reader *r)
{
    if (r->ev)
        wslay_event_context_free(r->ev);
    r->ev = NULL;
}

void ws_frames_shutdown(void)
{
    if (framer)
        wslay_frame_context_free(framer);
    framer = NULL;
    if (spare_ev)
        wslay_event_context_free(spare_ev);
    spare_ev = NULL;
}
