/*
 * conn_io.h - the socket side of a connection (conn_io.c), between conn.c
 * and libevent: a plain socket with buffers made on demand, or a
 * bufferevent (TLS).  Used by conn.c, and besides it by broker.c (the
 * end-of-turn steps conn_io_run_kicked and conn_io_flush), by flow.c,
 * memory_budget.c and conn_close_later.c (conn_io_update when a
 * connection's reads are paused or resumed), by conn_wait.c and conn_ws.c
 * (conn_output) and by protocol.c (conn_io_close_code).  What is read, a
 * dead socket and the question whether a connection owes acknowledgements
 * go up through the handlers conn.c registers (conn_io_init), as a
 * libevent callback would: this layer does not call up by name.
 */
#ifndef PETREL_CONN_IO_H
#define PETREL_CONN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;

/* Bytes to frame: an evbuffer, or (buf NULL) `len` bytes at `flat` of which
 * the first `off` are consumed. */
struct conn_input {
    struct evbuffer *buf;
    const uint8_t *flat;
    size_t len, off;
};

/* What the layer above does when bytes come in or output drains. */
struct conn_io_handlers {
    /* Frames and handles the complete packets of `in`; stops early when
     * the input is held or paused.  Returns 0, or -1 if the connection is
     * closed. */
    int (*process)(struct conn *c, struct conn_input *in);
    /* A write left at most half of max_output_buffer unsent. */
    void (*drained)(struct conn *c);
    /* Is it read whatever the turn's budget (conn_owes_acks)? */
    bool (*owes_acks)(const struct conn *c);
    /* The peer is gone or the socket failed (conn_close). */
    void (*close)(struct conn *c, const char *why, bool publish_will);
};

/* Sets the handlers, for every connection (before the first starts). */
void conn_io_init(const struct conn_io_handlers *h);

/* Starts the I/O of a plain socket (watching reads) or of c->bev. */
int conn_io_start(struct conn *c, int fd);
int conn_io_start_bufferevent(struct conn *c);
/* Stops it: frees the buffers, closes the socket (or frees c->bev). */
void conn_io_close(struct conn *c);
/* The socket, for getpeername. */
int conn_io_fd(const struct conn *c);

/* The output buffer, made if needed; NULL when out of memory.  Bytes put
 * there are written at the end of the loop's turn. */
struct evbuffer *conn_output(struct conn *c);
size_t conn_output_length(const struct conn *c);

/* Reads are watched or not according to c->state, c->read_paused and
 * c->input_held: call after changing them.  With `kick`, input already
 * buffered is processed from the loop if reads are allowed now. */
void conn_io_update(struct conn *c, int kick);

/* End of turn (turn.h): processes the input that waited for reads to be
 * allowed again, and writes the turn's output, one write per connection. */
void conn_io_run_kicked(void);
void conn_io_flush(void);

/* Writes a plain connection's output to its socket now, as far as the
 * socket takes it (shutdown: the loop will not run again). */
void conn_io_flush_now(struct conn *c);
/* All is written: a FIN tells the client, whose own FIN (or the closing
 * deadline) then ends the connection. */
void conn_io_finish(struct conn *c);

/* Bytes the transport holds for c's unfinished input besides the packet
 * bytes (a WebSocket frame half read), so that they count as an
 * incomplete packet does (input_bound.h); *began: since the last read. */
size_t conn_io_held(const struct conn *c, bool *began);

/* The code a WebSocket connection's close frame will carry when it ends
 * (RFC 6455: 1002 protocol error, 1009 too big; 1000 otherwise); nothing
 * for other transports. */
void conn_io_close_code(struct conn *c, uint16_t code);

/* Frees the broker-wide I/O state (every connection must be gone). */
void conn_io_shutdown(void);

#endif
