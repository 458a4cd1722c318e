/*
 * client.h - what client.c offers the rest of libpetrel beyond the public
 * API in petrel.h (used by the blocking facade in sync.c, and by tests).
 */
#ifndef PETREL_CLIENT_H
#define PETREL_CLIENT_H

#include <stdbool.h>

#include "petrel.h"

/* Stops (false) or resumes (true) reading from the server, so that a
 * consumer that falls behind pushes back on the TCP connection instead of
 * buffering without bound.  A missing PINGRESP is not held against the
 * server while reading is stopped. */
void client_set_reading(petrel_client *c, bool reading);

/* For tests: the resolver reads this file instead of /etc/resolv.conf
 * (resolver.h).  0 or PETREL_EINVAL. */
int client_set_resolv_conf(petrel_client *c, const char *path);

#endif
