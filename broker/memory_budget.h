/*
 * memory_budget.h - one budget for the memory clients make the broker hold
 * (memory_budget): input read but not handled, output not yet written, and
 * the messages alive (queued in memory, in flight, retained, on their way
 * out).  The per-client bounds each allow a little; this bounds their sum.
 * At the budget, in this order of gentleness: publishers are not read
 * (unless they owe acknowledgements, which free memory), slow consumers
 * (64 KiB or more of output waiting) get no new output, so their QoS 0
 * messages are dropped and their QoS 1/2 ones wait in the store, and new
 * connections are refused.  Nothing acknowledged is dropped.  Below 7/8 of
 * the budget, paused publishers are read again.
 */
#ifndef PETREL_MEMORY_BUDGET_H
#define PETREL_MEMORY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* Bytes counted now (the output's by output_memory.h). */
uint64_t memory_budget_used(void);
/* True while the use is over memory_budget (never when it is 0). */
bool memory_budget_over(void);

/* How a connection's reading is paused and resumed, given by conn.c
 * (conn_init) so that the budget touches no connection: pause(c) stops
 * reading c; resume(c, now) reads it again, its keep alive and its
 * incomplete packet's deadline counting from tick `now`. */
void memory_budget_init(void (*pause)(struct conn *c), void (*resume)(struct conn *c, uint32_t now));
/* At the top of framing the input of c, an active connection not paused:
 * true when c is not to be read now (pause(c) was called; it is resumed
 * once the use is below 7/8 of the budget).  One that `owes_acks`
 * (conn_owes_acks) is not paused. */
bool memory_budget_pause(struct conn *c, bool owes_acks);
/* c, paused, is closing: off the paused list (it is not resumed). */
void memory_budget_forget(struct conn *c);
/* End of turn: resumes the paused connections when the use allows. */
void memory_budget_turn_end(void);

/* May a new connection be accepted?  False (counted) over the budget. */
bool memory_budget_admit(void);
/* May c be given more output?  False over the budget when c already has
 * 64 KiB or more waiting (counted). */
bool memory_budget_may_write(const struct conn *c, size_t out_len);

#endif
