/*
 * bench_ws.h - MQTT over WebSocket for `petrel bench` (-L ws://, wss://,
 * --ws): after TCP (and TLS) the upgrade request (ws_upgrade.h), then the
 * bench's own flat buffers carry frames.  What the connection writes is
 * made one masked binary frame per flush (wslay's frame layer); what it
 * reads is decoded into the shared read buffer (wslay's frame layer, its
 * context held only while a frame is half read) before the MQTT framing
 * sees it.  Pings are answered; a close frame from the broker ends the
 * connection.  Nothing here is touched by a plain TCP run.
 */
#ifndef PETREL_CLI_BENCH_WS_H
#define PETREL_CLI_BENCH_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_conn;

/* Room the decoded bytes of a read may need beyond the raw bytes (the
 * start of a frame header carried from the last read). */
#define BENCH_WS_SLACK 64

/* TCP (and TLS) is up: queues the upgrade request, state CS_WS.  0, or -1
 * (failed, reported). */
int bench_ws_start(struct bench_conn *c);

/* Decodes `n` bytes read into `dst` (room for n + BENCH_WS_SLACK), *got of
 * them.  Returns 1 when this read completed the upgrade (CONNECT is
 * next), 0, or -1 when the connection failed (reported). */
int bench_ws_input(struct bench_conn *c, const uint8_t *raw, size_t n, uint8_t *dst,
                   size_t *got);

/* Makes what was written since the last call one frame.  0 or -1. */
int bench_ws_frame(struct bench_conn *c);
/* After a flush: what is left unsent is all frames. */
void bench_ws_sent(struct bench_conn *c);

void bench_ws_free(struct bench_conn *c);
/* The shared contexts and buffers, at the end of the run. */
void bench_ws_shutdown(void);

#endif
