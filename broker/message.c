/*
 * message.c - allocation and reference counting of messages, and the cached
 * QoS 0 encoding that makes fan-out cheap.
 */
#include "message.h"

#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"

struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain)
{
    if (topic_len > UINT16_MAX || payload_len > MQTT_MAX_REMAINING_LENGTH)
        return NULL;
    struct message *m = malloc(sizeof *m + topic_len + 1 + payload_len);
    if (!m)
        return NULL;
    m->refcount = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = (uint32_t)payload_len;
    m->topic = (char *)(m + 1);
    memcpy(m->topic, topic, topic_len);
    m->topic[topic_len] = '\0';
    m->payload = (uint8_t *)m->topic + topic_len + 1;
    if (payload_len)
        memcpy(m->payload, payload, payload_len);
    m->db_id = 0;
    m->wire_qos0 = NULL;
    m->wire_qos0_len = 0;
    return m;
}

struct message *message_ref(struct message *m)
{
    m->refcount++;
    return m;
}

void message_unref(struct message *m)
{
    if (!m || --m->refcount > 0)
        return;
    free(m->wire_qos0);
    free(m);
}

const uint8_t *message_wire_qos0(struct message *m, size_t *len)
{
    if (!m->wire_qos0) {
        struct mqtt_packet p = {.type = MQTT_PUBLISH};
        p.u.publish.topic.data = (const uint8_t *)m->topic;
        p.u.publish.topic.len = m->topic_len;
        p.u.publish.payload.data = m->payload;
        p.u.publish.payload.len = m->payload_len;
        size_t need = mqtt_encode(MQTT_LEVEL_311, &p, NULL, 0);
        if (need == 0)
            return NULL;
        uint8_t *buf = malloc(need);
        if (!buf)
            return NULL;
        mqtt_encode(MQTT_LEVEL_311, &p, buf, need);
        m->wire_qos0 = buf;
        m->wire_qos0_len = need;
    }
    *len = m->wire_qos0_len;
    return m->wire_qos0;
}
