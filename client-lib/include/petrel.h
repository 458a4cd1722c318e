/*
 * petrel.h - libpetrel, the Petrel MQTT client library (public API).
 *
 * Works with any MQTT broker, not only petreld.  Two ways to use it:
 *   - the asynchronous client (petrel_client_*), which runs on the
 *     application's own libevent `struct event_base` and reports through
 *     callbacks;
 *   - the blocking facade (petrel_sync_*), which runs a private event loop
 *     inside each call, for small programs and tools.
 * Neither is thread-safe: use one client from one thread (the thread that
 * runs its event base).  The library never prints, exits or aborts; every
 * failure is an error code (enum petrel_error) with petrel_strerror().
 * See docs/client.md for a guide.
 */
#ifndef PETREL_H
#define PETREL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define PETREL_API __attribute__((visibility("default")))
#else
#define PETREL_API
#endif

struct event_base;

/* ------------------------------------------------------------------------
 * Errors
 */

/* Every function that can fail returns PETREL_OK (0) or one of these
 * negative codes.  The same codes are the `reason` of a disconnection and the
 * `result` of a publication.  New codes may be added at the end. */
enum petrel_error {
    PETREL_OK = 0,
    PETREL_EINVAL = -1,            /* invalid argument (topic, QoS, length...) */
    PETREL_ENOMEM = -2,            /* out of memory */
    PETREL_ESTATE = -3,            /* not allowed in the client's current state */
    PETREL_EQUEUE_FULL = -4,       /* the outgoing queue is at its limit */
    PETREL_ETIMEDOUT = -5,         /* no answer in time (connect, blocking call) */
    PETREL_ERESOLVE = -6,          /* the host name could not be resolved */
    PETREL_ECONNREFUSED = -7,      /* TCP connection refused */
    PETREL_ENETWORK = -8,          /* other network error (unreachable, reset...) */
    PETREL_ECONNLOST = -9,         /* the server closed the connection */
    PETREL_EKEEPALIVE = -10,       /* dead link: no PINGRESP within the keep alive */
    PETREL_EPROTOCOL = -11,        /* the server broke the MQTT protocol */
    PETREL_EREFUSED_PROTOCOL = -12, /* CONNACK 1: protocol version not accepted */
    PETREL_EREFUSED_ID = -13,      /* CONNACK 2: client identifier rejected */
    PETREL_EUNAVAILABLE = -14,     /* CONNACK 3: server unavailable */
    PETREL_EBAD_CREDENTIALS = -15, /* CONNACK 4: bad user name or password */
    PETREL_ENOT_AUTHORIZED = -16,  /* CONNACK 5: not authorized */
    PETREL_ENOTSUP = -17,          /* not supported yet (MQTT 5.0) */
    PETREL_ETOO_LARGE = -18,       /* a packet exceeds a size limit */
    PETREL_ESTOPPED = -19,         /* blocking facade: the client gave up
                                      (see petrel_sync_last_error) */
    PETREL_ETLS = -20,             /* TLS failed: a certificate or key file could not
                                      be loaded, or the handshake was refused (e.g. the
                                      server wants a client certificate) */
    PETREL_ECERT = -21,            /* the server's certificate was not accepted: unknown
                                      CA, expired, or issued for another name */
    /* MQTT 5.0: the reason code behind these is petrel_reason_code(). */
    PETREL_EREFUSED = -22,         /* CONNACK refusal with a 5.0 reason code
                                      that has no code above */
    PETREL_ESERVER_DISCONNECT = -23, /* the server sent DISCONNECT */
    PETREL_EREJECTED = -24         /* PUBACK/PUBREC/PUBCOMP with a reason
                                      code >= 0x80: the server refused it */
};

/* A short English description of a code ("connection refused").  Never NULL;
 * unknown codes give "unknown error". */
PETREL_API const char *petrel_strerror(int err);
/* The symbolic name of a code ("PETREL_ECONNREFUSED"), for logs and tests. */
PETREL_API const char *petrel_error_name(int err);
/* After PETREL_ETLS or PETREL_ECERT: what exactly went wrong, in the words
 * of the TLS library ("certificate has expired", "hostname mismatch (expected
 * 'broker.example')", "cafile /etc/ca.pem: No such file or directory").  The
 * text of the last such failure in the calling thread; "" if there was
 * none.  Valid until the next TLS failure in the same thread. */
PETREL_API const char *petrel_tls_error_detail(void);
/* The library's version, "MAJOR.MINOR.PATCH". */
PETREL_API const char *petrel_version(void);

/* ------------------------------------------------------------------------
 * Options
 */

/* MQTT protocol versions (the value is the protocol level on the wire). */
enum petrel_protocol {
    PETREL_MQTT_311 = 4,
    PETREL_MQTT_5 = 5
};

/* ------------------------------------------------------------------------
 * MQTT 5.0 properties
 *
 * A list of (identifier, value) pairs in wire order, sent with CONNECT, the
 * will, PUBLISH and SUBSCRIBE, and received with messages, CONNACK,
 * acknowledgements and DISCONNECT.  Objects you build are yours to free;
 * the ones the library hands out are read-only views valid as documented
 * where they are handed out.  Strings are not NUL-terminated in views:
 * every getter gives a length.
 */
typedef struct petrel_properties petrel_properties;

/* Property identifiers: the values are the MQTT 5.0 wire identifiers. */
enum petrel_property_id {
    PETREL_PROP_PAYLOAD_FORMAT = 0x01,          /* int 0 (bytes) / 1 (UTF-8) */
    PETREL_PROP_MESSAGE_EXPIRY = 0x02,          /* int, seconds */
    PETREL_PROP_CONTENT_TYPE = 0x03,            /* string */
    PETREL_PROP_RESPONSE_TOPIC = 0x08,          /* string (a topic name) */
    PETREL_PROP_CORRELATION_DATA = 0x09,        /* binary */
    PETREL_PROP_SUBSCRIPTION_ID = 0x0B,         /* int 1..268435455 */
    PETREL_PROP_SESSION_EXPIRY = 0x11,          /* int, seconds */
    PETREL_PROP_ASSIGNED_CLIENT_ID = 0x12,      /* string (CONNACK) */
    PETREL_PROP_SERVER_KEEP_ALIVE = 0x13,       /* int, seconds (CONNACK) */
    PETREL_PROP_AUTH_METHOD = 0x15,
    PETREL_PROP_AUTH_DATA = 0x16,
    PETREL_PROP_REQUEST_PROBLEM_INFO = 0x17,    /* int 0/1 */
    PETREL_PROP_WILL_DELAY = 0x18,              /* int, seconds */
    PETREL_PROP_REQUEST_RESPONSE_INFO = 0x19,   /* int 0/1 */
    PETREL_PROP_RESPONSE_INFO = 0x1A,           /* string (CONNACK) */
    PETREL_PROP_SERVER_REFERENCE = 0x1C,        /* string */
    PETREL_PROP_REASON_STRING = 0x1F,           /* string */
    PETREL_PROP_RECEIVE_MAXIMUM = 0x21,         /* int 1..65535 */
    PETREL_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,     /* int 0..65535 */
    PETREL_PROP_TOPIC_ALIAS = 0x23,
    PETREL_PROP_MAXIMUM_QOS = 0x24,             /* int 0/1 (CONNACK) */
    PETREL_PROP_RETAIN_AVAILABLE = 0x25,        /* int 0/1 (CONNACK) */
    PETREL_PROP_USER_PROPERTY = 0x26,           /* string pair, repeatable */
    PETREL_PROP_MAXIMUM_PACKET_SIZE = 0x27,     /* int >= 1 */
    PETREL_PROP_WILDCARD_SUB_AVAILABLE = 0x28,  /* int 0/1 (CONNACK) */
    PETREL_PROP_SUB_ID_AVAILABLE = 0x29,        /* int 0/1 (CONNACK) */
    PETREL_PROP_SHARED_SUB_AVAILABLE = 0x2A     /* int 0/1 (CONNACK) */
};

/* One property, as petrel_properties_next gives it. */
typedef struct petrel_property {
    int id;                 /* enum petrel_property_id */
    uint32_t value;         /* integer properties */
    const void *data;       /* string and binary properties; a user
                               property's name */
    size_t len;
    const void *value_data; /* a user property's value */
    size_t value_len;
} petrel_property;

PETREL_API petrel_properties *petrel_properties_new(void);
PETREL_API void petrel_properties_free(petrel_properties *p);
/* Appends a property; the identifier decides the type.  PETREL_EINVAL for
 * the wrong type, an identifier that may not repeat and is present, or a
 * value out of range (strings must be UTF-8, at most 65535 bytes). */
PETREL_API int petrel_properties_add_int(petrel_properties *p, int id, uint32_t value);
/* NUL-terminated string properties (content type, response topic...). */
PETREL_API int petrel_properties_add_string(petrel_properties *p, int id, const char *value);
/* Binary properties (correlation data); strings are accepted too. */
PETREL_API int petrel_properties_add_binary(petrel_properties *p, int id, const void *data,
                                            size_t len);
/* A user property: name and value, both UTF-8.  Order is kept. */
PETREL_API int petrel_properties_add_user(petrel_properties *p, const char *name,
                                          const char *value);
/* The first property `id`: true and *value (integers) or data and len
 * (strings, binary) set.  False if absent; p may be NULL. */
PETREL_API bool petrel_properties_get_int(const petrel_properties *p, int id, uint32_t *value);
PETREL_API bool petrel_properties_get_bytes(const petrel_properties *p, int id,
                                            const void **data, size_t *len);
/* How many times `id` occurs (user properties, subscription identifiers). */
PETREL_API size_t petrel_properties_count(const petrel_properties *p, int id);
/* Walks the properties in order: start with *cursor = 0; returns false at
 * the end. */
PETREL_API bool petrel_properties_next(const petrel_properties *p, size_t *cursor,
                                       petrel_property *out);
/* A short English name for an MQTT 5.0 reason code ("not authorized"). */
PETREL_API const char *petrel_reason_string(int reason_code);

/* Connection options.  A client copies them when it is created, so one
 * options object can be reused or freed right after petrel_client_new. */
typedef struct petrel_options petrel_options;

/* Defaults: server localhost:1883, empty client id (the server assigns one;
 * requires a clean session), clean session, keep alive 60 s, no credentials,
 * no will, MQTT 3.1.1, connect timeout 10 s, automatic reconnection with a
 * delay from 0.5 s doubling up to 30 s (with jitter), 20 QoS 1/2 messages in
 * flight, an outgoing queue of at most 1000 messages and 16 MiB, incoming
 * packets up to 64 MiB. */
PETREL_API petrel_options *petrel_options_new(void);
PETREL_API void petrel_options_free(petrel_options *o);

/* Host name or numeric address, and TCP port (0 = 1883, or 8883 with TLS).
 * A name is looked up without blocking the event loop (petrel_connect). */
PETREL_API int petrel_options_set_server(petrel_options *o, const char *host, uint16_t port);
/* NULL or "" = empty id: the server assigns one (clean session required). */
PETREL_API int petrel_options_set_client_id(petrel_options *o, const char *client_id);
/* false = persistent session: the server keeps subscriptions and queued
 * messages while the client is away, and the client resends what was not
 * acknowledged when it comes back. */
PETREL_API int petrel_options_set_clean_session(petrel_options *o, bool clean);
/* Seconds; 0 turns the heartbeat off. */
PETREL_API int petrel_options_set_keepalive(petrel_options *o, uint16_t seconds);
/* username NULL removes both; password NULL = user name only.  The password
 * is binary (MQTT allows any bytes). */
PETREL_API int petrel_options_set_credentials(petrel_options *o, const char *username,
                                              const void *password, size_t password_len);
/* The message the server publishes if this client vanishes.  topic NULL
 * removes the will. */
PETREL_API int petrel_options_set_will(petrel_options *o, const char *topic, const void *payload,
                                       size_t payload_len, int qos, bool retain);
/* PETREL_MQTT_311 (the default: every broker speaks it) or PETREL_MQTT_5.
 * With MQTT 5.0, clean_session is "clean start" and a persistent session
 * lives as long as the Session Expiry Interval sent in the connect
 * properties; clean_session false without one asks for a session that never
 * expires (0xFFFFFFFF), which is what 3.1.1 persistent sessions do. */
PETREL_API int petrel_options_set_protocol(petrel_options *o, int protocol);
/* Time allowed for the TCP connection plus the CONNACK, milliseconds. */
PETREL_API int petrel_options_set_connect_timeout(petrel_options *o, uint32_t ms);
/* Automatic reconnection after a failed attempt or a lost connection.  The
 * n-th retry waits a random time between d/2 and d, d = min(max_ms,
 * min_ms * 2^n); the count resets once a connection is accepted.  Refusals
 * that retrying cannot fix (bad protocol, identifier rejected, bad
 * credentials, not authorized, a server certificate not accepted) stop the
 * client instead. */
PETREL_API int petrel_options_set_reconnect(petrel_options *o, bool enabled, uint32_t min_ms,
                                            uint32_t max_ms);
/* QoS 1/2 messages sent but not yet acknowledged, 1..65000. */
PETREL_API int petrel_options_set_max_inflight(petrel_options *o, uint32_t n);
/* Bound on messages the client holds (queued while offline or waiting for
 * the inflight window, plus those in flight): count >= 1 and bytes of topic
 * plus payload >= 1.  Beyond it petrel_publish returns PETREL_EQUEUE_FULL. */
PETREL_API int petrel_options_set_queue_limits(petrel_options *o, size_t max_messages,
                                               size_t max_bytes);
/* Largest incoming packet accepted; a larger one closes the connection with
 * PETREL_ETOO_LARGE.  0 = the protocol maximum (256 MiB). */
PETREL_API int petrel_options_set_max_packet_size(petrel_options *o, uint32_t bytes);
/* TLS.  Off by default; set_tls(true), a CA file, a client certificate or
 * insecure mode turn it on (as mosquitto_pub's --cafile does), and a port
 * left at 0 then means 8883.  By default the server's certificate must
 * chain to a CA of the system's store (or of set_tls_cafile) and be issued
 * for the host name given to set_server (checked against its DNS or IP
 * subject alternative names; the name also goes out as SNI).  TLS 1.2 or
 * later.  The files are read by petrel_client_new (and petrel_sync_connect),
 * which fails with PETREL_ETLS if one cannot be loaded. */
PETREL_API int petrel_options_set_tls(petrel_options *o, bool enabled);
/* PEM file of the CA certificates that sign the server's certificate,
 * instead of the system's store.  NULL goes back to the system's store. */
PETREL_API int petrel_options_set_tls_cafile(petrel_options *o, const char *cafile);
/* Client certificate (PEM; may hold its chain) and its private key (PEM,
 * without a passphrase), for servers that require one.  keyfile NULL = the
 * key is in certfile; certfile NULL removes both. */
PETREL_API int petrel_options_set_tls_cert(petrel_options *o, const char *certfile,
                                           const char *keyfile);
/* true: do not verify the server's certificate nor its name.  For tests
 * only: anyone on the path can then read and change the traffic. */
PETREL_API int petrel_options_set_tls_insecure(petrel_options *o, bool insecure);
/* The name the server's certificate must carry (and the SNI), when it is
 * not the host given to set_server, e.g. when connecting by address.  NULL
 * = the host. */
PETREL_API int petrel_options_set_tls_server_name(petrel_options *o, const char *name);
/* MQTT over WebSocket (RFC 6455, subprotocol "mqtt"): after TCP (and TLS,
 * for wss) the client sends an HTTP upgrade request for `path` (e.g.
 * "/mqtt"), then MQTT packets in masked binary frames.  A server that does
 * not answer 101 with the right accept value and subprotocol is
 * PETREL_EPROTOCOL.  NULL = plain MQTT (the default).  PETREL_EINVAL for a
 * path not starting with '/' or holding blanks or control characters. */
PETREL_API int petrel_options_set_websocket(petrel_options *o, const char *path);
/* MQTT 5.0 properties will get their own setters here. */
/* MQTT 5.0 (need PETREL_MQTT_5 when connecting; see "Properties" below).
 * CONNECT properties: Session Expiry Interval, Receive Maximum, Maximum
 * Packet Size (also lowers the max_packet_size limit), Topic Alias Maximum
 * (the client then resolves the aliases the server sends), Request
 * Response/Problem Information and user properties; anything else is
 * PETREL_EINVAL.  Without a Maximum Packet Size the client sends its
 * max_packet_size.  NULL removes them.  The properties are copied. */
PETREL_API int petrel_options_set_connect_properties(petrel_options *o,
                                                     const petrel_properties *props);
/* Will properties: Will Delay Interval, Message Expiry Interval, Payload
 * Format Indicator, Content Type, Response Topic, Correlation Data and user
 * properties.  Kept when the will itself changes; NULL removes them. */
PETREL_API int petrel_options_set_will_properties(petrel_options *o,
                                                  const petrel_properties *props);

/* ------------------------------------------------------------------------
 * Messages
 */


/* A received message.  In callbacks it is valid only during the call;
 * copy what you keep.  `topic` is NUL-terminated; `payload` is not (use
 * payload_len), except in messages returned by petrel_sync_receive. */
typedef struct petrel_message {
    const char *topic;
    size_t topic_len;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;   /* a retained message sent because of a new subscription */
    bool dup;      /* the server says it may have sent this one before */
    /* MQTT 5.0: the message's properties in the order the server sent them
     * (user properties, response topic, correlation data, content type,
     * payload format, message expiry, subscription identifiers); never
     * NULL with 5.0 (possibly empty), always NULL with 3.1.1.  A topic
     * alias is already resolved into `topic`. */
    const petrel_properties *props;
} petrel_message;

/* Checks a topic name (for publishing: 1..65535 bytes of UTF-8, no '+' or
 * '#') and a topic filter (for subscribing: '+' only as a whole level, '#'
 * only as the whole last level), as petrel_publish and petrel_subscribe do. */
PETREL_API bool petrel_topic_valid(const char *topic);
PETREL_API bool petrel_filter_valid(const char *filter);

/* The code in a subscribed callback's granted list for a refused filter
 * (MQTT 3.1.1).  With MQTT 5.0 a refusal is any reason code >= 0x80
 * (0x87 not authorized, 0x8F topic filter invalid...): test with
 * PETREL_SUBSCRIBE_REFUSED. */
#define PETREL_SUBSCRIBE_FAILED 0x80
#define PETREL_SUBSCRIBE_REFUSED(code) ((code) >= 0x80)

/* MQTT 5.0 subscription options, OR-ed with the QoS (0..2) in the options
 * of petrel_subscribe_props (the values are the wire bits). */
#define PETREL_SUB_NO_LOCAL 0x04           /* not our own publications */
#define PETREL_SUB_RETAIN_AS_PUBLISHED 0x08 /* keep the retain flag as sent */
#define PETREL_SUB_RETAIN_IF_NEW 0x10      /* retain handling 1: retained
                                              messages only for a new
                                              subscription */
#define PETREL_SUB_RETAIN_NONE 0x20        /* retain handling 2: none */

/* ------------------------------------------------------------------------
 * Asynchronous client
 */

typedef struct petrel_client petrel_client;

/* A connection was accepted (CONNACK 0).  session_present: the server still
 * had this client's persistent session.  MQTT 5.0: the CONNACK properties
 * are available from petrel_connack_properties. */
typedef void (*petrel_connected_cb)(petrel_client *c, bool session_present, void *arg);
/* A connection attempt failed, an established connection ended, or
 * petrel_disconnect finished (reason PETREL_OK).  reconnecting: the client
 * will try again by itself after a backoff delay; false means it stopped
 * and waits for petrel_connect. */
typedef void (*petrel_disconnected_cb)(petrel_client *c, int reason, bool reconnecting, void *arg);
/* A message arrived.  For QoS 1 and 2 the acknowledgement is sent after the
 * callback returns. */
typedef void (*petrel_message_cb)(petrel_client *c, const petrel_message *m, void *arg);
/* A publication finished its QoS handshake (PUBACK for QoS 1, PUBCOMP for
 * QoS 2; for QoS 0, when it was handed to the socket).  id is the one
 * petrel_publish returned.  result is PETREL_OK, or with MQTT 5.0
 * PETREL_EREJECTED (a reason code >= 0x80 in PUBACK/PUBREC/PUBCOMP; see
 * petrel_reason_code) or PETREL_ETOO_LARGE (larger than the server's
 * Maximum Packet Size, not sent). */
typedef void (*petrel_published_cb)(petrel_client *c, uint64_t id, int result, void *arg);
/* A SUBSCRIBE was answered: one granted QoS (0..2) or
 * PETREL_SUBSCRIBE_FAILED (5.0: a reason code >= 0x80) per filter, in
 * request order.  id 0 reports the
 * automatic re-subscription after a reconnection that found no session. */
typedef void (*petrel_subscribed_cb)(petrel_client *c, uint64_t id, size_t count,
                                     const int *granted, void *arg);
typedef void (*petrel_unsubscribed_cb)(petrel_client *c, uint64_t id, void *arg);
/* Debug trace (one line, no newline): packets sent and received, state
 * changes.  Off unless set. */
enum petrel_log_level { PETREL_LOG_ERROR = 0, PETREL_LOG_INFO = 1, PETREL_LOG_DEBUG = 2 };
typedef void (*petrel_log_cb)(petrel_client *c, int level, const char *line, void *arg);

/* Creates a client on `base` (which the application runs).  The options
 * are copied.  Returns NULL with *err set (err may be NULL).
 * If SIGPIPE still has its default action, it is set to SIG_IGN: otherwise a
 * broker closing the connection while the client writes would kill the
 * process.  An application that handles SIGPIPE itself keeps its handler. */
PETREL_API petrel_client *petrel_client_new(struct event_base *base, const petrel_options *o,
                                            int *err);
/* Closes the connection at once (no DISCONNECT: the server publishes the
 * will) and frees the client; messages still held are dropped without
 * callbacks.  For a clean close call petrel_disconnect and wait for the
 * disconnected callback first.  Safe to call from inside a callback.  A
 * host name lookup still running is abandoned; libevent hands its last
 * bytes back the next time the loop runs (before event_base_free, an
 * application may run event_base_loop(base, EVLOOP_NONBLOCK) once). */
PETREL_API void petrel_client_free(petrel_client *c);

PETREL_API void petrel_on_connected(petrel_client *c, petrel_connected_cb cb, void *arg);
PETREL_API void petrel_on_disconnected(petrel_client *c, petrel_disconnected_cb cb, void *arg);
PETREL_API void petrel_on_message(petrel_client *c, petrel_message_cb cb, void *arg);
PETREL_API void petrel_on_published(petrel_client *c, petrel_published_cb cb, void *arg);
PETREL_API void petrel_on_subscribed(petrel_client *c, petrel_subscribed_cb cb, void *arg);
PETREL_API void petrel_on_unsubscribed(petrel_client *c, petrel_unsubscribed_cb cb, void *arg);
PETREL_API void petrel_on_log(petrel_client *c, petrel_log_cb cb, void *arg);

/* Starts connecting; the outcome arrives through the callbacks.  A host
 * name is looked up asynchronously on the client's event_base (libevent's
 * evdns: /etc/hosts, then the nameservers of /etc/resolv.conf, read at
 * each attempt; about 3 s at most for a nameserver that does not answer),
 * then every address is tried in turn with a non-blocking connect.  A
 * failed lookup is reported as PETREL_ERESOLVE, from the loop.  The connect timeout covers the lookup.
 * PETREL_ESTATE if already started. */
PETREL_API int petrel_connect(petrel_client *c);
/* Sends DISCONNECT (so the server discards the will), closes, and stops
 * reconnecting; the disconnected callback follows with PETREL_OK.  Messages
 * not yet acknowledged stay in the client and go out after the next
 * petrel_connect.  PETREL_OK if already stopped. */
PETREL_API int petrel_disconnect(petrel_client *c);

/* Queues a message and returns at once with its id (may be NULL).  Allowed
 * in any state: messages wait in the bounded queue while offline.  Errors:
 * PETREL_EINVAL (bad topic name or QoS), PETREL_ETOO_LARGE,
 * PETREL_EQUEUE_FULL. */
PETREL_API int petrel_publish(petrel_client *c, const char *topic, const void *payload,
                              size_t payload_len, int qos, bool retain, uint64_t *id);
/* Subscribes to one or more filters, each with its QoS.  Allowed in any
 * state (sent once connected).  Subscriptions are remembered: after a
 * reconnection that finds no session on the server they are renewed. */
PETREL_API int petrel_subscribe(petrel_client *c, const char *filter, int qos, uint64_t *id);
PETREL_API int petrel_subscribe_many(petrel_client *c, const char *const *filters, const int *qos,
                                     size_t count, uint64_t *id);
PETREL_API int petrel_unsubscribe(petrel_client *c, const char *filter, uint64_t *id);
PETREL_API int petrel_unsubscribe_many(petrel_client *c, const char *const *filters, size_t count,
                                       uint64_t *id);

/* MQTT 5.0 publication with properties (payload format, message expiry,
 * content type, response topic, correlation data, user properties; others
 * are PETREL_EINVAL).  props may be NULL; it is copied.  With MQTT 3.1.1
 * properties are PETREL_EINVAL.  While connected, a message larger than the
 * server's Maximum Packet Size is PETREL_ETOO_LARGE. */
PETREL_API int petrel_publish_props(petrel_client *c, const char *topic, const void *payload,
                                    size_t payload_len, int qos, bool retain,
                                    const petrel_properties *props, uint64_t *id);
/* MQTT 5.0 subscription: options[i] = QoS | PETREL_SUB_* flags; props may
 * hold a Subscription Identifier and user properties.  With MQTT 3.1.1 only
 * the QoS bits are allowed and props must be NULL. */
PETREL_API int petrel_subscribe_props(petrel_client *c, const char *const *filters,
                                      const int *options, size_t count,
                                      const petrel_properties *props, uint64_t *id);

/* MQTT 5.0 details of the event being reported, valid only inside a
 * callback: in the disconnected callback, the reason code of the CONNACK
 * refusal or of the server's DISCONNECT (with its Reason String, Server
 * Reference, user properties); in the published callback, the reason code
 * of the acknowledgement (e.g. 0x10 no matching subscribers, 0x87 not
 * authorized); in the subscribed callback, the SUBACK properties.  0 and
 * NULL when there is none (always with MQTT 3.1.1). */
PETREL_API int petrel_reason_code(const petrel_client *c);
PETREL_API const petrel_properties *petrel_reason_properties(const petrel_client *c);
/* The properties of the CONNACK that accepted the current connection
 * (Assigned Client Identifier, Server Keep Alive, Receive Maximum, Maximum
 * Packet Size, Topic Alias Maximum, ...): valid from the connected callback
 * until the next disconnection; NULL otherwise and with MQTT 3.1.1.  The
 * client honours Server Keep Alive, Receive Maximum (its inflight window)
 * and Maximum Packet Size (what it sends) by itself. */
PETREL_API const petrel_properties *petrel_connack_properties(const petrel_client *c);

/* True between the connected callback and the next disconnection. */
PETREL_API bool petrel_is_connected(const petrel_client *c);
/* Publications accepted but not yet completed (queued or in flight). */
PETREL_API size_t petrel_pending(const petrel_client *c);

/* ------------------------------------------------------------------------
 * Blocking facade
 *
 * Each call runs a private event loop until its work is done or its
 * timeout (milliseconds; negative = no limit) expires.  Messages that arrive
 * meanwhile are kept for petrel_sync_receive; beyond 1000 the client stops
 * reading from the socket until some are received (except while a call
 * waits for an acknowledgement, which may be behind them).  Nothing runs
 * between calls.  The client reconnects by itself as configured, except
 * that the first connection must succeed.
 */

typedef struct petrel_sync petrel_sync;

/* Connects and waits for the CONNACK.  Returns NULL with *err set on
 * failure (the reason of the first failed attempt, or PETREL_ETIMEDOUT). */
PETREL_API petrel_sync *petrel_sync_connect(const petrel_options *o, int timeout_ms, int *err);
/* Publishes and waits until the QoS handshake is complete.  On
 * PETREL_ETIMEDOUT the message is still held and may be delivered later. */
PETREL_API int petrel_sync_publish(petrel_sync *s, const char *topic, const void *payload,
                                   size_t payload_len, int qos, bool retain, int timeout_ms);
/* Subscribes and waits for the SUBACK; *granted (may be NULL) receives the
 * granted QoS or PETREL_SUBSCRIBE_FAILED. */
PETREL_API int petrel_sync_subscribe(petrel_sync *s, const char *filter, int qos, int *granted,
                                     int timeout_ms);
PETREL_API int petrel_sync_unsubscribe(petrel_sync *s, const char *filter, int timeout_ms);
/* MQTT 5.0 variants (see petrel_publish_props, petrel_subscribe_props);
 * *granted receives the granted QoS or the refusal reason code. */
PETREL_API int petrel_sync_publish_props(petrel_sync *s, const char *topic, const void *payload,
                                         size_t payload_len, int qos, bool retain,
                                         const petrel_properties *props, int timeout_ms);
PETREL_API int petrel_sync_subscribe_props(petrel_sync *s, const char *filter, int options,
                                           const petrel_properties *props, int *granted,
                                           int timeout_ms);
/* Waits for the next message.  On PETREL_OK *out is a copy owned by the
 * caller (topic and payload both NUL-terminated; with MQTT 5.0 props is a
 * copy too); free it with petrel_message_free.  PETREL_ETIMEDOUT when nothing arrived in time. */
PETREL_API int petrel_sync_receive(petrel_sync *s, petrel_message **out, int timeout_ms);
PETREL_API void petrel_message_free(petrel_message *m);
/* When a call returned PETREL_ESTOPPED: why the client gave up. */
PETREL_API int petrel_sync_last_error(const petrel_sync *s);
/* The asynchronous client underneath, e.g. to set a log callback.  Do not
 * replace its other callbacks or free it. */
PETREL_API petrel_client *petrel_sync_client(petrel_sync *s);
/* Sends DISCONNECT, waits (bounded by timeout_ms) for it to be written, and
 * frees everything.  Returns PETREL_OK or the error of the close. */
PETREL_API int petrel_sync_disconnect(petrel_sync *s, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
