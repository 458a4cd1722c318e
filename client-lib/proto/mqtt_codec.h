/*
 * mqtt_codec.h - the MQTT wire codec shared by petreld and libpetrel.
 *
 * Decoding is zero-copy and strict: every string and byte field of a decoded
 * packet points into the caller's buffer, and a packet that breaks any rule of
 * the specification is rejected with a code and a short static explanation.
 * Encoding writes into a caller-supplied buffer, snprintf-style.
 *
 * MQTT 3.1.1 (protocol level 4) and MQTT 5.0 (level 5) share the structures:
 * with level 4 `props` is always empty and reason codes are unused.
 */
#ifndef PETREL_MQTT_CODEC_H
#define PETREL_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Protocol levels as carried in CONNECT. */
#define MQTT_LEVEL_311 4
#define MQTT_LEVEL_5 5

/* Largest value the 4-byte Remaining Length can express (256 MiB - 1). */
#define MQTT_MAX_REMAINING_LENGTH 268435455u
/* A fixed header is 1 type byte + 1..4 length bytes. */
#define MQTT_MAX_FIXED_HEADER 5

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15 /* MQTT 5.0 only */
};

/* Results of framing and decoding.  Everything but MQTT_OK and
 * MQTT_INCOMPLETE means: close the connection (after a CONNACK for
 * MQTT_E_UNSUPPORTED_LEVEL; at level 5 the broker sends CONNACK/DISCONNECT
 * 0x81 for MALFORMED and 0x82 for PROTOCOL first). */
enum mqtt_err {
    MQTT_OK = 0,
    MQTT_INCOMPLETE = 1,         /* frame header: more bytes needed */
    MQTT_E_MALFORMED = -1,       /* bytes that do not form a valid packet */
    MQTT_E_PROTOCOL = -2,        /* well-formed but forbidden by the spec */
    MQTT_E_UNSUPPORTED_LEVEL = -3, /* CONNECT with protocol name "MQTT"/"MQIsdp"
                                      but a level we do not speak (not 4 or
                                      5): the server answers CONNACK 0x01
                                      then closes; also any other packet
                                      decoded at such a level */
    MQTT_E_TOO_LARGE = -4,       /* remaining length above the caller's limit */
    MQTT_E_BUFFER = -5           /* encode: argument makes an unencodable packet */
};

/* A view of bytes owned by someone else (the decode input buffer, or the
 * caller's memory when encoding).  Strings are NOT NUL-terminated. */
struct mqtt_bytes {
    const uint8_t *data;
    uint32_t len;
};

/* A C string's bytes (its NUL left out), for a field of a packet to encode;
 * the string must outlive the packet. */
static inline struct mqtt_bytes mqtt_str(const char *s)
{
    return (struct mqtt_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* MQTT 5.0 properties, kept as their raw wire bytes (without the leading
 * variable byte integer length).  Always empty for level 4. */
struct mqtt_props {
    const uint8_t *data;
    uint32_t len;
};

/* CONNECT return codes (3.1.1); 5.0 reason codes are added later. */
enum mqtt_connack_rc {
    MQTT_CONNACK_ACCEPTED = 0x00,
    MQTT_CONNACK_BAD_PROTOCOL = 0x01,
    MQTT_CONNACK_ID_REJECTED = 0x02,
    MQTT_CONNACK_UNAVAILABLE = 0x03,
    MQTT_CONNACK_BAD_CREDENTIALS = 0x04,
    MQTT_CONNACK_NOT_AUTHORIZED = 0x05
};

#define MQTT_SUBACK_FAILURE 0x80

struct mqtt_connect {
    uint8_t level;          /* 4 (3.1.1) or 5 */
    bool bridge;            /* the level goes with its top bit set (0x84,
                               0x85): Mosquitto's sign of a bridge (decode
                               and encode) */
    bool clean_session;     /* 5.0: "clean start" */
    uint16_t keepalive;     /* seconds, 0 = off */
    struct mqtt_bytes client_id; /* may be empty */
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_bytes will_topic;   /* valid topic name when will_flag */
    struct mqtt_bytes will_payload;
    bool has_username;
    struct mqtt_bytes username;
    bool has_password;
    struct mqtt_bytes password;
    struct mqtt_props props;
    struct mqtt_props will_props;
};

struct mqtt_connack {
    bool session_present;
    uint8_t return_code;    /* enum mqtt_connack_rc, or a 5.0 reason code */
    struct mqtt_props props;
};

struct mqtt_publish {
    bool dup;
    uint8_t qos;            /* 0..2 */
    bool retain;
    struct mqtt_bytes topic;  /* a valid topic name: no wildcards, not empty */
    uint16_t packet_id;     /* non-zero when qos > 0, 0 otherwise */
    struct mqtt_props props;
    struct mqtt_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP, and UNSUBACK in 3.1.1. */
struct mqtt_ack {
    uint16_t packet_id;     /* never 0 */
    uint8_t reason_code;    /* 5.0 only; 0 in 3.1.1 */
    struct mqtt_props props;
};

/* One topic filter of a SUBSCRIBE (options = requested QoS in 3.1.1; the 5.0
 * subscription option bits later) or of an UNSUBSCRIBE (options unused). */
struct mqtt_topic_entry {
    struct mqtt_bytes filter;  /* well-formed UTF-8, length >= 0; wildcard
                                  syntax is NOT checked here: the broker
                                  answers 0x80 for an invalid filter. */
    uint8_t options;
};

/* SUBSCRIBE and UNSUBSCRIBE.
 * Encoding reads `count` entries from `entries`.
 * Decoding validates every entry, sets `count` and `wire` (the raw payload)
 * and leaves `entries` NULL: walk the entries with mqtt_topic_iter. */
struct mqtt_subscribe {
    uint16_t packet_id;     /* never 0 */
    struct mqtt_props props;
    uint32_t count;         /* >= 1 */
    const struct mqtt_topic_entry *entries;
    struct mqtt_bytes wire;
};

/* SUBACK, and UNSUBACK in 5.0: one return/reason code per filter. */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bytes codes;  /* 3.1.1 SUBACK: each 0, 1, 2 or 0x80 */
};

/* DISCONNECT (and AUTH in 5.0). */
struct mqtt_disconnect {
    uint8_t reason_code;    /* 5.0 only */
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;           /* enum mqtt_type */
    uint8_t flags;          /* low nibble of the first byte */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;          /* PUBACK..PUBCOMP, UNSUBACK (3.1.1) */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;    /* SUBACK, UNSUBACK (5.0) */
        struct mqtt_disconnect disconnect; /* DISCONNECT, AUTH */
    } u;
};

/* ---- MQTT 5.0 ------------------------------------------------------------
 *
 * Properties travel as raw wire bytes in struct mqtt_props (the property
 * block without its length prefix).  mqtt_decode at level 5 validates every
 * block completely (see below), so the iterator never meets a bad property.
 * To send properties, build a block with the builder and point the packet's
 * `props` at it; mqtt_encode writes the length prefix and copies the bytes.
 */

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,          /* byte 0/1 */
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,          /* u32 seconds */
    MQTT_PROP_CONTENT_TYPE = 0x03,            /* UTF-8 */
    MQTT_PROP_RESPONSE_TOPIC = 0x08,          /* UTF-8 topic name */
    MQTT_PROP_CORRELATION_DATA = 0x09,        /* binary */
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,         /* varint 1..268435455 */
    MQTT_PROP_SESSION_EXPIRY = 0x11,          /* u32 seconds */
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,      /* UTF-8 */
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,       /* u16 seconds */
    MQTT_PROP_AUTH_METHOD = 0x15,             /* UTF-8 */
    MQTT_PROP_AUTH_DATA = 0x16,               /* binary */
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,    /* byte 0/1 */
    MQTT_PROP_WILL_DELAY = 0x18,              /* u32 seconds */
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,   /* byte 0/1 */
    MQTT_PROP_RESPONSE_INFO = 0x1A,           /* UTF-8 */
    MQTT_PROP_SERVER_REFERENCE = 0x1C,        /* UTF-8 */
    MQTT_PROP_REASON_STRING = 0x1F,           /* UTF-8 */
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,         /* u16, not 0 */
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,     /* u16 */
    MQTT_PROP_TOPIC_ALIAS = 0x23,             /* u16, not 0 */
    MQTT_PROP_MAXIMUM_QOS = 0x24,             /* byte 0/1 */
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,        /* byte 0/1 */
    MQTT_PROP_USER_PROPERTY = 0x26,           /* UTF-8 pair, may repeat */
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,     /* u32, not 0 */
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,  /* byte 0/1 */
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,        /* byte 0/1 */
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A     /* byte 0/1 */
};

enum mqtt_prop_type {
    MQTT_PT_BYTE = 1,
    MQTT_PT_U16,
    MQTT_PT_U32,
    MQTT_PT_VARINT,
    MQTT_PT_UTF8,
    MQTT_PT_BINARY,
    MQTT_PT_PAIR
};

/* The wire type of a property id, or 0 for an id MQTT 5.0 does not define. */
enum mqtt_prop_type mqtt_prop_type(uint8_t id);

/* One decoded property.  `num` holds BYTE/U16/U32/VARINT values; `str`
 * holds UTF8/BINARY values and the key of a PAIR, `value` a PAIR's value.
 * Both point into the property block. */
struct mqtt_prop {
    uint8_t id;
    uint32_t num;
    struct mqtt_bytes str;
    struct mqtt_bytes value;
};

struct mqtt_prop_iter {
    const uint8_t *pos;
    const uint8_t *end;
};
void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *props);
/* Fills *out with the next property in wire order and returns true, or
 * returns false at the end (or at bytes that are not a valid property, which
 * a block from mqtt_decode never contains). */
bool mqtt_prop_next(struct mqtt_prop_iter *it, struct mqtt_prop *out);
/* The first property with `id`: true and *out filled, or false. */
bool mqtt_props_find(const struct mqtt_props *props, uint8_t id, struct mqtt_prop *out);

/* Builds a property block in caller memory.  Adding past `cap` sets
 * `overflow` and adds nothing more; check it once at the end.  `overflow` is
 * also set by an argument the id cannot carry: a function for another wire
 * type (mqtt_pb_num with a string id), a value too wide for the id's type
 * (256 for a BYTE, 65536 for a U16, above 268435455 for a VARINT), a string
 * over 65535 bytes.  The builder does not check ranges or UTF-8 (the encoder
 * validates blocks, see mqtt_encode).  mqtt_pb_props of an overflowed
 * builder is an empty block. */
struct mqtt_props_builder {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};
void mqtt_pb_init(struct mqtt_props_builder *b, uint8_t *buf, size_t cap);
/* For BYTE, U16, U32 and VARINT properties (the id decides the width). */
void mqtt_pb_num(struct mqtt_props_builder *b, uint8_t id, uint32_t value);
/* For UTF8 and BINARY properties. */
void mqtt_pb_bytes(struct mqtt_props_builder *b, uint8_t id, const void *data, size_t len);
/* For USER_PROPERTY. */
void mqtt_pb_pair(struct mqtt_props_builder *b, uint8_t id, const void *key, size_t key_len,
                  const void *value, size_t value_len);
/* Appends already-encoded properties (e.g. a stored block being forwarded). */
void mqtt_pb_raw(struct mqtt_props_builder *b, const uint8_t *data, size_t len);
/* The block built so far, for a packet's `props` field. */
struct mqtt_props mqtt_pb_props(const struct mqtt_props_builder *b);

/* Subscription options byte of a 5.0 SUBSCRIBE entry (3.1.1: QoS only). */
#define MQTT_SUBOPT_QOS(o) ((uint8_t)((o) & 0x03))
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RETAIN_AS_PUBLISHED 0x08
#define MQTT_SUBOPT_RETAIN_HANDLING(o) ((uint8_t)(((o) >> 4) & 0x03))

/* MQTT 5.0 reason codes (section 2.4).  Values below 0x80 are successes. */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,               /* also "normal disconnection",
                                             "granted QoS 0" */
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2
};

/* A short English name for a reason code ("not authorized"), for logs and
 * the CLI; "unknown reason code" for values 5.0 does not define. */
const char *mqtt_reason_str(uint8_t rc);

/* Iterator over the entries of a decoded SUBSCRIBE/UNSUBSCRIBE. */
struct mqtt_topic_iter {
    const uint8_t *pos;
    const uint8_t *end;
    uint8_t type;
};
void mqtt_topic_iter_init(struct mqtt_topic_iter *it, const struct mqtt_packet *p);
/* Fills *out with the next entry and returns true, or returns false at the end. */
bool mqtt_topic_iter_next(struct mqtt_topic_iter *it, struct mqtt_topic_entry *out);

/*
 * Framing.  Reads the fixed header at the start of buf[0..len).
 * On MQTT_OK and MQTT_E_TOO_LARGE sets *first_byte, *remaining (the body
 * length) and *header_len (1 + number of length bytes).  MQTT_INCOMPLETE:
 * not enough bytes yet.
 * MQTT_E_MALFORMED: more than 4 length bytes, or an overlong encoding (a
 * trailing 0x00 continuation byte such as 0x80 0x00).  MQTT_E_TOO_LARGE:
 * header_len + remaining > max_packet (0 = no limit but the protocol's), so
 * the caller can refuse before buffering the body.  The packet type and flags
 * are checked by mqtt_decode, not here.
 */
enum mqtt_err mqtt_frame_header(const uint8_t *buf, size_t len, uint32_t max_packet,
                                uint8_t *first_byte, uint32_t *remaining, size_t *header_len);

/*
 * Decodes one packet whose fixed header first byte is `first_byte` and whose
 * body is body[0..len) (exactly the remaining length).  `level` is the
 * protocol level negotiated on the connection (MQTT_LEVEL_311 or MQTT_LEVEL_5);
 * it is ignored for CONNECT, which carries its own.
 * On failure returns a negative enum mqtt_err and, if `why` is not NULL, sets
 * *why to a static English sentence fragment for the log
 * (e.g. "reserved flags set on SUBSCRIBE").
 * Checked: type 0 and 15 (15 in 3.1.1), reserved flag bits per type, QoS 3,
 * DUP on QoS 0, packet id 0 where one is required, string lengths within the
 * body, trailing or missing bytes, UTF-8 (well-formed, no U+0000, no
 * surrogates, no overlong forms), topic names (not empty, no '+' or '#'),
 * CONNECT protocol name/level, reserved flag, will QoS/retain without will,
 * password without username, SUBSCRIBE/UNSUBSCRIBE with no entries,
 * topic filters (not empty, '#' and '+' only as whole levels, '#' last),
 * requested QoS 3 or reserved option bits, SUBACK return codes.
 * MQTT_E_PROTOCOL is returned for an unknown CONNECT protocol name, a packet
 * identifier 0 and a SUBSCRIBE/UNSUBSCRIBE without entries; every other rule
 * gives MQTT_E_MALFORMED.
 * A CONNECT for level 4 or 5 decodes with out->u.connect.level set (and is
 * then checked by the rules of its own level); any other level (or
 * "MQIsdp") returns MQTT_E_UNSUPPORTED_LEVEL with the level set, so the
 * broker can answer CONNACK 0x01 and log it.  AUTH below level 5 is
 * MALFORMED.
 *
 * Level 5 (MQTT 5.0) adds, for every packet type:
 * - The property block is validated completely and stored in `props` (and
 *   `will_props` for CONNECT): each id known and allowed on that packet
 *   type (else MALFORMED, MQTT 5.0 2.2.2.2), its value well-formed (lengths inside
 *   the block, UTF-8 rules for UTF8 and PAIR, minimal varints) and in range
 *   (0/1 bytes, Receive Maximum / Maximum Packet Size / Topic Alias /
 *   Subscription Identifier not 0: PROTOCOL), no id twice except
 *   USER_PROPERTY anywhere and SUBSCRIPTION_ID on PUBLISH (PROTOCOL).
 * - CONNECT: properties after the keep alive, will properties before the
 *   will topic; a password without a username is allowed (5.0 permits it).
 *   CONNACK always carries its property length (no short form).
 * - Acknowledgements: PUBACK/PUBREC/PUBREL/PUBCOMP with the short forms
 *   (remaining length 2 = reason 0, no properties; 3 = no properties);
 *   DISCONNECT and AUTH (remaining length 0 = reason 0, no properties);
 *   DISCONNECT also with remaining length 1 (reason only, spec 3.14.2.2.1),
 *   AUTH not (a lone reason byte is MALFORMED); SUBACK/UNSUBACK
 *   codes and every other reason code checked against the values the spec
 *   lists for that packet (PROTOCOL otherwise).  UNSUBACK decodes into
 *   u.suback; DISCONNECT and AUTH into u.disconnect.
 * - RESPONSE_TOPIC must be a valid topic name (PROTOCOL otherwise).
 * - SUBSCRIBE options: QoS 3 and reserved bits 6-7 are MALFORMED, retain
 *   handling 3 is PROTOCOL.
 * - PUBLISH: an empty topic is accepted only with a TOPIC_ALIAS property
 *   (the receiver resolves the alias); without one it is PROTOCOL.
 * The decoder does not know the direction of a packet: rules that depend on
 * it (a client may not send SUBSCRIPTION_ID on PUBLISH) are the caller's.
 */
enum mqtt_err mqtt_decode(uint8_t level, uint8_t first_byte, const uint8_t *body, uint32_t len,
                          struct mqtt_packet *out, const char **why);

/*
 * Encodes *p for protocol `level` into out[0..cap).  Returns the total number
 * of bytes the packet needs; the bytes are written only when that is <= cap
 * (call with cap 0 to size a buffer).  Returns 0 when the packet cannot be
 * encoded (e.g. a string over 65535 bytes, QoS 3, body over the protocol
 * maximum).  `p->flags` is ignored: flags are derived from the fields.
 * Also refused (0) is whatever a peer's decoder would reject on sight: QoS 3,
 * packet identifier 0 where one is required, DUP on QoS 0, an empty PUBLISH
 * or will topic, password without username, SUBSCRIBE/UNSUBSCRIBE with no
 * entries or a requested QoS > 2, SUBACK codes other than 0/1/2/0x80, a
 * CONNACK code > 5 or with session present on a refusal.  The content of
 * strings (UTF-8, wildcards) is NOT checked, to keep PUBLISH cheap: validate
 * user input with the functions below first.
 * CONNECT is written with `level` as its protocol level (p->u.connect.level
 * is ignored).  At level 5 the `props` fields (built with mqtt_pb_*) are
 * written with their length prefix, reason codes are written, and the short
 * forms are used where the spec allows them (an acknowledgement with reason 0
 * and no properties is 2 bytes, with another reason and no properties 3
 * bytes; a DISCONNECT or AUTH with reason 0 and no properties is empty, with
 * another reason it is written as reason + property length 0).  UNSUBACK is
 * read from u.suback, DISCONNECT and AUTH from u.disconnect.  Also refused at
 * level 5: a reason code the spec does not list for the packet, SUBSCRIBE
 * options with bits 6-7, QoS 3 or retain handling 3, an empty PUBLISH topic
 * without a TOPIC_ALIAS property, and - for every type but PUBLISH - a
 * property block mqtt_decode would reject for that packet type (PUBLISH
 * blocks are not checked, to keep deliveries cheap).  A password without a
 * username is allowed at level 5.  At level 4 `props` and reason codes are
 * ignored.  Any other level returns 0.
 */
size_t mqtt_encode(uint8_t level, const struct mqtt_packet *p, uint8_t *out, size_t cap);

/* Writes the Remaining Length for `value` into out (>= 4 bytes) and returns
 * how many bytes it used (1..4), or 0 if value > MQTT_MAX_REMAINING_LENGTH. */
size_t mqtt_encode_varint(uint32_t value, uint8_t *out);

/* Validation primitives, also used by the broker and the client library. */
/* Well-formed UTF-8 as MQTT requires: no U+0000, no surrogates (U+D800..DFFF),
 * no overlong forms, nothing above U+10FFFF. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);
/* A topic name for PUBLISH: 1..65535 bytes, valid UTF-8, no '+' or '#'. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);
/* A topic filter: 1..65535 bytes, valid UTF-8, '#' only as the whole last
 * level, '+' only as a whole level. */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);
/* Does topic name `topic` match the valid filter `filter`?  The MQTT rules:
 * '+' is one whole level, '#' the rest ("a/#" matches "a" too), and a filter
 * starting with a wildcard never matches a topic starting with '$'
 * [MQTT-4.7.2-1].  Neither string needs a terminating NUL.  The one string
 * matcher of the tree: the broker's ACL and share groups, and petrel bench. */
bool mqtt_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

const char *mqtt_type_name(uint8_t type);
const char *mqtt_err_str(enum mqtt_err err);

#endif
