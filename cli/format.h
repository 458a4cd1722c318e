/*
 * format.h - how `petrel sub` prints a received message: the payload,
 * "topic payload" (-v), or one JSON object per line (--json).
 */
#ifndef PETREL_CLI_FORMAT_H
#define PETREL_CLI_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include <petrel.h>

enum out_format { OUT_PAYLOAD, OUT_VERBOSE, OUT_JSON };

/* Writes one message and flushes, so readers of a pipe see it at once.
 * newline=false (-N) leaves out the separator after payload formats (JSON
 * always ends its line).  Returns 0, or -1 if the write failed. */
int format_message(FILE *out, const petrel_message *m, enum out_format f, bool newline);

/* JSON: {"topic":"...","payload":"...","qos":1,"retain":false}.  A payload
 * that is not valid UTF-8 is given as "payload_base64" instead. */
void format_json(FILE *out, const petrel_message *m);

#endif
