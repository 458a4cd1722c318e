/*
 * histogram.c - fixed-bucket latency histograms (see histogram.h).
 */
#include "histogram.h"

#include <time.h>

/* Bucket i holds observations of at most 4^i microseconds. */
static size_t bucket_of(uint64_t ns)
{
    uint64_t us = (ns + 999) / 1000;
    if (us <= 1)
        return 0;
    unsigned bits = 64 - (unsigned)__builtin_clzll(us - 1); /* us <= 2^bits */
    size_t i = (bits + 1) / 2;                             /* us <= 4^i */
    return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS;
}

void histogram_observe_ns(struct histogram *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    h->count++;
    h->sum_ns += ns;
}

double histogram_bound_seconds(size_t i)
{
    return (double)(1ULL << (2 * i)) * 1e-6;
}

double histogram_quantile_ms(const struct histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count, seen = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        double n = (double)h->counts[i];
        if (seen + n >= want && n > 0) {
            double lo = i == 0 ? 0 : histogram_bound_seconds(i - 1);
            double hi = histogram_bound_seconds(i);
            return (lo + (hi - lo) * (want - seen) / n) * 1000.0;
        }
        seen += n;
    }
    return histogram_bound_seconds(HISTOGRAM_BUCKETS - 1) * 1000.0;
}

uint64_t histogram_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
