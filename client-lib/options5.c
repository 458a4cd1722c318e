/*
 * options5.c - the MQTT 5.0 parts of petrel_options: CONNECT and will
 * properties, checked against what a client may send there, and their
 * deep copies.
 */
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "properties.h"

int options5_copy(struct petrel_options *dst, const struct petrel_options *src)
{
    dst->connect_props = dst->will_props = NULL;
    dst->connect_props_len = dst->will_props_len = 0;
    if (props_set_bytes(&dst->connect_props, &dst->connect_props_len, src->connect_props,
                        src->connect_props_len) != PETREL_OK ||
        props_set_bytes(&dst->will_props, &dst->will_props_len, src->will_props,
                        src->will_props_len) != PETREL_OK)
        return PETREL_ENOMEM;
    return PETREL_OK;
}

void options5_clear(struct petrel_options *o)
{
    free(o->connect_props);
    free(o->will_props);
    o->connect_props = o->will_props = NULL;
    o->connect_props_len = o->will_props_len = 0;
}

int petrel_options_set_connect_properties(petrel_options *o, const petrel_properties *props)
{
    if (!o || props_check(props, PROPS_CONNECT) != PETREL_OK)
        return PETREL_EINVAL;
    uint32_t max;
    if (petrel_properties_get_int(props, PETREL_PROP_MAXIMUM_PACKET_SIZE, &max) && max < 16)
        return PETREL_EINVAL; /* as petrel_options_set_max_packet_size */
    int rc = props_set_bytes(&o->connect_props, &o->connect_props_len,
                             props ? props->data : NULL, props ? props->len : 0);
    if (rc == PETREL_OK && petrel_properties_get_int(props, PETREL_PROP_MAXIMUM_PACKET_SIZE, &max))
        o->max_packet_size = max;
    return rc;
}

int petrel_options_set_will_properties(petrel_options *o, const petrel_properties *props)
{
    if (!o || props_check(props, PROPS_WILL) != PETREL_OK)
        return PETREL_EINVAL;
    return props_set_bytes(&o->will_props, &o->will_props_len, props ? props->data : NULL,
                           props ? props->len : 0);
}
