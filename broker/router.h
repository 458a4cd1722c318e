/*
 * router.h - where a published message goes: the retained store (retain.h)
 * and every session whose subscriptions match its topic, each once, at
 * min(published QoS, highest granted QoS).
 */
#ifndef PETREL_ROUTER_H
#define PETREL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct session;

/* Routes a message published by a client (or a will, or $SYS), here and,
 * in a cluster, on the other nodes (cluster.h).  When
 * msg->retain is set the retained value of the topic is replaced, or cleared
 * by an empty payload.  Subscribers receive it with retain = 0 (it matches an
 * established subscription), unless a matching MQTT 5.0 subscription asked
 * for Retain As Published.  `origin` is the publishing client's session,
 * for No Local; NULL for wills and $SYS.  Each share group reached
 * delivers it to one member (shared_subs.h). */
void router_publish(struct message *msg, const struct session *origin);

/* What routing did with a QoS 1/2 message, for the MQTT 5.0 publisher's
 * acknowledgement: queues that took it, and queues that refused it at
 * their bound (queue_full_policy drop-new, or an offline session). */
struct route_result {
    uint32_t taken;
    uint32_t refused;
};
/* router_publish, counting into *res. */
void router_publish_counted(struct message *msg, const struct session *origin,
                            struct route_result *res);

/* Routes a message that another node of the cluster received (cluster.c):
 * as router_publish, with no origin, and not sent back to the cluster. */
void router_publish_from_cluster(struct message *msg);

/* What a cluster adds to routing (cluster.c registers them at its start;
 * alone there are none and routing is this node's own).  The router names
 * no cluster function, so the cluster stands above it in the layers.
 * `forward` sends a message published here to the other nodes and returns
 * < 0 when it was kept on this node (the outbox was full); `share_here`
 * says whether this node delivers m to its own share groups itself
 * (kept_local: forward returned < 0). */
struct router_cluster {
    int (*forward)(const struct message *m);
    bool (*share_here)(const struct message *m, bool kept_local);
    /* A session took m (QoS 1/2, m->xid set): cluster_session.c keeps the
     * ids of what reached a session being moved between nodes. */
    void (*delivered)(struct session *s, const struct message *m);
};
void router_set_cluster(const struct router_cluster *c);

/* Releases the routing scratch (shutdown). */
void router_shutdown(void);

#endif
