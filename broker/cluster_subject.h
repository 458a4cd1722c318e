/*
 * cluster_subject.h - MQTT topic names and filters as NATS subjects, and
 * back, for the cluster (cluster.c).  The mapping is the one nats-server's
 * own MQTT support uses, so that native NATS applications read and write
 * the same data, under a prefix naming the cluster:
 *
 *   MQTT            NATS (prefix "petrel")
 *   a/b             petrel.a.b
 *   a.b             petrel.a//b        ('.' is written "//")
 *   /a  a//b  a/    petrel./.a  petrel.a./.b  petrel.a./
 *                   (an empty level: '/' kept beside the '.')
 *   a/+  a/#        petrel.a.*  petrel.a.>  (and petrel.a: '#' also
 *                   matches its parent level)
 *
 * Topics with blanks (space, tab, CR, LF, FF) or DEL cannot be subjects:
 * such messages stay on their node.  Pure functions; no state.
 */
#ifndef PETREL_CLUSTER_SUBJECT_H
#define PETREL_CLUSTER_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

/* The longest subject made: a topic of 65535 bytes may double, plus the
 * prefix. */
#define CLUSTER_SUBJECT_MAX (2 * 65535 + 256)

/* Is `name` usable as the cluster's prefix (or a node name): 1 to 64
 * letters, digits, '-' and '_'? */
bool cluster_token_valid(const char *name);

/* Writes "PREFIX." and the mapped topic (or filter, when `filter`) into
 * `out` (NUL-terminated).  Returns the subject's length, or -1 if the
 * topic has a character a subject cannot hold, if a topic name holds a
 * wildcard, or if it does not fit in `cap`. */
long cluster_subject_from_topic(const char *prefix, const char *topic, size_t len, bool filter,
                                char *out, size_t cap);

/* For a filter ending in "/#" (or "#" alone) the subject of its parent
 * level, which '#' also matches in MQTT but '>' does not in NATS: "a/#" ->
 * "PREFIX.a"; "#" -> none.  Returns the length, 0 if the filter needs no
 * second subject, -1 as above. */
long cluster_subject_parent(const char *prefix, const char *filter, size_t len, char *out,
                            size_t cap);

/* The MQTT topic of a subject received from NATS: strips "PREFIX." and
 * reverses the mapping into `out` (NUL-terminated).  Returns the topic's
 * length, or -1 if the subject is not under the prefix or does not map to
 * a topic name (a wildcard, an empty result, too long). */
long cluster_topic_from_subject(const char *prefix, const char *subject, size_t len, char *out,
                                size_t cap);

#endif
