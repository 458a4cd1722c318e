/*
 * message.h - an application message as the broker holds it: topic, payload,
 * QoS and retain flag in one reference-counted allocation.  A message that
 * goes to many subscribers, sits in offline queues and is retained exists
 * once; each holder owns one reference.
 */
#ifndef PETREL_MESSAGE_H
#define PETREL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message {
    uint32_t refcount;
    uint8_t qos;            /* QoS it was published with */
    bool retain;            /* retain flag it was published with */
    uint16_t topic_len;
    uint32_t payload_len;
    int64_t db_id;          /* row in the store's messages table, 0 if none */
    char *topic;            /* NUL-terminated, points into this allocation */
    uint8_t *payload;       /* points into this allocation */
    /* The QoS 0 PUBLISH (retain 0, level 3.1.1) encoded once on first use and
     * shared by every QoS 0 delivery: fan-out costs one encode. */
    uint8_t *wire_qos0;
    size_t wire_qos0_len;
};

/* Returns a message with refcount 1, or NULL when out of memory. */
struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain);
struct message *message_ref(struct message *m);
void message_unref(struct message *m);

/* The encoded QoS 0 PUBLISH for this message (built on first call), or NULL
 * when out of memory. */
const uint8_t *message_wire_qos0(struct message *m, size_t *len);

#endif
