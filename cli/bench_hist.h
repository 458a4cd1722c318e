/*
 * bench_hist.h - a log-linear latency histogram for `petrel bench`: fixed
 * memory, O(1) record, percentiles within 0.4 % of the true value, no
 * per-sample storage (the HdrHistogram idea in a few lines).
 */
#ifndef PETREL_CLI_BENCH_HIST_H
#define PETREL_CLI_BENCH_HIST_H

#include <stdint.h>

/* Values below 2^HIST_SUB_BITS get a bucket each; above, every power of two
 * is split into 2^(HIST_SUB_BITS-1) equal buckets, so a bucket is at most
 * 1/128 of its value wide. */
#define HIST_SUB_BITS 8
#define HIST_HALF (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_HALF + HIST_HALF)

struct bench_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct bench_hist *h);
void hist_add(struct bench_hist *h, uint64_t value);
/* The value below which a fraction q (0..1) of the samples lie, as the
 * middle of its bucket clamped to [min, max]; 0 when empty. */
uint64_t hist_quantile(const struct bench_hist *h, double q);
double hist_mean(const struct bench_hist *h);

#endif
