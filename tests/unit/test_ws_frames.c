/*
 * test_ws_frames.c - unit tests of the WebSocket frames both of petreld's
 * transports read and write (broker/ws_frames.c): binary frames split at
 * every byte, a fragmented message, pings answered with pongs, the close
 * codes of what a client does wrong (text 1003, too large 1009, unmasked
 * and fragmented control frames 1002), the client's close frame, the
 * reading context given back between frames, and the headers of frames
 * sent (7-bit, 16-bit and 64-bit lengths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frames.h"

/* What a read produced: payload, and the frames wslay sent back. */
static uint8_t data[65536], sent[4096];
static size_t data_len, sent_len;

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    assert_true(data_len + n <= sizeof data);
    memcpy(data + data_len, p, n);
    data_len += n;
    return 0;
}

static int on_send(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    assert_true(sent_len + n <= sizeof sent);
    memcpy(sent + sent_len, p, n);
    sent_len += n;
    return 0;
}

static void reset(void)
{
    data_len = sent_len = 0;
}

/* A client frame: masked (unless `masked` is false) with a fixed key. */
static size_t client_frame(uint8_t *out, bool fin, uint8_t opcode, const void *payload, size_t len,
                           bool masked)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    if (masked) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i % 4] : 0);
    return n + len;
}

/* Reads `len` bytes at p in one call.  Returns ws_read's result. */
static int feed(struct ws_reader *r, const uint8_t *p, size_t len, uint64_t max,
                struct ws_read_end *end)
{
    struct ws_read_io io = {.flat = p, .len = len, .data = on_data, .send = on_send};
    return ws_read(r, max, &io, end);
}

/* Reads one masked client frame (limit 1000). */
static int feed_frame(struct ws_reader *r, bool fin, uint8_t opcode, const char *payload,
                      size_t len, struct ws_read_end *end)
{
    uint8_t in[256];
    size_t n = client_frame(in, fin, opcode, payload, len, true);
    return feed(r, in, n, 1000, end);
}

static void test_binary_split_at_every_byte(void **state)
{
    (void)state;
    uint8_t in[512];
    const char *a = "first MQTT bytes", *b = "and a second frame, longer than the first one";
    size_t n = client_frame(in, true, 2, a, strlen(a), true);
    n += client_frame(in + n, true, 2, b, strlen(b), true);
    for (size_t cut = 0; cut <= n; cut++) {
        struct ws_reader r = {0};
        struct ws_read_end end;
        reset();
        assert_int_equal(feed(&r, in, cut, 1000, &end), 0);
        assert_int_equal(feed(&r, in + cut, n - cut, 1000, &end), 0);
        assert_int_equal(data_len, strlen(a) + strlen(b));
        assert_memory_equal(data, a, strlen(a));
        assert_memory_equal(data + strlen(a), b, strlen(b));
        /* at a frame boundary the context went back to be lent */
        assert_null(r.ev);
        assert_int_equal(sent_len, 0);
        ws_reader_free(&r);
    }
}

static void test_fragmented_message_holds_its_context(void **state)
{
    (void)state;
    struct ws_reader r = {0};
    struct ws_read_end end;
    reset();
    assert_int_equal(feed_frame(&r, false, 2, "ab", 2, &end), 0);
    assert_non_null(r.ev); /* inside a message */
    assert_int_equal(feed_frame(&r, true, 0, "cd", 2, &end), 0);
    assert_int_equal(data_len, 4);
    assert_memory_equal(data, "abcd", 4);
    assert_null(r.ev);
    ws_reader_free(&r);
}

static void test_ping_answered(void **state)
{
    (void)state;
    struct ws_reader r = {0};
    struct ws_read_end end;
    reset();
    uint64_t pings = ws_stats.pings;
    assert_int_equal(feed_frame(&r, true, 9, "abc", 3, &end), 0);
    assert_int_equal(ws_stats.pings, pings + 1);
    static const uint8_t pong[] = {0x8a, 3, 'a', 'b', 'c'};
    assert_int_equal(sent_len, sizeof pong);
    assert_memory_equal(sent, pong, sizeof pong);
    assert_int_equal(data_len, 0);
    ws_reader_free(&r);
}

/* Feeds one frame that must end the connection; returns how. */
static int ends(const uint8_t *in, size_t n, uint64_t max, struct ws_read_end *end)
{
    struct ws_reader r = {0};
    reset();
    int rc = feed(&r, in, n, max, end);
    /* nothing more is read */
    struct ws_read_end again;
    assert_int_equal(feed(&r, in, n, max, &again), -1);
    ws_reader_free(&r);
    return rc;
}

/* The close frame wslay sent, or 0. */
static unsigned sent_close_code(void)
{
    if (sent_len < 4 || sent[0] != 0x88)
        return 0;
    return (unsigned)sent[2] << 8 | sent[3];
}

static void test_text_frame_1003(void **state)
{
    (void)state;
    uint8_t in[64];
    struct ws_read_end end;
    size_t n = client_frame(in, true, 1, "text", 4, true);
    assert_int_equal(ends(in, n, 1000, &end), -1);
    assert_int_equal(end.close_code, 1003);
    assert_false(end.by_client);
    assert_non_null(strstr(end.why, "text frame"));
}

static void test_frame_over_the_limit_1009(void **state)
{
    (void)state;
    uint8_t in[256];
    uint8_t payload[200] = {0};
    struct ws_read_end end;
    size_t n = client_frame(in, true, 2, payload, sizeof payload, true);
    assert_int_equal(ends(in, n, 199, &end), -1);
    assert_int_equal(end.close_code, 1009);
    assert_int_equal(data_len, 0); /* none of it was handed on */
    /* at the limit it passes */
    struct ws_reader r = {0};
    reset();
    assert_int_equal(feed(&r, in, n, 200, &end), 0);
    assert_int_equal(data_len, sizeof payload);
    ws_reader_free(&r);
}

static void test_unmasked_frame_1002(void **state)
{
    (void)state;
    uint8_t in[64];
    struct ws_read_end end;
    size_t n = client_frame(in, true, 2, "bare", 4, false);
    assert_int_equal(ends(in, n, 1000, &end), -1);
    /* wslay sent the close frame itself */
    assert_int_equal(end.close_code, 0);
    assert_int_equal(sent_close_code(), 1002);
    assert_int_equal(data_len, 0);
}

static void test_fragmented_control_frame_1002(void **state)
{
    (void)state;
    uint8_t in[64];
    struct ws_read_end end;
    size_t n = client_frame(in, false, 9, "pi", 2, true);
    assert_int_equal(ends(in, n, 1000, &end), -1);
    assert_true(end.close_code == 1002 || sent_close_code() == 1002);
}

static void test_close_from_the_client(void **state)
{
    (void)state;
    uint8_t in[64];
    struct ws_read_end end;
    const char *before = "last bytes";
    size_t n = client_frame(in, true, 2, before, strlen(before), true);
    static const uint8_t code[2] = {0x03, 0xe9}; /* 1001 */
    n += client_frame(in + n, true, 8, code, 2, true);
    assert_int_equal(ends(in, n, 1000, &end), -1);
    assert_true(end.by_client);
    assert_int_equal(end.close_code, 0); /* answered by wslay */
    assert_int_equal(sent_close_code(), 1001);
    /* what came before the close frame is still handed on */
    assert_int_equal(data_len, strlen(before));
    assert_non_null(strstr(end.why, "1001"));
}

static void test_headers_sent(void **state)
{
    (void)state;
    uint8_t h[WS_HEADER_MAX];
    static const uint8_t h5[] = {0x82, 5};
    assert_int_equal(ws_binary_header(h, 5), sizeof h5);
    assert_memory_equal(h, h5, sizeof h5);
    static const uint8_t h126[] = {0x82, 126, 0, 126};
    assert_int_equal(ws_binary_header(h, 126), sizeof h126);
    assert_memory_equal(h, h126, sizeof h126);
    static const uint8_t h64k[] = {0x82, 126, 0xff, 0xff};
    assert_int_equal(ws_binary_header(h, 65535), sizeof h64k);
    assert_memory_equal(h, h64k, sizeof h64k);
    static const uint8_t hbig[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70};
    assert_int_equal(ws_binary_header(h, 70000), sizeof hbig);
    assert_memory_equal(h, hbig, sizeof hbig);
}

static int teardown(void **state)
{
    (void)state;
    ws_frames_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_split_at_every_byte),
        cmocka_unit_test(test_fragmented_message_holds_its_context),
        cmocka_unit_test(test_ping_answered),
        cmocka_unit_test(test_text_frame_1003),
        cmocka_unit_test(test_frame_over_the_limit_1009),
        cmocka_unit_test(test_unmasked_frame_1002),
        cmocka_unit_test(test_fragmented_control_frame_1002),
        cmocka_unit_test(test_close_from_the_client),
        cmocka_unit_test(test_headers_sent),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
