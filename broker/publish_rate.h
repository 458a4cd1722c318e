/*
 * publish_rate.h - per-client publish rate limits: max_publish_rate
 * (PUBLISH packets per second) and max_publish_bytes_rate (their bytes per
 * second), each a token bucket holding one second's worth.  A client over
 * either is not read until it is within both again: TCP flow control slows
 * it, and nothing it sent is dropped or refused.
 */
#ifndef PETREL_PUBLISH_RATE_H
#define PETREL_PUBLISH_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* True when the limits are on (either is not 0). */
bool publish_rate_on(void);

/* May c's next PUBLISH, of `bytes` bytes, be handled now (tick `now`)?
 * If so it is taken from the buckets.  If not, c->rate_paused is set with
 * c->rate_resume the tick from which it may be (counted); the caller stops
 * reading c until then.  A packet larger than a second's bytes passes when
 * the bucket is full, and leaves it in debt. */
bool publish_rate_admit(struct conn *c, size_t bytes, uint32_t now);

#endif
