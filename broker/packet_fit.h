/*
 * packet_fit.h - what an outgoing MQTT 5.0 packet may leave out to fit the
 * client's Maximum Packet Size, which the server MUST NOT exceed
 * [MQTT-3.1.2-24].  A PUBLISH is never cut: one too large is not sent at
 * all (conn.c).  Every other packet the broker sends loses, in this order
 * and only as far as needed, the properties the spec lets it omit:
 *
 *   1. Reason String    [MQTT-3.2.2-19] [MQTT-3.4.2-2] [MQTT-3.14.2-3] ...
 *   2. User Properties  [MQTT-3.2.2-20] [MQTT-3.4.2-3] [MQTT-3.14.2-4] ...
 *   3. CONNACK properties whose absence means the value they carry:
 *      Retain, Wildcard Subscription, Subscription Identifier and Shared
 *      Subscription Available = 1 (3.2.2.3.5, .11, .12, .13);
 *   4. CONNACK offers the client may do without: Topic Alias Maximum
 *      (absent: 0, it uses no alias), Maximum Packet Size (absent: none
 *      announced; the broker still enforces its own), Response Information.
 *
 * Never left out: Assigned Client Identifier, Server Keep Alive, Session
 * Expiry Interval, Receive Maximum, Maximum QoS, Server Reference and
 * authentication, without which the client would act wrongly.
 */
#ifndef PETREL_PACKET_FIT_H
#define PETREL_PACKET_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt_codec.h"

/* Room for the copy of a packet with a shorter property block. */
struct packet_fit {
    struct mqtt_packet copy;
    uint8_t stack[512];
    uint8_t *heap;          /* for a block larger than `stack` */
};

/* The packet to send in place of *p (itself, or f->copy with properties
 * left out as above) so that its encoding at level 5 is at most `max`
 * bytes; *need is set to that size.  NULL when even the packet with every
 * optional property left out is larger (or out of memory): it cannot be
 * sent.  Call packet_fit_release(f) once the packet is encoded. */
const struct mqtt_packet *packet_fit(const struct mqtt_packet *p, uint32_t max,
                                     struct packet_fit *f, size_t *need);
void packet_fit_release(struct packet_fit *f);

#endif
