/*
 * hashmap.c - chained hash map.  The table doubles when the load factor
 * passes 1, so lookups stay O(1) however many clients come.  Keys are
 * client ids and share names chosen by clients, so they are hashed with
 * SipHash under a random key of each map (keyed_hash.h): with a fixed hash
 * (it was FNV-1a) 65,536 ids chosen to collide made one chain, and each
 * CONNECT or start-up load of a session scanned it.
 */
#include "hashmap.h"

#include "keyed_hash.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    size_t len;
    unsigned char key[]; /* the key bytes, copied */
};

struct hashmap {
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    struct hash_key key;
};

struct hashmap *hashmap_new(void)
{
    struct hashmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    hash_key_init(&m->key);
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

/* Calls fn on every entry; fn may free the entry or relink it. */
static void each_entry(struct hashmap *m, void (*fn)(struct entry *e, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            fn(e, arg);
            e = next;
        }
    }
}

static void free_entry(struct entry *e, void *arg)
{
    (void)arg;
    free(e);
}

void hashmap_free(struct hashmap *m)
{
    if (!m)
        return;
    each_entry(m, free_entry, NULL);
    free(m->buckets);
    free(m);
}

static struct entry **find_slot(const struct hashmap *m, const void *key, size_t len, uint64_t h)
{
    struct entry **slot = &m->buckets[h & (m->nbuckets - 1)];
    while (*slot) {
        struct entry *e = *slot;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return slot;
        slot = &e->next;
    }
    return slot;
}

void *hashmap_get(const struct hashmap *m, const void *key, size_t len)
{
    struct entry **slot = find_slot(m, key, len, keyed_hash(&m->key, key, len));
    return *slot ? (*slot)->value : NULL;
}

struct rehash {
    struct entry **buckets;
    size_t n;
};

static void rehash(struct entry *e, void *arg)
{
    struct rehash *to = arg;
    struct entry **head = &to->buckets[e->hash & (to->n - 1)];
    e->next = *head;
    *head = e;
}

/* Doubling is best effort: if it cannot allocate, chains just get longer. */
static void grow(struct hashmap *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    struct rehash to = {b, n};
    each_entry(m, rehash, &to);
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int hashmap_put(struct hashmap *m, const void *key, size_t len, void *value)
{
    uint64_t h = keyed_hash(&m->key, key, len);
    struct entry **slot = find_slot(m, key, len, h);
    if (*slot) {
        (*slot)->value = value;
        return 0;
    }
    struct entry *e = malloc(sizeof *e + len);
    if (!e)
        return -1;
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->len = len;
    memcpy(e->key, key, len);
    *slot = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *hashmap_remove(struct hashmap *m, const void *key, size_t len)
{
    struct entry **slot = find_slot(m, key, len, keyed_hash(&m->key, key, len));
    struct entry *e = *slot;
    if (!e)
        return NULL;
    void *v = e->value;
    *slot = e->next;
    free(e);
    m->count--;
    return v;
}

size_t hashmap_count(const struct hashmap *m) { return m->count; }

uint64_t hashmap_hash(const struct hashmap *m, const void *key, size_t len)
{
    return keyed_hash(&m->key, key, len);
}

size_t hashmap_longest_chain(const struct hashmap *m)
{
    size_t longest = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        size_t n = 0;
        for (const struct entry *e = m->buckets[i]; e; e = e->next)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}

void hashmap_foreach(const struct hashmap *m, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct entry *e = m->buckets[i]; e; e = e->next)
            fn(e->value, arg);
}
