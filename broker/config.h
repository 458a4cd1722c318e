/*
 * config.h - petreld settings: defaults, the configuration file and the
 * command line.
 *
 * The file format is one `key = value` per line; blank lines and lines whose
 * first non-blank character is '#' are ignored; `listen` may repeat.  Sizes
 * accept a k, M or G suffix (powers of 1024), durations an s, m, h or d
 * suffix (seconds when there is none).  Every error is reported as
 * "file:line: what is wrong" (or "--flag: what is wrong" for the command
 * line) so that petreld can refuse to start before anything listens.
 */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bridge_config.h"

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_ERR_LEN 512

enum log_level { LOG_ERROR = 0, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

enum durability {
    DURABILITY_PROCESS = 0, /* WAL, synchronous=NORMAL: survives a crash of petreld */
    DURABILITY_POWER = 1    /* fsync before acknowledging: survives power loss */
};

enum queue_policy {
    QUEUE_DROP_NEW = 0,     /* a full queue refuses the new message */
    QUEUE_DROP_OLDEST = 1,  /* a full queue drops its oldest unsent message */
    QUEUE_BLOCK = 2         /* an online session's full queue slows its
                               publishers (flow.h); offline: drop-new */
};

/* Who may connect without a verified user name and password. */
enum anonymous_policy {
    ANON_LOOPBACK = 0, /* only on listeners bound to a loopback address */
    ANON_FALSE = 1,    /* nowhere */
    ANON_TRUE = 2,     /* everywhere */
    ANON_INHERIT = 3   /* listener_conf only: the global allow_anonymous */
};

#define CONFIG_TLS_PATH_LEN 1024
#define CONFIG_TLS_CIPHERS_LEN 512

/* TLS versions a listener may require as its minimum. */
enum tls_min_version { TLS_MIN_1_2 = 0, TLS_MIN_1_3 = 1 };

/* The TLS options of a `listen` line (all off/empty for a plain listener).
 * Only the values are checked here; the files are read when the listener
 * opens (broker/tls.c), and again on SIGHUP. */
struct listener_tls_conf {
    bool enabled;                   /* `tls` */
    bool require_certificate;       /* clients must present a certificate from cafile */
    bool use_identity_as_username;  /* the certificate's CN is the user name */
    uint8_t min_version;            /* enum tls_min_version, default TLS 1.2 */
    char certfile[CONFIG_TLS_PATH_LEN];   /* PEM server certificate (chain) */
    char keyfile[CONFIG_TLS_PATH_LEN];    /* PEM private key */
    char cafile[CONFIG_TLS_PATH_LEN];     /* PEM CAs that sign client certificates */
    char ciphers[CONFIG_TLS_CIPHERS_LEN];      /* TLS 1.2 cipher list; "" = OpenSSL's */
    char ciphersuites[CONFIG_TLS_CIPHERS_LEN]; /* TLS 1.3 suites; "" = OpenSSL's */
};

struct listener_conf {
    char host[64];  /* numeric IPv4 or IPv6 address, e.g. "127.0.0.1", "::" */
    uint16_t port;  /* default 1883, or 8883 with `tls` */
    /* Options after the address on the `listen` line
     * ("listen = 0.0.0.0:1883 max_connections=500 allow_anonymous=false"): */
    uint32_t max_connections;  /* this listener's own limit; 0 = none */
    uint8_t allow_anonymous;   /* enum anonymous_policy, default ANON_INHERIT */
    struct listener_tls_conf tls;
    /* MQTT over WebSocket: `ws`, or `wss` (ws and tls).  The port then
     * defaults to 8080 (8443 with tls). */
    bool ws;
    char ws_path[128];          /* the upgrade request's path, default "/mqtt" */
    char allowed_origins[1024]; /* Origin values browsers may connect from,
                                   comma-separated; "" (default) = any */
    /* Where the line came from ("petreld.conf:12", "--listen"), so that an
     * error found when the listener opens can point at it; "" if unknown. */
    char origin[160];
};

/* What the HTTP listener (http_server.h) grants: an admin API token's
 * role, or what a request without a token may do (`anonymous=`). */
enum http_role { HTTP_ROLE_NONE = 0, HTTP_ROLE_READ = 1, HTTP_ROLE_ADMIN = 2 };

/* `http_listen = ADDR:PORT [tls certfile=.. keyfile=.. [cafile=..]]
 * [anonymous=none|read|admin] [max_per_source=N]`: metrics, health and the
 * admin API. */
#define HTTP_DEFAULT_PER_SOURCE 16
#define HTTP_MAX_PER_SOURCE_LIMIT 64 /* HTTP_MAX_CONNECTIONS: more would mean nothing */
struct http_listen_conf {
    bool enabled;            /* off unless http_listen is set */
    char host[64];           /* numeric address, as for `listen` */
    uint16_t port;           /* default 9883 */
    uint8_t anonymous;       /* enum http_role, default none; only on loopback */
    uint32_t max_per_source; /* open connections from one address; 0 = only the total */
    struct listener_tls_conf tls;
};

struct config {
    struct listener_conf listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;             /* default: one, 127.0.0.1:1883 */
    bool listeners_are_default;     /* true until the first `listen` is set,
                                       which replaces the default listener */
    char data_dir[4096];            /* default: /var/lib/petrel */
    uint32_t max_connections;       /* default 100000; 0 = no limit */
    uint32_t max_connections_per_source; /* open connections from one address,
                                       default 0 = no limit */
    uint32_t max_packet_size;       /* default 1 MiB; at most 268435460 */
    uint16_t max_inflight;          /* outbound QoS 1/2 window per client, default 1000 */
    uint32_t max_queued_messages;   /* per session, default 4,000,000 */
    uint32_t max_queued_bytes;      /* payload bytes per session, default 512 MiB; 0 = no limit */
    uint32_t max_queued_memory;     /* bytes of a session's queue kept in memory,
                                       default 16 MiB: a stored session's window
                                       of its queue, a clean session's bound */
    uint8_t queue_full_policy;      /* enum queue_policy, default block */
    uint8_t durability;             /* enum durability, default process */
    uint32_t session_expiry;        /* seconds an offline persistent session is kept,
                                       default 30 days; 0 = forever */
    uint16_t max_keepalive;         /* default 65535 (seconds) */
    uint32_t connect_timeout;       /* seconds to receive CONNECT, default 10 */
    uint8_t max_qos;                /* default 2 */
    uint32_t max_output_buffer;     /* bytes buffered per connection, default 1 MiB */
    uint32_t sys_interval;          /* seconds between $SYS updates, default 10; 0 = off */
    char password_file[4096];       /* "user:hash" lines; "" (default) = none */
    char acl_file[4096];            /* ACL rules; "" (default) = everything allowed */
    uint8_t allow_anonymous;        /* enum anonymous_policy, default loopback */
    uint32_t max_subscriptions_per_client; /* default 1000; 0 = no limit */
    uint32_t max_retained_messages; /* retained topics in total (not $SYS),
                                       default 100000; 0 = no limit */
    uint64_t max_retained_bytes;    /* their topic + payload + property bytes,
                                       default 64 MiB; 0 = no limit */
    uint32_t max_login_failures_per_source; /* failed logins from one address before
                                       its logins are refused unchecked, default 10;
                                       one is forgiven per second; 0 = no limit */
    uint32_t max_login_failures_per_user; /* the same per user name, default 20 */
    uint16_t max_topic_length;      /* bytes in a topic name or filter, default 65535 */
    uint16_t max_topic_levels;      /* levels in a topic name or filter, default 128 */
    char cluster_nats[1024];        /* NATS URLs, comma-separated; "" = no cluster */
    char cluster_name[65];          /* subject prefix, default "petrel" */
    char node_name[65];             /* "" = the host name */
    uint64_t cluster_outbox_max_bytes; /* QoS 1/2 bytes JetStream has not taken
                                          yet (a partition); beyond: local only */
    uint64_t cluster_stream_max_bytes; /* the JetStream stream's bound (per server) */
    uint32_t cluster_stream_max_age;   /* seconds a message stays in the stream */
    uint32_t cluster_stream_replicas;  /* 0 = min(3, servers in cluster_nats) */
    uint16_t topic_alias_maximum;   /* MQTT 5.0 topic aliases per connection, each
                                       direction, default 10; 0 = none */
    uint32_t partial_packet_timeout; /* seconds an incomplete packet may take to
                                       arrive (or 1.5 x keep alive if shorter),
                                       default 30; 0 = no limit */
    uint64_t max_input_buffer_total; /* bytes of unfinished input held over all
                                       connections, default 256 MiB; 0 = no limit */
    uint32_t max_connection_log_rate; /* connected/disconnected/refused log lines
                                       per second, default 100; 0 = no limit */
    uint32_t max_publish_rate;      /* PUBLISH packets per second per client,
                                       default 0 = no limit */
    uint32_t max_publish_bytes_rate; /* their bytes per second per client,
                                       default 0 = no limit */
    uint64_t memory_budget;         /* input + output buffered + messages alive,
                                       default 2 GiB; 0 = no limit */
    enum log_level log_level;       /* default notice */
    struct http_listen_conf http;   /* http_listen; off by default */
    char http_token_file[4096];     /* "NAME ROLE TOKEN" lines; "" (default) = none */
    struct bridges_conf bridges;    /* `bridge NAME` sections (bridge_config.h) */
};

/* Fills *c with the defaults above. */
void config_defaults(struct config *c);

/* Applies one setting.  Keys and values as in the file; `listen` appends a
 * listener ("HOST:PORT", "[V6]:PORT" or "V6:PORT" where the last colon
 * separates the port; an IPv4 address or a bracketed IPv6 address alone
 * takes the default port, 1883, or 8883 with `tls`).  Returns 0, or -1 with a message (without location)
 * in err. */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);

/* Reads a configuration file and applies its settings in order.  Returns 0,
 * or -1 with "path:line: message" (or "path: reason" if it cannot be read)
 * in err.  Lines longer than 4095 bytes are an error. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Parses a log level name ("error", "warning", "notice", "info", "debug").
 * Returns 0 or -1. */
int config_parse_log_level(const char *s, enum log_level *out);
const char *config_log_level_name(enum log_level l);

/* Writes *c in file format, every setting with a comment line saying what
 * it is (petreld --print-config).  config_load_file reads it back to the
 * same settings, except that the listeners are no longer the default ones. */
void config_dump(const struct config *c, FILE *out);

#endif
