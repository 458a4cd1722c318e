/*
 * conn_log.h - the rate limit on connection log lines (connected,
 * disconnected, refused): max_connection_log_rate lines per second, and a
 * summary line "N ... not written" once the flood passes.  128,000
 * connections would otherwise write 39 MB of log, and a client that
 * reconnects in a loop could fill the disk the store needs.
 */
#ifndef PETREL_CONN_LOG_H
#define PETREL_CONN_LOG_H

#include <stdbool.h>

/* True when one more connection line may be written now; false when it is
 * to be left out (counted, and summed up later in one line). */
bool conn_log_allow(void);

/* Writes the pending summary and frees the timer (broker shutdown). */
void conn_log_shutdown(void);

#endif
