/*
 * packet_ids.c - bitmap sets of packet identifiers; identifier 0 is never a
 * member (MQTT reserves it).
 */
#include "packet_ids.h"

#include <string.h>

void packet_ids_init(struct packet_ids *p)
{
    memset(p->bits, 0, sizeof p->bits);
    p->next = 1;
    p->count = 0;
}

bool packet_ids_has(const struct packet_ids *p, uint16_t id)
{
    return id != 0 && (p->bits[id >> 3] & (1u << (id & 7)));
}

bool packet_ids_add(struct packet_ids *p, uint16_t id)
{
    if (id == 0 || packet_ids_has(p, id))
        return false;
    p->bits[id >> 3] |= (uint8_t)(1u << (id & 7));
    p->count++;
    return true;
}

bool packet_ids_remove(struct packet_ids *p, uint16_t id)
{
    if (!packet_ids_has(p, id))
        return false;
    p->bits[id >> 3] &= (uint8_t)~(1u << (id & 7));
    p->count--;
    return true;
}

uint16_t packet_ids_alloc(struct packet_ids *p)
{
    if (p->count >= 65535)
        return 0;
    uint16_t id = p->next ? p->next : 1;
    while (packet_ids_has(p, id))
        id = (uint16_t)(id == 65535 ? 1 : id + 1);
    packet_ids_add(p, id);
    p->next = (uint16_t)(id == 65535 ? 1 : id + 1);
    return id;
}
