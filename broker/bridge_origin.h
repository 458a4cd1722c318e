/*
 * bridge_origin.h - what marks the bridges' traffic, for the layers below
 * the bridges (the CONNECT and PUBLISH handlers) as for the bridges
 * themselves: the client ids of their local sessions, and the origin mark
 * of the messages they forward.  A leaf: it knows no bridge.
 */
#ifndef PETREL_BRIDGE_ORIGIN_H
#define PETREL_BRIDGE_ORIGIN_H

#include <stdbool.h>

/* The client id prefix reserved for the bridges' local sessions. */
#define BRIDGE_CLIENT_ID_PREFIX "$bridge/"

/* Loop prevention between brokers that bridge to each other (each with
 * its own bridge, where No Local cannot help): a message a bridge sends to
 * a 5.0 remote carries the user property BRIDGE_ORIGIN_PROP naming the
 * broker it was first published on (kept as it crosses more bridges) and
 * BRIDGE_HOPS_PROP, the bridges crossed; past BRIDGE_MAX_HOPS it is not
 * forwarded again. */
#define BRIDGE_ORIGIN_PROP "petrel-origin"
#define BRIDGE_HOPS_PROP "petrel-hops"
#define BRIDGE_MAX_HOPS 8
struct mqtt_props;
/* This broker's name in BRIDGE_ORIGIN_PROP: a hash of the node name (or
 * host name) and the data directory, the same across restarts. */
const char *bridge_origin_id(void);
/* Whether a 5.0 PUBLISH carries this broker's own origin: it went out over
 * a bridge and came back over another.  The broker acknowledges and drops
 * it (protocol_publish.c). */
bool bridge_came_back(const struct mqtt_props *props);

#endif
