/*
 * message.c - allocation and reference counting of messages, the MQTT 5.0
 * properties they carry from publisher to subscriber, and the cached QoS 0
 * encoding that makes fan-out cheap.
 */
#include "message.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "histogram.h"
#include "mqtt_codec.h"

int64_t message_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes of the messages alive now (message_memory). */
static uint64_t live_bytes;

struct message *message_new_raw(const char *topic, size_t topic_len, const uint8_t *payload,
                                size_t payload_len, uint8_t qos, bool retain,
                                const uint8_t *props, size_t props_len, int64_t expires_at)
{
    if (topic_len > UINT16_MAX || payload_len > MQTT_MAX_REMAINING_LENGTH ||
        props_len > MQTT_MAX_REMAINING_LENGTH)
        return NULL;
    struct message *m = malloc(sizeof *m + topic_len + 1 + payload_len + props_len);
    if (!m)
        return NULL;
    live_bytes += sizeof *m + topic_len + 1 + payload_len + props_len;
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
    m->props = NULL;
    m->props_len = 0;
    if (props_len) {
        m->props = m->payload + payload_len;
        memcpy(m->props, props, props_len);
        m->props_len = (uint32_t)props_len;
    }
    m->expiry_interval = 0;
    m->expires_at = expires_at;
    m->db_id = 0;
    m->wire_qos0 = NULL;
    m->wire_qos0_len = 0;
    m->born_ns = histogram_now_ns();
    m->xid = 0;
    return m;
}

struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain)
{
    return message_new_raw(topic, topic_len, payload, payload_len, qos, retain, NULL, 0, 0);
}

/* Properties that travel with the message to its subscribers (MQTT 5.0
 * section 3.3.2.3): the rest belong to one hop (topic alias, subscription
 * identifier) or to the will (will delay). */
static bool forwarded(uint8_t id)
{
    return id == MQTT_PROP_PAYLOAD_FORMAT || id == MQTT_PROP_CONTENT_TYPE ||
           id == MQTT_PROP_RESPONSE_TOPIC || id == MQTT_PROP_CORRELATION_DATA ||
           id == MQTT_PROP_USER_PROPERTY;
}

struct message *message_new_props(const char *topic, size_t topic_len, const uint8_t *payload,
                                  size_t payload_len, uint8_t qos, bool retain,
                                  const struct mqtt_props *props)
{
    if (!props || props->len == 0)
        return message_new(topic, topic_len, payload, payload_len, qos, retain);
    /* The kept block is never longer than the one received. */
    uint8_t *keep = malloc(props->len);
    if (!keep)
        return NULL;
    size_t keep_len = 0;
    bool has_expiry = false;
    uint32_t expiry = 0;
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, props);
    const uint8_t *start = it.pos;
    while (mqtt_prop_next(&it, &pr)) {
        if (forwarded(pr.id)) {
            /* Copied as they came: order (user properties!) and bytes kept. */
            memcpy(keep + keep_len, start, (size_t)(it.pos - start));
            keep_len += (size_t)(it.pos - start);
        } else if (pr.id == MQTT_PROP_MESSAGE_EXPIRY) {
            has_expiry = true;
            expiry = pr.num;
        }
        start = it.pos;
    }
    struct message *m = message_new_raw(topic, topic_len, payload, payload_len, qos, retain, keep,
                                        keep_len, 0);
    free(keep);
    if (m && has_expiry) {
        m->expiry_interval = expiry;
        message_start_expiry(m);
    }
    return m;
}

void message_start_expiry(struct message *m)
{
    if (m->expiry_interval)
        m->expires_at = message_now_ms() + (int64_t)m->expiry_interval * 1000;
    else
        m->expires_at = 0;
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
    live_bytes -= sizeof *m + m->topic_len + 1 + m->payload_len + m->props_len;
    if (m->wire_qos0)
        live_bytes -= m->wire_qos0_len;
    free(m->wire_qos0);
    free(m);
}

uint64_t message_memory(void) { return live_bytes; }

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
        live_bytes += need;
    }
    *len = m->wire_qos0_len;
    return m->wire_qos0;
}
