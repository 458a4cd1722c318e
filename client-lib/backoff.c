/*
 * backoff.c - exponential backoff with "equal jitter" (half fixed, half
 * random) for reconnection attempts.
 */
#include "backoff.h"

uint32_t backoff_delay_ms(uint32_t min_ms, uint32_t max_ms, unsigned attempt, uint32_t rnd)
{
    if (max_ms < min_ms)
        max_ms = min_ms;
    uint64_t d = min_ms;
    /* Doubling stops at the cap, so no shift can overflow. */
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t half = d / 2;
    uint64_t spread = d - half; /* random part: 0..spread inclusive */
    return (uint32_t)(half + (uint64_t)rnd % (spread + 1));
}
