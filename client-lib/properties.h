/*
 * properties.h - petrel_properties, the public MQTT 5.0 property list:
 * a property block in wire format (what mqtt_props holds), either owned and
 * growable (built by the application) or a read-only view of bytes the
 * library owns (a received packet), plus the checks of which properties a
 * client may send with which packet.
 */
#ifndef PETREL_PROPERTIES_H
#define PETREL_PROPERTIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_codec.h"
#include "petrel.h"

struct petrel_properties {
    uint8_t *data;     /* property block, no length prefix */
    size_t len;
    size_t cap;        /* 0 = a view: data is not ours to free or grow */
};

/* Where a client sends properties; each place allows its own set. */
enum props_place {
    PROPS_CONNECT,
    PROPS_WILL,
    PROPS_PUBLISH,
    PROPS_SUBSCRIBE
};

/* PETREL_OK if every property of `p` (may be NULL) may be sent at `place`,
 * else PETREL_EINVAL. */
int props_check(const petrel_properties *p, enum props_place place);
/* A read-only view of a decoded block. */
static inline petrel_properties props_view(struct mqtt_props mp)
{
    petrel_properties v = {(uint8_t *)(uintptr_t)mp.data, mp.len, 0};
    return v;
}
static inline struct mqtt_props props_wire(const petrel_properties *p)
{
    struct mqtt_props mp = {p ? p->data : NULL, p ? (uint32_t)p->len : 0};
    return mp;
}
/* An owned copy of raw bytes (NULL/0 gives an empty block) into *dst, whose
 * previous content is freed.  PETREL_OK or PETREL_ENOMEM. */
int props_set_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len);

#endif
