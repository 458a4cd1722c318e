/*
 * cluster_subject.c - the MQTT <-> NATS mapping of cluster_subject.h.
 *
 * NATS splits subjects at '.', so an MQTT level separator becomes '.', a
 * '.' inside a level becomes "//" and an empty level keeps a '/' beside
 * its '.' ("/." at the start or after another separator, "./" before one
 * or at the end), which makes the mapping reversible: in a subject a '/'
 * is never alone.
 */
#include "cluster_subject.h"

#include <string.h>

bool cluster_token_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Appends `n` bytes; false when `cap` (which keeps room for the NUL) is
 * reached. */
static bool put(char *out, size_t cap, size_t *j, const char *s, size_t n)
{
    if (*j + n + 1 > cap)
        return false;
    memcpy(out + *j, s, n);
    *j += n;
    return true;
}

long cluster_subject_from_topic(const char *prefix, const char *topic, size_t len, bool filter,
                                char *out, size_t cap)
{
    size_t j = 0;
    if (!put(out, cap, &j, prefix, strlen(prefix)) || !put(out, cap, &j, ".", 1))
        return -1;
    const size_t start = j; /* the topic's part begins here */
    for (size_t i = 0; i < len; i++) {
        char c = topic[i];
        bool ok;
        switch (c) {
        case '/':
            if (j == start || out[j - 1] == '.')
                ok = put(out, cap, &j, "/.", 2); /* an empty level before */
            else if (i + 1 == len || topic[i + 1] == '/')
                ok = put(out, cap, &j, "./", 2); /* an empty level after */
            else
                ok = put(out, cap, &j, ".", 1);
            break;
        case '.':
            ok = put(out, cap, &j, "//", 2);
            break;
        case '+':
        case '#':
            if (!filter)
                return -1;
            ok = put(out, cap, &j, c == '+' ? "*" : ">", 1);
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
        case '\f':
        case 0x7f:
            return -1; /* would split or corrupt the NATS protocol line */
        default:
            ok = put(out, cap, &j, &c, 1);
        }
        if (!ok)
            return -1;
    }
    if (j == start)
        return -1; /* an empty topic is not a topic */
    if (out[j - 1] == '.' && !put(out, cap, &j, "/", 1))
        return -1; /* the last level is empty */
    out[j] = '\0';
    return (long)j;
}

long cluster_subject_parent(const char *prefix, const char *filter, size_t len, char *out,
                            size_t cap)
{
    if (len < 3 || filter[len - 1] != '#' || filter[len - 2] != '/')
        return 0; /* "#" alone, or no '#': one subject covers it */
    return cluster_subject_from_topic(prefix, filter, len - 2, true, out, cap);
}

long cluster_topic_from_subject(const char *prefix, const char *subject, size_t len, char *out,
                                size_t cap)
{
    size_t plen = strlen(prefix);
    if (len <= plen + 1 || memcmp(subject, prefix, plen) != 0 || subject[plen] != '.')
        return -1;
    size_t j = 0;
    for (size_t i = plen + 1; i < len; i++) {
        char c = subject[i];
        if (c == '*' || c == '>')
            return -1;
        if (c == '/') {
            if (i + 1 < len && (subject[i + 1] == '.' || subject[i + 1] == '/')) {
                c = subject[i + 1] == '.' ? '/' : '.';
                i++;
            } else {
                continue; /* the '/' that marked an empty last level */
            }
        } else if (c == '.') {
            c = '/';
        }
        if (!put(out, cap, &j, &c, 1))
            return -1;
    }
    if (j == 0)
        return -1;
    out[j] = '\0';
    return (long)j;
}
