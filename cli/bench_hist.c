/*
 * bench_hist.c - the log-linear histogram behind the latency percentiles
 * of `petrel bench` (see bench_hist.h for the bucket layout).
 */
#include "bench_hist.h"

#include <string.h>

void hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * HIST_HALF)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
    unsigned shift = e - HIST_SUB_BITS + 1;
    /* v >> shift is in [HIST_HALF, 2 * HIST_HALF) */
    return shift * HIST_HALF + (unsigned)(v >> shift);
}

/* Lowest value of bucket i and its width. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    if (i < 2 * HIST_HALF) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned shift = i / HIST_HALF - 1;
    uint64_t mant = i % HIST_HALF + HIST_HALF;
    *low = mant << shift;
    *width = (uint64_t)1 << shift;
}

void hist_add(struct bench_hist *h, uint64_t v)
{
    h->buckets[bucket_of(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    /* The rank of the sample we want, 1-based: at least the first one. */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t mid = low + width / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double hist_mean(const struct bench_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
