/*
 * bench_topic.c - topic templates and topic filter matching for
 * `petrel bench`.
 */
#include "bench_topic.h"

#include <stdio.h>
#include <string.h>

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
    const char *t = topic, *end = topic + len;
    const char *f = filter;
    /* A wildcard first level does not match topics starting with '$'. */
    if (len > 0 && topic[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (f[0] == '#')
            return true; /* validated filters have '#' only as the last level */
        /* The current level of each. */
        const char *fl_end = strchr(f, '/');
        if (!fl_end)
            fl_end = f + strlen(f);
        const char *tl_end = memchr(t, '/', (size_t)(end - t));
        if (!tl_end)
            tl_end = end;
        if (!(fl_end - f == 1 && f[0] == '+') &&
            (fl_end - f != tl_end - t || memcmp(f, t, (size_t)(tl_end - t)) != 0))
            return false;
        bool f_last = *fl_end == '\0', t_last = tl_end == end;
        if (t_last) {
            /* "a/#" also matches "a". */
            return f_last || strcmp(fl_end, "/#") == 0;
        }
        if (f_last)
            return false;
        f = fl_end + 1;
        t = tl_end + 1;
    }
}
