/*
 * packet_fit.c - leaving optional properties out of an outgoing MQTT 5.0
 * packet until it fits the client's Maximum Packet Size; the order and the
 * rules are in packet_fit.h.
 */
#include "packet_fit.h"

#include <stdlib.h>
#include <string.h>

/* The property block of packet types that carry one (NULL: none). */
static struct mqtt_props *props_of(struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNACK: return &p->u.connack.props;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return &p->u.ack.props;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: return &p->u.suback.props;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: return &p->u.disconnect.props;
    default: return NULL;
    }
}

/* At which step (packet_fit.h) a property may go; 0 = never. */
static int rank(const struct mqtt_prop *pr)
{
    switch (pr->id) {
    case MQTT_PROP_REASON_STRING: return 1;
    case MQTT_PROP_USER_PROPERTY: return 2;
    case MQTT_PROP_RETAIN_AVAILABLE:
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
    case MQTT_PROP_SUB_ID_AVAILABLE:
    case MQTT_PROP_SHARED_SUB_AVAILABLE: return pr->num == 1 ? 3 : 0;
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
    case MQTT_PROP_RESPONSE_INFO: return 4;
    default: return 0;
    }
}
#define MAX_RANK 4

/* Rewrites `from` into out[0..cap) without the properties of rank 1..r;
 * returns the new length.  Whole properties are copied as they were on the
 * wire, in order, so nothing kept changes. */
static uint32_t keep_below(const struct mqtt_props *from, int r, uint8_t *out)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    uint32_t len = 0;
    mqtt_prop_iter_init(&it, from);
    const uint8_t *start = it.pos;
    while (mqtt_prop_next(&it, &pr)) {
        int k = rank(&pr);
        if (k == 0 || k > r) {
            size_t n = (size_t)(it.pos - start);
            memcpy(out + len, start, n);
            len += (uint32_t)n;
        }
        start = it.pos;
    }
    return len;
}

const struct mqtt_packet *packet_fit(const struct mqtt_packet *p, uint32_t max,
                                     struct packet_fit *f, size_t *need)
{
    f->heap = NULL;
    *need = mqtt_encode(MQTT_LEVEL_5, p, NULL, 0);
    if (*need <= max)
        return p;
    f->copy = *p;
    struct mqtt_props *props = props_of(&f->copy);
    if (!props || props->len == 0)
        return NULL;
    const struct mqtt_props orig = *props;
    uint8_t *buf = f->stack;
    if (orig.len > sizeof f->stack && (buf = f->heap = malloc(orig.len)) == NULL)
        return NULL;
    for (int r = 1; r <= MAX_RANK; r++) {
        props->data = buf;
        props->len = keep_below(&orig, r, buf);
        *need = mqtt_encode(MQTT_LEVEL_5, &f->copy, NULL, 0);
        if (*need != 0 && *need <= max)
            return &f->copy;
    }
    return NULL;
}

void packet_fit_release(struct packet_fit *f)
{
    free(f->heap);
    f->heap = NULL;
}
