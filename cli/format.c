/*
 * format.c - output formats of `petrel sub`.  JSON strings are escaped
 * here rather than with a library: the grammar needed is a dozen lines.
 */
#include "format.h"

#include <stdint.h>
#include <string.h>

/* Well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).  NUL
 * is allowed: JSON can carry it escaped. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void json_string(FILE *out, const unsigned char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (c < 0x20 || c == 0x7F)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

static void base64(FILE *out, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        fputc(tab[(v >> 18) & 63], out);
        fputc(tab[(v >> 12) & 63], out);
        fputc(i + 1 < n ? tab[(v >> 6) & 63] : '=', out);
        fputc(i + 2 < n ? tab[v & 63] : '=', out);
    }
    fputc('"', out);
}

void format_json(FILE *out, const petrel_message *m)
{
    const unsigned char *p = m->payload;
    fputs("{\"topic\":", out);
    json_string(out, (const unsigned char *)m->topic, m->topic_len);
    if (utf8_valid(p, m->payload_len)) {
        fputs(",\"payload\":", out);
        json_string(out, p, m->payload_len);
    } else {
        fputs(",\"payload_base64\":", out);
        base64(out, p, m->payload_len);
    }
    fprintf(out, ",\"qos\":%d,\"retain\":%s}\n", m->qos, m->retain ? "true" : "false");
}

int format_message(FILE *out, const petrel_message *m, enum out_format f, bool newline)
{
    switch (f) {
    case OUT_JSON:
        format_json(out, m);
        break;
    case OUT_VERBOSE:
        fwrite(m->topic, 1, m->topic_len, out);
        fputc(' ', out);
        /* fall through */
    case OUT_PAYLOAD:
        if (m->payload_len)
            fwrite(m->payload, 1, m->payload_len, out);
        if (newline)
            fputc('\n', out);
        break;
    }
    if (fflush(out) != 0 || ferror(out))
        return -1;
    return 0;
}
