/*
 * properties.c - building, reading and checking MQTT 5.0 property lists.
 * The codec's builder and iterator do the wire format; this file adds the
 * public object, range checks on what applications add, and the table of
 * which properties a client may send where.
 */
#include "properties.h"

#include <stdlib.h>
#include <string.h>

petrel_properties *petrel_properties_new(void)
{
    return calloc(1, sizeof(petrel_properties));
}

void petrel_properties_free(petrel_properties *p)
{
    if (!p)
        return;
    if (p->cap)
        free(p->data);
    free(p);
}

/* Room for `more` bytes at the end of an owned block. */
static int reserve(petrel_properties *p, size_t more)
{
    if (p->len + more <= p->cap)
        return PETREL_OK;
    if (p->len + more > MQTT_MAX_REMAINING_LENGTH)
        return PETREL_ETOO_LARGE;
    size_t cap = p->cap ? p->cap : 64;
    while (cap < p->len + more)
        cap *= 2;
    uint8_t *d = realloc(p->data, cap);
    if (!d)
        return PETREL_ENOMEM;
    p->data = d;
    p->cap = cap;
    return PETREL_OK;
}

static bool repeatable(int id)
{
    return id == MQTT_PROP_USER_PROPERTY || id == MQTT_PROP_SUBSCRIPTION_ID;
}

/* Common checks before adding `id`: a growable object, and no second copy
 * of a property that may occur once. */
static int can_add(const petrel_properties *p, int id, enum mqtt_prop_type want1,
                   enum mqtt_prop_type want2)
{
    if (!p || (p->data && !p->cap) || id < 1 || id > 0xFF)
        return PETREL_EINVAL;
    enum mqtt_prop_type t = mqtt_prop_type((uint8_t)id);
    if (t == 0 || (t != want1 && t != want2))
        return PETREL_EINVAL;
    struct mqtt_prop tmp;
    if (!repeatable(id) && mqtt_props_find(&(struct mqtt_props){p->data, (uint32_t)p->len},
                                           (uint8_t)id, &tmp))
        return PETREL_EINVAL;
    return PETREL_OK;
}

/* Appends with the codec's builder, writing into the reserved tail. */
#define APPEND(p, need, call)                                          \
    do {                                                               \
        int rc_ = reserve((p), (need));                                \
        if (rc_ != PETREL_OK)                                          \
            return rc_;                                                \
        struct mqtt_props_builder b_;                                  \
        mqtt_pb_init(&b_, (p)->data + (p)->len, (p)->cap - (p)->len);  \
        call;                                                          \
        if (b_.overflow)                                               \
            return PETREL_EINVAL;                                      \
        (p)->len += b_.len;                                            \
    } while (0)

int petrel_properties_add_int(petrel_properties *p, int id, uint32_t value)
{
    int rc = can_add(p, id, MQTT_PT_BYTE, MQTT_PT_U16);
    if (rc != PETREL_OK && (rc = can_add(p, id, MQTT_PT_U32, MQTT_PT_VARINT)) != PETREL_OK)
        return rc;
    switch (mqtt_prop_type((uint8_t)id)) {
    case MQTT_PT_BYTE:
        if (value > 1) /* every byte property of MQTT 5.0 is 0 or 1 */
            return PETREL_EINVAL;
        break;
    case MQTT_PT_U16:
        if (value > 65535 || (value == 0 && id != MQTT_PROP_TOPIC_ALIAS_MAXIMUM &&
                              id != MQTT_PROP_SERVER_KEEP_ALIVE))
            return PETREL_EINVAL;
        break;
    case MQTT_PT_VARINT:
        if (value == 0 || value > MQTT_MAX_REMAINING_LENGTH)
            return PETREL_EINVAL;
        break;
    default:
        if (value == 0 && id == MQTT_PROP_MAXIMUM_PACKET_SIZE)
            return PETREL_EINVAL;
        break;
    }
    APPEND(p, 5, mqtt_pb_num(&b_, (uint8_t)id, value));
    return PETREL_OK;
}

int petrel_properties_add_binary(petrel_properties *p, int id, const void *data, size_t len)
{
    int rc = can_add(p, id, MQTT_PT_BINARY, MQTT_PT_UTF8);
    if (rc != PETREL_OK)
        return rc;
    if (len > 65535 || (!data && len))
        return PETREL_EINVAL;
    if (mqtt_prop_type((uint8_t)id) == MQTT_PT_UTF8 && !mqtt_utf8_valid(data, len))
        return PETREL_EINVAL;
    if (id == MQTT_PROP_RESPONSE_TOPIC && !mqtt_topic_name_valid(data, len))
        return PETREL_EINVAL;
    APPEND(p, 3 + len, mqtt_pb_bytes(&b_, (uint8_t)id, data ? data : "", len));
    return PETREL_OK;
}

int petrel_properties_add_string(petrel_properties *p, int id, const char *value)
{
    if (!value)
        return PETREL_EINVAL;
    return petrel_properties_add_binary(p, id, value, strlen(value));
}

int petrel_properties_add_user(petrel_properties *p, const char *name, const char *value)
{
    int rc = can_add(p, MQTT_PROP_USER_PROPERTY, MQTT_PT_PAIR, MQTT_PT_PAIR);
    if (rc != PETREL_OK)
        return rc;
    if (!name || !value)
        return PETREL_EINVAL;
    size_t kn = strlen(name), vn = strlen(value);
    if (kn > 65535 || vn > 65535 || !mqtt_utf8_valid((const uint8_t *)name, kn) ||
        !mqtt_utf8_valid((const uint8_t *)value, vn))
        return PETREL_EINVAL;
    APPEND(p, 5 + kn + vn, mqtt_pb_pair(&b_, MQTT_PROP_USER_PROPERTY, name, kn, value, vn));
    return PETREL_OK;
}

/* The first property `id` in p, and the type that identifier has. */
static bool props_lookup(const petrel_properties *p, int id, struct mqtt_prop *pr,
                         enum mqtt_prop_type *type)
{
    if (!p || id < 1 || id > 0xFF)
        return false;
    struct mqtt_props mp = props_wire(p);
    if (!mqtt_props_find(&mp, (uint8_t)id, pr))
        return false;
    *type = mqtt_prop_type((uint8_t)id);
    return true;
}

bool petrel_properties_get_int(const petrel_properties *p, int id, uint32_t *value)
{
    struct mqtt_prop pr;
    enum mqtt_prop_type t;
    if (!props_lookup(p, id, &pr, &t))
        return false;
    if (t != MQTT_PT_BYTE && t != MQTT_PT_U16 && t != MQTT_PT_U32 && t != MQTT_PT_VARINT)
        return false;
    if (value)
        *value = pr.num;
    return true;
}

bool petrel_properties_get_bytes(const petrel_properties *p, int id, const void **data,
                                 size_t *len)
{
    struct mqtt_prop pr;
    enum mqtt_prop_type t;
    if (!props_lookup(p, id, &pr, &t))
        return false;
    if (t != MQTT_PT_UTF8 && t != MQTT_PT_BINARY && t != MQTT_PT_PAIR)
        return false;
    if (data)
        *data = pr.str.len ? (const void *)pr.str.data : (const void *)"";
    if (len)
        *len = pr.str.len;
    return true;
}

size_t petrel_properties_count(const petrel_properties *p, int id)
{
    if (!p)
        return 0;
    struct mqtt_props mp = props_wire(p);
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    size_t n = 0;
    mqtt_prop_iter_init(&it, &mp);
    while (mqtt_prop_next(&it, &pr))
        n += pr.id == id;
    return n;
}

bool petrel_properties_next(const petrel_properties *p, size_t *cursor, petrel_property *out)
{
    if (!p || !cursor || !out || *cursor >= p->len)
        return false;
    struct mqtt_props rest = {p->data + *cursor, (uint32_t)(p->len - *cursor)};
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, &rest);
    if (!mqtt_prop_next(&it, &pr))
        return false;
    *cursor = (size_t)(it.pos - p->data);
    out->id = pr.id;
    out->value = pr.num;
    out->data = pr.str.len ? (const void *)pr.str.data : (const void *)"";
    out->len = pr.str.len;
    out->value_data = pr.value.len ? (const void *)pr.value.data : (const void *)"";
    out->value_len = pr.value.len;
    return true;
}

const char *petrel_reason_string(int reason_code)
{
    if (reason_code < 0 || reason_code > 0xFF)
        return "unknown reason code";
    return mqtt_reason_str((uint8_t)reason_code);
}

/* Which properties a client may send where (MQTT 5.0 section 2.2.2.2).
 * Authentication is refused everywhere: the library has no AUTH exchange,
 * and Topic Alias on PUBLISH is left out because the client does not manage
 * outgoing aliases. */
static bool allowed(uint8_t id, enum props_place place)
{
    switch (id) {
    case MQTT_PROP_USER_PROPERTY:
        return true;
    case MQTT_PROP_SESSION_EXPIRY:
    case MQTT_PROP_RECEIVE_MAXIMUM:
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
        return place == PROPS_CONNECT;
    case MQTT_PROP_WILL_DELAY:
        return place == PROPS_WILL;
    case MQTT_PROP_PAYLOAD_FORMAT:
    case MQTT_PROP_MESSAGE_EXPIRY:
    case MQTT_PROP_CONTENT_TYPE:
    case MQTT_PROP_RESPONSE_TOPIC:
    case MQTT_PROP_CORRELATION_DATA:
        return place == PROPS_WILL || place == PROPS_PUBLISH;
    case MQTT_PROP_SUBSCRIPTION_ID:
        return place == PROPS_SUBSCRIBE;
    default:
        return false;
    }
}

int props_check(const petrel_properties *p, enum props_place place)
{
    if (!p)
        return PETREL_OK;
    struct mqtt_props mp = props_wire(p);
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    size_t seen = 0;
    mqtt_prop_iter_init(&it, &mp);
    while (mqtt_prop_next(&it, &pr)) {
        if (!allowed(pr.id, place))
            return PETREL_EINVAL;
        /* One subscription identifier per SUBSCRIBE (3.8.2.1.2). */
        if (pr.id == MQTT_PROP_SUBSCRIPTION_ID && ++seen > 1)
            return PETREL_EINVAL;
    }
    /* The iterator stops early only at bytes that are not a property,
     * which the adders never write. */
    return it.pos == it.end ? PETREL_OK : PETREL_EINVAL;
}

int props_set_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len)
{
    uint8_t *d = NULL;
    if (len) {
        d = malloc(len);
        if (!d)
            return PETREL_ENOMEM;
        memcpy(d, src, len);
    }
    free(*dst);
    *dst = d;
    *dst_len = len;
    return PETREL_OK;
}
