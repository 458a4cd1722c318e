/*
 * source_limit.c - open connections counted per source address
 * (source_limit.h) in a hash map keyed by family and address bytes; the
 * count is the map's value.
 */
#include "source_limit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"
#include "hashmap.h"

static struct hashmap *counts;

/* family byte + 4 or 16 address bytes, as conn.h keeps the peer. */
static size_t make_key(uint8_t key[17], int family, const uint8_t *addr)
{
    size_t n = family == AF_INET6 ? 16 : 4;
    key[0] = (uint8_t)family;
    memcpy(key + 1, addr, n);
    return n + 1;
}

bool source_limit_admit(const struct sockaddr *sa)
{
    uint32_t max = broker.cfg.max_connections_per_source;
    if (max == 0)
        return true; /* not counted: a release of it finds nothing */
    const uint8_t *addr;
    if (sa->sa_family == AF_INET)
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return true;
    if (!counts && !(counts = hashmap_new()))
        return false; /* out of memory */
    uint8_t key[17];
    size_t len = make_key(key, sa->sa_family, addr);
    uintptr_t n = (uintptr_t)hashmap_get(counts, key, len);
    return n < max && hashmap_put(counts, key, len, (void *)(n + 1)) == 0;
}

void source_limit_release(int family, const uint8_t *addr)
{
    if (!counts || (family != AF_INET && family != AF_INET6))
        return;
    uint8_t key[17];
    size_t len = make_key(key, family, addr);
    uintptr_t n = (uintptr_t)hashmap_get(counts, key, len);
    if (n <= 1)
        hashmap_remove(counts, key, len);
    else
        hashmap_put(counts, key, len, (void *)(n - 1)); /* replaces: cannot fail */
}
