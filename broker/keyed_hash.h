/*
 * keyed_hash.h - SipHash-1-3 with a secret random key, for every hash table
 * whose keys a client chooses (topic levels, client ids, subscription
 * filters, share group names).  With a fixed hash function a client could
 * pick thousands of colliding keys and turn each lookup into a long scan.
 */
#ifndef PETREL_KEYED_HASH_H
#define PETREL_KEYED_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_key {
    uint64_t k0, k1;
};

/* A fresh random key (getentropy; a mix of what varies between runs if the
 * kernel has no entropy source to give). */
void hash_key_init(struct hash_key *k);

/* The key shared by the process's small tables (made on first use). */
const struct hash_key *hash_key_process(void);

uint64_t keyed_hash(const struct hash_key *k, const void *data, size_t len);

#endif
