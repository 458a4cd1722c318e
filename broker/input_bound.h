/*
 * input_bound.h - bounds on unfinished input: how long one packet may take
 * to arrive (partial_packet_timeout) and how many bytes of input not yet
 * handled all connections together may hold (max_input_buffer_total).  A
 * client with keep alive 0 that sends half a large packet and stops would
 * otherwise pin that memory for as long as it keeps the socket open.
 */
#ifndef PETREL_INPUT_BOUND_H
#define PETREL_INPUT_BOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* After framing c's input: `held` bytes are left unhandled, `partial` if
 * they end in an incomplete packet, `consumed` if packets were handled
 * before it (so the incomplete one began in this read).  Counts the bytes
 * towards the total and, past max_input_buffer_total, marks the
 * connections holding the most to be closed at the end of the turn (this
 * one included).  Returns true when an incomplete packet began now: its
 * deadline is to be armed. */
bool input_bound_account(struct conn *c, size_t held, bool partial, bool consumed);

/* c is closing: its bytes no longer count. */
void input_bound_forget(struct conn *c);

/* Ticks an incomplete packet of c may take: partial_packet_timeout, or
 * 1.5 x keep alive when that is shorter (MQTT: a control packet within
 * 1.5 x keep alive).  0 = no deadline. */
uint32_t input_bound_ticks(const struct conn *c);

#endif
