/*
 * keyed_hash.c - SipHash-1-3 (as in Redis' dict) and its random keys.  See
 * keyed_hash.h for why tables keyed by client data need it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getentropy() */
#endif

#include "keyed_hash.h"

#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);          \
        v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;                               \
        v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;                               \
        v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);          \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

uint64_t keyed_hash(const struct hash_key *k, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = k->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k->k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56;
    size_t i, tail = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; j < tail; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

void hash_key_init(struct hash_key *k)
{
    uint64_t r[2];
    if (getentropy(r, sizeof r) == 0) {
        k->k0 = r[0];
        k->k1 = r[1];
        return;
    }
    /* No entropy source (a very old kernel or a locked-down sandbox): mix
     * what varies between runs.  Weaker, but still not a constant key. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    k->k0 = mix64((uint64_t)(uintptr_t)k ^ (uint64_t)time(NULL));
    k->k1 = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)clock() << 32) ^ (uint64_t)getpid());
}

const struct hash_key *hash_key_process(void)
{
    /* The event loop thread is the only user: no lock needed. */
    static struct hash_key key;
    static bool made;
    if (!made) {
        hash_key_init(&key);
        made = true;
    }
    return &key;
}
