/*
 * http_tokens.h - the admin API's bearer tokens (`http_token_file`): one
 * "NAME ROLE TOKEN" line each, ROLE `read` or `admin`, blank lines and
 * '#' comments allowed.  The table in force is replaced whole on SIGHUP
 * (read off the loop, with the password file: reload_files.h); a file
 * that fails to load leaves the old table in force.
 */
#ifndef PETREL_HTTP_TOKENS_H
#define PETREL_HTTP_TOKENS_H

#include <stddef.h>
#include <stdint.h>

struct http_tokens;

/* Tokens shorter than this are refused when the file is read: a guessable
 * token is no protection. */
#define HTTP_TOKEN_MIN 16
#define HTTP_TOKEN_MAX 256
#define HTTP_TOKEN_NAME_MAX 64

/* Reads a token file (any thread).  Returns the table, or NULL with
 * "path:line: why" in err. */
struct http_tokens *http_tokens_load(const char *path, char *err, size_t errlen);
void http_tokens_free(struct http_tokens *t);
size_t http_tokens_count(const struct http_tokens *t);

/* Puts `t` in force (NULL: no tokens) and frees the table it replaces. */
void http_tokens_set(struct http_tokens *t);

/* The role (enum http_role) of token[0..len), HTTP_ROLE_NONE if it is none
 * of the table's; *name then points at the token's NAME, valid until the
 * table is replaced.  Every token of the table is compared in constant
 * time, so the time taken says nothing about how much of it matched. */
uint8_t http_tokens_check(const char *token, size_t len, const char **name);

#endif
