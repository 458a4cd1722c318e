/*
 * http_json.c - JSON strings for the HTTP listener (see http_json.h).
 * Only what the replies need: the structure around the strings is written
 * with evbuffer_add_printf by the handlers themselves.
 */
#include "http_json.h"

#include <string.h>
#include <event2/buffer.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0: no
 * overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

void json_string(struct evbuffer *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* run: bytes from s + i - run that need no escape */
    evbuffer_add(b, "\"", 1);
    while (i < len) {
        unsigned char c = s[i];
        size_t seq = c >= 0x80 ? utf8_seq(s + i, len - i) : 1;
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && seq > 0) {
            i += seq;
            run += seq;
            continue;
        }
        if (run)
            evbuffer_add(b, s + i - run, run);
        run = 0;
        if (seq == 0) {
            evbuffer_add(b, "\\ufffd", 6);
            i++;
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            evbuffer_add(b, esc, 2);
            i++;
        } else {
            evbuffer_add_printf(b, "\\u%04x", c);
            i++;
        }
    }
    if (run)
        evbuffer_add(b, s + i - run, run);
    evbuffer_add(b, "\"", 1);
}

void json_string0(struct evbuffer *b, const char *s)
{
    if (s == NULL)
        evbuffer_add(b, "null", 4);
    else
        json_string(b, s, strlen(s));
}
