/*
 * bridge_config.c - parsing and checking of the `bridge NAME` sections
 * (bridge_config.h).  Everything here is a value check: no file is opened
 * and no name is resolved, so a bad section refuses the whole file before
 * anything listens or connects.
 */
#include "bridge_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster_subject.h"
#include "config_text.h"
#include "mqtt_codec.h"

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static void defaults(struct bridge_conf *c, const char *name, unsigned line)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%.*s", BRIDGE_NAME_LEN - 1, name);
    c->line = line;
    snprintf(c->client_id, sizeof c->client_id, "petrel-bridge-%.*s", BRIDGE_NAME_LEN - 1, name);
    c->protocol = MQTT_LEVEL_5;
    c->try_private = true;
    c->keepalive = 60;
    c->reconnect_min_ms = 1000;
    c->reconnect_max_ms = 30000;
}


static int boolean(const char *key, const char *v, bool *out, char *err, size_t errlen)
{
    if (strcasecmp(v, "true") == 0)
        *out = true;
    else if (strcasecmp(v, "false") == 0)
        *out = false;
    else {
        errf(err, errlen, "%s must be true or false, not '%s'", key, v);
        return -1;
    }
    return 0;
}

static int number(const char *key, const char *v, unsigned long min, unsigned long max,
                  unsigned long *out, char *err, size_t errlen)
{
    char *end;
    if (v[0] < '0' || v[0] > '9') {
        errf(err, errlen, "%s must be a number from %lu to %lu, not '%s'", key, min, max, v);
        return -1;
    }
    unsigned long n = strtoul(v, &end, 10);
    if (*end != '\0' || n < min || n > max || strlen(v) > 10) {
        errf(err, errlen, "%s must be a number from %lu to %lu, not '%s'", key, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* A size with an optional k, M or G suffix (powers of 1024), as elsewhere
 * in the file; 0 = no limit. */
static int size(const char *key, const char *v, uint64_t *out, char *err, size_t errlen)
{
    char *end;
    if (v[0] < '0' || v[0] > '9')
        goto bad;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t mult = 1;
    if (*end == 'k')
        mult = 1024, end++;
    else if (*end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 'G')
        mult = 1024ull * 1024 * 1024, end++;
    if (errno || *end != '\0' || n > UINT64_MAX / mult || n * mult > (1ull << 40))
        goto bad;
    *out = n * mult;
    return 0;
bad:
    errf(err, errlen, "%s must be a size (bytes, or with a k, M or G suffix) up to 1024G, not '%s'",
         key, v);
    return -1;
}

/* "host:port", "host", "[v6]:port", "[v6]"; a bare IPv6 address (two colons
 * or more) has no port. */
static int parse_address(const char *v, struct bridge_address *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    const char *host = v, *port = NULL;
    size_t hlen;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || (close[1] != '\0' && close[1] != ':')) {
            errf(err, errlen, "address '%s': expected [IPV6]:PORT", v);
            return -1;
        }
        host = v + 1;
        hlen = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = strchr(v, ':');
        if (colon && strchr(colon + 1, ':')) {
            hlen = strlen(v); /* IPv6 without brackets: no port */
        } else if (colon) {
            hlen = (size_t)(colon - v);
            port = colon + 1;
        } else {
            hlen = strlen(v);
        }
    }
    if (hlen == 0 || hlen >= sizeof a->host) {
        errf(err, errlen, "address '%s': the host is empty or too long", v);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '/' || ch == '[' || ch == ']') {
            errf(err, errlen, "address '%s': the host holds a character a host name cannot", v);
            return -1;
        }
    }
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    if (port) {
        unsigned long p;
        if (number("address port", port, 1, 65535, &p, err, errlen) != 0)
            return -1;
        a->port = (uint16_t)p;
        a->port_given = true;
    }
    return 0;
}

/* "a, b, c" appended to the bridge's addresses. */
static int add_addresses(struct bridge_conf *c, const char *v, char *err, size_t errlen)
{
    char buf[BRIDGE_MAX_ADDRESSES * (BRIDGE_HOST_LEN + 8) + 1];
    if (strlen(v) >= sizeof buf) {
        errf(err, errlen, "address list is too long");
        return -1;
    }
    strcpy(buf, v);
    char *save = NULL;
    bool any = false;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (blank(*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && blank(end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (c->n_addresses >= BRIDGE_MAX_ADDRESSES) {
            errf(err, errlen, "more than %d addresses", BRIDGE_MAX_ADDRESSES);
            return -1;
        }
        if (parse_address(tok, &c->addresses[c->n_addresses], err, errlen) != 0)
            return -1;
        c->n_addresses++;
        any = true;
    }
    if (!any) {
        errf(err, errlen, "address is empty");
        return -1;
    }
    return 0;
}

static bool topic_chars_ok(const char *s)
{
    return mqtt_utf8_valid((const uint8_t *)s, strlen(s));
}

static int prefix(const char *key, const char *v, char *field, char *err, size_t errlen)
{
    if (config_text(key, v, field, BRIDGE_PREFIX_LEN, true, err, errlen) != 0)
        return -1;
    if (strpbrk(v, "+#") || !topic_chars_ok(v)) {
        errf(err, errlen, "%s '%s' may not hold '+' or '#'", key, v);
        return -1;
    }
    return 0;
}

/* "out FILTER opts..." / "in FILTER opts...", words separated by blanks. */
static int parse_rule(struct bridge_conf *c, bool out, char *rest, char *err, size_t errlen)
{
    if (c->n_rules >= BRIDGE_MAX_RULES) {
        errf(err, errlen, "more than %d out/in rules in one bridge", BRIDGE_MAX_RULES);
        return -1;
    }
    struct bridge_rule *r = &c->rules[c->n_rules];
    memset(r, 0, sizeof *r);
    r->out = out;
    r->qos = 1;
    char *save = NULL;
    char *filter = strtok_r(rest, " \t", &save);
    if (!filter) {
        errf(err, errlen, "%s: expected a topic filter", out ? "out" : "in");
        return -1;
    }
    if (config_text("filter", filter, r->filter, sizeof r->filter, false, err, errlen) != 0)
        return -1;
    if (!mqtt_topic_filter_valid((const uint8_t *)filter, strlen(filter)) ||
        strncmp(filter, "$share/", 7) == 0) {
        errf(err, errlen, "%s: '%s' is not a valid topic filter", out ? "out" : "in", filter);
        return -1;
    }
    for (char *opt = strtok_r(NULL, " \t", &save); opt; opt = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(opt, '=');
        if (!eq) {
            errf(err, errlen, "%s: '%s': expected qos=, local_prefix= or remote_prefix=",
                 out ? "out" : "in", opt);
            return -1;
        }
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(opt, "qos") == 0) {
            unsigned long q;
            if (number("qos", v, 0, 2, &q, err, errlen) != 0)
                return -1;
            r->qos = (uint8_t)q;
        } else if (strcmp(opt, "local_prefix") == 0) {
            if (prefix("local_prefix", v, r->local_prefix, err, errlen) != 0)
                return -1;
        } else if (strcmp(opt, "remote_prefix") == 0) {
            if (prefix("remote_prefix", v, r->remote_prefix, err, errlen) != 0)
                return -1;
        } else {
            errf(err, errlen, "%s: unknown option '%s' (qos, local_prefix, remote_prefix)",
                 out ? "out" : "in", opt);
            return -1;
        }
    }
    /* The filter the bridge subscribes to is prefix + filter: it must stay
     * within a topic filter's length and still be one. */
    const char *pre = out ? r->local_prefix : r->remote_prefix;
    char full[BRIDGE_PREFIX_LEN + BRIDGE_TOPIC_LEN];
    snprintf(full, sizeof full, "%s%s", pre, r->filter);
    if (!mqtt_topic_filter_valid((const uint8_t *)full, strlen(full))) {
        errf(err, errlen, "%s: prefix and filter make '%s', not a valid topic filter",
             out ? "out" : "in", full);
        return -1;
    }
    c->n_rules++;
    return 0;
}

static int protocol(const char *v, uint8_t *out, char *err, size_t errlen)
{
    if (strcmp(v, "3.1.1") == 0 || strcmp(v, "311") == 0 || strcmp(v, "4") == 0)
        *out = MQTT_LEVEL_311;
    else if (strcmp(v, "5") == 0 || strcmp(v, "5.0") == 0)
        *out = MQTT_LEVEL_5;
    else {
        errf(err, errlen, "protocol must be 3.1.1 or 5, not '%s'", v);
        return -1;
    }
    return 0;
}

static int duration_ms(const char *key, const char *v, uint32_t *out, char *err, size_t errlen)
{
    unsigned long s;
    if (number(key, v, 1, 86400, &s, err, errlen) != 0)
        return -1;
    *out = (uint32_t)(s * 1000);
    return 0;
}

static int setting(struct bridge_conf *c, const char *key, const char *v, char *err,
                   size_t errlen)
{
    unsigned long n;
    if (strcmp(key, "address") == 0 || strcmp(key, "addresses") == 0)
        return add_addresses(c, v, err, errlen);
    if (strcmp(key, "tls") == 0)
        return boolean(key, v, &c->tls, err, errlen);
    if (strcmp(key, "tls_insecure") == 0)
        return boolean(key, v, &c->tls_insecure, err, errlen);
    if (strcmp(key, "cafile") == 0)
        return config_text(key, v, c->cafile, sizeof c->cafile, false, err, errlen);
    if (strcmp(key, "certfile") == 0)
        return config_text(key, v, c->certfile, sizeof c->certfile, false, err, errlen);
    if (strcmp(key, "keyfile") == 0)
        return config_text(key, v, c->keyfile, sizeof c->keyfile, false, err, errlen);
    if (strcmp(key, "username") == 0)
        return config_text(key, v, c->username, sizeof c->username, false, err, errlen);
    if (strcmp(key, "password_file") == 0)
        return config_text(key, v, c->password_file, sizeof c->password_file, false, err, errlen);
    if (strcmp(key, "client_id") == 0) {
        if (config_text(key, v, c->client_id, sizeof c->client_id, false, err, errlen) != 0)
            return -1;
        if (!mqtt_utf8_valid((const uint8_t *)v, strlen(v))) {
            errf(err, errlen, "client_id is not UTF-8");
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "protocol") == 0)
        return protocol(v, &c->protocol, err, errlen);
    if (strcmp(key, "try_private") == 0)
        return boolean(key, v, &c->try_private, err, errlen);
    if (strcmp(key, "keepalive") == 0) {
        if (number(key, v, 0, 65535, &n, err, errlen) != 0)
            return -1;
        c->keepalive = (uint16_t)n;
        return 0;
    }
    if (strcmp(key, "clean") == 0)
        return boolean(key, v, &c->clean, err, errlen);
    if (strcmp(key, "notification_topic") == 0) {
        if (config_text(key, v, c->notification_topic, sizeof c->notification_topic, false, err,
                 errlen) != 0)
            return -1;
        if (!mqtt_topic_name_valid((const uint8_t *)v, strlen(v))) {
            errf(err, errlen, "notification_topic '%s' is not a valid topic name", v);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "max_queued_messages") == 0) {
        if (number(key, v, 1, 4294967295ul, &n, err, errlen) != 0)
            return -1;
        c->max_queued_messages = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "max_queued_bytes") == 0) {
        if (size(key, v, &c->max_queued_bytes, err, errlen) != 0)
            return -1;
        c->max_queued_bytes_given = true;
        return 0;
    }
    if (strcmp(key, "reconnect_min") == 0)
        return duration_ms(key, v, &c->reconnect_min_ms, err, errlen);
    if (strcmp(key, "reconnect_max") == 0)
        return duration_ms(key, v, &c->reconnect_max_ms, err, errlen);
    errf(err, errlen,
         "unknown bridge setting '%s' (address, tls, tls_insecure, cafile, certfile, keyfile, "
         "username, password_file, client_id, protocol, try_private, keepalive, clean, "
         "notification_topic, reconnect_min, reconnect_max, max_queued_messages, "
         "max_queued_bytes, out, in)",
         key);
    return -1;
}

/* The section is complete: what only the whole of it can tell. */
static int check(struct bridge_conf *c, char *err, size_t errlen)
{
    if (c->n_addresses == 0) {
        errf(err, errlen, "bridge %s (line %u) has no address", c->name, c->line);
        return -1;
    }
    if (c->n_rules == 0) {
        errf(err, errlen, "bridge %s (line %u) has no out or in rule", c->name, c->line);
        return -1;
    }
    if (c->cafile[0] || c->certfile[0])
        c->tls = true;
    if (c->keyfile[0] && !c->certfile[0]) {
        errf(err, errlen, "bridge %s (line %u): keyfile without certfile", c->name, c->line);
        return -1;
    }
    if (c->password_file[0] && !c->username[0]) {
        errf(err, errlen, "bridge %s (line %u): password_file without username", c->name,
             c->line);
        return -1;
    }
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        c->reconnect_max_ms = c->reconnect_min_ms;
    for (size_t i = 0; i < c->n_addresses; i++)
        if (!c->addresses[i].port_given)
            c->addresses[i].port = c->tls ? 8883 : 1883;
    return 0;
}

int bridge_config_finish(struct bridges_conf *b, char *err, size_t errlen)
{
    if (!b->open)
        return 0;
    b->open = false;
    return check(&b->list[b->n - 1], err, errlen);
}

int bridge_config_line(struct bridges_conf *b, const char *line, unsigned lineno, char *err,
                       size_t errlen)
{
    const char *p = line;
    while (blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    bool indented = p != line;
    bool starts = !indented && strncmp(p, "bridge", 6) == 0 && blank(p[6]);
    if (!starts && !(indented && b->open)) {
        /* Anything else at the start of a line ends the section. */
        return bridge_config_finish(b, err, errlen) < 0 ? -1 : 0;
    }

    char buf[4096 + 2];
    if (strlen(p) >= sizeof buf) {
        errf(err, errlen, "line too long");
        return -1;
    }
    strcpy(buf, p);
    char *end = buf + strlen(buf);
    while (end > buf && blank(end[-1]))
        *--end = '\0';

    if (starts) {
        if (bridge_config_finish(b, err, errlen) < 0)
            return -1;
        char *name = buf + 6;
        while (blank(*name))
            name++;
        /* The same words as a cluster's node name: they go into topics
         * ($SYS/broker/bridges/NAME) and metric labels as they are. */
        if (!cluster_token_valid(name)) {
            errf(err, errlen, "bridge name '%s': use 1 to %d letters, digits, '-' or '_'", name,
                 BRIDGE_NAME_LEN - 1);
            return -1;
        }
        if (bridge_config_find(b, name)) {
            errf(err, errlen, "bridge %s is defined twice", name);
            return -1;
        }
        if (b->n >= BRIDGE_MAX) {
            errf(err, errlen, "more than %d bridges", BRIDGE_MAX);
            return -1;
        }
        defaults(&b->list[b->n++], name, lineno);
        b->open = true;
        return 1;
    }

    struct bridge_conf *c = &b->list[b->n - 1];
    size_t wlen = strcspn(buf, " \t=");
    if ((wlen == 3 && strncmp(buf, "out", 3) == 0) || (wlen == 2 && strncmp(buf, "in", 2) == 0)) {
        char *rest = buf + wlen;
        while (blank(*rest))
            rest++;
        if (*rest != '=')
            return parse_rule(c, wlen == 3, rest, err, errlen) < 0 ? -1 : 1;
    }
    char *eq = strchr(buf, '=');
    if (!eq) {
        errf(err, errlen, "in bridge %s: expected 'key = value', 'out FILTER ...' or "
             "'in FILTER ...'", c->name);
        return -1;
    }
    char *kend = eq;
    while (kend > buf && blank(kend[-1]))
        kend--;
    *kend = '\0';
    char *v = eq + 1;
    while (blank(*v))
        v++;
    for (const char *h = strchr(v, '#'); h; h = strchr(h + 1, '#')) {
        if (h == v || blank(h[-1])) {
            errf(err, errlen, "%s: '%s' looks like it holds a comment; comments must be on a "
                 "line of their own", buf, v);
            return -1;
        }
    }
    return setting(c, buf, v, err, errlen) < 0 ? -1 : 1;
}

const struct bridge_conf *bridge_config_find(const struct bridges_conf *b, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->list[i].name, name) == 0)
            return &b->list[i];
    return NULL;
}

bool bridge_config_same(const struct bridge_conf *a, const struct bridge_conf *b)
{
    /* Every field but the line it was found on. */
    struct bridge_conf x = *a, y = *b;
    x.line = y.line = 0;
    return memcmp(&x, &y, sizeof x) == 0;
}

static void dump_address(FILE *out, const struct bridge_address *a)
{
    if (strchr(a->host, ':'))
        fprintf(out, "[%s]:%u", a->host, (unsigned)a->port);
    else
        fprintf(out, "%s:%u", a->host, (unsigned)a->port);
}

void bridge_config_dump(const struct bridges_conf *b, FILE *out)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct bridge_conf *c = &b->list[i];
        fprintf(out, "\n# a bridge to another MQTT broker (docs/bridges.md)\nbridge %s\n",
                c->name);
        fprintf(out, "    address = ");
        for (size_t j = 0; j < c->n_addresses; j++) {
            if (j)
                fprintf(out, ", ");
            dump_address(out, &c->addresses[j]);
        }
        fprintf(out, "\n    tls = %s\n", c->tls ? "true" : "false");
        if (c->tls_insecure)
            fprintf(out, "    tls_insecure = true\n");
        if (c->cafile[0])
            fprintf(out, "    cafile = %s\n", c->cafile);
        if (c->certfile[0])
            fprintf(out, "    certfile = %s\n", c->certfile);
        if (c->keyfile[0])
            fprintf(out, "    keyfile = %s\n", c->keyfile);
        if (c->username[0])
            fprintf(out, "    username = %s\n", c->username);
        if (c->password_file[0])
            fprintf(out, "    password_file = %s\n", c->password_file);
        fprintf(out, "    client_id = %s\n", c->client_id);
        fprintf(out, "    protocol = %s\n", c->protocol == MQTT_LEVEL_5 ? "5" : "3.1.1");
        fprintf(out, "    try_private = %s\n", c->try_private ? "true" : "false");
        fprintf(out, "    keepalive = %u\n", (unsigned)c->keepalive);
        fprintf(out, "    clean = %s\n", c->clean ? "true" : "false");
        if (c->notification_topic[0])
            fprintf(out, "    notification_topic = %s\n", c->notification_topic);
        fprintf(out, "    reconnect_min = %u\n", (unsigned)(c->reconnect_min_ms / 1000));
        fprintf(out, "    reconnect_max = %u\n", (unsigned)(c->reconnect_max_ms / 1000));
        if (c->max_queued_messages)
            fprintf(out, "    max_queued_messages = %u\n", (unsigned)c->max_queued_messages);
        if (c->max_queued_bytes_given)
            fprintf(out, "    max_queued_bytes = %llu\n", (unsigned long long)c->max_queued_bytes);
        for (size_t j = 0; j < c->n_rules; j++) {
            const struct bridge_rule *r = &c->rules[j];
            fprintf(out, "    %s %s qos=%u", r->out ? "out" : "in", r->filter, (unsigned)r->qos);
            if (r->local_prefix[0])
                fprintf(out, " local_prefix=%s", r->local_prefix);
            if (r->remote_prefix[0])
                fprintf(out, " remote_prefix=%s", r->remote_prefix);
            fputc('\n', out);
        }
    }
}
