/*
 * conn_args.h - the connection flags every petrel subcommand shares
 * (server, identity, credentials, keep alive, will, debug, timeout, TLS),
 * with the mosquitto_pub/mosquitto_sub spellings, and their translation
 * into petrel_options.
 */
#ifndef PETREL_CLI_CONN_ARGS_H
#define PETREL_CLI_CONN_ARGS_H

#include <getopt.h>
#include <stdbool.h>

#include <petrel.h>

struct conn_args {
    const char *cmd;          /* "pub", "sub": for messages and the default id */
    const char *host;
    unsigned long port;       /* 0 = the default: 1883, or 8883 with TLS */
    const char *client_id;    /* NULL = generated */
    const char *username;
    const char *password;
    unsigned long keepalive;
    bool clean;
    const char *will_topic;
    const char *will_payload;
    unsigned long will_qos;
    bool will_retain;
    bool will_payload_set;
    bool debug;
    unsigned long timeout;    /* seconds for connecting and for each ack */
    bool tls;                 /* --tls, or implied by any other TLS flag */
    const char *cafile;
    const char *certfile;
    const char *keyfile;
    bool insecure;
    /* MQTT over WebSocket: --ws, --ws-path, or a ws:// or wss:// -L URL. */
    bool ws;
    const char *ws_path;      /* default "/mqtt" */
    char url_host[256];       /* -L's host, which -h then points at */
    char url_path[512];
    /* MQTT 5.0 (props_args.c): -V, and the -D properties per packet. */
    int protocol;             /* PETREL_MQTT_311 or PETREL_MQTT_5 */
    bool protocol_set;
    petrel_properties *props[4]; /* enum prop_place; NULL = none given */
    const char *props_first;  /* the first -D, for the -V 311 error */
    int argc;                 /* the subcommand's arguments: -D reads */
    char **argv;              /* its 2nd and 3rd words from here */
    unsigned places;          /* bit (1 << prop_place) per -D it accepts */
};

/* Where a -D property goes (its first word). */
enum prop_place { PLACE_CONNECT, PLACE_WILL, PLACE_PUBLISH, PLACE_SUBSCRIBE };

/* Long-only option codes; subcommands number their own from OPT_CMD_BASE. */
enum {
    OPT_WILL_TOPIC = 1000,
    OPT_WILL_PAYLOAD,
    OPT_WILL_QOS,
    OPT_WILL_RETAIN,
    OPT_TIMEOUT,
    OPT_HELP,
    OPT_TLS,
    OPT_CAFILE,
    OPT_CERT,
    OPT_KEY,
    OPT_INSECURE,
    OPT_WS,
    OPT_WS_PATH,
    OPT_CMD_BASE = 1100
};

#define CONN_SHORT_OPTS "h:p:L:i:u:P:k:cdV:D:"

#define CONN_LONG_OPTS                                                   \
    {"host", required_argument, NULL, 'h'},                              \
    {"port", required_argument, NULL, 'p'},                              \
    {"id", required_argument, NULL, 'i'},                                \
    {"username", required_argument, NULL, 'u'},                          \
    {"pw", required_argument, NULL, 'P'},                                \
    {"password", required_argument, NULL, 'P'},                          \
    {"keepalive", required_argument, NULL, 'k'},                         \
    {"disable-clean-session", no_argument, NULL, 'c'},                   \
    {"debug", no_argument, NULL, 'd'},                                   \
    {"protocol-version", required_argument, NULL, 'V'},                  \
    {"property", required_argument, NULL, 'D'},                          \
    {"will-topic", required_argument, NULL, OPT_WILL_TOPIC},             \
    {"will-payload", required_argument, NULL, OPT_WILL_PAYLOAD},         \
    {"will-qos", required_argument, NULL, OPT_WILL_QOS},                 \
    {"will-retain", no_argument, NULL, OPT_WILL_RETAIN},                 \
    {"timeout", required_argument, NULL, OPT_TIMEOUT},                   \
    {"tls", no_argument, NULL, OPT_TLS},                                 \
    {"cafile", required_argument, NULL, OPT_CAFILE},                     \
    {"cert", required_argument, NULL, OPT_CERT},                         \
    {"key", required_argument, NULL, OPT_KEY},                           \
    {"insecure", no_argument, NULL, OPT_INSECURE},                       \
    {"url", required_argument, NULL, 'L'},                               \
    {"ws", no_argument, NULL, OPT_WS},                                   \
    {"ws-path", required_argument, NULL, OPT_WS_PATH},                   \
    {"help", no_argument, NULL, OPT_HELP}

#define CONN_ARGS_HELP_BASIC                                                                  \
    "Connection:\n"                                                                     \
    "  -h, --host HOST          broker host name or address (default localhost)\n"     \
    "  -p, --port PORT          broker port (default 1883; 8883 with TLS; 8080 with\n" \
    "                           --ws, 8443 with --ws and TLS)\n"                     \
    "  -L, --url URL            mqtt://HOST[:PORT], mqtts://..., ws://HOST[:PORT][/PATH]\n" \
    "                           or wss://... (MQTT over WebSocket, path default\n"  \
    "                           /mqtt, port 80 or 443): host, port, TLS, WebSocket\n" \
    "      --ws                 MQTT over WebSocket (RFC 6455, subprotocol mqtt)\n"  \
    "      --ws-path PATH       the WebSocket path (default /mqtt; implies --ws)\n"   \
    "  -i, --id ID              client identifier (default petrel-CMD-PID)\n"          \
    "  -u, --username USER      user name\n"                                           \
    "  -P, --pw PASSWORD        password (needs -u)\n"                                 \
    "  -k, --keepalive SECONDS  keep alive interval, 0 = off (default 60)\n"           \
    "  -c, --disable-clean-session\n"                                                  \
    "                           persistent session: the broker keeps subscriptions\n"  \
    "                           and queues QoS 1/2 messages while away (needs -i)\n"

/* -V and -D: pub and sub only (petrel bench speaks 3.1.1, -D is its duration). */
#define CONN_ARGS_HELP_V5 \
    "  -V, --protocol-version V mqttv311 or 311 (default), mqttv5 or 5\n"             \
    "  -D, --property PACKET NAME VALUE\n"                                            \
    "                           an MQTT 5.0 property (needs -V 5); repeatable:\n"      \
    "                           -D connect session-expiry-interval|receive-maximum|\n" \
    "                             maximum-packet-size|topic-alias-maximum|\n"          \
    "                             request-response-information|\n"                     \
    "                             request-problem-information|user-property\n"         \
    "                           -D will will-delay-interval|message-expiry-interval|\n"\
    "                             content-type|payload-format-indicator|\n"            \
    "                             response-topic|correlation-data|user-property\n"     \
    "                           user-property takes two values: NAME VALUE\n"

#define CONN_ARGS_HELP_REST \
    "      --will-topic TOPIC   publish a will message to TOPIC if the connection\n"   \
    "                           is lost without a DISCONNECT\n"                        \
    "      --will-payload TEXT  will message payload (default empty)\n"                \
    "      --will-qos 0|1|2     will QoS (default 0)\n"                                \
    "      --will-retain        retain the will message\n"                             \
    "      --timeout SECONDS    give up connecting, or waiting for an\n"              \
    "                           acknowledgement, after SECONDS (default 10)\n"         \
    "  -d, --debug              trace packets and connection events on stderr\n"      \
    "      --help               show this help and exit\n"                            \
    "TLS (any of these turns TLS on):\n"                                              \
    "      --tls                connect with TLS, checking the server's certificate\n" \
    "                           against the system's CA store and its name against\n" \
    "                           -h\n"                                                  \
    "      --cafile FILE        PEM file of the CAs that sign the server's\n"          \
    "                           certificate (instead of the system's store)\n"        \
    "      --cert FILE          client certificate (PEM), for brokers that ask\n"     \
    "      --key FILE           private key of --cert (PEM; default: in --cert)\n"    \
    "      --insecure           do not check the server's certificate nor its\n"      \
    "                           name (tests only: the connection can be read and\n"  \
    "                           changed by anyone on the path)\n"

#define CONN_ARGS_HELP CONN_ARGS_HELP_BASIC CONN_ARGS_HELP_V5 CONN_ARGS_HELP_REST


void conn_args_init(struct conn_args *a, const char *cmd);
/* Frees the -D properties. */
void conn_args_free(struct conn_args *a);
/* props_args.c: -V and -D.  Return 1 (handled), or -1 (message printed). */
int conn_args_protocol(struct conn_args *a, const char *arg);
int conn_args_property(struct conn_args *a, const char *place);
/* The -V / -D rules, part of conn_args_check. */
int conn_args_check_v5(const struct conn_args *a);
/* Puts -V and the connect and will properties into `o`; -1 (printed). */
int conn_args_apply_v5(const struct conn_args *a, petrel_options *o);
/* Inside a client callback: " (reason, 0xNN: reason string)" for an MQTT
 * 5.0 reason code behind the event, "" when there is none. */
const char *conn_args_reason(petrel_client *c, char *buf, size_t cap);
/* Handles one getopt result.  Returns 1 if it was a connection option,
 * 0 if not, -1 on a bad value (message printed). */
int conn_args_option(struct conn_args *a, int opt, const char *arg);
/* The getopt loop of a subcommand with its own options besides these:
 * returns the next option that is not a connection option (those it
 * handles), -1 once all are read, or CONN_ARGS_BAD after telling what is
 * wrong (a bad value, a value missing, an unknown option, an argument that
 * is not an option).  Reads a->argc and a->argv; shortopts starts with ':'
 * and CONN_SHORT_OPTS. */
#define CONN_ARGS_BAD (-2)
int conn_args_next(struct conn_args *a, const char *shortopts, const struct option *longopts);
/* Checks the rules between options once all are parsed.  0 or -1 (printed). */
int conn_args_check(const struct conn_args *a);
/* petrel_options for these arguments; NULL with a message printed. */
petrel_options *conn_args_options(const struct conn_args *a);
/* The text for a connection error: petrel_strerror, and for TLS failures
 * what exactly went wrong.  A static buffer. */
const char *conn_error_text(int err);
/* The port connected to: -p, or the default for TLS or not. */
unsigned long conn_args_port(const struct conn_args *a);
/* With -d, traces the client's log on stderr. */
void conn_args_attach_debug(const struct conn_args *a, petrel_client *c);

/* Strict decimal parsing: the whole string, 0..max.  0 or -1. */
int parse_ulong(const char *s, unsigned long max, unsigned long *out);
/* An option's number: parse_ulong of `arg`, and at least `min`.  0, or -1
 * after "petrel CMD: FLAG: 'ARG' is not WHAT" (without "FLAG: " when flag
 * is ""). */
int parse_number(const char *cmd, const char *flag, const char *arg, unsigned long min,
                 unsigned long max, const char *what, unsigned long *out);
/* "petrel CMD: " + message on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
