/*
 * hashmap.h - a map from byte-string keys to pointers, with chaining and
 * doubling.  Used for the session table (client id -> session), share
 * groups, users.  Keys are copied into the map; values are the caller's.
 * Keys are hashed with a secret random key per map, so that clients cannot
 * choose colliding ones.
 */
#ifndef PETREL_HASHMAP_H
#define PETREL_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

struct hashmap;

struct hashmap *hashmap_new(void);
/* Frees the map and its copies of the keys, not the values. */
void hashmap_free(struct hashmap *m);

void *hashmap_get(const struct hashmap *m, const void *key, size_t len);
/* Inserts or replaces.  Returns 0, or -1 when out of memory. */
int hashmap_put(struct hashmap *m, const void *key, size_t len, void *value);
/* Removes the key and returns its value, or NULL if absent. */
void *hashmap_remove(struct hashmap *m, const void *key, size_t len);
size_t hashmap_count(const struct hashmap *m);

/* Calls fn for every entry.  fn must not modify the map. */
void hashmap_foreach(const struct hashmap *m, void (*fn)(void *value, void *arg), void *arg);

/* The hash the map uses for a key (tests: it differs between maps). */
uint64_t hashmap_hash(const struct hashmap *m, const void *key, size_t len);
/* The longest bucket chain (diagnostics, tests). */
size_t hashmap_longest_chain(const struct hashmap *m);

#endif
