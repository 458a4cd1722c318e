/*
 * bench_track.c - per-subscriber sequence tracking for `petrel bench`: a
 * small hash table from stream id to a growing bitmap.
 */
#include "bench_track.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static struct track_stream *find_slot(struct track_stream *slots, uint32_t size, uint32_t key)
{
    uint32_t mask = size - 1;
    for (uint32_t i = hash32(key) & mask;; i = (i + 1) & mask)
        if (slots[i].stream == key || slots[i].stream == 0)
            return &slots[i];
}

static int grow_table(struct bench_track *t)
{
    uint32_t size = t->size ? t->size * 2 : 8;
    struct track_stream *slots = calloc(size, sizeof *slots);
    if (!slots)
        return -1;
    for (uint32_t i = 0; i < t->size; i++)
        if (t->slots[i].stream)
            *find_slot(slots, size, t->slots[i].stream) = t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->size = size;
    t->last = NULL;
    return 0;
}

static struct track_stream *lookup(struct bench_track *t, uint32_t stream, bool create)
{
    uint32_t key = stream + 1;
    if (t->last && t->last->stream == key)
        return t->last;
    if (t->size) {
        struct track_stream *s = find_slot(t->slots, t->size, key);
        if (s->stream == key)
            return t->last = s;
    }
    if (!create)
        return NULL;
    /* Keep the table at most half full so probes stay short. */
    if ((t->used + 1) * 2 > t->size && grow_table(t) != 0)
        return NULL;
    struct track_stream *s = find_slot(t->slots, t->size, key);
    s->stream = key;
    t->used++;
    return t->last = s;
}

enum track_result track_add(struct bench_track *t, uint32_t stream, uint32_t seq,
                            uint32_t *advance)
{
    *advance = 0;
    if (seq >= TRACK_MAX_SEQ || stream == UINT32_MAX)
        return TRACK_REFUSED;
    struct track_stream *s = lookup(t, stream, true);
    if (!s)
        return TRACK_REFUSED;
    uint32_t word = seq / 64;
    if (word >= s->cap_words) {
        uint32_t cap = s->cap_words ? s->cap_words : 16;
        while (cap <= word)
            cap *= 2;
        uint64_t *bits = realloc(s->bits, (size_t)cap * sizeof *bits);
        if (!bits)
            return TRACK_REFUSED;
        memset(bits + s->cap_words, 0, (size_t)(cap - s->cap_words) * sizeof *bits);
        s->bits = bits;
        s->cap_words = cap;
    }
    uint64_t bit = (uint64_t)1 << (seq % 64);
    if (s->bits[word] & bit) {
        s->dups++;
        return TRACK_DUP;
    }
    s->bits[word] |= bit;
    s->unique++;
    if (seq >= s->next) {
        *advance = seq + 1 - s->next;
        s->next = seq + 1;
    }
    return TRACK_NEW;
}

uint32_t track_unique_below(const struct bench_track *t, uint32_t stream, uint32_t below)
{
    if (!t->size)
        return 0;
    const struct track_stream *s = find_slot(t->slots, t->size, stream + 1);
    if (s->stream != stream + 1)
        return 0;
    uint32_t words = below / 64;
    if (words >= s->cap_words)
        return s->unique; /* every bit we hold is below */
    uint32_t n = 0;
    for (uint32_t i = 0; i < words; i++)
        n += (uint32_t)__builtin_popcountll(s->bits[i]);
    if (below % 64)
        n += (uint32_t)__builtin_popcountll(s->bits[words] &
                                            (((uint64_t)1 << (below % 64)) - 1));
    return n;
}

static const struct track_stream *find_const(const struct bench_track *t, uint32_t stream)
{
    if (!t->size)
        return NULL;
    const struct track_stream *s = find_slot(t->slots, t->size, stream + 1);
    return s->stream == stream + 1 ? s : NULL;
}

uint64_t track_absent(const struct bench_track *want, const struct bench_track *got,
                      uint32_t stream)
{
    const struct track_stream *w = find_const(want, stream);
    if (!w)
        return 0;
    const struct track_stream *g = find_const(got, stream);
    uint64_t n = 0;
    for (uint32_t i = 0; i < w->cap_words; i++) {
        uint64_t have = g && i < g->cap_words ? g->bits[i] : 0;
        n += (uint64_t)__builtin_popcountll(w->bits[i] & ~have);
    }
    return n;
}

uint64_t track_unique(const struct bench_track *t)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < t->size; i++)
        n += t->slots[i].unique;
    return n;
}

uint64_t track_dups(const struct bench_track *t)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < t->size; i++)
        n += t->slots[i].dups;
    return n;
}

void track_free(struct bench_track *t)
{
    for (uint32_t i = 0; i < t->size; i++)
        free(t->slots[i].bits);
    free(t->slots);
    memset(t, 0, sizeof *t);
}
