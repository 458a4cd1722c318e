/*
 * test_ws_handshake.c - unit tests of the WebSocket opening handshake
 * (broker/ws_handshake.c): a good request and its 101 with the RFC 6455
 * example's accept value, each refusal with its status (missing or bad key,
 * wrong version, no or another subprotocol, bad origin, wrong path, not an
 * upgrade, a body, oversized headers), the request arriving a byte at a
 * time, and pipelined bytes after it left for the WebSocket layer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_accept.h"
#include "ws_handshake.h"

/* RFC 6455 section 1.3's example key and its accept value. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const struct ws_handshake_conf conf = {"/mqtt", ""};
static const struct ws_handshake_conf conf_origins = {"/mqtt", "https://a.example, https://b.example"};

/* A request with the usual headers; each argument replaces one line (NULL
 * keeps the default, "" leaves the header out). */
static void build(char *out, size_t cap, const char *path, const char *key, const char *version,
                  const char *protocol, const char *origin, const char *extra)
{
    char k[128] = "", v[64] = "", p[128] = "", o[128] = "";
    key = key ? key : KEY;
    version = version ? version : "13";
    protocol = protocol ? protocol : "mqtt";
    if (*key)
        snprintf(k, sizeof k, "Sec-WebSocket-Key: %s\r\n", key);
    if (*version)
        snprintf(v, sizeof v, "Sec-WebSocket-Version: %s\r\n", version);
    if (*protocol)
        snprintf(p, sizeof p, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    if (origin && *origin)
        snprintf(o, sizeof o, "Origin: %s\r\n", origin);
    snprintf(out, cap,
             "GET %s HTTP/1.1\r\nHost: broker.example:8080\r\nUpgrade: websocket\r\n"
             "Connection: keep-alive, Upgrade\r\n%s%s%s%s%s\r\n",
             path ? path : "/mqtt", k, v, p, o, extra ? extra : "");
}

static enum ws_handshake_status run(const struct ws_handshake_conf *c, const char *req,
                                    size_t len, size_t *used, char *resp, size_t cap)
{
    struct ws_handshake *h = ws_handshake_new();
    assert_non_null(h);
    enum ws_handshake_status st = ws_handshake_feed(h, c, (const uint8_t *)req, len, used);
    if (resp) {
        size_t n = ws_handshake_response(h, resp, cap);
        assert_true(st == WS_HS_MORE ? n == 0 : n > 0);
        resp[n] = '\0';
    }
    ws_handshake_free(h);
    return st;
}

static enum ws_handshake_status status_of(const struct ws_handshake_conf *c, const char *req)
{
    size_t used;
    char resp[1024];
    return run(c, req, strlen(req), &used, resp, sizeof resp);
}

static void test_accept_value(void **state)
{
    (void)state;
    char out[WS_ACCEPT_LEN];
    assert_int_equal(ws_accept_compute(KEY, strlen(KEY), out), 0);
    assert_string_equal(out, ACCEPT);
}

static void test_good_request(void **state)
{
    (void)state;
    char req[2048], resp[1024];
    size_t used;
    build(req, sizeof req, "/mqtt?client=1", NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(run(&conf, req, strlen(req), &used, resp, sizeof resp), WS_HS_ACCEPTED);
    assert_int_equal(used, strlen(req));
    assert_non_null(strstr(resp, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(resp, "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"));
    assert_non_null(strstr(resp, "\r\nSec-WebSocket-Protocol: mqtt\r\n"));
    assert_non_null(strstr(resp, "\r\nUpgrade: websocket\r\n"));
    assert_int_equal(strcmp(resp + strlen(resp) - 4, "\r\n\r\n"), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *path, *key, *version, *protocol, *origin;
        enum ws_handshake_status want;
    } cases[] = {
        {NULL, "", NULL, NULL, NULL, WS_HS_BAD_REQUEST},                  /* no key */
        {NULL, "c2hvcnQ=", NULL, NULL, NULL, WS_HS_BAD_REQUEST},          /* 5 bytes */
        {NULL, "dGhlIHNhbXBsZSBub25jZQ!=", NULL, NULL, NULL, WS_HS_BAD_REQUEST},
        {NULL, NULL, "8", NULL, NULL, WS_HS_UPGRADE_REQUIRED},
        {NULL, NULL, "", NULL, NULL, WS_HS_UPGRADE_REQUIRED},
        {NULL, NULL, NULL, "", NULL, WS_HS_BAD_REQUEST},                   /* no subprotocol */
        {NULL, NULL, NULL, "mqttv3.1", NULL, WS_HS_BAD_REQUEST},
        {NULL, NULL, NULL, "MQTT", NULL, WS_HS_BAD_REQUEST},               /* tokens are exact */
        {"/other", NULL, NULL, NULL, NULL, WS_HS_NOT_FOUND},
        {"/mqtt/x", NULL, NULL, NULL, NULL, WS_HS_NOT_FOUND},
    };
    char req[2048];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        build(req, sizeof req, cases[i].path, cases[i].key, cases[i].version, cases[i].protocol,
              cases[i].origin, NULL);
        enum ws_handshake_status got = status_of(&conf, req);
        if (got != cases[i].want)
            fail_msg("case %zu: status %d, expected %d", i, (int)got, (int)cases[i].want);
    }
    /* 426 names the version */
    size_t used;
    char resp[1024];
    build(req, sizeof req, NULL, NULL, "7", NULL, NULL, NULL);
    run(&conf, req, strlen(req), &used, resp, sizeof resp);
    assert_non_null(strstr(resp, "HTTP/1.1 426 Upgrade Required\r\n"));
    assert_non_null(strstr(resp, "\r\nSec-WebSocket-Version: 13\r\n"));
    /* not an upgrade, a POST, HTTP/1.0, a body, garbage */
    assert_int_equal(status_of(&conf, "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"),
                     WS_HS_UPGRADE_REQUIRED);
    build(req, sizeof req, NULL, NULL, NULL, NULL, NULL, NULL);
    memcpy(req, "PUT", 3);
    assert_int_equal(status_of(&conf, req), WS_HS_BAD_REQUEST);
    assert_int_equal(status_of(&conf, "GET /mqtt HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                                      "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt"
                                      "\r\n\r\n"),
                     WS_HS_BAD_REQUEST);
    build(req, sizeof req, NULL, NULL, NULL, NULL, NULL, "Content-Length: 4\r\n");
    strcat(req, "abcd");
    assert_int_equal(status_of(&conf, req), WS_HS_BAD_REQUEST);
    assert_int_equal(status_of(&conf, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
                     WS_HS_BAD_REQUEST);
}

static void test_subprotocol_lists(void **state)
{
    (void)state;
    char req[2048], resp[1024];
    size_t used;
    build(req, sizeof req, NULL, NULL, NULL, "mqttv3.1, mqtt", NULL, NULL);
    assert_int_equal(run(&conf, req, strlen(req), &used, resp, sizeof resp), WS_HS_ACCEPTED);
    assert_non_null(strstr(resp, "\r\nSec-WebSocket-Protocol: mqtt\r\n"));
    /* two header lines are one list */
    build(req, sizeof req, NULL, NULL, NULL, "wamp", NULL, "Sec-WebSocket-Protocol: mqtt\r\n");
    assert_int_equal(status_of(&conf, req), WS_HS_ACCEPTED);
}

static void test_origins(void **state)
{
    (void)state;
    char req[2048];
    build(req, sizeof req, NULL, NULL, NULL, NULL, "https://b.example", NULL);
    assert_int_equal(status_of(&conf_origins, req), WS_HS_ACCEPTED);
    build(req, sizeof req, NULL, NULL, NULL, NULL, "HTTPS://A.EXAMPLE", NULL);
    assert_int_equal(status_of(&conf_origins, req), WS_HS_ACCEPTED);
    build(req, sizeof req, NULL, NULL, NULL, NULL, "https://evil.example", NULL);
    assert_int_equal(status_of(&conf_origins, req), WS_HS_FORBIDDEN);
    build(req, sizeof req, NULL, NULL, NULL, NULL, "https://a.example.evil", NULL);
    assert_int_equal(status_of(&conf_origins, req), WS_HS_FORBIDDEN);
    /* two Origin lines are not an allowed origin */
    build(req, sizeof req, NULL, NULL, NULL, NULL, "https://a.example",
          "Origin: https://evil.example\r\n");
    assert_int_equal(status_of(&conf_origins, req), WS_HS_FORBIDDEN);
    /* no Origin (not a browser) and no list: allowed */
    build(req, sizeof req, NULL, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(status_of(&conf_origins, req), WS_HS_ACCEPTED);
    build(req, sizeof req, NULL, NULL, NULL, NULL, "https://evil.example", NULL);
    assert_int_equal(status_of(&conf, req), WS_HS_ACCEPTED);
}

static void test_oversized(void **state)
{
    (void)state;
    /* endless headers: refused at WS_HANDSHAKE_MAX, not later */
    size_t cap = 3 * WS_HANDSHAKE_MAX;
    char *req = malloc(cap + 1);
    assert_non_null(req);
    size_t n = (size_t)snprintf(req, cap, "GET /mqtt HTTP/1.1\r\n");
    while (n + 64 < cap)
        n += (size_t)snprintf(req + n, cap - n, "X-Padding: %040zu\r\n", n);
    struct ws_handshake *h = ws_handshake_new();
    size_t used, total = 0;
    enum ws_handshake_status st = WS_HS_MORE;
    while (st == WS_HS_MORE && total < n) {
        st = ws_handshake_feed(h, &conf, (const uint8_t *)req + total, 1000, &used);
        total += used;
    }
    assert_int_equal(st, WS_HS_TOO_LARGE);
    assert_true(total <= WS_HANDSHAKE_MAX);
    ws_handshake_free(h);
    /* one long header value */
    char v[620] = "X-Long: ";
    memset(v + 8, 'a', 600);
    memcpy(v + 608, "\r\n", 3);
    build(req, cap, NULL, NULL, NULL, NULL, NULL, v);
    assert_int_equal(status_of(&conf, req), WS_HS_ACCEPTED); /* not one we keep: ignored */
    memcpy(v, "Origin", 6);
    v[6] = ':';
    build(req, cap, NULL, NULL, NULL, NULL, NULL, v);
    assert_int_equal(status_of(&conf, req), WS_HS_TOO_LARGE);
    free(req);
}

static void test_byte_at_a_time_and_pipelined(void **state)
{
    (void)state;
    char req[2048];
    build(req, sizeof req, NULL, NULL, NULL, NULL, NULL, NULL);
    size_t len = strlen(req);
    /* the request, then a WebSocket frame sent without waiting */
    static const uint8_t frame[] = {0x82, 0x82, 1, 2, 3, 4, 0xc0 ^ 1, 0x00 ^ 2};
    uint8_t all[2100];
    memcpy(all, req, len);
    memcpy(all + len, frame, sizeof frame);
    struct ws_handshake *h = ws_handshake_new();
    size_t used, total = 0;
    enum ws_handshake_status st = WS_HS_MORE;
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(st, WS_HS_MORE);
        st = ws_handshake_feed(h, &conf, all + i, 1, &used);
        assert_int_equal(used, 1);
        total += used;
    }
    assert_int_equal(st, WS_HS_ACCEPTED);
    assert_int_equal(total, len);
    ws_handshake_free(h);
    /* all at once: the frame's bytes are not the request's */
    size_t got;
    assert_int_equal(run(&conf, (const char *)all, len + sizeof frame, &got, NULL, 0),
                     WS_HS_ACCEPTED);
    assert_int_equal(got, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_value),
        cmocka_unit_test(test_good_request),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_subprotocol_lists),
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_byte_at_a_time_and_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
