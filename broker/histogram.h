/*
 * histogram.h - latency histograms for /metrics: fixed buckets whose
 * bounds grow by 4 from 1 microsecond (1 us, 4 us, 16 us ... 67 s, then
 * +Inf), so that observing is a count of leading zeros and an increment,
 * cheap enough for every delivery.  Not thread-safe: observed and read on
 * the loop thread only.
 */
#ifndef PETREL_HISTOGRAM_H
#define PETREL_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_BUCKETS 14 /* finite ones; counts[HISTOGRAM_BUCKETS] is +Inf */

struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t count;
    uint64_t sum_ns;
};

void histogram_observe_ns(struct histogram *h, uint64_t ns);
/* The upper bound of finite bucket i, in seconds. */
double histogram_bound_seconds(size_t i);
/* An estimate of the q-quantile (0 < q < 1) in milliseconds: linear within
 * the bucket it falls in; 0 when nothing was observed. */
double histogram_quantile_ms(const struct histogram *h, double q);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t histogram_now_ns(void);

#endif
