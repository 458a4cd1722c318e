/*
 * topic_tree.h - the broker's topic tree: subscriptions and retained messages.
 *
 * Topics are split on '/' into levels; each level is a node.  A node holds
 * the subscriptions whose filter ends there and the retained message whose
 * topic ends there.  Matching follows MQTT rules: '+' matches exactly one
 * level, '#' the parent level and everything below it, and a filter that
 * starts with a wildcard does not match a topic that starts with '$'.
 * Nodes that hold nothing are freed, so memory follows what is stored.
 *
 * The tree does not know what a subscriber or a retained value is: both are
 * opaque pointers owned by the caller.  The tree never frees them.
 */
#ifndef PETREL_TOPIC_TREE_H
#define PETREL_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct topic_tree;

/* Called once per subscription that matches a topic.  `options` is what was
 * given to topic_tree_subscribe.  A subscriber with several overlapping
 * filters is reported once per matching filter: callers deduplicate. */
typedef void (*topic_match_cb)(void *subscriber, uint8_t options, void *arg);

/* Called once per retained value whose topic matches a filter.  `topic` is
 * the full topic name of that value (NOT NUL-terminated). */
typedef void (*topic_retained_cb)(void *value, const char *topic, size_t topic_len, void *arg);

/* Called when a filter gets its first subscriber (on = true) and when it
 * loses its last (false): the cluster's interest in that filter. */
typedef void (*topic_interest_cb)(const char *filter, size_t len, bool on, void *arg);

struct topic_tree *topic_tree_new(void);
/* Sets the interest callback (NULL: none, the default). */
void topic_tree_set_interest_cb(struct topic_tree *t, topic_interest_cb cb, void *arg);
/* Frees the tree's own memory; subscribers and values are not touched. */
void topic_tree_free(struct topic_tree *t);

/* Adds the subscription (filter, subscriber) or, if that pair exists,
 * replaces its options.  The filter must be valid (mqtt_topic_filter_valid).
 * Returns 1 if added, 0 if replaced, -1 if out of memory. */
int topic_tree_subscribe(struct topic_tree *t, const char *filter, size_t len,
                         void *subscriber, uint8_t options);

/* Removes the subscription (filter, subscriber).  Returns 1 if it existed,
 * 0 if not. */
int topic_tree_unsubscribe(struct topic_tree *t, const char *filter, size_t len,
                           void *subscriber);

/* Reports every subscription matching the topic name `topic`. */
void topic_tree_match(const struct topic_tree *t, const char *topic, size_t len,
                      topic_match_cb cb, void *arg);

/* Sets the retained value of topic name `topic` (NULL clears it) and returns
 * the previous value (NULL if none) for the caller to release.  On out of
 * memory returns `value` itself and stores nothing. */
void *topic_tree_set_retained(struct topic_tree *t, const char *topic, size_t len, void *value);

/* Returns the retained value of exactly `topic`, or NULL. */
void *topic_tree_get_retained(const struct topic_tree *t, const char *topic, size_t len);

/* Reports every retained value whose topic matches the filter `filter`. */
void topic_tree_match_retained(const struct topic_tree *t, const char *filter, size_t len,
                               topic_retained_cb cb, void *arg);

/* Reports every retained value, '$' topics included (e.g. to release them
 * all at shutdown).  cb must not modify the tree. */
void topic_tree_foreach_retained(const struct topic_tree *t, topic_retained_cb cb, void *arg);

/* Number of (filter, subscriber) pairs and of retained values stored. */
size_t topic_tree_subscription_count(const struct topic_tree *t);
size_t topic_tree_retained_count(const struct topic_tree *t);

#endif
