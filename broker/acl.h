/*
 * acl.h - the ACL file and the decisions it makes: may this client publish
 * to a topic, subscribe to a filter, receive a message.
 *
 * The file is Mosquitto's format, so operators know it:
 *
 *   # comment
 *   topic read public/#          rules before any `user` line apply to
 *                                anonymous clients (no user name)
 *   user alice                   starts alice's section
 *   topic readwrite alice/#      rules for alice
 *   topic deny alice/secret/#
 *   pattern write devices/%c/#   for every client; %c = client id,
 *   pattern read users/%u/#        %u = user name
 *
 * Access words: read, write, readwrite, subscribe, deny; without one a rule
 * is readwrite.  The filter is the rest of the line, with MQTT wildcards.
 *
 *   topic share team-a           may join shared subscription groups
 *   pattern share %u-*             ($share/NAME/...) named team-a, or
 *                                  starting with the user name and '-'
 *
 * `share` rules govern shared subscription groups once the file has one:
 * then "$share/NAME/F" needs a share rule naming NAME (exactly, or as a
 * prefix before a final '*'; "*" names every group) besides the
 * subscribe check of F.  A file without share rules leaves every group
 * open.  A client id or user name holding '*' or a blank grants nothing
 * through a share pattern.
 *
 * Decisions (order in the file does not matter):
 *   - A client's rules are those of its user section (or the anonymous
 *     rules when it has no user name) plus every pattern.
 *   - deny wins: a topic matched by any applicable deny rule is neither
 *     published to nor received, whatever other rules say.
 *   - PUBLISH to T needs a write or readwrite rule matching T.
 *   - Receiving a message on T needs a read or readwrite rule matching T.
 *   - SUBSCRIBE to filter F needs a read, readwrite or subscribe rule whose
 *     filter covers F (every topic F matches, the rule matches too), and no
 *     deny rule covering F.  So read implies subscribe within its filter;
 *     `subscribe` alone grants the subscription but not the messages: each
 *     one still needs a read rule matching its topic.
 *   - As in MQTT matching, a filter starting with a wildcard does not match
 *     topics starting with '$': `$SYS/#` needs its own rule.
 *   - Patterns: a client id or user name containing '+', '#' or '/' could
 *     widen a pattern (client "+" and `devices/%c/#`).  For such a client a
 *     pattern naming it grants nothing, and a deny pattern naming it denies
 *     everything.  A pattern with %u does not apply to anonymous clients.
 */
#ifndef PETREL_ACL_H
#define PETREL_ACL_H

#include <stdbool.h>
#include <stddef.h>

enum acl_access {
    ACL_READ = 1,
    ACL_WRITE = 2,
    ACL_SUBSCRIBE = 4,
    ACL_DENY = 8,
    ACL_SHARE = 16      /* a `share` rule: its "filter" is a share name */
};

struct acl_file;
struct acl_client;

/* Parses an ACL file.  Returns it, or NULL with "path:line: reason" (or
 * "path: reason") in err. */
struct acl_file *acl_file_load(const char *path, char *err, size_t errlen);
void acl_file_free(struct acl_file *f);
/* Rules in the file (user, anonymous and pattern), for the log. */
size_t acl_file_rule_count(const struct acl_file *f);
/* Number of `user` sections. */
size_t acl_file_user_count(const struct acl_file *f);
/* True if the file has `share` rules: then joining a shared subscription
 * group needs one; without any, every group is open (as before they
 * existed). */
bool acl_file_governs_shares(const struct acl_file *f);

/* The rules that apply to one client, with patterns substituted.  username
 * NULL = anonymous.  Returns NULL when out of memory. */
struct acl_client *acl_client_compile(const struct acl_file *f, const char *username,
                                      size_t ulen, const char *client_id, size_t idlen);
void acl_client_free(struct acl_client *c);

/* May the client publish to (ACL_WRITE) or receive from (ACL_READ) the
 * topic name `topic`? */
bool acl_client_may(const struct acl_client *c, enum acl_access access, const char *topic,
                    size_t len);
/* May the client subscribe to `filter`? */
bool acl_client_may_subscribe(const struct acl_client *c, const char *filter, size_t len);
/* May the client join the shared subscription group `name` (the share
 * name of "$share/name/filter")?  Only `share` rules grant it. */
bool acl_client_may_share(const struct acl_client *c, const char *name, size_t len);
/* True if every topic `filter` matches may be read: then a subscription to
 * it needs no check per message. */
bool acl_client_covers_read(const struct acl_client *c, const char *filter, size_t len);

/* Filter algebra, exposed for the unit tests.  Both follow MQTT matching
 * (mqtt_topic_matches in the codec), '$' rule included. */
/* Every topic matched by `inner` is matched by `outer`. */
bool acl_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen);
/* Some topic is matched by both. */
bool acl_filter_intersects(const char *a, size_t alen, const char *b, size_t blen);

#endif
