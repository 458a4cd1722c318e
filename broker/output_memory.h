/*
 * output_memory.h - the bytes waiting in the connections' output buffers,
 * one of the three parts of the memory budget (memory_budget.h).  Counted
 * by a callback on each buffer, which sees every add and drain, so the
 * socket side (conn_io.c) counts without calling up into the budget.
 */
#ifndef PETREL_OUTPUT_MEMORY_H
#define PETREL_OUTPUT_MEMORY_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Counts what the output buffer `out` holds from now on (call once per
 * buffer, when it is made). */
void output_memory_watch(struct evbuffer *out);
/* A watched buffer is freed holding `len` bytes. */
void output_memory_freed(size_t len);
/* Bytes counted now. */
uint64_t output_memory_bytes(void);

#endif
