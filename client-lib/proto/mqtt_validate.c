/*
 * mqtt_validate.c - the text rules of MQTT: well-formed UTF-8, topic names
 * and topic filters, and the matching of a topic name against a filter.  Every string from the network passes through here, so
 * the common case (plain ASCII) is kept to one tight loop.
 */
#include "mqtt_codec.h"

#include <string.h>

/*
 * MQTT strings are UTF-8 as RFC 3629 defines it, plus one extra rule: the
 * null character U+0000 is forbidden [MQTT-1.5.3-2], because C programs on
 * either end would truncate the string there.  Surrogates and code points
 * above U+10FFFF cannot be encoded in real UTF-8 and overlong forms are how
 * filters get bypassed ("/" hidden as C0 AF), so all are rejected
 * [MQTT-1.5.3-1].  Non-characters and control characters other than U+0000
 * are only "SHOULD NOT" in the spec and are accepted, as Mosquitto does.
 *
 * Rather than decode code points we check the byte ranges of the RFC 3629
 * grammar: the second byte's allowed range depends on the lead byte, and that
 * is what excludes overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF)
 * and values above U+10FFFF (F4 90..BF, F5..FF).
 */
bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];

        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }

        size_t ncont;   /* continuation bytes after the lead byte */
        uint8_t lo = 0x80, hi = 0xBF;   /* range for the first of them */

        if (c >= 0xC2 && c <= 0xDF) {
            ncont = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            ncont = 2;
            if (c == 0xE0)
                lo = 0xA0;      /* below is overlong */
            else if (c == 0xED)
                hi = 0x9F;      /* above is a surrogate */
        } else if (c >= 0xF0 && c <= 0xF4) {
            ncont = 3;
            if (c == 0xF0)
                lo = 0x90;      /* below is overlong */
            else if (c == 0xF4)
                hi = 0x8F;      /* above is beyond U+10FFFF */
        } else {
            /* 80..BF: continuation without a lead; C0, C1: always overlong;
             * F5..FF: beyond U+10FFFF or not UTF-8 at all. */
            return false;
        }

        if (len - i <= ncont)
            return false;       /* sequence cut off by the end */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= ncont; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        }
        i += ncont + 1;
    }
    return true;
}

/*
 * Wildcards are meaningful only in filters; a PUBLISH to "a/+" would be
 * unreachable by exact subscribers and ambiguous for wildcard ones, hence
 * [MQTT-3.3.2-2].  The 65535 limit is the 2-byte length prefix.
 */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > 65535)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+' || s[i] == '#')
            return false;
    }
    return mqtt_utf8_valid(s, len);
}

/*
 * A wildcard must occupy a whole level, and '#' must also be the last level
 * [MQTT-4.7.1-2], [MQTT-4.7.1-3].  Empty levels ("a//b", "/a") are legal.
 * Checking character by character against the previous and next byte is
 * enough, since '/', '+' and '#' are ASCII and never occur inside a
 * multi-byte UTF-8 sequence.
 */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > 65535)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool level_start = (i == 0 || s[i - 1] == '/');
        bool level_end = (i + 1 == len || s[i + 1] == '/');

        if (s[i] == '+') {
            if (!level_start || !level_end)
                return false;
        } else if (s[i] == '#') {
            if (!level_start || i + 1 != len)
                return false;
        }
    }
    return mqtt_utf8_valid(s, len);
}

/* Where the level that starts at `from` ends: at a '/' or at len. */
static size_t topic_level_end(const char *s, size_t len, size_t from)
{
    const char *slash = memchr(s + from, '/', len - from);
    return slash ? (size_t)(slash - s) : len;
}

static bool topic_level_is(const char *s, size_t from, size_t end, char ch)
{
    return end - from == 1 && s[from] == ch;
}

bool mqtt_topic_matches(const char *f, size_t flen, const char *t, size_t tlen)
{
    if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
        return false;
    size_t fi = 0, ti = 0;
    bool t_more = true;
    for (;;) {
        size_t fe = topic_level_end(f, flen, fi);
        if (topic_level_is(f, fi, fe, '#'))
            return true; /* also matches the parent level: "a/#" matches "a" */
        if (!t_more)
            return false;
        size_t te = topic_level_end(t, tlen, ti);
        if (!topic_level_is(f, fi, fe, '+') &&
            !(fe - fi == te - ti && memcmp(f + fi, t + ti, fe - fi) == 0))
            return false;
        bool f_last = fe == flen, t_last = te == tlen;
        if (f_last)
            return t_last;
        if (t_last)
            t_more = false;
        else
            ti = te + 1;
        fi = fe + 1;
    }
}
