/*
 * bench_track.h - what one `petrel bench` subscriber has received, per
 * message stream (one publisher's topic): a bitmap of sequence numbers, so
 * duplicates are exact and lost messages are "expected minus unique".
 * Memory is one bit per message, grown by doubling; nothing per message is
 * allocated.
 */
#ifndef PETREL_CLI_BENCH_TRACK_H
#define PETREL_CLI_BENCH_TRACK_H

#include <stdbool.h>
#include <stdint.h>

/* Sequence numbers at or above this are not ours (a corrupted payload or
 * another program's messages): they are refused rather than allocated. */
#define TRACK_MAX_SEQ (1u << 30)

struct track_stream {
    uint32_t stream;       /* stream id + 1; 0 = empty slot */
    uint32_t unique;
    uint32_t dups;
    uint32_t cap_words;
    uint32_t next;         /* highest sequence number seen + 1 */
    uint64_t *bits;
};

struct bench_track {
    struct track_stream *slots; /* open addressing, power-of-two size */
    uint32_t size;
    uint32_t used;
    struct track_stream *last; /* most subscribers hear one stream */
};

enum track_result { TRACK_NEW, TRACK_DUP, TRACK_REFUSED };

/* Records (stream, seq).  TRACK_REFUSED: seq out of range or no memory.
 * *advance: how far the highest sequence number seen moved (messages
 * skipped over count too: at QoS 0 a gap is a message that will never
 * come). */
enum track_result track_add(struct bench_track *t, uint32_t stream, uint32_t seq,
                            uint32_t *advance);
/* Unique messages of `stream` with a sequence number below `below`. */
uint32_t track_unique_below(const struct bench_track *t, uint32_t stream, uint32_t below);
/* Messages of `stream` that `want` holds and `got` does not (for example
 * acknowledged to the publisher, never received by a subscriber). */
uint64_t track_absent(const struct bench_track *want, const struct bench_track *got,
                      uint32_t stream);
/* Sums over every stream. */
uint64_t track_unique(const struct bench_track *t);
uint64_t track_dups(const struct bench_track *t);
void track_free(struct bench_track *t);

#endif
