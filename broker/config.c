/*
 * config.c - petreld settings: defaults, validation of every value, the
 * `key = value` configuration file and the dump of the effective settings.
 * See config.h for the contract.
 *
 * Every setting is described once, in the table `settings`: parsing,
 * range checks and config_dump all work from it, so a new setting cannot
 * be forgotten by one of them.  A value is either applied whole or
 * rejected with a message that names the setting, the value and what
 * would be accepted; nothing is silently clamped or truncated.
 *
 * File syntax, and why:
 *   - '#' starts a comment only as the first non-blank character of a line.
 *     A '#' later on belongs to the value; a value containing " #" is
 *     rejected outright, so "max_inflight = 20 # per client" is an error
 *     rather than a setting whose value was quietly cut short or kept whole.
 *   - Values are taken literally (no quotes, no escapes); surrounding blanks
 *     and a CR before the LF are dropped, so files edited on Windows work.
 *   - A file is applied all or nothing: on error the caller's struct is
 *     left as it was.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster_subject.h"
#include "config_text.h"

#define MAX_LINE 4095

enum kind { K_LISTEN, K_PATH, K_UINT, K_SIZE, K_DURATION, K_CHOICE, K_LOG_LEVEL, K_HTTP_LISTEN };

struct setting {
    const char *name;
    enum kind kind;
    size_t offset; /* of the field in struct config */
    size_t width;  /* of the field, for K_UINT and K_SIZE */
    uint64_t min, max;
    const char *why; /* appended to range errors where the range surprises */
    const char *doc; /* one line for config_dump */
    const char *const *choices; /* K_CHOICE: names, index = stored value */
};

static const char *const durability_names[] = {"process", "power", NULL};
static const char *const policy_names[] = {"drop-new", "drop-oldest", "block", NULL};
static const char *const anonymous_names[] = {"loopback", "false", "true", NULL};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM(f, kind, lo, hi, why, doc) { #f, kind, FIELD(f), lo, hi, why, doc, NULL }

static const struct setting settings[] = {
    {"listen", K_LISTEN, 0, 0, 0, 0, NULL,
     "HOST:PORT, [IPV6]:PORT or IPV6:PORT; repeat for more listeners; port 0 = any free port;\n"
     "# options after the address: max_connections=N, allow_anonymous=loopback|false|true;\n"
     "# TLS: tls certfile=PEM keyfile=PEM [cafile=PEM] [require_certificate=true]\n"
     "# [use_identity_as_username=true] [tls_version=tlsv1.2|tlsv1.3] [ciphers=LIST]\n"
     "# [ciphersuites=LIST] (the port defaults to 8883 with tls, else 1883);\n"
     "# WebSocket: ws (or wss = ws + tls) [ws_path=/mqtt] [allowed_origins=ORIGIN,...]\n"
     "# (the port defaults to 8080, 8443 with wss)",
     NULL},
    {"data_dir", K_PATH, FIELD(data_dir), 0, 0, NULL, "directory of the database petrel.db", NULL},
    NUM(max_connections, K_UINT, 0, UINT32_MAX, NULL,
        "connected clients at most; 0 = no limit"),
    NUM(max_connections_per_source, K_UINT, 0, UINT32_MAX, NULL,
        "open connections from one source address at most; 0 = no limit"),
    NUM(max_packet_size, K_SIZE, 16, 268435460, "the largest packet MQTT can encode",
        "largest packet accepted, in bytes (k, M, G suffixes allowed)"),
    NUM(max_inflight, K_UINT, 1, 65535, NULL,
        "unacknowledged QoS 1/2 messages sent to one client at a time"),
    NUM(max_queued_messages, K_UINT, 1, UINT32_MAX,
        "a session must be able to queue at least one message; unlike Mosquitto, 0 does not mean unlimited",
        "messages queued per session (in the store for a persistent session)"),
    NUM(max_queued_bytes, K_SIZE, 0, UINT32_MAX, NULL,
        "payload bytes queued per session (k, M, G suffixes allowed); 0 = no limit"),
    NUM(max_queued_memory, K_SIZE, 65536, UINT32_MAX, "a queue needs room for a few messages",
        "bytes of a session's queue kept in memory: a persistent session reads the rest "
        "back from the store; a clean session's queue is bounded by it"),
    {"queue_full_policy", K_CHOICE, FIELD(queue_full_policy), 0, 2, NULL,
     "what a full queue does with a new message: block (slow its publishers while the "
     "session is online; offline: drop-new), drop-new or drop-oldest", policy_names},
    {"durability", K_CHOICE, FIELD(durability), 0, 1, NULL,
     "process (survives a crash of petreld) or power (fsync before acknowledging)",
     durability_names},
    NUM(session_expiry, K_DURATION, 0, UINT32_MAX, NULL,
        "how long an offline persistent session is kept (s, m, h, d suffixes); 0 = forever"),
    NUM(max_keepalive, K_UINT, 1, 65535,
        "it caps the keep alive, in seconds, that clients ask for",
        "largest keep alive granted to clients, in seconds"),
    NUM(connect_timeout, K_UINT, 1, 3600, NULL,
        "seconds a new connection has to send CONNECT"),
    NUM(max_qos, K_UINT, 0, 2, NULL, "highest QoS granted to subscriptions and publishes"),
    NUM(max_output_buffer, K_SIZE, 4096, UINT32_MAX, NULL,
        "bytes of output buffered per connection (limits slow consumers)"),
    NUM(sys_interval, K_UINT, 0, 86400, NULL,
        "seconds between $SYS updates; 0 = off"),
    {"log_level", K_LOG_LEVEL, 0, 0, 0, 0, NULL, "error, warning, notice, info or debug", NULL},
    {"password_file", K_PATH, FIELD(password_file), 0, 0, NULL,
     "file of user:hash lines (petrel passwd); clients that send a user name must match it",
     NULL},
    {"acl_file", K_PATH, FIELD(acl_file), 0, 0, NULL,
     "ACL rules (user, topic, pattern lines); without one every client may do everything",
     NULL},
    {"allow_anonymous", K_CHOICE, FIELD(allow_anonymous), 0, 2, NULL,
     "clients without a verified user name: loopback (only on loopback listeners), false or "
     "true", anonymous_names},
    NUM(max_subscriptions_per_client, K_UINT, 0, UINT32_MAX, NULL,
        "subscriptions one session may hold; further ones get 0x80; 0 = no limit"),
    NUM(max_retained_messages, K_UINT, 0, UINT32_MAX, NULL,
        "retained topics in total; a new one beyond it is not retained; 0 = no limit"),
    NUM(max_retained_bytes, K_SIZE, 0, 1099511627776ULL, NULL,
        "bytes of retained messages in total (k, M, G suffixes allowed); 0 = no limit"),
    NUM(max_login_failures_per_source, K_UINT, 0, UINT32_MAX, NULL,
        "failed logins from one address before its logins are refused without a password "
        "check; one is forgiven per second; 0 = no limit"),
    NUM(max_login_failures_per_user, K_UINT, 0, UINT32_MAX, NULL,
        "failed logins for one user name before its logins are refused without a password "
        "check; one is forgiven per second; 0 = no limit"),
    NUM(max_topic_length, K_UINT, 1, 65535, NULL,
        "bytes in a topic name or filter; longer publishes disconnect, filters get 0x80"),
    NUM(max_topic_levels, K_UINT, 1, 65535, NULL,
        "levels in a topic name or filter; deeper publishes disconnect, filters get 0x80"),
    NUM(topic_alias_maximum, K_UINT, 0, 65535, NULL,
        "MQTT 5.0 topic aliases per connection, in each direction; 0 = none"),
    {"cluster_nats", K_PATH, FIELD(cluster_nats), 0, 0, NULL,
     "NATS servers of the cluster, nats://HOST:PORT[,nats://...]; unset = a single node",
     NULL},
    {"cluster_name", K_PATH, FIELD(cluster_name), 0, 0, NULL,
     "the cluster's NATS subject prefix (letters, digits, - and _)", NULL},
    {"node_name", K_PATH, FIELD(node_name), 0, 0, NULL,
     "this node's name in the cluster (letters, digits, - and _); default: the host name",
     NULL},
    NUM(cluster_outbox_max_bytes, K_SIZE, 0, 1099511627776ULL, NULL,
        "QoS 1/2 bytes kept for the other nodes while JetStream has not taken them (a node "
        "cut off from NATS); beyond, messages reach this node's subscribers only; 0 = no limit"),
    NUM(cluster_stream_max_bytes, K_SIZE, 1048576, 1099511627776ULL, NULL,
        "bytes the cluster's JetStream stream keeps (oldest dropped beyond; set when the "
        "stream is made or updated at start)"),
    NUM(cluster_stream_max_age, K_DURATION, 60, 31536000, NULL,
        "how long the JetStream stream keeps a message no node has acknowledged"),
    NUM(cluster_stream_replicas, K_UINT, 0, 5, NULL,
        "JetStream replicas of the stream; 0 = min(3, the servers in cluster_nats)"),
    NUM(partial_packet_timeout, K_DURATION, 0, 86400, NULL,
        "how long one packet may take to arrive once begun (or 1.5 x the client's keep alive "
        "if shorter); 0 = no limit"),
    NUM(max_input_buffer_total, K_SIZE, 0, 1099511627776ULL, NULL,
        "bytes of unfinished input held over all connections; past it the connections holding "
        "the most are closed; 0 = no limit"),
    NUM(max_connection_log_rate, K_UINT, 0, UINT32_MAX, NULL,
        "connection log lines (connected, disconnected, refused) written per second; the rest "
        "are counted and summed up in one line; 0 = no limit"),
    NUM(max_publish_rate, K_UINT, 0, 1000000, NULL,
        "PUBLISH packets per second one client may send; past it the client is not read until "
        "it is within the rate (TCP slows it); 0 = no limit"),
    NUM(max_publish_bytes_rate, K_SIZE, 0, UINT32_MAX, NULL,
        "bytes of PUBLISH packets per second one client may send (k, M, G suffixes allowed); "
        "past it the client is not read until it is within the rate; 0 = no limit"),
    NUM(memory_budget, K_SIZE, 0, 1099511627776ULL * 64, NULL,
        "bytes of buffered input and output and of messages in memory, in total; at it "
        "publishers are not read, slow consumers get no QoS 0 and new connections are "
        "refused; 0 = no limit"),
    {"http_listen", K_HTTP_LISTEN, 0, 0, 0, 0, NULL,
     "HTTP listener for /metrics, /healthz, /readyz, the admin API and the dashboard:\n"
     "# ADDR:PORT (default port 9883) [tls certfile=PEM keyfile=PEM [cafile=PEM]]\n"
     "# [anonymous=none|read|admin] (what requests without a token may do; read and\n"
     "# admin only on a loopback address) [max_per_source=N] (connections one address\n"
     "# may hold of the listener's 64, default 16; 0 = no own limit); off when not set", NULL},
    {"http_token_file", K_PATH, FIELD(http_token_file), 0, 0, NULL,
     "admin API tokens, one 'NAME ROLE TOKEN' line each (ROLE read or admin)", NULL},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};

/* snprintf that tolerates a missing buffer and never warns about
 * truncation: messages quote user input, which may be long. */
static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listeners[0].host, "127.0.0.1");
    c->listeners[0].port = 1883;
    c->n_listeners = 1;
    c->listeners_are_default = true;
    strcpy(c->data_dir, "/var/lib/petrel");
    strcpy(c->cluster_name, "petrel");
    c->cluster_outbox_max_bytes = 256u * 1024 * 1024;
    c->cluster_stream_max_bytes = 1024u * 1024 * 1024;
    c->cluster_stream_max_age = 86400;
    c->max_connections = 100000;
    c->max_packet_size = 1024 * 1024;
    c->max_inflight = 1000;
    c->max_queued_messages = 4000000;
    c->max_queued_bytes = 512u * 1024 * 1024;
    c->max_queued_memory = 16 * 1024 * 1024;
    c->queue_full_policy = QUEUE_BLOCK;
    c->durability = DURABILITY_PROCESS;
    c->session_expiry = 30 * 86400;
    c->max_keepalive = 65535;
    c->connect_timeout = 10;
    c->max_qos = 2;
    c->max_output_buffer = 1024 * 1024;
    c->sys_interval = 10;
    c->log_level = LOG_NOTICE;
    c->listeners[0].allow_anonymous = ANON_INHERIT;
    c->allow_anonymous = ANON_LOOPBACK;
    c->max_subscriptions_per_client = 1000;
    c->max_retained_messages = 100000;
    c->max_retained_bytes = 64 * 1024 * 1024;
    c->max_login_failures_per_source = 10;
    c->max_login_failures_per_user = 20;
    c->max_topic_length = 65535;
    c->max_topic_levels = 128;
    c->topic_alias_maximum = 10;
    c->partial_packet_timeout = 30;
    c->max_input_buffer_total = 256u * 1024 * 1024;
    c->max_connection_log_rate = 100;
    c->memory_budget = 2ull * 1024 * 1024 * 1024;
}

int config_parse_log_level(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *config_log_level_name(enum log_level l)
{
    if ((unsigned)l < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[l];
    return "unknown";
}

/* ---- values -------------------------------------------------------------- */

enum { NUM_OK, NUM_SYNTAX, NUM_OVERFLOW };

/* Plain decimal digits only: no sign, blanks, base prefix or fraction, so
 * that "-1" or "10x" cannot be read as something else.  With `size`, one
 * k, M or G (any case) may follow, in powers of 1024. */
static int parse_number(const char *s, enum kind kind, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return NUM_SYNTAX;
    bool overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true; /* keep going: junk after it is still a syntax error */
        else
            v = v * 10 + d;
    }
    if (kind == K_DURATION && *p != '\0') {
        uint64_t unit;
        switch (*p) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return NUM_SYNTAX;
        }
        p++;
        if (v > UINT64_MAX / unit)
            overflow = true;
        else
            v *= unit;
    }
    if (kind == K_SIZE && *p != '\0') {
        unsigned shift;
        switch (*p) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return NUM_SYNTAX;
        }
        p++;
        if (v > (UINT64_MAX >> shift))
            overflow = true;
        else
            v <<= shift;
    }
    if (*p != '\0')
        return NUM_SYNTAX;
    if (overflow)
        return NUM_OVERFLOW;
    *out = v;
    return NUM_OK;
}

static void store_uint(void *field, size_t width, uint64_t v)
{
    switch (width) {
    case 1: { uint8_t x = (uint8_t)v; memcpy(field, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; memcpy(field, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(field, &x, 4); break; }
    default: { uint64_t x = v; memcpy(field, &x, 8); break; }
    }
}

static uint64_t load_uint(const void *field, size_t width)
{
    switch (width) {
    case 1: { uint8_t x; memcpy(&x, field, 1); return x; }
    case 2: { uint16_t x; memcpy(&x, field, 2); return x; }
    case 4: { uint32_t x; memcpy(&x, field, 4); return x; }
    default: { uint64_t x; memcpy(&x, field, 8); return x; }
    }
}

static int set_number(struct config *c, const struct setting *s, const char *value,
                      char *err, size_t errlen)
{
    uint64_t v = 0;
    int r = parse_number(value, s->kind, &v);

    if (r == NUM_SYNTAX) {
        if (s->kind == K_SIZE)
            errf(err, errlen, "%s: '%s' is not a size (a decimal number of bytes, "
                 "optionally followed by k, M or G)", s->name, value);
        else if (s->kind == K_DURATION)
            errf(err, errlen, "%s: '%s' is not a duration (a decimal number of seconds, "
                 "optionally followed by s, m, h or d)", s->name, value);
        else
            errf(err, errlen, "%s: '%s' is not a decimal number", s->name, value);
        return -1;
    }
    if (r == NUM_OVERFLOW || v < s->min || v > s->max) {
        errf(err, errlen, "%s: '%s' is out of range %llu..%llu%s%s%s", s->name, value,
             (unsigned long long)s->min, (unsigned long long)s->max,
             s->why ? " (" : "", s->why ? s->why : "", s->why ? ")" : "");
        return -1;
    }
    store_uint((char *)c + s->offset, s->width, v);
    return 0;
}

/* "KEY: 'VALUE' is not one of a, b or c" */
static int choice_error(const struct setting *s, const char *value, char *err, size_t errlen)
{
    char names[128] = "";
    size_t n = 0;
    while (s->choices[n])
        n++;
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s",
                 i == 0 ? "" : i + 1 == n ? " or " : ", ", s->choices[i]);
    }
    errf(err, errlen, "%s: '%s' is not one of %s", s->name, value, names);
    return -1;
}

static int set_path(struct config *c, const struct setting *s, const char *value,
                    char *err, size_t errlen)
{
    size_t len = strlen(value);
    char *field = (char *)c + s->offset;

    if (len >= s->width) {
        errf(err, errlen, "%s: longer than %zu bytes", s->name, s->width - 1);
        return -1;
    }
    /* Such a path could not be written back by config_dump, and is far
     * more likely a mistake than a wish. */
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            errf(err, errlen, "%s: '%s' contains a control character", s->name, value);
            return -1;
        }
    }
    if (value[0] == ' ' || value[0] == '\t' || value[len - 1] == ' ' || value[len - 1] == '\t') {
        errf(err, errlen, "%s: '%s' begins or ends with a blank", s->name, value);
        return -1;
    }
    memcpy(field, value, len + 1);
    return 0;
}

/* 4 for an IPv4 address, 6 for IPv6, 0 if `host` is neither; the binary
 * form goes to addr (16 bytes) if not NULL. */
static int address_family(const char *host, unsigned char *addr)
{
    unsigned char buf[16];
    if (addr == NULL)
        addr = buf;
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, host, addr) == 1)
        return 4;
    if (inet_pton(AF_INET6, host, addr) == 1)
        return 6;
    return 0;
}

/* Accepts "HOST:PORT", "[V6]:PORT" and "V6:PORT".  In the last form the
 * last colon separates the port, so "::1:1883" is [::1]:1883; the bracket
 * form avoids any doubt. */
static int parse_listen(const char *value, struct listener_conf *out, bool *has_port,
                        char *err, size_t errlen)
{
    const char *host, *port;
    size_t host_len;
    bool bracket = value[0] == '[';

    /* Without a port (IPv4 or [IPv6] alone) the caller picks the default,
     * which depends on `tls`.  An unbracketed IPv6 address always ends in
     * what looks like a port, so it cannot go without one. */
    if (bracket) {
        const char *close = strchr(value, ']');
        if (close == NULL || (close[1] != ':' && close[1] != '\0')) {
            errf(err, errlen, "listen: '%s' should be [IPV6]:PORT", value);
            return -1;
        }
        host = value + 1;
        host_len = (size_t)(close - host);
        port = close[1] ? close + 2 : NULL;
    } else {
        const char *colon = strrchr(value, ':');
        host = value;
        if (colon == NULL) {
            if (strspn(value, "0123456789") == strlen(value)) {
                /* "listen = 1883", Mosquitto's way, has no address */
                errf(err, errlen, "listen: '%s' should be HOST:PORT, [IPV6]:PORT or IPV6:PORT",
                     value);
                return -1;
            }
            host_len = strlen(value);
            port = NULL;
        } else {
            host_len = (size_t)(colon - value);
            port = colon + 1;
        }
    }
    *has_port = port != NULL;

    char addr[sizeof(out->host)];
    int family = 0;
    if (host_len > 0 && host_len < sizeof(addr)) {
        memcpy(addr, host, host_len);
        addr[host_len] = '\0';
        family = address_family(addr, NULL);
    }
    if (family == 0) {
        errf(err, errlen, "listen: '%.*s' in '%s' is not a numeric IPv4 or IPv6 address",
             (int)(host_len < 256 ? host_len : 256), host, value);
        return -1;
    }
    if (bracket && family != 6) {
        errf(err, errlen, "listen: '%s': brackets are only for IPv6 addresses", value);
        return -1;
    }

    uint64_t p = 0;
    int r = port ? parse_number(port, false, &p) : NUM_OK;
    if (r == NUM_SYNTAX) {
        errf(err, errlen, "listen: port '%s' in '%s' is not a decimal number", port, value);
        return -1;
    }
    if (r == NUM_OVERFLOW || p > 65535) {
        errf(err, errlen, "listen: port '%s' is out of range 0..65535", port);
        return -1;
    }
    memcpy(out->host, addr, host_len + 1);
    out->port = (uint16_t)p;
    return 0;
}

static bool same_listener(const struct listener_conf *a, const struct listener_conf *b)
{
    unsigned char x[16], y[16];
    return a->port == b->port && address_family(a->host, x) == address_family(b->host, y) &&
           memcmp(x, y, sizeof(x)) == 0;
}

static bool is_blank(int ch);

/* "true" or "false" (any case) into *out; -1 for anything else. */
static int parse_bool(const char *v, bool *out)
{
    if (strcasecmp(v, "true") == 0)
        *out = true;
    else if (strcasecmp(v, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* A listen option's text value into a fixed buffer (config_text.h). */
static int set_text(const char *key, const char *v, char *field, size_t size, char *err,
                    size_t errlen)
{
    char name[CONFIG_TLS_PATH_LEN + 80]; /* a listen option's word and more */
    snprintf(name, sizeof name, "listen: %s=", key);
    return config_text(name, v, field, size, false, err, errlen);
}

static const char *const tls_version_names[] = {"tlsv1.2", "tlsv1.3", NULL};

#define LISTEN_OPTION_NAMES                                                           \
    "max_connections, allow_anonymous, tls, certfile, keyfile, cafile, "             \
    "require_certificate, use_identity_as_username, tls_version, ciphers, ciphersuites, " \
    "ws, wss, ws_path, allowed_origins"

/* One TLS option; 1 if `key` is one, 0 if not, -1 on a bad value. */
static int parse_tls_option(const char *key, const char *v, struct listener_tls_conf *t,
                            char *err, size_t errlen)
{
    bool *flag = NULL;
    if (strcmp(key, "tls") == 0)
        flag = &t->enabled;
    else if (strcmp(key, "require_certificate") == 0)
        flag = &t->require_certificate;
    else if (strcmp(key, "use_identity_as_username") == 0)
        flag = &t->use_identity_as_username;
    if (flag) {
        if (parse_bool(v, flag) < 0) {
            errf(err, errlen, "listen: %s=%s is not true or false", key, v);
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "certfile") == 0)
        return set_text(key, v, t->certfile, sizeof t->certfile, err, errlen) ? -1 : 1;
    if (strcmp(key, "keyfile") == 0)
        return set_text(key, v, t->keyfile, sizeof t->keyfile, err, errlen) ? -1 : 1;
    if (strcmp(key, "cafile") == 0)
        return set_text(key, v, t->cafile, sizeof t->cafile, err, errlen) ? -1 : 1;
    if (strcmp(key, "ciphers") == 0)
        return set_text(key, v, t->ciphers, sizeof t->ciphers, err, errlen) ? -1 : 1;
    if (strcmp(key, "ciphersuites") == 0)
        return set_text(key, v, t->ciphersuites, sizeof t->ciphersuites, err, errlen) ? -1 : 1;
    if (strcmp(key, "tls_version") == 0) {
        /* The minimum: only upwards from TLS 1.2.  "1.2" and "tlsv1.2" both. */
        const char *num = strncasecmp(v, "tlsv", 4) == 0 ? v + 4 : v;
        if (strcmp(num, "1.2") == 0) {
            t->min_version = TLS_MIN_1_2;
        } else if (strcmp(num, "1.3") == 0) {
            t->min_version = TLS_MIN_1_3;
        } else {
            errf(err, errlen, "listen: tls_version=%s is not tlsv1.2 or tlsv1.3 (the lowest "
                 "version accepted; older ones are not safe)", v);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* The rules between TLS options, once the whole line is read. */
static int check_tls_options(const struct listener_tls_conf *t, char *err, size_t errlen)
{
    if (!t->enabled) {
        if (t->certfile[0] || t->keyfile[0] || t->cafile[0] || t->ciphers[0] ||
            t->ciphersuites[0] || t->require_certificate || t->use_identity_as_username ||
            t->min_version != TLS_MIN_1_2) {
            errf(err, errlen, "listen: TLS options given without 'tls' (add 'tls' to make "
                 "this a TLS listener)");
            return -1;
        }
        return 0;
    }
    if (!t->certfile[0] || !t->keyfile[0]) {
        errf(err, errlen, "listen: a tls listener needs certfile= and keyfile=");
        return -1;
    }
    if ((t->require_certificate || t->use_identity_as_username) && !t->cafile[0]) {
        errf(err, errlen, "listen: %s needs cafile= (the CAs that sign client certificates)",
             t->require_certificate ? "require_certificate" : "use_identity_as_username");
        return -1;
    }
    return 0;
}

/* Options after the address: "key=value" words separated by blanks; `tls`
 * alone means tls=true. */
static int parse_listen_options(const char *opts, struct listener_conf *l, char *err,
                                size_t errlen)
{
    const char *p = opts;
    while (*p) {
        while (is_blank(*p))
            p++;
        if (*p == '\0')
            break;
        const char *end = p;
        while (*end && !is_blank(*end))
            end++;
        char word[CONFIG_TLS_PATH_LEN + 64];
        size_t len = (size_t)(end - p);
        if (len >= sizeof(word)) {
            errf(err, errlen, "listen: option '%.40s...' is too long", p);
            return -1;
        }
        memcpy(word, p, len);
        word[len] = '\0';
        p = end;
        if (strcmp(word, "tls") == 0) {
            l->tls.enabled = true;
            continue;
        }
        if (strcmp(word, "ws") == 0 || strcmp(word, "wss") == 0) {
            l->ws = true;
            if (word[2] == 's')
                l->tls.enabled = true;
            continue;
        }
        char *eq = strchr(word, '=');
        if (eq == NULL) {
            errf(err, errlen, "listen: option '%s' should be KEY=VALUE (or 'tls')", word);
            return -1;
        }
        *eq = '\0';
        const char *v = eq + 1;
        int tls = parse_tls_option(word, v, &l->tls, err, errlen);
        if (tls < 0)
            return -1;
        if (tls > 0)
            continue;
        if (strcmp(word, "max_connections") == 0) {
            uint64_t n = 0;
            int r = parse_number(v, K_UINT, &n);
            if (r != NUM_OK || n > UINT32_MAX) {
                errf(err, errlen, "listen: max_connections=%s is not a number in 0..%u", v,
                     (unsigned)UINT32_MAX);
                return -1;
            }
            l->max_connections = (uint32_t)n;
        } else if (strcmp(word, "ws_path") == 0) {
            if (v[0] != '/' || strpbrk(v, "?#")) {
                errf(err, errlen, "listen: ws_path=%s should be a path starting with '/'", v);
                return -1;
            }
            if (set_text(word, v, l->ws_path, sizeof l->ws_path, err, errlen))
                return -1;
        } else if (strcmp(word, "allowed_origins") == 0) {
            if (set_text(word, v, l->allowed_origins, sizeof l->allowed_origins, err, errlen))
                return -1;
        } else if (strcmp(word, "allow_anonymous") == 0) {
            size_t i;
            for (i = 0; anonymous_names[i]; i++)
                if (strcasecmp(v, anonymous_names[i]) == 0)
                    break;
            if (anonymous_names[i] == NULL) {
                errf(err, errlen, "listen: allow_anonymous=%s is not one of loopback, false "
                     "or true", v);
                return -1;
            }
            l->allow_anonymous = (uint8_t)i;
        } else {
            errf(err, errlen, "listen: unknown option '%s' (" LISTEN_OPTION_NAMES ")", word);
            return -1;
        }
    }
    if (!l->ws && (l->ws_path[0] || l->allowed_origins[0])) {
        errf(err, errlen, "listen: ws_path and allowed_origins need 'ws' or 'wss'");
        return -1;
    }
    if (l->ws && !l->ws_path[0])
        snprintf(l->ws_path, sizeof l->ws_path, "/mqtt");
    return check_tls_options(&l->tls, err, errlen);
}

/* The first `listen` replaces the default listener, later ones add to it. */
static int add_listener(struct config *c, const char *value, char *err, size_t errlen)
{
    struct listener_conf l;
    size_t n = c->listeners_are_default ? 0 : c->n_listeners;
    bool has_port;

    /* The address ends at the first blank; options may follow. */
    char addr[512];
    size_t alen = strcspn(value, " \t");
    const char *opts = value + alen;
    if (alen >= sizeof(addr)) {
        errf(err, errlen, "listen: '%.60s...' is too long", value);
        return -1;
    }
    memcpy(addr, value, alen);
    addr[alen] = '\0';
    memset(&l, 0, sizeof l);
    if (parse_listen(addr, &l, &has_port, err, errlen) < 0)
        return -1;
    l.max_connections = 0;
    l.allow_anonymous = ANON_INHERIT;
    if (parse_listen_options(opts, &l, err, errlen) < 0)
        return -1;
    if (!has_port)
        l.port = l.ws ? (l.tls.enabled ? 8443 : 8080) : l.tls.enabled ? 8883 : 1883;
    if (n >= CONFIG_MAX_LISTENERS) {
        errf(err, errlen, "listen: more than %d listeners", CONFIG_MAX_LISTENERS);
        return -1;
    }
    /* Binding twice would fail at start-up anyway; say so here, with the
     * line number.  Port 0 asks for any free port, so it may repeat. */
    for (size_t i = 0; i < n; i++) {
        if (l.port != 0 && same_listener(&c->listeners[i], &l)) {
            errf(err, errlen, "listen: '%s' is already listed", value);
            return -1;
        }
    }
    c->listeners[n] = l;
    c->n_listeners = n + 1;
    c->listeners_are_default = false;
    return 0;
}

static const char *const http_role_names[] = {"none", "read", "admin", NULL};

/* http_listen: one address like `listen`'s (port 9883 when none is given),
 * then anonymous= and the TLS options of `listen` (read by the same code).
 * A token-less role is refused on an address other than loopback: there,
 * everyone on the network could read or change the broker. */
static int set_http_listen(struct config *c, const char *value, char *err, size_t errlen)
{
    struct listener_conf l;
    struct http_listen_conf h;
    bool has_port;
    char addr[512], rest[MAX_LINE + 1], msg[CONFIG_ERR_LEN];
    size_t alen = strcspn(value, " \t");
    if (alen >= sizeof(addr) || strlen(value) > MAX_LINE) {
        errf(err, errlen, "http_listen: '%.60s...' is too long", value);
        return -1;
    }
    memcpy(addr, value, alen);
    addr[alen] = '\0';
    memset(&l, 0, sizeof l);
    memset(&h, 0, sizeof h);
    bool per_source_set = false;
    if (parse_listen(addr, &l, &has_port, msg, sizeof msg) < 0)
        goto bad;
    /* anonymous= is this listener's own; the other words go to `listen`'s
     * option parser. */
    size_t used = 0;
    for (const char *p = value + alen; *p;) {
        size_t blanks = strspn(p, " \t"), len = strcspn(p + blanks, " \t");
        const char *word = p + blanks;
        p = word + len;
        if (len > 10 && memcmp(word, "anonymous=", 10) == 0) {
            size_t i;
            for (i = 0; http_role_names[i]; i++)
                if (strlen(http_role_names[i]) == len - 10 &&
                    strncasecmp(word + 10, http_role_names[i], len - 10) == 0)
                    break;
            if (http_role_names[i] == NULL) {
                errf(err, errlen, "http_listen: %.*s is not one of none, read or admin",
                     (int)len, word);
                return -1;
            }
            h.anonymous = (uint8_t)i;
        } else if (len > 15 && memcmp(word, "max_per_source=", 15) == 0) {
            char num[16];
            uint64_t n = 0;
            bool fits = len - 15 < sizeof num;
            if (fits) {
                memcpy(num, word + 15, len - 15);
                num[len - 15] = '\0';
            }
            if (!fits || parse_number(num, K_UINT, &n) != NUM_OK ||
                n > HTTP_MAX_PER_SOURCE_LIMIT) {
                errf(err, errlen, "http_listen: %.*s is not a number in 0..%u", (int)len, word,
                     HTTP_MAX_PER_SOURCE_LIMIT);
                return -1;
            }
            h.max_per_source = (uint32_t)n;
            per_source_set = true;
        } else if (len) {
            rest[used++] = ' ';
            memcpy(rest + used, word, len);
            used += len;
        }
    }
    rest[used] = '\0';
    l.allow_anonymous = ANON_INHERIT;
    if (parse_listen_options(rest, &l, msg, sizeof msg) < 0)
        goto bad;
    if (l.max_connections || l.allow_anonymous != ANON_INHERIT ||
        l.tls.use_identity_as_username || l.ws) {
        errf(err, errlen, "http_listen: max_connections, allow_anonymous, "
             "use_identity_as_username, ws and wss are options of MQTT listeners "
             "(anonymous=none|read|admin is this one's)");
        return -1;
    }
    unsigned char bin[16];
    int family = address_family(l.host, bin);
    bool loopback = family == 4 ? bin[0] == 127
                                : memcmp(bin, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
    if (h.anonymous != HTTP_ROLE_NONE && !loopback) {
        errf(err, errlen, "http_listen: anonymous=%s is only allowed on a loopback address "
             "(127.0.0.0/8 or ::1); elsewhere use tokens (http_token_file)",
             http_role_names[h.anonymous]);
        return -1;
    }
    h.enabled = true;
    if (!per_source_set)
        h.max_per_source = HTTP_DEFAULT_PER_SOURCE;
    h.tls = l.tls;
    memcpy(h.host, l.host, sizeof h.host);
    h.port = has_port ? l.port : 9883;
    c->http = h;
    return 0;
bad:
    errf(err, errlen, "http_listen: %s", strncmp(msg, "listen: ", 8) == 0 ? msg + 8 : msg);
    return -1;
}

/* Keys match field names; '-' is accepted for '_' so that command-line
 * flags such as --max-inflight can pass their name straight through. */
static bool key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++)
        if (*key != *name && !(*key == '-' && *name == '_'))
            return false;
    return *key == '\0' && *name == '\0';
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct setting *s = NULL;

    for (size_t i = 0; i < N_SETTINGS && s == NULL; i++)
        if (key_is(key, settings[i].name))
            s = &settings[i];
    if (s == NULL) {
        errf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    if (value[0] == '\0') {
        errf(err, errlen, "%s: value is empty", s->name);
        return -1;
    }
    switch (s->kind) {
    case K_LISTEN:
        return add_listener(c, value, err, errlen);
    case K_HTTP_LISTEN:
        return set_http_listen(c, value, err, errlen);
    case K_PATH:
        if ((s->offset == offsetof(struct config, cluster_name) ||
             s->offset == offsetof(struct config, node_name)) &&
            !cluster_token_valid(value)) {
            errf(err, errlen, "%s: '%s' must be 1 to 64 letters, digits, '-' or '_'", s->name,
                 value);
            return -1;
        }
        return set_path(c, s, value, err, errlen);
    case K_UINT:
    case K_SIZE:
    case K_DURATION:
        return set_number(c, s, value, err, errlen);
    case K_CHOICE:
        for (size_t i = 0; s->choices[i]; i++) {
            if (strcasecmp(value, s->choices[i]) == 0) {
                store_uint((char *)c + s->offset, s->width, i);
                return 0;
            }
        }
        return choice_error(s, value, err, errlen);
    case K_LOG_LEVEL:
        if (config_parse_log_level(value, &c->log_level) < 0) {
            errf(err, errlen, "log_level: '%s' is not one of error, warning, notice, info, debug",
                 value);
            return -1;
        }
        return 0;
    }
    return -1;
}

/* ---- the file ------------------------------------------------------------ */

static bool is_blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Applies one line (NUL-terminated, without its LF) to c.  Returns 0, or -1
 * with a message (without location) in msg. */
static int apply_line(struct config *c, char *line, char *msg, size_t msglen)
{
    char *p = line, *end = line + strlen(line);

    while (end > p && is_blank(end[-1]))
        *--end = '\0';
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;

    char *eq = strchr(p, '=');
    char *key_end = eq;
    while (key_end != NULL && key_end > p && is_blank(key_end[-1]))
        key_end--;
    if (eq == NULL || key_end == p) {
        errf(msg, msglen, "expected 'key = value'");
        return -1;
    }
    *key_end = '\0';
    char *value = eq + 1;
    while (is_blank(*value))
        value++;
    for (const char *h = strchr(value, '#'); h != NULL; h = strchr(h + 1, '#')) {
        if (h == value || is_blank(h[-1])) {
            errf(msg, msglen, "%s: '%s' looks like it holds a comment; "
                 "comments must be on a line of their own", p, value);
            return -1;
        }
    }
    return config_set(c, p, value, msg, msglen);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }

    /* All or nothing: work on a copy and keep it only if every line is good. */
    struct config work = *c;
    char line[MAX_LINE + 2]; /* the longest line, a CR and the NUL */
    char msg[CONFIG_ERR_LEN];
    unsigned lineno = 0;
    int rc = 0;

    for (;;) {
        size_t n = 0;
        bool too_long = false, has_nul = false;
        int ch;

        while ((ch = getc(f)) != EOF && ch != '\n') {
            if (ch == '\0')
                has_nul = true;
            if (n < sizeof(line) - 1)
                line[n++] = (char)ch;
            else
                too_long = true;
        }
        if (ferror(f)) {
            errf(err, errlen, "%s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        if (ch == EOF && n == 0)
            break;
        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] == '\r')
            n--;
        line[n] = '\0';
        if (too_long || n > MAX_LINE) {
            errf(err, errlen, "%s:%u: line is longer than %d bytes", path, lineno, MAX_LINE);
            rc = -1;
            break;
        }
        if (has_nul) {
            /* the rest of the line would be ignored without a word */
            errf(err, errlen, "%s:%u: line contains a NUL byte", path, lineno);
            rc = -1;
            break;
        }
        char *start = line;
        if (lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
            start += 3; /* UTF-8 byte order mark, as some editors write */
        size_t listeners_before = work.listeners_are_default ? 0 : work.n_listeners;
        int in_bridge = bridge_config_line(&work.bridges, start, lineno, msg, sizeof(msg));
        if (in_bridge < 0) {
            errf(err, errlen, "%s:%u: %s", path, lineno, msg);
            rc = -1;
            break;
        }
        if (in_bridge == 0 && apply_line(&work, start, msg, sizeof(msg)) < 0) {
            errf(err, errlen, "%s:%u: %s", path, lineno, msg);
            rc = -1;
            break;
        }
        if (!work.listeners_are_default && work.n_listeners > listeners_before)
            snprintf(work.listeners[work.n_listeners - 1].origin,
                     sizeof work.listeners[0].origin, "%s:%u", path, lineno);
        if (ch == EOF)
            break;
    }
    fclose(f);
    if (rc == 0 && bridge_config_finish(&work.bridges, msg, sizeof(msg)) < 0) {
        errf(err, errlen, "%s:%u: %s", path, lineno, msg);
        rc = -1;
    }
    if (rc == 0)
        *c = work;
    return rc;
}

/* ---- dump ---------------------------------------------------------------- */

static void dump_size(FILE *out, uint64_t v)
{
    static const char units[] = "GMk";
    for (int i = 0; i < 3; i++) {
        uint64_t unit = 1ULL << (10 * (3 - i));
        if (v != 0 && v % unit == 0) {
            fprintf(out, "%llu%c\n", (unsigned long long)(v / unit), units[i]);
            return;
        }
    }
    fprintf(out, "%llu\n", (unsigned long long)v);
}

static void dump_tls(FILE *out, const struct listener_tls_conf *t)
{
    if (!t->enabled)
        return;
    fprintf(out, " tls certfile=%s keyfile=%s", t->certfile, t->keyfile);
    if (t->cafile[0])
        fprintf(out, " cafile=%s", t->cafile);
    if (t->require_certificate)
        fprintf(out, " require_certificate=true");
    if (t->use_identity_as_username)
        fprintf(out, " use_identity_as_username=true");
    if (t->min_version != TLS_MIN_1_2)
        fprintf(out, " tls_version=%s", tls_version_names[t->min_version]);
    if (t->ciphers[0])
        fprintf(out, " ciphers=%s", t->ciphers);
    if (t->ciphersuites[0])
        fprintf(out, " ciphersuites=%s", t->ciphersuites);
}

void config_dump(const struct config *c, FILE *out)
{
    fprintf(out, "# petreld configuration\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *field = (const char *)c + s->offset;

        fprintf(out, "\n# %s\n", s->doc);
        switch (s->kind) {
        case K_LISTEN:
            for (size_t j = 0; j < c->n_listeners; j++) {
                const struct listener_conf *l = &c->listeners[j];
                if (strchr(l->host, ':') != NULL)
                    fprintf(out, "listen = [%s]:%u", l->host, (unsigned)l->port);
                else
                    fprintf(out, "listen = %s:%u", l->host, (unsigned)l->port);
                if (l->max_connections)
                    fprintf(out, " max_connections=%u", (unsigned)l->max_connections);
                if (l->allow_anonymous != ANON_INHERIT)
                    fprintf(out, " allow_anonymous=%s", anonymous_names[l->allow_anonymous]);
                dump_tls(out, &l->tls);
                if (l->ws)
                    fprintf(out, " ws ws_path=%s", l->ws_path);
                if (l->ws && l->allowed_origins[0])
                    fprintf(out, " allowed_origins=%s", l->allowed_origins);
                fputc('\n', out);
            }
            break;
        case K_PATH:
            /* An empty path means "none" and cannot be written as a value. */
            if (field[0] == '\0')
                fprintf(out, "#%s = (not set)\n", s->name);
            else
                fprintf(out, "%s = %s\n", s->name, field);
            break;
        case K_UINT:
        case K_DURATION:
            fprintf(out, "%s = %llu\n", s->name, (unsigned long long)load_uint(field, s->width));
            break;
        case K_CHOICE:
            fprintf(out, "%s = %s\n", s->name, s->choices[load_uint(field, s->width)]);
            break;
        case K_SIZE:
            fprintf(out, "%s = ", s->name);
            dump_size(out, load_uint(field, s->width));
            break;
        case K_LOG_LEVEL:
            fprintf(out, "%s = %s\n", s->name, config_log_level_name(c->log_level));
            break;
        case K_HTTP_LISTEN:
            if (!c->http.enabled) {
                fprintf(out, "#http_listen = (not set)\n");
                break;
            }
            if (strchr(c->http.host, ':') != NULL)
                fprintf(out, "http_listen = [%s]:%u", c->http.host, (unsigned)c->http.port);
            else
                fprintf(out, "http_listen = %s:%u", c->http.host, (unsigned)c->http.port);
            dump_tls(out, &c->http.tls);
            if (c->http.anonymous != HTTP_ROLE_NONE)
                fprintf(out, " anonymous=%s", http_role_names[c->http.anonymous]);
            if (c->http.max_per_source != HTTP_DEFAULT_PER_SOURCE)
                fprintf(out, " max_per_source=%u", (unsigned)c->http.max_per_source);
            fputc('\n', out);
            break;
        }
    }
    bridge_config_dump(&c->bridges, out);
}
