/*
 * password_hash.h - the password hashes of the password file, shared by
 * petreld (verification) and `petrel passwd` (creation).
 *
 * A hash is "$pbkdf2-sha512$ITERATIONS$SALT$HASH": PBKDF2-HMAC-SHA512 from
 * OpenSSL over a random 16-byte salt, SALT and HASH (64 bytes) in standard
 * base64.  The iteration count travels with each hash, so raising the
 * default later does not invalidate existing entries.  Nothing here logs,
 * and password copies are wiped after use.
 */
#ifndef PETREL_PASSWORD_HASH_H
#define PETREL_PASSWORD_HASH_H

#include <stddef.h>

#define PW_HASH_PREFIX "$pbkdf2-sha512$"
/* About 0.1 s per verification on a 2020s server core: OWASP's 2023 figure
 * for PBKDF2-HMAC-SHA512. */
#define PW_HASH_DEFAULT_ITERATIONS 210000u
#define PW_HASH_MIN_ITERATIONS 1000u
#define PW_HASH_MAX_ITERATIONS 100000000u
/* Longest encoded hash, NUL included. */
#define PW_HASH_MAX_LEN 160

/* Hashes `password` with a fresh random salt into `out` (at least
 * PW_HASH_MAX_LEN bytes).  Returns 0, or -1 (no randomness, bad iteration
 * count, OpenSSL failure). */
int pw_hash_make(const void *password, size_t len, unsigned iterations, char *out, size_t outlen);

/* Checks that `encoded` is a well-formed hash.  Returns 0, or -1 with the
 * reason in why. */
int pw_hash_parse_check(const char *encoded, char *why, size_t whylen);

/* Returns 1 if `password` matches `encoded` (compared in constant time),
 * 0 if not, -1 if `encoded` is malformed or OpenSSL fails.  Takes
 * ITERATIONS rounds of SHA-512: run it off the event loop. */
int pw_hash_verify(const char *encoded, const void *password, size_t len);

#endif
