/*
 * backoff.h - reconnection delays: exponential backoff with jitter.
 * Pure arithmetic, so the policy can be tested without clocks or sockets.
 */
#ifndef PETREL_BACKOFF_H
#define PETREL_BACKOFF_H

#include <stdint.h>

/* Delay before retry number `attempt` (0 = the first retry): a value in
 * [d/2, d] picked by `rnd` (a uniformly random 32-bit number), where
 * d = min(max_ms, min_ms * 2^attempt).  Half the delay is random so that
 * many clients cut off together do not come back in lockstep; the other
 * half keeps a floor under the retry rate. */
uint32_t backoff_delay_ms(uint32_t min_ms, uint32_t max_ms, unsigned attempt, uint32_t rnd);

#endif
