/*
 * bench_topic.c - topic templates and topic filter matching for
 * `petrel bench` (the matching is the codec's, mqtt_topic_matches).
 */
#include "bench_topic.h"

#include <stdio.h>
#include <string.h>

#include "mqtt_codec.h"

int topic_expand(const char *tmpl, unsigned long pub, unsigned long topic, unsigned long sub,
                 char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = tmpl; *p; p++) {
        char num[24];
        const char *piece = num;
        size_t len;
        if (*p != '%') {
            piece = p;
            len = 1;
        } else {
            unsigned long v;
            switch (*++p) {
            case 'p': v = pub; break;
            case 't': v = topic; break;
            case 's': v = sub; break;
            case '%':
                piece = "%";
                len = 1;
                goto put;
            default:
                return -1;
            }
            len = (size_t)snprintf(num, sizeof num, "%lu", v);
        }
put:
        if (n + len >= cap)
            return -1;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return (int)n;
}

const char *topic_template_error(const char *tmpl, const char *allowed)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '%')
            continue;
        if (!*p)
            return "ends with a lone %";
        if (!strchr(allowed, *p))
            return "uses a %-sequence that does not apply here";
    }
    return NULL;
}

bool topic_matches(const char *filter, const char *topic, size_t len)
{
    return mqtt_topic_matches(filter, strlen(filter), topic, len);
}
