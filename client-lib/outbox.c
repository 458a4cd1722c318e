/*
 * outbox.c - storage and accounting of outgoing publications.  One
 * allocation per message (header, topic, payload) so that queuing costs a
 * single malloc and a freed message leaves nothing behind.
 */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>

#include "petrel.h"

void outbox_init(struct outbox *o, size_t max_msgs, size_t max_bytes)
{
    TAILQ_INIT(&o->queued);
    TAILQ_INIT(&o->inflight);
    o->n_queued = o->n_inflight = o->bytes = 0;
    o->max_msgs = max_msgs;
    o->max_bytes = max_bytes;
}

void outbox_clear(struct outbox *o)
{
    struct out_msg *m;
    while ((m = TAILQ_FIRST(&o->queued)))
        outbox_remove(o, m);
    while ((m = TAILQ_FIRST(&o->inflight)))
        outbox_remove(o, m);
}

int outbox_add(struct outbox *o, uint64_t id, const char *topic, size_t topic_len,
               const void *payload, size_t payload_len, uint8_t qos, bool retain,
               const uint8_t *props, size_t props_len)
{
    size_t bytes = topic_len + payload_len + props_len;
    if (o->n_queued + o->n_inflight >= o->max_msgs || bytes > o->max_bytes ||
        o->bytes > o->max_bytes - bytes)
        return PETREL_EQUEUE_FULL;
    struct out_msg *m = malloc(sizeof *m + bytes);
    if (!m)
        return PETREL_ENOMEM;
    m->id = id;
    m->packet_id = 0;
    m->qos = qos;
    m->retain = retain;
    m->stage = OUT_QUEUED;
    m->sent = false;
    m->topic_len = topic_len;
    m->payload_len = payload_len;
    m->props_len = props_len;
    memcpy(m->data, topic, topic_len);
    if (payload_len)
        memcpy(m->data + topic_len, payload, payload_len);
    if (props_len)
        memcpy(m->data + topic_len + payload_len, props, props_len);
    TAILQ_INSERT_TAIL(&o->queued, m, link);
    o->n_queued++;
    o->bytes += bytes;
    return PETREL_OK;
}

void outbox_to_inflight(struct outbox *o, struct out_msg *m)
{
    TAILQ_REMOVE(&o->queued, m, link);
    o->n_queued--;
    TAILQ_INSERT_TAIL(&o->inflight, m, link);
    o->n_inflight++;
}

struct out_msg *outbox_find_inflight(const struct outbox *o, uint16_t packet_id)
{
    /* Acknowledgements mostly come in order, so the match is usually the
     * first element; the list is bounded by max_inflight. */
    struct out_msg *m;
    TAILQ_FOREACH(m, &o->inflight, link)
        if (m->packet_id == packet_id)
            return m;
    return NULL;
}

void outbox_remove(struct outbox *o, struct out_msg *m)
{
    if (m->stage == OUT_QUEUED) {
        TAILQ_REMOVE(&o->queued, m, link);
        o->n_queued--;
    } else {
        TAILQ_REMOVE(&o->inflight, m, link);
        o->n_inflight--;
    }
    o->bytes -= m->topic_len + m->payload_len + m->props_len;
    free(m);
}
