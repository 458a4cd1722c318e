/*
 * mqtt_names.c - printable names for packet types and codec results, for
 * logs and error messages.  Always static strings, never NULL, so callers
 * can pass any byte from the wire straight in.
 */
#include "mqtt_codec.h"

const char *mqtt_type_name(uint8_t type)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT", "CONNACK", "PUBLISH",
        "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
        "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };

    return type < 16 ? names[type] : "UNKNOWN";
}

const char *mqtt_err_str(enum mqtt_err err)
{
    switch (err) {
    case MQTT_OK:                  return "success";
    case MQTT_INCOMPLETE:          return "incomplete packet";
    case MQTT_E_MALFORMED:         return "malformed packet";
    case MQTT_E_PROTOCOL:          return "protocol error";
    case MQTT_E_UNSUPPORTED_LEVEL: return "unsupported protocol level";
    case MQTT_E_TOO_LARGE:         return "packet too large";
    case MQTT_E_BUFFER:            return "packet cannot be encoded";
    }
    return "unknown error";
}
