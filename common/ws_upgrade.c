/*
 * ws_upgrade.c - the client's WebSocket handshake (see ws_upgrade.h).
 */
#include "ws_upgrade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char *const header_names[WSU_HEADERS] = {
    "upgrade", "sec-websocket-accept", "sec-websocket-protocol",
};

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct ws_upgrade *w = p->data;
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
    struct ws_upgrade *w = p->data;
    if (!w->in_value) {
        w->in_value = true;
        w->cur = -1;
        for (int i = 0; i < WSU_HEADERS; i++)
            if (strlen(header_names[i]) == w->field_len &&
                strncasecmp(header_names[i], w->field, w->field_len) == 0)
                w->cur = i;
    }
    if (w->cur < 0)
        return 0;
    size_t *n = &w->val_len[w->cur];
    size_t room = WS_UPGRADE_HEADER_MAX - 1 - *n;
    size_t k = len < room ? len : room;
    memcpy(w->val[w->cur] + *n, at, k);
    *n += k;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct ws_upgrade *w = p->data;
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

static bool value_is(const struct ws_upgrade *w, int h, const char *want)
{
    return w->val_len[h] == strlen(want) && strncasecmp(w->val[h], want, w->val_len[h]) == 0;
}

size_t ws_upgrade_request(struct ws_upgrade *u, const char *host, uint16_t port,
                          const char *path, char *req, size_t cap)
{
    memset(u, 0, sizeof *u);
    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    u->cur = -1;
    uint8_t nonce[16];
    char key[32];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return 0;
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    if (ws_accept_compute(key, strlen(key), u->accept) != 0)
        return 0;
    bool v6 = strchr(host, ':') != NULL;
    int len = snprintf(req, cap,
                       "GET %s HTTP/1.1\r\n"
                       "Host: %s%s%s:%u\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: mqtt\r\n"
                       "\r\n",
                       path, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port, key);
    return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

int ws_upgrade_feed(struct ws_upgrade *u, const uint8_t *p, size_t len, size_t *used)
{
    if (len > WS_UPGRADE_MAX - u->fed)
        len = WS_UPGRADE_MAX - u->fed;
    size_t done = http_parser_execute(&u->parser, &settings, (const char *)p, len);
    u->fed += done;
    *used = done;
    if (!u->complete) {
        if (HTTP_PARSER_ERRNO(&u->parser) != HPE_OK || u->fed >= WS_UPGRADE_MAX)
            return -1;
        return 0;
    }
    /* Paused in on_headers_complete at the final LF: it is the answer's. */
    *used = done + 1;
    if (u->parser.status_code != 101 || !value_is(u, WSU_UPGRADE, "websocket") ||
        u->val_len[WSU_ACCEPT] != WS_ACCEPT_LEN - 1 ||
        memcmp(u->val[WSU_ACCEPT], u->accept, WS_ACCEPT_LEN - 1) != 0 ||
        u->val_len[WSU_PROTOCOL] != 4 || memcmp(u->val[WSU_PROTOCOL], "mqtt", 4) != 0)
        return -1;
    return 1;
}
