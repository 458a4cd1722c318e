/*
 * ws_handshake.c - the WebSocket opening handshake (see ws_handshake.h).
 * http-parser reads the request; only the headers the handshake needs are
 * kept, each in a fixed slot, so what a client sends costs at most this
 * structure and WS_HANDSHAKE_MAX bytes of parsing, whatever it sends.
 */
#include "ws_handshake.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <http_parser.h>

#include "ws_accept.h"

enum slot { H_HOST, H_UPGRADE, H_CONNECTION, H_KEY, H_VERSION, H_PROTOCOL, H_ORIGIN, N_SLOTS };

static const char *const slot_names[N_SLOTS] = {
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-protocol", "origin",
};

/* Longer values than any real client sends are refused, not cut. */
#define SLOT_MAX 256
#define URL_MAX 1024
#define FIELD_MAX 32

struct ws_handshake {
    http_parser parser;
    size_t fed;                    /* bytes given to the parser so far */
    enum ws_handshake_status status;
    const char *reason;
    char url[URL_MAX];
    size_t url_len;
    char field[FIELD_MAX];         /* the header name being read */
    size_t field_len;
    bool field_long;               /* longer than FIELD_MAX: not one we keep */
    bool in_value;                 /* the last callback was a value */
    int cur;                       /* slot of the header being read, or -1 */
    bool overflow;                 /* a kept value or the URL was too long */
    bool has_body;
    bool complete;
    char val[N_SLOTS][SLOT_MAX];
    size_t val_len[N_SLOTS];
    bool seen[N_SLOTS];
};

struct ws_handshake *ws_handshake_new(void)
{
    struct ws_handshake *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->cur = -1;
    return h;
}

void ws_handshake_free(struct ws_handshake *h) { free(h); }

/* Appends at[0..len) to buf (holding *n of cap bytes); false if it does
 * not fit (nothing is then added: a cut value would be another value). */
static bool append(char *buf, size_t *n, size_t cap, const char *at, size_t len)
{
    if (len > cap - *n)
        return false;
    memcpy(buf + *n, at, len);
    *n += len;
    return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct ws_handshake *h = p->data;
    if (!append(h->url, &h->url_len, sizeof h->url - 1, at, len))
        h->overflow = true;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct ws_handshake *h = p->data;
    if (h->in_value) { /* a new header begins */
        h->in_value = false;
        h->field_len = 0;
        h->field_long = false;
        h->cur = -1;
    }
    if (!append(h->field, &h->field_len, sizeof h->field, at, len))
        h->field_long = true;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct ws_handshake *h = p->data;
    if (!h->in_value) {
        /* The name is complete: is it one we keep? */
        h->in_value = true;
        h->cur = -1;
        for (int i = 0; i < N_SLOTS && !h->field_long; i++) {
            if (strlen(slot_names[i]) == h->field_len &&
                strncasecmp(slot_names[i], h->field, h->field_len) == 0) {
                h->cur = i;
                break;
            }
        }
        if (h->cur >= 0 && h->seen[h->cur]) {
            /* A repeated header is the same as one with both values,
             * comma-separated (RFC 9110 5.3). */
            size_t *n = &h->val_len[h->cur];
            if (*n + 1 >= SLOT_MAX)
                h->overflow = true;
            else
                h->val[h->cur][(*n)++] = ',';
        }
        if (h->cur >= 0)
            h->seen[h->cur] = true;
    }
    if (h->cur < 0)
        return 0;
    if (!append(h->val[h->cur], &h->val_len[h->cur], SLOT_MAX - 1, at, len))
        h->overflow = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct ws_handshake *h = p->data;
    h->has_body = (p->flags & F_CHUNKED) ||
                  (p->content_length > 0 && p->content_length != UINT64_MAX);
    /* Not read: a body refuses the request anyway. */
    return h->has_body ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct ws_handshake *h = p->data;
    h->complete = true;
    /* What follows is WebSocket, not a next request. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* Is `token` one of the comma-separated items of list[0..len)? */
static bool list_has(const char *list, size_t len, const char *token, bool nocase)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
            end--;
        if (end - start == tlen &&
            (nocase ? strncasecmp(list + start, token, tlen) : strncmp(list + start, token, tlen)) == 0)
            return true;
    }
    return false;
}

/* A Sec-WebSocket-Key must be 16 bytes in base64: 22 characters and "==". */
static bool key_valid(const char *k, size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!memchr(b64, k[i], sizeof b64 - 1))
            return false;
    /* The last character carries 2 bits; the other 4 must be zero. */
    return (strchr(b64, k[21]) - b64) % 16 == 0;
}

static bool origin_allowed(const struct ws_handshake *h, const char *origins)
{
    if (!origins || !origins[0] || !h->seen[H_ORIGIN])
        return true;
    if (list_has(origins, strlen(origins), "*", false))
        return true;
    /* Its one value must be in the list (a list of origins from the client
     * is not one origin). */
    char one[SLOT_MAX];
    memcpy(one, h->val[H_ORIGIN], h->val_len[H_ORIGIN]);
    one[h->val_len[H_ORIGIN]] = '\0';
    if (strchr(one, ','))
        return false;
    return list_has(origins, strlen(origins), one, true);
}

static enum ws_handshake_status refuse(struct ws_handshake *h, enum ws_handshake_status s,
                                       const char *why)
{
    h->status = s;
    h->reason = why;
    return s;
}

/* The request is complete: the checks of RFC 6455 4.2.1 and ours. */
static enum ws_handshake_status judge(struct ws_handshake *h, const struct ws_handshake_conf *conf)
{
    const http_parser *p = &h->parser;
    if (h->overflow)
        return refuse(h, WS_HS_TOO_LARGE, "a header or the path is too long");
    if (p->method != HTTP_GET)
        return refuse(h, WS_HS_BAD_REQUEST, "the method is not GET");
    if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
        return refuse(h, WS_HS_BAD_REQUEST, "not HTTP/1.1");
    if (h->has_body)
        return refuse(h, WS_HS_BAD_REQUEST, "the request has a body");
    h->url[h->url_len] = '\0';
    size_t plen = strcspn(h->url, "?");
    if (plen != strlen(conf->path) || memcmp(h->url, conf->path, plen) != 0)
        return refuse(h, WS_HS_NOT_FOUND, "not the WebSocket path (ws_path)");
    if (!list_has(h->val[H_UPGRADE], h->val_len[H_UPGRADE], "websocket", true))
        return refuse(h, WS_HS_UPGRADE_REQUIRED, "no Upgrade: websocket");
    if (!list_has(h->val[H_CONNECTION], h->val_len[H_CONNECTION], "upgrade", true))
        return refuse(h, WS_HS_BAD_REQUEST, "no Connection: Upgrade");
    if (!h->seen[H_HOST])
        return refuse(h, WS_HS_BAD_REQUEST, "no Host header");
    if (h->val_len[H_VERSION] != 2 || memcmp(h->val[H_VERSION], "13", 2) != 0)
        return refuse(h, WS_HS_UPGRADE_REQUIRED, "Sec-WebSocket-Version is not 13");
    if (!key_valid(h->val[H_KEY], h->val_len[H_KEY]))
        return refuse(h, WS_HS_BAD_REQUEST, "Sec-WebSocket-Key missing or not 16 bytes in base64");
    if (!origin_allowed(h, conf->origins))
        return refuse(h, WS_HS_FORBIDDEN, "Origin not in allowed_origins");
    if (!list_has(h->val[H_PROTOCOL], h->val_len[H_PROTOCOL], "mqtt", false))
        return refuse(h, WS_HS_BAD_REQUEST, "subprotocol mqtt not offered (Sec-WebSocket-Protocol)");
    h->status = WS_HS_ACCEPTED;
    h->reason = "";
    return WS_HS_ACCEPTED;
}

enum ws_handshake_status ws_handshake_feed(struct ws_handshake *h,
                                           const struct ws_handshake_conf *conf,
                                           const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (h->status != WS_HS_MORE)
        return h->status;
    size_t room = WS_HANDSHAKE_MAX - h->fed;
    size_t n = len < room ? len : room;
    size_t done = http_parser_execute(&h->parser, &settings, (const char *)data, n);
    h->fed += done;
    *used = done;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (h->complete)
        return judge(h, conf);
    if (e != HPE_OK)
        return refuse(h, WS_HS_BAD_REQUEST, "malformed HTTP request");
    if (h->fed >= WS_HANDSHAKE_MAX)
        return refuse(h, WS_HS_TOO_LARGE, "request headers over 8 KiB");
    return WS_HS_MORE;
}

static const char *status_text(enum ws_handshake_status s)
{
    switch (s) {
    case WS_HS_BAD_REQUEST: return "Bad Request";
    case WS_HS_FORBIDDEN: return "Forbidden";
    case WS_HS_NOT_FOUND: return "Not Found";
    case WS_HS_UPGRADE_REQUIRED: return "Upgrade Required";
    case WS_HS_TOO_LARGE: return "Request Header Fields Too Large";
    default: return "Error";
    }
}

size_t ws_handshake_response(const struct ws_handshake *h, char *out, size_t cap)
{
    int n;
    if (h->status == WS_HS_MORE)
        return 0;
    if (h->status == WS_HS_ACCEPTED) {
        char accept[WS_ACCEPT_LEN];
        if (ws_accept_compute(h->val[H_KEY], h->val_len[H_KEY], accept) != 0)
            return 0;
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: mqtt\r\n"
                     "\r\n",
                     accept);
    } else {
        /* 426 names the version we speak (RFC 6455 4.2.2). */
        n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "%s"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n"
                     "%s\n",
                     (int)h->status, status_text(h->status),
                     h->status == WS_HS_UPGRADE_REQUIRED
                         ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         : "",
                     strlen(h->reason) + 1, h->reason);
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

const char *ws_handshake_reason(const struct ws_handshake *h)
{
    return h->reason ? h->reason : "";
}
