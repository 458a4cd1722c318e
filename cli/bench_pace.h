/* bench_pace.h - the fixed-rate schedule of `petrel bench --rate`.
 *
 * Message k of a publisher that sends `rate` messages per second from
 * time t0 (nanoseconds, the bench's monotonic clock) is due at
 * bench_pace_due_time(t0, rate, k).  bench_pace_due_count says how many of
 * its messages are due at `now`; the two agree exactly: with n =
 * bench_pace_due_count(t0, rate, now), message n-1 is due at or before
 * now and message n after it, so a publisher told "nothing more is due"
 * always has a later due time to arm its pacing timer for.  Pure
 * arithmetic, tested alone (tests/unit/test_bench_pace.c). */
#ifndef PETREL_BENCH_PACE_H
#define PETREL_BENCH_PACE_H

#include <stdint.h>

/* rate > 0. */
uint64_t bench_pace_due_time(uint64_t t0, double rate, uint64_t k);

/* 0 when now < t0; rate > 0. */
uint64_t bench_pace_due_count(uint64_t t0, double rate, uint64_t now);

#endif
