/*
 * message.h - an application message as the broker holds it: topic, payload,
 * QoS, retain flag and its MQTT 5.0 properties in one reference-counted
 * allocation.  A message that goes to many subscribers, sits in offline
 * queues and is retained exists once; each holder owns one reference.
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
    /* MQTT 5.0: the properties a server forwards unchanged (payload format,
     * content type, response topic, correlation data, user properties, in
     * their order), as raw wire bytes; NULL/0 when there are none.  3.1.1
     * subscribers get the message without them. */
    uint8_t *props;
    uint32_t props_len;
    uint32_t expiry_interval; /* Message Expiry Interval as published, seconds */
    int64_t expires_at;     /* unix time in ms when it expires; 0 = never */
    /* The QoS 0 PUBLISH (retain 0, level 3.1.1) encoded once on first use and
     * shared by every QoS 0 delivery: fan-out costs one encode. */
    uint8_t *wire_qos0;
    size_t wire_qos0_len;
    uint64_t born_ns;       /* CLOCK_MONOTONIC when made, for the delivery
                               latency histogram (broker.h) */
    uint64_t xid;           /* in a cluster: a hash of its Petrel-Id, the same
                               on every node (cluster.c); 0 = none.  Not
                               stored. */
};

/* Returns a message with refcount 1, or NULL when out of memory. */
struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain);
/* The same from a 5.0 PUBLISH or will: `props` is its whole property block,
 * of which only the forwarded properties are kept; a Message Expiry Interval
 * starts counting now.  props may be NULL. */
struct mqtt_props;
struct message *message_new_props(const char *topic, size_t topic_len, const uint8_t *payload,
                                  size_t payload_len, uint8_t qos, bool retain,
                                  const struct mqtt_props *props);
/* Stored messages: the forwarded block and expiry as they were saved. */
struct message *message_new_raw(const char *topic, size_t topic_len, const uint8_t *payload,
                                size_t payload_len, uint8_t qos, bool retain,
                                const uint8_t *props, size_t props_len, int64_t expires_at);
struct message *message_ref(struct message *m);
void message_unref(struct message *m);
/* Bytes held by all messages alive now (queued, in flight, retained,
 * being delivered), for memory_budget. */
uint64_t message_memory(void);

/* Wall clock in milliseconds, the unit of expires_at. */
int64_t message_now_ms(void);
/* True when the message has a Message Expiry Interval that has run out. */
static inline bool message_expired(const struct message *m, int64_t now_ms)
{
    return m->expires_at != 0 && now_ms >= m->expires_at;
}
/* Restarts the expiry clock (a will is published long after it was set). */
void message_start_expiry(struct message *m);

/* The encoded QoS 0 PUBLISH for this message (built on first call), or NULL
 * when out of memory. */
const uint8_t *message_wire_qos0(struct message *m, size_t *len);

#endif
