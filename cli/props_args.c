/*
 * props_args.c - the MQTT 5.0 connection flags: -V (protocol version) and
 * -D PACKET NAME VALUE properties with mosquitto_pub/mosquitto_sub's
 * names, checked here so that a typo or a property in the wrong packet is
 * a usage error, not a refusal from the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_args.h"

enum prop_kind { K_BYTE, K_U16, K_U32, K_VARINT, K_STRING, K_BINARY, K_PAIR };

struct prop_name {
    const char *name;
    int id;
    enum prop_kind kind;
    unsigned places;   /* bit (1 << prop_place) where it is allowed */
};

#define P_CONNECT (1u << PLACE_CONNECT)
#define P_WILL (1u << PLACE_WILL)
#define P_PUBLISH (1u << PLACE_PUBLISH)
#define P_SUBSCRIBE (1u << PLACE_SUBSCRIBE)

static const struct prop_name names[] = {
    {"payload-format-indicator", PETREL_PROP_PAYLOAD_FORMAT, K_BYTE, P_WILL | P_PUBLISH},
    {"message-expiry-interval", PETREL_PROP_MESSAGE_EXPIRY, K_U32, P_WILL | P_PUBLISH},
    {"content-type", PETREL_PROP_CONTENT_TYPE, K_STRING, P_WILL | P_PUBLISH},
    {"response-topic", PETREL_PROP_RESPONSE_TOPIC, K_STRING, P_WILL | P_PUBLISH},
    {"correlation-data", PETREL_PROP_CORRELATION_DATA, K_BINARY, P_WILL | P_PUBLISH},
    {"subscription-identifier", PETREL_PROP_SUBSCRIPTION_ID, K_VARINT, P_SUBSCRIBE},
    {"session-expiry-interval", PETREL_PROP_SESSION_EXPIRY, K_U32, P_CONNECT},
    {"will-delay-interval", PETREL_PROP_WILL_DELAY, K_U32, P_WILL},
    {"receive-maximum", PETREL_PROP_RECEIVE_MAXIMUM, K_U16, P_CONNECT},
    {"maximum-packet-size", PETREL_PROP_MAXIMUM_PACKET_SIZE, K_U32, P_CONNECT},
    {"topic-alias-maximum", PETREL_PROP_TOPIC_ALIAS_MAXIMUM, K_U16, P_CONNECT},
    {"request-response-information", PETREL_PROP_REQUEST_RESPONSE_INFO, K_BYTE, P_CONNECT},
    {"request-problem-information", PETREL_PROP_REQUEST_PROBLEM_INFO, K_BYTE, P_CONNECT},
    {"user-property", PETREL_PROP_USER_PROPERTY, K_PAIR,
     P_CONNECT | P_WILL | P_PUBLISH | P_SUBSCRIBE},
};

static const char *const place_names[] = {"connect", "will", "publish", "subscribe"};

int conn_args_protocol(struct conn_args *a, const char *arg)
{
    if (strcmp(arg, "mqttv311") == 0 || strcmp(arg, "311") == 0) {
        a->protocol = PETREL_MQTT_311;
    } else if (strcmp(arg, "mqttv5") == 0 || strcmp(arg, "5") == 0) {
        a->protocol = PETREL_MQTT_5;
    } else {
        cli_error(a->cmd, "-V: unknown protocol version '%s' (use 311 or 5)", arg);
        return -1;
    }
    a->protocol_set = true;
    return 1;
}

/* The next word of the command line for -D, or NULL (message printed). */
static const char *next_word(struct conn_args *a, const char *what)
{
    if (!a->argv || optind >= a->argc) {
        cli_error(a->cmd, "-D: missing %s", what);
        return NULL;
    }
    return a->argv[optind++];
}

static int add(struct conn_args *a, int place, const struct prop_name *pn, const char *value,
               const char *value2)
{
    if (!a->props[place] && !(a->props[place] = petrel_properties_new())) {
        cli_error(a->cmd, "out of memory");
        return -1;
    }
    petrel_properties *p = a->props[place];
    unsigned long n = 0;
    int rc;
    switch (pn->kind) {
    case K_BYTE:
    case K_U16:
    case K_U32:
    case K_VARINT: {
        static const unsigned long max[] = {1, 65535, 4294967295ul, 268435455};
        if (parse_ulong(value, max[pn->kind], &n) != 0) {
            cli_error(a->cmd, "-D %s %s: '%s' is not a number from 0 to %lu",
                      place_names[place], pn->name, value, max[pn->kind]);
            return -1;
        }
        rc = petrel_properties_add_int(p, pn->id, (uint32_t)n);
        break;
    }
    case K_STRING:
        rc = petrel_properties_add_string(p, pn->id, value);
        break;
    case K_BINARY:
        rc = petrel_properties_add_binary(p, pn->id, value, strlen(value));
        break;
    default:
        rc = petrel_properties_add_user(p, value, value2);
        break;
    }
    if (rc != PETREL_OK) {
        cli_error(a->cmd, "-D %s %s: invalid value (out of range, not UTF-8, not a topic "
                  "name, or given twice)", place_names[place], pn->name);
        return -1;
    }
    return 1;
}

int conn_args_property(struct conn_args *a, const char *place_name)
{
    int place = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(place_name, place_names[i]) == 0)
            place = i;
    if (place < 0 || !(a->places & (1u << place))) {
        cli_error(a->cmd, "-D: '%s' properties are not accepted by petrel %s (use connect, "
                  "will or %s)", place_name, a->cmd, a->places & P_PUBLISH ? "publish" : "subscribe");
        return -1;
    }
    const char *name = next_word(a, "property name");
    if (!name)
        return -1;
    const struct prop_name *pn = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            pn = &names[i];
    if (!pn) {
        cli_error(a->cmd, "-D %s: unknown property '%s'", place_name, name);
        return -1;
    }
    if (!(pn->places & (1u << place))) {
        cli_error(a->cmd, "-D: %s is not allowed in %s", name, place_name);
        return -1;
    }
    const char *value = next_word(a, "property value");
    if (!value)
        return -1;
    const char *value2 = NULL;
    if (pn->kind == K_PAIR && !(value2 = next_word(a, "user property value")))
        return -1;
    if (!a->props_first)
        a->props_first = name;
    return add(a, place, pn, value, value2);
}

int conn_args_check_v5(const struct conn_args *a)
{
    if (a->props_first && a->protocol != PETREL_MQTT_5) {
        cli_error(a->cmd, "-D %s: properties need MQTT 5.0 (-V 5)", a->props_first);
        return -1;
    }
    return 0;
}

int conn_args_apply_v5(const struct conn_args *a, petrel_options *o)
{
    int rc = petrel_options_set_protocol(o, a->protocol);
    if (rc == PETREL_OK)
        rc = petrel_options_set_connect_properties(o, a->props[PLACE_CONNECT]);
    if (rc == PETREL_OK && a->props[PLACE_WILL]) {
        if (!a->will_topic) {
            cli_error(a->cmd, "-D will needs --will-topic");
            return -1;
        }
        rc = petrel_options_set_will_properties(o, a->props[PLACE_WILL]);
    }
    if (rc != PETREL_OK) {
        cli_error(a->cmd, "MQTT 5.0 options: %s", petrel_strerror(rc));
        return -1;
    }
    return 0;
}

/* The MQTT 5.0 reason behind an error, if the server gave one: " (not
 * authorized, 0x87: reason string)".  Empty otherwise. */
const char *conn_args_reason(petrel_client *c, char *buf, size_t cap)
{
    int rc = petrel_reason_code(c);
    buf[0] = '\0';
    if (!rc)
        return buf;
    const void *text = NULL;
    size_t len = 0;
    if (petrel_properties_get_bytes(petrel_reason_properties(c), PETREL_PROP_REASON_STRING, &text,
                                    &len))
        snprintf(buf, cap, " (%s, 0x%02x: %.*s)", petrel_reason_string(rc), rc,
                 (int)(len > 200 ? 200 : len), (const char *)text);
    else
        snprintf(buf, cap, " (%s, 0x%02x)", petrel_reason_string(rc), rc);
    return buf;
}
