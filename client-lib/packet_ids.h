/*
 * packet_ids.h - sets of MQTT packet identifiers (1..65535) as bitmaps:
 * the identifiers this client has in use for its own packets, and those of
 * incoming QoS 2 messages already delivered but not yet released.
 */
#ifndef PETREL_PACKET_IDS_H
#define PETREL_PACKET_IDS_H

#include <stdbool.h>
#include <stdint.h>

struct packet_ids {
    uint8_t bits[65536 / 8];
    uint16_t next;      /* where the search for a free identifier starts */
    uint32_t count;     /* identifiers in the set */
};

void packet_ids_init(struct packet_ids *p);
/* Takes the next free identifier after the last one handed out (so
 * identifiers are not reused at once) and adds it to the set.  Returns 0
 * when all 65535 are in use. */
uint16_t packet_ids_alloc(struct packet_ids *p);
/* Adds `id`; returns false if it was already there. */
bool packet_ids_add(struct packet_ids *p, uint16_t id);
/* Removes `id`; returns false if it was not there. */
bool packet_ids_remove(struct packet_ids *p, uint16_t id);
bool packet_ids_has(const struct packet_ids *p, uint16_t id);

#endif
