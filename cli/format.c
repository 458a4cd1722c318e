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

static const char *prop_name(int id)
{
    switch (id) {
    case PETREL_PROP_PAYLOAD_FORMAT: return "payload-format-indicator";
    case PETREL_PROP_MESSAGE_EXPIRY: return "message-expiry-interval";
    case PETREL_PROP_CONTENT_TYPE: return "content-type";
    case PETREL_PROP_RESPONSE_TOPIC: return "response-topic";
    case PETREL_PROP_CORRELATION_DATA: return "correlation-data";
    case PETREL_PROP_SUBSCRIPTION_ID: return "subscription-identifier";
    case PETREL_PROP_TOPIC_ALIAS: return "topic-alias";
    case PETREL_PROP_USER_PROPERTY: return "user-property";
    default: return "property";
    }
}

static bool printable(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7F)
            return false;
    return utf8_valid(s, n);
}

static void text_value(FILE *out, const void *data, size_t n)
{
    const unsigned char *s = data;
    if (printable(s, n)) {
        fwrite(s, 1, n, out);
        return;
    }
    fputs("0x", out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", s[i]);
}

/* One line per property, in the order they came. */
static void text_props(FILE *out, const petrel_properties *props)
{
    size_t cursor = 0;
    petrel_property p;
    while (petrel_properties_next(props, &cursor, &p)) {
        fprintf(out, "  %s: ", prop_name(p.id));
        if (p.id == PETREL_PROP_USER_PROPERTY) {
            text_value(out, p.data, p.len);
            fputc('=', out);
            text_value(out, p.value_data, p.value_len);
        } else if (p.id == PETREL_PROP_CONTENT_TYPE || p.id == PETREL_PROP_RESPONSE_TOPIC ||
                   p.id == PETREL_PROP_CORRELATION_DATA) {
            text_value(out, p.data, p.len);
        } else {
            fprintf(out, "%lu", (unsigned long)p.value);
        }
        fputc('\n', out);
    }
}

/* A string member, or NAME_base64 when it is not UTF-8. */
static void json_bytes_member(FILE *out, const char *name, const void *data, size_t n)
{
    const unsigned char *s = data;
    if (utf8_valid(s, n)) {
        fprintf(out, "\"%s\":", name);
        json_string(out, s, n);
    } else {
        fprintf(out, "\"%s_base64\":", name);
        base64(out, s, n);
    }
}

static void json_props(FILE *out, const petrel_properties *props)
{
    size_t cursor = 0;
    petrel_property p;
    bool first = true;
    fputs(",\"properties\":{", out);
#define SEP() (first ? (void)(first = false) : (void)fputc(',', out))
    while (petrel_properties_next(props, &cursor, &p)) {
        switch (p.id) {
        case PETREL_PROP_PAYLOAD_FORMAT:
            SEP();
            fprintf(out, "\"payload_format_indicator\":%lu", (unsigned long)p.value);
            break;
        case PETREL_PROP_MESSAGE_EXPIRY:
            SEP();
            fprintf(out, "\"message_expiry_interval\":%lu", (unsigned long)p.value);
            break;
        case PETREL_PROP_CONTENT_TYPE:
            SEP();
            json_bytes_member(out, "content_type", p.data, p.len);
            break;
        case PETREL_PROP_RESPONSE_TOPIC:
            SEP();
            json_bytes_member(out, "response_topic", p.data, p.len);
            break;
        case PETREL_PROP_CORRELATION_DATA:
            SEP();
            json_bytes_member(out, "correlation_data", p.data, p.len);
            break;
        default:
            break;
        }
    }
    /* The repeatable ones as arrays, each in wire order. */
    static const struct {
        int id;
        const char *name;
    } arrays[] = {
        {PETREL_PROP_SUBSCRIPTION_ID, "subscription_identifiers"},
        {PETREL_PROP_USER_PROPERTY, "user_properties"}, /* [name, value] pairs */
    };
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++) {
        if (!petrel_properties_count(props, arrays[a].id))
            continue;
        SEP();
        fprintf(out, "\"%s\":[", arrays[a].name);
        bool f2 = true;
        for (cursor = 0; petrel_properties_next(props, &cursor, &p);) {
            if (p.id != arrays[a].id)
                continue;
            if (!f2)
                fputc(',', out);
            f2 = false;
            if (p.id == PETREL_PROP_SUBSCRIPTION_ID) {
                fprintf(out, "%lu", (unsigned long)p.value);
                continue;
            }
            fputc('[', out);
            json_string(out, p.data, p.len);
            fputc(',', out);
            json_string(out, p.value_data, p.value_len);
            fputc(']', out);
        }
        fputc(']', out);
    }
#undef SEP
    fputc('}', out);
}

void format_json(FILE *out, const petrel_message *m, bool props)
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
    fprintf(out, ",\"qos\":%d,\"retain\":%s", m->qos, m->retain ? "true" : "false");
    if (props && m->props)
        json_props(out, m->props);
    fputs("}\n", out);
}

int format_message(FILE *out, const petrel_message *m, enum out_format f, bool newline,
                   bool props)
{
    switch (f) {
    case OUT_JSON:
        format_json(out, m, props);
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
        if (props && m->props)
            text_props(out, m->props);
        break;
    }
    if (fflush(out) != 0 || ferror(out))
        return -1;
    return 0;
}
