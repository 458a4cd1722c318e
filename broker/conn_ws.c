/*
 * conn_ws.c - MQTT over WebSocket on the plain socket path (see
 * conn_ws.h).  A connection's WebSocket state is this struct and, only
 * while a frame or a fragmented message is half read, wslay's reading
 * context (ws_frames.h): an idle client holds nothing else.
 */
#include "conn_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <wslay/wslay.h>

#include "broker.h"
#include "conn.h"
#include "conn_io.h"
#include "ws_frames.h"
#include "ws_handshake.h"
#include "ws_linger.h"

struct conn_ws {
    const struct ws_transport_conf *conf;
    struct ws_handshake *hs;   /* until the upgrade */
    struct ws_reader rd;
    size_t framed;             /* bytes at the head of c->out that are wire
                                  bytes already (frames, the HTTP answer);
                                  the rest are MQTT bytes still to frame */
    uint16_t close_code;       /* the close frame's (0 = 1000) */
    bool upgraded : 1;
    bool held_new : 1;         /* the reading context began to be held in
                                  the last read */
    bool close_sent : 1;       /* nothing more is sent */
    bool fin_after_drain : 1;  /* FIN once c->out is written */
    bool shut : 1;             /* FIN sent */
};

int conn_ws_attach(struct conn *c, const struct ws_transport_conf *conf)
{
    struct conn_ws *ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->hs = ws_handshake_new())) {
        free(ws);
        return -1;
    }
    ws->conf = conf;
    c->ws = ws;
    return 0;
}

/* Keeps only the first `keep` bytes of `b`: what follows a close frame
 * (or an HTTP answer) is never sent. */
static void drop_tail(struct evbuffer *b, size_t keep)
{
    static struct evbuffer *head;
    size_t len = evbuffer_get_length(b);
    if (len <= keep)
        return;
    if (keep == 0) {
        evbuffer_drain(b, len);
        return;
    }
    if (!head && !(head = evbuffer_new())) {
        evbuffer_drain(b, len); /* out of memory: the connection is ending anyway */
        return;
    }
    evbuffer_remove_buffer(b, head, keep);
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add_buffer(b, head);
}

void conn_ws_frame(struct conn *c)
{
    static struct evbuffer *head;
    struct conn_ws *ws = c->ws;
    size_t len = c->out ? evbuffer_get_length(c->out) : 0;
    if (len <= ws->framed)
        return;
    if (ws->close_sent || !ws->upgraded) {
        drop_tail(c->out, ws->framed);
        return;
    }
    uint8_t hdr[WS_HEADER_MAX];
    size_t h = ws_binary_header(hdr, len - ws->framed);
    if (h && ws->framed == 0) {
        if (evbuffer_prepend(c->out, hdr, h) != 0)
            h = 0;
    } else if (h) {
        /* Frames still unsent come first: the header goes between. */
        if ((!head && !(head = evbuffer_new())) ||
            evbuffer_remove_buffer(c->out, head, ws->framed) != (int)ws->framed) {
            h = 0;
        } else if (evbuffer_prepend(c->out, hdr, h) != 0) {
            evbuffer_prepend_buffer(c->out, head);
            h = 0;
        } else {
            evbuffer_prepend_buffer(c->out, head);
        }
    }
    if (!h) {
        drop_tail(c->out, ws->framed);
        conn_close_later(c, "out of memory");
        return;
    }
    ws->framed = len + h;
}

/* wslay's pongs and close frames, after the MQTT bytes before them. */
static int send_control(void *arg, const uint8_t *p, size_t n)
{
    struct conn *c = arg;
    struct conn_ws *ws = c->ws;
    conn_ws_frame(c);
    struct evbuffer *out = conn_output(c);
    if (!out || evbuffer_add(out, p, n) != 0)
        return -1;
    ws->framed += n;
    return 0;
}

/* Where decoded bytes go: the caller's buffer. */
struct sink {
    uint8_t *p;
    size_t len, cap;
};

static int add_data(void *arg, const uint8_t *p, size_t n)
{
    struct sink *s = arg;
    if (n > s->cap - s->len)
        return -1; /* cannot happen: payload is never more than its frames */
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return 0;
}

struct read_arg {
    struct conn *c;
    struct sink sink;
};

static int read_data(void *arg, const uint8_t *p, size_t n)
{
    return add_data(&((struct read_arg *)arg)->sink, p, n);
}

static int read_control(void *arg, const uint8_t *p, size_t n)
{
    return send_control(((struct read_arg *)arg)->c, p, n);
}

int conn_ws_input(struct conn *c, const uint8_t *raw, size_t n, uint8_t *out, size_t *out_len,
                  char *why, size_t why_len)
{
    struct conn_ws *ws = c->ws;
    *out_len = 0;
    size_t off = 0;
    if (!ws->upgraded) {
        struct evbuffer *o = conn_output(c);
        if (!o) {
            snprintf(why, why_len, "out of memory");
            return -1;
        }
        size_t before = evbuffer_get_length(o);
        int r = ws_handshake_step(ws->hs, ws->conf, raw, n, &off, o, why, why_len);
        ws->framed += evbuffer_get_length(o) - before;
        if (r < 0) {
            ws->close_sent = true; /* the HTTP error is the last thing sent */
            return -1;
        }
        if (r == 0)
            return 0;
        ws_handshake_free(ws->hs);
        ws->hs = NULL;
        ws->upgraded = true;
    }
    struct read_arg ra = {c, {out, 0, n + CONN_WS_SLACK}};
    struct ws_read_io io = {.flat = raw + off, .len = n - off, .data = read_data,
                            .send = read_control, .arg = &ra};
    struct ws_read_end end;
    bool was_held = ws->rd.ev != NULL;
    int r = ws_read(&ws->rd, ws->conf->max_frame, &io, &end);
    ws->held_new = !was_held && ws->rd.ev;
    *out_len = ra.sink.len;
    if (r < 0) {
        if (end.close_code && !ws->close_sent)
            ws->close_code = end.close_code; /* sent when it closes */
        else
            ws->close_sent = true; /* wslay sent it, or answered the client's */
        snprintf(why, why_len, "%s", end.why);
        return -1;
    }
    return 0;
}

size_t conn_ws_held(const struct conn *c, bool *began)
{
    *began = c->ws && c->ws->held_new;
    return c->ws && c->ws->rd.ev ? WS_READER_HELD_BYTES : 0;
}

void conn_ws_wrote(struct conn *c, size_t left)
{
    struct conn_ws *ws = c->ws;
    ws->framed = left;
    if (left == 0 && ws->fin_after_drain && !ws->shut) {
        ws->shut = true;
        shutdown(c->fd, SHUT_WR);
    }
}

void conn_ws_close_code(struct conn *c, uint16_t code)
{
    if (!c->ws->close_code)
        c->ws->close_code = code;
}

/* Queues the close frame on `out` (c's output, or the lingering socket's). */
static void queue_close(struct conn_ws *ws, struct evbuffer *out)
{
    if (!ws->upgraded || ws->close_sent)
        return;
    ws->close_sent = true;
    size_t before = evbuffer_get_length(out);
    ws_close_out(out, ws->close_code ? ws->close_code : WS_CLOSE_NORMAL);
    ws->framed += evbuffer_get_length(out) - before;
}

void conn_ws_finish(struct conn *c)
{
    struct conn_ws *ws = c->ws;
    if (ws->upgraded && !ws->close_sent) {
        conn_ws_frame(c);
        struct evbuffer *out = conn_output(c);
        if (out)
            queue_close(ws, out);
    }
    ws->fin_after_drain = true;
    if (conn_output_length(c) == 0 && !ws->shut) {
        ws->shut = true;
        shutdown(c->fd, SHUT_WR);
    }
}

bool conn_ws_close(struct conn *c)
{
    struct conn_ws *ws = c->ws;
    conn_ws_frame(c);
    c->ws = NULL;
    ws_handshake_free(ws->hs);
    ws_reader_free(&ws->rd);
    struct bufferevent *bev = bufferevent_socket_new(broker.base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        free(ws);
        return false;
    }
    struct evbuffer *out = bufferevent_get_output(bev);
    if (c->out)
        evbuffer_add_buffer(out, c->out); /* the memory budget counts them out */
    queue_close(ws, out);
    free(ws);
    /* At shutdown the loop does not run again: what the socket takes now
     * is all that goes. */
    evbuffer_write(out, c->fd);
    ws_linger(bev);
    return true;
}
