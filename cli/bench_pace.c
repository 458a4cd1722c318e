/* bench_pace.c - the fixed-rate schedule of `petrel bench --rate` (see
 * bench_pace.h). */
#include "bench_pace.h"

uint64_t bench_pace_due_time(uint64_t t0, double rate, uint64_t k)
{
    return t0 + (uint64_t)((double)k * 1e9 / rate);
}

/* Counted from bench_pace_due_time itself rather than from the inverse
 * formula alone: the two round differently, and a publisher told "not
 * due" at a `now` its next due time had already reached would arm no
 * pacing timer (that is armed only for a time still ahead) and send
 * nothing until an acknowledgement or the end of the run woke it: seconds
 * of send lag, now and then, in a fixed-rate run.  The estimate is off by
 * at most one either way; the loops correct it. */
uint64_t bench_pace_due_count(uint64_t t0, double rate, uint64_t now)
{
    if (now < t0)
        return 0;
    uint64_t k = (uint64_t)((double)(now - t0) * rate / 1e9);
    while (k > 0 && bench_pace_due_time(t0, rate, k) > now)
        k--;
    while (bench_pace_due_time(t0, rate, k + 1) <= now)
        k++;
    return k + 1;
}
