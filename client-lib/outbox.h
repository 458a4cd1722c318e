/*
 * outbox.h - the publications a client holds: queued (not yet sent: offline,
 * or waiting for room in the inflight window) and in flight (QoS 1/2, sent,
 * waiting for PUBACK / PUBREC / PUBCOMP).  Both lists keep publication
 * order.  The total is bounded in messages and bytes; the bound is the
 * offline queue's.
 */
#ifndef PETREL_OUTBOX_H
#define PETREL_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

enum out_stage {
    OUT_QUEUED,     /* not sent on the current connection */
    OUT_WAIT_ACK,   /* PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2) */
    OUT_WAIT_COMP   /* PUBREL sent; waiting for PUBCOMP */
};

struct out_msg {
    TAILQ_ENTRY(out_msg) link;
    uint64_t id;            /* the application's handle */
    uint16_t packet_id;     /* 0 until first sent (QoS 1/2) */
    uint8_t qos;
    bool retain;
    uint8_t stage;          /* enum out_stage */
    bool sent;              /* PUBLISH went out at least once: resend with DUP */
    size_t topic_len;
    size_t payload_len;
    size_t props_len;       /* MQTT 5.0 property block; 0 = none */
    uint8_t data[];         /* topic, then payload, then properties */
};

TAILQ_HEAD(out_list, out_msg);

struct outbox {
    struct out_list queued;
    struct out_list inflight;
    size_t n_queued;
    size_t n_inflight;
    size_t bytes;           /* topic + payload + properties bytes of all messages */
    size_t max_msgs;
    size_t max_bytes;
};

void outbox_init(struct outbox *o, size_t max_msgs, size_t max_bytes);
/* Frees every message. */
void outbox_clear(struct outbox *o);
/* Appends a copy to the queue.  PETREL_OK, PETREL_EQUEUE_FULL or
 * PETREL_ENOMEM. */
int outbox_add(struct outbox *o, uint64_t id, const char *topic, size_t topic_len,
               const void *payload, size_t payload_len, uint8_t qos, bool retain,
               const uint8_t *props, size_t props_len);
static inline const char *out_topic(const struct out_msg *m) { return (const char *)m->data; }
static inline const uint8_t *out_payload(const struct out_msg *m) { return m->data + m->topic_len; }
static inline const uint8_t *out_props(const struct out_msg *m)
{
    return m->data + m->topic_len + m->payload_len;
}
/* Moves queued message `m` to the end of the inflight list. */
void outbox_to_inflight(struct outbox *o, struct out_msg *m);
/* The inflight message with this packet identifier, or NULL. */
struct out_msg *outbox_find_inflight(const struct outbox *o, uint16_t packet_id);
/* Unlinks `m` (from whichever list holds it) and frees it. */
void outbox_remove(struct outbox *o, struct out_msg *m);

#endif
