/*
 * format.h - how `petrel sub` prints a received message: the payload,
 * "topic payload" (-v), or one JSON object per line (--json); with
 * --properties, also its MQTT 5.0 properties.
 */
#ifndef PETREL_CLI_FORMAT_H
#define PETREL_CLI_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include <petrel.h>

enum out_format { OUT_PAYLOAD, OUT_VERBOSE, OUT_JSON };

/* Writes one message and flushes, so readers of a pipe see it at once.
 * newline=false (-N) leaves out the separator after payload formats (JSON
 * always ends its line).  props (--properties): in the payload formats one
 * line per property after the message, "  name: value" with mosquitto's
 * property names (user-property: "  user-property: key=value"; a value
 * that is not printable UTF-8 is shown as 0x and hex digits); in JSON a
 * "properties" member.  Returns 0, or -1 if the write failed. */
int format_message(FILE *out, const petrel_message *m, enum out_format f, bool newline,
                   bool props);

/* JSON: {"topic":"...","payload":"...","qos":1,"retain":false}.  A payload
 * that is not valid UTF-8 is given as "payload_base64" instead.  With
 * props and MQTT 5.0 properties, also "properties": {"payload_format_indicator":1,
 * "message_expiry_interval":30, "content_type":"...", "response_topic":"...",
 * "correlation_data":"..." (or "correlation_data_base64"),
 * "subscription_identifiers":[5], "user_properties":[["k","v"],...]}. */
void format_json(FILE *out, const petrel_message *m, bool props);

#endif
