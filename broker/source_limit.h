/*
 * source_limit.h - connections per source address
 * (max_connections_per_source): one address, or one host behind it, cannot
 * take every connection slot of the broker.  Counted while a connection is
 * open, from accept to close; a table entry exists only while its address
 * has connections, so the table is bounded by max_connections.
 */
#ifndef PETREL_SOURCE_LIMIT_H
#define PETREL_SOURCE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct sockaddr;

/* A connection from sa was accepted: true (counted) if its address is
 * under max_connections_per_source, false (not counted: refuse it). */
bool source_limit_admit(const struct sockaddr *sa);
/* A connection admitted from (family, addr) closed. */
void source_limit_release(int family, const uint8_t *addr);

#endif
