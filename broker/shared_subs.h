/*
 * shared_subs.h - shared subscriptions, "$share/{group}/{filter}" (MQTT 5.0
 * section 4.8.2), for 3.1.1 and 5.0 clients alike.
 *
 * Sessions that subscribe with the same share name and the same filter form
 * a group; the group, not each member, is the subscriber in the topic tree
 * (marked by SHARE_TREE_FLAG in its options).  What Petrel does:
 *
 *  - Share names: "$share/" + a group name of at least one character without
 *    '/', '+' or '#' + "/" + a valid topic filter.  Anything else that starts
 *    with "$share/" is refused (SUBACK 0x80 in 3.1.1, 0x8F in 5.0).  A filter
 *    "$share" or "$sharefoo/x" is an ordinary filter.
 *  - One delivery per group per message, cluster-wide in a cluster (the
 *    cluster picks the node, cluster_share.c; the node picks the member).  The member is chosen round-robin
 *    over the group, in the order the members joined: first among members
 *    that are connected (and allowed to read the topic by the ACL); if none
 *    is connected, a QoS 1/2 message (at its effective QoS) is queued on a
 *    persistent member's session, also round-robin, and is sent when that
 *    member returns.  With no such member the message is dropped for that
 *    group and counted ($SYS/broker/shared/dropped); QoS 0 to a group with no
 *    connected member is dropped silently, as for any offline subscriber.
 *  - Each member receives at min(published QoS, its own granted QoS).
 *  - Retained messages are not sent on subscribing to a shared subscription.
 *  - ACL: subscribing checks the filter without "$share/{group}/"; so does
 *    reading, per member.
 *  - Handoff: when a session ends (clean session closing, takeover with
 *    clean session, 5.0 DISCONNECT with expiry 0, expiry, or expiry while
 *    petreld was stopped, found at load) while it holds shared QoS 1/2
 *    messages that are queued or sent and unacknowledged (QoS 2 before
 *    PUBREC), in memory or only in the store, each goes, in order, to
 *    another member of its group by the rules above (connected first),
 *    counted in $SYS/broker/shared/redistributed; one that nobody can take
 *    is dropped and counted.  The move and the session's removal are one
 *    store transaction.  The other member may then see a message the first
 *    one also received but did not acknowledge: at least once.
 *  - A persistent member that goes offline (not a takeover) while another
 *    member is connected hands its never-sent shared messages to connected
 *    members; what it was sent stays with it, and without a connected
 *    member it keeps everything until it returns.
 *  - A session that also has a non-shared subscription matching the topic
 *    receives that copy too (the spec's "second copy").
 *  - Persistent sessions store the full "$share/..." filter like any other;
 *    restoring it rebuilds the group.
 */
#ifndef PETREL_SHARED_SUBS_H
#define PETREL_SHARED_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct session;
struct share_group;

/* Bit in the topic tree's options that marks a group (not a session) as the
 * subscriber.  MQTT 5.0 subscription options use bits 0-5 only. */
#define SHARE_TREE_FLAG 0x80

/* Splits a filter.  Returns 0 if it is not a shared subscription (does not
 * start with "$share/"), 1 if it is a well-formed one (the topic filter
 * proper starts at offset *inner), -1 if it starts with "$share/" but the
 * share name or the filter after it is missing or contains a wildcard.  The
 * wildcard syntax of the filter proper is not checked here. */
int share_parse(const char *filter, size_t len, size_t *inner);

/* Joins session s to the group of the shared filter `full` (well-formed:
 * share_parse() == 1) with its subscription `options` (granted QoS in bits
 * 0-1).  Sets *group.  Returns 1 if s joined, 0 if it was a member already
 * (options replaced), -1 when out of memory. */
int share_join(struct session *s, const char *full, size_t len, uint8_t options,
               struct share_group **group);
/* Removes s from the group; the last member to leave frees the group. */
void share_leave(struct session *s, struct share_group *g);

/* Told when a group is made on this node (on) or its last member left
 * (off): the cluster follows the groups so (cluster_share.c registers it at
 * its start; none alone).  `key` is "$share/GROUP/filter", the filter from
 * `inner`. */
void share_set_watch(void (*watch)(const char *key, size_t len, size_t inner, bool on));

/* Calls cb for every group on this node: its "$share/GROUP/filter" key and
 * where the filter starts in it. */
void share_foreach_group(void (*cb)(const char *key, size_t len, size_t inner));
/* The group of "$share/GROUP/filter" on this node, or NULL. */
struct share_group *share_find(const char *full, size_t len);

/* Routes msg to one member of g (see above).  No local does not apply:
 * MQTT 5.0 forbids it on shared subscriptions. */
void share_route(struct share_group *g, struct message *msg);

/* Hands the shared messages that session s holds (in memory and in the
 * store, queued or in flight before PUBREC) to other members of their
 * groups, connected first.  Called before a session is destroyed. */
void share_handoff(struct session *s);
/* Hands the never-sent shared messages of persistent session s, which has
 * just gone offline, to connected members of their groups; what no
 * connected member can take stays with s.  Called from session_detach. */
void share_release_queued(struct session *s);

#endif
