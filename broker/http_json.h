/*
 * http_json.h - writing JSON into an evbuffer for the HTTP listener's
 * replies.  Strings that came from clients (ids, user names, topics) are
 * not trusted to be UTF-8: bytes that are not are replaced, so that every
 * reply is valid JSON whatever a client sent.
 */
#ifndef PETREL_HTTP_JSON_H
#define PETREL_HTTP_JSON_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* s[0..len) as a JSON string, quotes included: '"', '\' and control
 * characters escaped, invalid UTF-8 sequences written as U+FFFD. */
void json_string(struct evbuffer *b, const char *s, size_t len);
/* The same for a NUL-terminated string; NULL is written as null. */
void json_string0(struct evbuffer *b, const char *s);

#endif
