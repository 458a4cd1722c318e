/*
 * auth.h - the password file: who may log in with which password.
 *
 * The file has one "user:hash" line per user (hash as in password_hash.h,
 * written by `petrel passwd`); blank lines and lines starting with '#' are
 * ignored.  A file is loaded whole or not at all, so a broken file on
 * SIGHUP leaves the users in force as they were.  Passwords themselves are
 * never stored, logged or kept after a verification.
 */
#ifndef PETREL_AUTH_H
#define PETREL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth_table;

/* Parses a password file.  Returns the table, or NULL with
 * "path:line: reason" (or "path: reason") in err. */
struct auth_table *auth_table_load(const char *path, char *err, size_t errlen);
void auth_table_free(struct auth_table *t);
/* The hash of `user`, or NULL.  Valid as long as the table. */
const char *auth_table_lookup(const struct auth_table *t, const char *user, size_t len);
size_t auth_table_count(const struct auth_table *t);

/* The table in force (NULL: no password file, every client is anonymous).
 * auth_set takes ownership and frees the previous one. */
void auth_set(struct auth_table *t);
const struct auth_table *auth_current(void);

#endif
