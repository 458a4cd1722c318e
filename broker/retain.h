/*
 * retain.h - the retained messages (retain.c): one per topic, the last
 * message published to it with the retain flag, kept in the topic tree and
 * the store.  max_retained_messages and max_retained_bytes bound what
 * clients make the broker keep; the broker's own $SYS values do not count.
 */
#ifndef PETREL_RETAIN_H
#define PETREL_RETAIN_H

#include <stddef.h>

struct message;
struct session;

/* Makes msg (retain flag set) the retained value of its topic, or clears
 * the topic's value when the payload is empty.  A message over the limits
 * is not kept (counted and logged; the topic keeps what it had).  Called
 * by router_publish before the message is routed. */
void retain_set(struct message *msg);

/* The retained messages matching `filter` that session s may read, for a
 * subscription it has just made: an array of *n messages, each with a
 * reference the caller drops, to send a few at a time with retain = 1.
 * NULL (and *n = 0) when there are none, or out of memory (logged). */
struct message **retain_collect(struct session *s, const char *filter, size_t len, size_t *n);

/* Counts the retained messages in the tree towards max_retained_messages
 * and max_retained_bytes (after the store has loaded them). */
void retain_recount(void);

/* Drops the tree's references to the retained messages (shutdown, before
 * the tree is freed). */
void retain_free_all(void);

#endif
