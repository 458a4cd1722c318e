/*
 * bridge_config.h - the `bridge NAME` sections of petreld.conf: what each
 * bridge to another MQTT broker connects to and which topics it forwards
 * (docs/bridges.md).
 *
 * A section starts with a line `bridge NAME` at the start of a line and
 * holds the indented lines after it:
 *
 *   bridge cloud
 *       address = broker.example.com:8883, backup.example.com:8883
 *       tls = true
 *       cafile = /etc/petrel/ca.pem
 *       client_id = edge-17
 *       protocol = 5
 *       out sensors/#  qos=1  remote_prefix=site17/
 *       in  commands/site17/#  qos=1  local_prefix=cmd/
 *
 * The first line that is not indented (or another `bridge`) ends it.  The
 * values are checked here, with the file:line of the offending line; files
 * (cafile, password_file, ...) are read when the bridge starts.  Everything
 * is in fixed arrays so that struct config stays a plain value (config.c
 * copies it to load a file all or nothing).
 */
#ifndef PETREL_BRIDGE_CONFIG_H
#define PETREL_BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BRIDGE_MAX 8            /* bridges in one configuration */
#define BRIDGE_MAX_ADDRESSES 4  /* addresses of one bridge, tried in turn */
#define BRIDGE_MAX_RULES 16     /* out + in rules of one bridge */
#define BRIDGE_NAME_LEN 65      /* 1 to 64 letters, digits, '-', '_' */
#define BRIDGE_HOST_LEN 256
#define BRIDGE_TOPIC_LEN 256    /* a rule's filter */
#define BRIDGE_PREFIX_LEN 128
#define BRIDGE_PATH_LEN 1024
#define BRIDGE_TEXT_LEN 256     /* client id, user name, notification topic */

struct bridge_address {
    char host[BRIDGE_HOST_LEN]; /* name or numeric address (IPv6 without brackets) */
    uint16_t port;              /* default 1883, or 8883 with tls */
    bool port_given;
};

/* `out FILTER [qos=N] [local_prefix=P] [remote_prefix=P]` (local -> remote)
 * or `in ...` (remote -> local), Mosquitto's `topic` line: the subscription
 * is prefix + FILTER on the side the messages come from, and a message on
 * from_prefix + X goes out on to_prefix + X. */
struct bridge_rule {
    bool out;                   /* true: local -> remote */
    uint8_t qos;                /* the subscription's QoS, default 1 */
    char filter[BRIDGE_TOPIC_LEN];
    char local_prefix[BRIDGE_PREFIX_LEN];
    char remote_prefix[BRIDGE_PREFIX_LEN];
};

struct bridge_conf {
    char name[BRIDGE_NAME_LEN];
    unsigned line;              /* line of `bridge NAME`, for messages */
    struct bridge_address addresses[BRIDGE_MAX_ADDRESSES];
    size_t n_addresses;
    bool tls;                   /* `tls`; a cafile or certfile turns it on too */
    bool tls_insecure;          /* do not check the remote's certificate (tests) */
    char cafile[BRIDGE_PATH_LEN];   /* "" = the system's CA store */
    char certfile[BRIDGE_PATH_LEN]; /* client certificate, PEM */
    char keyfile[BRIDGE_PATH_LEN];  /* its key; "" = in certfile */
    char username[BRIDGE_TEXT_LEN];
    char password_file[BRIDGE_PATH_LEN]; /* its first line is the password */
    char client_id[BRIDGE_TEXT_LEN];     /* default "petrel-bridge-NAME" */
    uint8_t protocol;           /* 4 (3.1.1) or 5, default 5 */
    bool try_private;           /* 3.1.1: announce a bridge (level 0x84), default true */
    uint16_t keepalive;         /* seconds, default 60 */
    bool clean;                 /* clean session at the remote, default false */
    char notification_topic[BRIDGE_TEXT_LEN]; /* remote: "1" retained while
                                   connected, "0" as will; "" = none */
    uint32_t reconnect_min_ms;  /* first retry delay, default 1 s */
    uint32_t reconnect_max_ms;  /* cap of the doubling delay, default 30 s */
    /* The bounds of the bridge's queue (its session's), instead of the
     * sessions' max_queued_messages and max_queued_bytes. */
    uint32_t max_queued_messages; /* 0 = not given: the sessions' */
    bool max_queued_bytes_given;
    uint64_t max_queued_bytes;  /* payload bytes, 0 = no limit */
    struct bridge_rule rules[BRIDGE_MAX_RULES];
    size_t n_rules;
};

struct bridges_conf {
    struct bridge_conf list[BRIDGE_MAX];
    size_t n;
    bool open;                  /* the last section may still get lines */
};

/* One line of the file, untouched (with its indentation, without the LF).
 * Returns 1 if it belongs to a bridge section (taken), 0 if not (the
 * caller applies it as `key = value`), -1 with a message (no location) in
 * err.  Blank and comment lines return 0 and keep a section open. */
int bridge_config_line(struct bridges_conf *b, const char *line, unsigned lineno, char *err,
                       size_t errlen);
/* The file ended: checks the last section.  0 or -1 with a message. */
int bridge_config_finish(struct bridges_conf *b, char *err, size_t errlen);
/* Writes the sections back in file format (petreld --print-config). */
void bridge_config_dump(const struct bridges_conf *b, FILE *out);
/* The bridge named `name`, or NULL. */
const struct bridge_conf *bridge_config_find(const struct bridges_conf *b, const char *name);
/* Whether two sections would make the same bridge (SIGHUP leaves it be). */
bool bridge_config_same(const struct bridge_conf *a, const struct bridge_conf *b);

#endif
