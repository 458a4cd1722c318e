/*
 * login_throttle.h - failed logins throttled per source address and per
 * user name, so that a flood of wrong passwords cannot take the password
 * checkers from everyone else.  Each source address and each user name has
 * a budget of failures (max_login_failures_per_source, _per_user); one
 * failure is forgiven per LOGIN_FORGIVE_MS.  While a budget is spent,
 * logins from that address, or for that name, are refused without a
 * password check (after the usual refusal delay), so they cost no hashing.
 *
 * The tables are bounded (LOGIN_THROTTLE_SLOTS entries each, keyed with
 * SipHash, user names held as hashes only): when one is full, the entry
 * closest to forgiven gives way.
 */
#ifndef PETREL_LOGIN_THROTTLE_H
#define PETREL_LOGIN_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define LOGIN_THROTTLE_SLOTS 8192
#define LOGIN_FORGIVE_MS 1000

/* A source address: family (AF_INET, AF_INET6) and its bytes (4 or 16). */
struct login_source {
    int family;
    const uint8_t *addr;
};

enum login_verdict {
    LOGIN_CHECK = 0,        /* go on and check the password */
    LOGIN_SOURCE_THROTTLED, /* refuse unchecked: too many failures from the address */
    LOGIN_USER_THROTTLED,   /* refuse unchecked: too many failures for the user name */
};

/* A login from src for user (NULL: no user name) is about to be checked:
 * may it be?  An address or name that has failures not yet forgiven pays
 * for the check up front (bits of *charged: 1 the address, 2 the name),
 * so that a flood cannot queue more checks than its budget while the
 * first ones run.  A clean one pays only when it fails, so that many
 * good logins at once (a restart's reconnections) are never refused. */
enum login_verdict login_throttle_begin(const struct login_source *src, const char *user,
                                        size_t user_len, unsigned *charged);
/* The login checked after login_throttle_begin succeeded (`ok`: its
 * charge is refunded) or failed (wrong password, unknown user: it is
 * counted, unless it was charged already). */
void login_throttle_end(const struct login_source *src, const char *user, size_t user_len,
                        unsigned charged, int ok);

#endif
