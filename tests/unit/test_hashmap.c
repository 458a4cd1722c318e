/*
 * test_hashmap.c - the session table's map under keys chosen to collide:
 * client ids are the attacker's, so the map must hash them with a secret
 * key (issue #14 item 5).  The ids below all collide in the low 20 bits of
 * plain FNV-1a, which is what picks the bucket of an unkeyed table: with
 * FNV-1a all 65,536 land in one chain and inserting them costs 2 billion
 * steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashmap.h"

#define STAGES 16                 /* 2^16 ids */
#define LOW_BITS 20
#define LOW_MASK ((1u << LOW_BITS) - 1)
#define PIECE 3                   /* bytes per stage */

static uint64_t fnv_step(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The two pieces of each stage: from any state with the same low bits,
 * both lead to states with the same low bits (the low bits of FNV-1a's
 * state depend on nothing above them). */
static unsigned char pieces[STAGES][2][PIECE];

static void find_pieces(void)
{
    uint32_t *seen = malloc(sizeof(uint32_t) << LOW_BITS);
    assert_non_null(seen);
    uint64_t state = 1469598103934665603ULL;
    for (int st = 0; st < STAGES; st++) {
        memset(seen, 0xff, sizeof(uint32_t) << LOW_BITS);
        bool found = false;
        for (uint32_t v = 0; v < 64u * 64u * 64u && !found; v++) {
            unsigned char p[PIECE] = {(unsigned char)('0' + v % 64),
                                      (unsigned char)('0' + v / 64 % 64),
                                      (unsigned char)('0' + v / 4096)};
            uint32_t low = (uint32_t)fnv_step(state, p, PIECE) & LOW_MASK;
            if (seen[low] != UINT32_MAX) {
                uint32_t w = seen[low];
                unsigned char q[PIECE] = {(unsigned char)('0' + w % 64),
                                          (unsigned char)('0' + w / 64 % 64),
                                          (unsigned char)('0' + w / 4096)};
                memcpy(pieces[st][0], q, PIECE);
                memcpy(pieces[st][1], p, PIECE);
                state = fnv_step(state, p, PIECE);
                found = true;
            } else {
                seen[low] = v;
            }
        }
        assert_true(found);
    }
    free(seen);
}

static void make_id(uint32_t n, char *out)
{
    for (int st = 0; st < STAGES; st++)
        memcpy(out + st * PIECE, pieces[st][(n >> st) & 1], PIECE);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_colliding_ids(void **state)
{
    (void)state;
    find_pieces();
    char id[STAGES * PIECE];
    /* they really collide under plain FNV-1a */
    make_id(0, id);
    uint64_t h0 = fnv_step(1469598103934665603ULL, (unsigned char *)id, sizeof id) & LOW_MASK;
    make_id(12345, id);
    assert_int_equal(fnv_step(1469598103934665603ULL, (unsigned char *)id, sizeof id) & LOW_MASK,
                     h0);

    struct hashmap *m = hashmap_new();
    assert_non_null(m);
    double t0 = now_s();
    for (uint32_t n = 0; n < (1u << STAGES); n++) {
        make_id(n, id);
        assert_int_equal(hashmap_put(m, id, sizeof id, (void *)(uintptr_t)(n + 1)), 0);
    }
    for (uint32_t n = 0; n < (1u << STAGES); n++) {
        make_id(n, id);
        assert_ptr_equal(hashmap_get(m, id, sizeof id), (void *)(uintptr_t)(n + 1));
    }
    double took = now_s() - t0;
    size_t longest = hashmap_longest_chain(m);
    printf("65536 colliding ids: %.3f s, longest chain %zu\n", took, longest);
    assert_int_equal(hashmap_count(m), 1u << STAGES);
    assert_true(longest < 16);
    for (uint32_t n = 0; n < (1u << STAGES); n += 2) {
        make_id(n, id);
        assert_ptr_equal(hashmap_remove(m, id, sizeof id), (void *)(uintptr_t)(n + 1));
    }
    assert_int_equal(hashmap_count(m), 1u << (STAGES - 1));
    hashmap_free(m);
}

/* Two maps hash the same key differently: a key that collides in one
 * tells nothing about another (or another run). */
static void test_keys_differ(void **state)
{
    (void)state;
    struct hashmap *a = hashmap_new(), *b = hashmap_new();
    assert_non_null(a);
    assert_non_null(b);
    int same = 0;
    for (int i = 0; i < 64; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%d", i);
        if (hashmap_hash(a, k, (size_t)n) == hashmap_hash(b, k, (size_t)n))
            same++;
    }
    assert_true(same < 4);
    hashmap_free(a);
    hashmap_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colliding_ids),
        cmocka_unit_test(test_keys_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
