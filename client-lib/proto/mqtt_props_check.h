/*
 * mqtt_props_check.h - codec-internal helpers shared by mqtt_props.c,
 * mqtt_decode.c and mqtt_encode.c: the variable byte integer reader and the
 * MQTT 5.0 property block validator.  Not part of the public contract.
 */
#ifndef PETREL_MQTT_PROPS_CHECK_H
#define PETREL_MQTT_PROPS_CHECK_H

#include "mqtt_codec.h"

/* The "packet type" of the will properties inside CONNECT, which have an
 * allowed-property list of their own.  Packet type 0 is reserved, so the
 * value cannot collide with a real type. */
#define MQTT_PROPS_WILL 0

/*
 * Reads a Variable Byte Integer from p[0..avail).  Returns the number of
 * bytes used (1..4) and sets *value; 0 when the bytes end before the integer
 * does; -1 when it is longer than 4 bytes or not in its shortest form
 * [MQTT-1.5.5-1] (a last byte of 0 after a continuation).
 */
int mqtt_varint_read(const uint8_t *p, size_t avail, uint32_t *value);

/*
 * Checks a property block (without its length prefix) for packet type
 * `ptype` (enum mqtt_type, or MQTT_PROPS_WILL) by every rule listed at
 * mqtt_decode in mqtt_codec.h.  MQTT_OK, or MQTT_E_MALFORMED /
 * MQTT_E_PROTOCOL with *why set (if why is not NULL).
 */
enum mqtt_err mqtt_props_validate(uint8_t ptype, const uint8_t *block, uint32_t len,
                                  const char **why);

/* Whether reason code `rc` is one the spec lists for packet type `ptype`
 * (CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH). */
bool mqtt_reason_allowed(uint8_t ptype, uint8_t rc);

#endif
