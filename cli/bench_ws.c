/*
 * bench_ws.c - `petrel bench` over WebSocket (see bench_ws.h).
 */
#include "bench_ws.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "bench.h"
#include "ws_upgrade.h"

struct bench_ws {
    struct ws_upgrade *up;       /* until the 101 */
    wslay_frame_context_ptr rx;  /* while a frame is half read */
    uint64_t unframed;           /* bytes given to rx no whole frame took yet */
    uint64_t frame_bytes;        /* header + payload of the frame being read */
    uint64_t remaining;          /* its payload still to come */
    size_t framed;               /* bytes of out (from out_off) framed already */
    bool in_frame;
    uint8_t opcode;
    uint8_t ctl_len;
    uint8_t ctl[125];            /* a control frame's payload */
};

/* ---- frames out: one context for all, the frame built in `scratch` ------ */

static wslay_frame_context_ptr tx;
static uint8_t *scratch;
static size_t scratch_len, scratch_cap;

static ssize_t tx_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    (void)user;
    if (scratch_len + len > scratch_cap) {
        size_t cap = scratch_cap ? scratch_cap : 4096;
        while (cap < scratch_len + len)
            cap *= 2;
        uint8_t *p = realloc(scratch, cap);
        if (!p)
            return -1;
        scratch = p;
        scratch_cap = cap;
    }
    memcpy(scratch + scratch_len, data, len);
    scratch_len += len;
    return (ssize_t)len;
}

static ssize_t tx_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)buf;
    (void)len;
    (void)flags;
    (void)user;
    return -1; /* only used to send */
}

static int tx_genmask(uint8_t *buf, size_t len, void *user)
{
    (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* One masked frame of the `len` bytes at `p` (which may be in c's output)
 * is put at byte `at` of c's output, which ends there. */
static int frame_put(struct bench_conn *c, uint8_t opcode, const uint8_t *p, size_t len,
                     size_t at)
{
    static const struct wslay_frame_callbacks cbs = {tx_send, tx_recv, tx_genmask};
    if (!tx && wslay_frame_context_init(&tx, &cbs, NULL) != 0) {
        tx = NULL;
        return -1;
    }
    scratch_len = 0;
    struct wslay_frame_iocb io = {
        .fin = 1, .opcode = opcode, .mask = 1, .payload_length = len,
        .data = p, .data_length = len,
    };
    ssize_t r = wslay_frame_send(tx, &io);
    if (r < 0 || (size_t)r != len) {
        wslay_frame_context_free(tx); /* half a frame in it: start afresh */
        tx = NULL;
        return -1;
    }
    c->out_len = at;
    if (bench_out_reserve(c, scratch_len) != 0)
        return -1;
    memcpy(c->out + c->out_len, scratch, scratch_len);
    c->out_len += scratch_len;
    return 0;
}

int bench_ws_frame(struct bench_conn *c)
{
    struct bench_ws *w = c->ws;
    if (w->up)
        return 0; /* only the request so far */
    size_t start = c->out_off + w->framed;
    if (c->out_len <= start)
        return 0;
    /* The frame is built in scratch from the MQTT bytes, then put where
     * they were. */
    if (frame_put(c, WSLAY_BINARY_FRAME, c->out + start, c->out_len - start, start) != 0) {
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return -1;
    }
    w->framed = c->out_len - c->out_off;
    return 0;
}

void bench_ws_sent(struct bench_conn *c)
{
    if (c->ws)
        c->ws->framed = c->out_len - c->out_off;
}

/* ---- the handshake -------------------------------------------------------- */

int bench_ws_start(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct bench_ws *w = calloc(1, sizeof *w);
    if (w)
        w->up = malloc(sizeof *w->up);
    if (!w || !w->up) {
        free(w);
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return -1;
    }
    c->ws = w;
    char req[1024 + 512];
    size_t len = ws_upgrade_request(w->up, b->o.host, c->role == ROLE_SUB && b->o.sub_port
                                                          ? b->o.sub_port : b->o.port,
                                    b->o.ws_path, req, sizeof req);
    if (!len || bench_out_reserve(c, len) != 0) {
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return -1;
    }
    memcpy(c->out + c->out_len, req, len);
    c->out_len += len;
    w->framed = c->out_len - c->out_off;
    c->state = CS_WS;
    return 0;
}

/* ---- frames in ------------------------------------------------------------ */

static wslay_frame_context_ptr spare_rx;
/* The read being decoded. */
static const uint8_t *rx_src;
static size_t rx_len, rx_off;
static struct bench_ws *rx_ws;

static ssize_t rx_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    (void)user;
    size_t n = rx_len - rx_off;
    if (n > len)
        n = len;
    if (n == 0)
        return -1; /* wslay: WSLAY_ERR_WANT_READ */
    memcpy(buf, rx_src + rx_off, n);
    rx_off += n;
    rx_ws->unframed += n;
    return (ssize_t)n;
}

/* A whole control frame came. */
static int control(struct bench_conn *c)
{
    struct bench_ws *w = c->ws;
    if (w->opcode == WSLAY_PING) {
        if (bench_ws_frame(c) != 0)
            return -1;
        if (frame_put(c, WSLAY_PONG, w->ctl, w->ctl_len, c->out_len) != 0) {
            bench_conn_fail(c, FAIL_LOST, "out of memory");
            return -1;
        }
        w->framed = c->out_len - c->out_off;
        bench_want_write(c, true);
    } else if (w->opcode == WSLAY_CONNECTION_CLOSE && c->state != CS_CLOSING) {
        unsigned code = w->ctl_len >= 2 ? (unsigned)w->ctl[0] << 8 | w->ctl[1] : 1005;
        bench_conn_fail(c, FAIL_LOST, "the broker closed the WebSocket (code %u)", code);
        return -1;
    }
    return 0;
}

static int frames_input(struct bench_conn *c, const uint8_t *raw, size_t n, uint8_t *dst,
                        size_t *got)
{
    static const struct wslay_frame_callbacks cbs = {NULL, rx_recv, NULL};
    struct bench_ws *w = c->ws;
    if (!w->rx && spare_rx) {
        w->rx = spare_rx;
        spare_rx = NULL;
    } else if (!w->rx && wslay_frame_context_init(&w->rx, &cbs, NULL) != 0) {
        w->rx = NULL;
        bench_conn_fail(c, FAIL_LOST, "out of memory");
        return -1;
    }
    rx_src = raw;
    rx_len = n;
    rx_off = 0;
    rx_ws = w;
    size_t cap = n + BENCH_WS_SLACK;
    for (;;) {
        struct wslay_frame_iocb io;
        ssize_t r = wslay_frame_recv(w->rx, &io);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            bench_conn_fail(c, FAIL_PROTOCOL, "bad WebSocket frame from the broker");
            return -1;
        }
        if (!w->in_frame) {
            w->in_frame = true;
            w->opcode = io.opcode;
            w->remaining = io.payload_length;
            uint64_t len = io.payload_length;
            w->frame_bytes = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (io.mask ? 4 : 0) + len;
            w->ctl_len = 0;
            if (io.opcode == WSLAY_TEXT_FRAME) {
                bench_conn_fail(c, FAIL_PROTOCOL, "a text frame from the broker");
                return -1;
            }
        }
        if (io.data_length > w->remaining) {
            bench_conn_fail(c, FAIL_PROTOCOL, "bad WebSocket frame from the broker");
            return -1;
        }
        if (w->opcode == WSLAY_BINARY_FRAME || w->opcode == WSLAY_CONTINUATION_FRAME) {
            if (io.data_length > cap - *got) {
                bench_conn_fail(c, FAIL_PROTOCOL, "WebSocket frames larger than their bytes");
                return -1;
            }
            memcpy(dst + *got, io.data, io.data_length);
            *got += io.data_length;
        } else if (io.data_length <= sizeof w->ctl - w->ctl_len) {
            memcpy(w->ctl + w->ctl_len, io.data, io.data_length);
            w->ctl_len = (uint8_t)(w->ctl_len + io.data_length);
        }
        w->remaining -= io.data_length;
        if (w->remaining == 0) {
            w->in_frame = false;
            w->unframed -= w->frame_bytes < w->unframed ? w->frame_bytes : w->unframed;
            if (wslay_is_ctrl_frame(w->opcode) && control(c) != 0)
                return -1;
        }
    }
    /* At a frame boundary the context is as new: lent to the next. */
    if (!w->in_frame && w->unframed == 0) {
        if (spare_rx)
            wslay_frame_context_free(w->rx);
        else
            spare_rx = w->rx;
        w->rx = NULL;
    }
    return 0;
}

int bench_ws_input(struct bench_conn *c, const uint8_t *raw, size_t n, uint8_t *dst,
                   size_t *got)
{
    struct bench_ws *w = c->ws;
    *got = 0;
    int upgraded = 0;
    if (w->up) {
        size_t used = 0;
        int r = ws_upgrade_feed(w->up, raw, n, &used);
        if (r < 0) {
            bench_conn_fail(c, FAIL_REFUSED, "the WebSocket upgrade was refused");
            return -1;
        }
        if (r == 0)
            return 0;
        free(w->up);
        w->up = NULL;
        upgraded = 1;
        raw += used;
        n -= used;
    }
    if (n && frames_input(c, raw, n, dst, got) != 0)
        return -1;
    return upgraded;
}

void bench_ws_free(struct bench_conn *c)
{
    struct bench_ws *w = c->ws;
    if (!w)
        return;
    free(w->up);
    if (w->rx)
        wslay_frame_context_free(w->rx);
    free(w);
    c->ws = NULL;
}

void bench_ws_shutdown(void)
{
    if (tx)
        wslay_frame_context_free(tx);
    tx = NULL;
    if (spare_rx)
        wslay_frame_context_free(spare_rx);
    spare_rx = NULL;
    free(scratch);
    scratch = NULL;
    scratch_len = scratch_cap = 0;
}
