/*
 * acl_session.h - the ACL in force and what each session may do under it.
 *
 * A session carries the identity (user name or anonymous) it connected
 * with and, lazily, its rules compiled from the ACL (acl.h): patterns are
 * substituted once per session, not once per message.  Reading is checked
 * on every delivery (router.c), so it is cached further: when every
 * subscription of the session lies wholly inside its read rules and away
 * from every deny rule, no message it can match needs a check at all.  The
 * cache is dropped when the ACL is reloaded or the subscriptions change.
 *
 * Without an ACL file everything is allowed and none of this costs more
 * than one test per call.
 */
#ifndef PETREL_ACL_SESSION_H
#define PETREL_ACL_SESSION_H

#include <stdbool.h>
#include <stddef.h>

struct acl_file;
struct message;
struct session;

/* Puts an ACL in force (taking ownership; NULL = none, everything allowed)
 * and frees the previous one.  Sessions recompile their rules lazily. */
void acl_set(struct acl_file *f);
bool acl_enabled(void);
/* The ACL in force, NULL if none. */
const struct acl_file *acl_current(void);

/* Records who the session's client is (user NULL = anonymous).  Returns 0,
 * or -1 when out of memory. */
int acl_session_identify(struct session *s, const char *user, size_t ulen);
/* True if the session's recorded identity is `user` (NULL = anonymous), or
 * if it has none recorded (a session restored from the store). */
bool acl_session_same_user(const struct session *s, const char *user, size_t ulen);
/* The recorded identity: false if none is recorded; else true with *user
 * (NULL = anonymous, not NUL-terminated) and *ulen.  For the store. */
bool acl_session_user(const struct session *s, const char **user, size_t *ulen);
/* Frees what the session holds here (called when the session is freed). */
void acl_session_free(struct session *s);
/* The session's subscriptions changed: drop its read cache. */
void acl_session_subs_changed(struct session *s);

/* May a client that has no session yet publish to `topic` (its will, at
 * CONNECT)?  user NULL = anonymous. */
bool acl_may_publish_as(const char *user, size_t ulen, const char *client_id, size_t idlen,
                        const char *topic, size_t len);
bool acl_may_publish(struct session *s, const char *topic, size_t len);
/* May the session's will be published now, under the rules in force (they
 * may have been reloaded since CONNECT)?  Checked wherever a will goes
 * out; a denied one is counted and logged here, and must be dropped. */
bool acl_may_publish_will(struct session *s, const struct message *will);
bool acl_may_subscribe(struct session *s, const char *filter, size_t len);
/* May the session join the group of the shared filter `filter` (well
 * formed, filter proper at `inner`)?  True unless the ACL in force has
 * `share` rules and none of the session's names the group (acl.h). */
bool acl_may_share(struct session *s, const char *filter, size_t inner);
/* May a message on `topic` be delivered to the session?  A session whose
 * identity is not known (restored from the store after a restart and not
 * reconnected since) is let through: its queue is kept for the owner it had
 * when it subscribed. */
bool acl_may_read(struct session *s, const char *topic, size_t len);
/* True if every topic matched by `filter` may be read (the retained
 * messages of a new subscription then need no check each). */
bool acl_may_read_all(struct session *s, const char *filter, size_t len);

#endif
