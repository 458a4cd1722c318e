/*
 * bridge_origin.c - what marks the bridges' traffic (bridge_origin.h):
 * this broker's origin id and whether a message carries it.
 */
#include "bridge_origin.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "mqtt_codec.h"

const char *bridge_origin_id(void)
{
    static char id[17];
    if (id[0])
        return id;
    char host[256] = "";
    if (broker.cfg.node_name[0])
        snprintf(host, sizeof host, "%s", broker.cfg.node_name);
    else if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    char dir[4096];
    if (!realpath(broker.cfg.data_dir, dir))
        snprintf(dir, sizeof dir, "%s", broker.cfg.data_dir);
    /* FNV-1a: a name, not a secret. */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = host; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ ':') * 1099511628211ull;
    for (const char *p = dir; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    snprintf(id, sizeof id, "%016llx", (unsigned long long)h);
    return id;
}

bool bridge_came_back(const struct mqtt_props *props)
{
    if (props->len == 0)
        return false;
    const char *id = bridge_origin_id();
    size_t klen = strlen(BRIDGE_ORIGIN_PROP), idlen = strlen(id);
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    mqtt_prop_iter_init(&it, props);
    while (mqtt_prop_next(&it, &pr))
        if (pr.id == MQTT_PROP_USER_PROPERTY && pr.str.len == klen &&
            memcmp(pr.str.data, BRIDGE_ORIGIN_PROP, klen) == 0)
            return pr.value.len == idlen && memcmp(pr.value.data, id, idlen) == 0;
    return false;
}
