/*
 * bench_tls.h - TLS for `petrel bench`: one SSL_CTX for the whole run (CAs,
 * client certificate and the name to check loaded once), and an OpenSSL
 * session driven directly on each connection's non-blocking socket, so
 * that the bench's own buffers and event loop stay as they are for TLS.
 * Nothing here is touched by a plain TCP run.
 */
#ifndef PETREL_CLI_BENCH_TLS_H
#define PETREL_CLI_BENCH_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct bench;
struct bench_conn;

/* Builds b->tls_ctx from the options.  0, or -1 with the reason printed
 * (a file that cannot be used: a bad argument). */
int bench_tls_init(struct bench *b);
void bench_tls_free(struct bench *b);

/* Outcome of a TLS step that did not move data. */
enum {
    TLS_WANT_READ = -1,   /* wait for the socket to be readable */
    TLS_WANT_WRITE = -2,  /* wait for it to be writable */
    TLS_FAILED = -3       /* over: bench_tls_error() says why */
};

/* Puts an SSL session (SNI, checks from the context) on c->fd.  0, or -1
 * (out of memory). */
int bench_tls_attach(struct bench_conn *c);
/* One step of the handshake: 1 done, or a TLS_* code. */
int bench_tls_handshake(struct bench_conn *c);
/* Reads decrypted bytes into buf, as many records as fit.  >0 bytes, 0 at
 * the end of the connection, or a TLS_* code. */
ssize_t bench_tls_recv(struct bench_conn *c, void *buf, size_t len);
/* Writes up to len bytes (at least one record when it can).  >0 bytes or
 * a TLS_* code. */
ssize_t bench_tls_send(struct bench_conn *c, const void *buf, size_t len);
/* Why the last step of c failed ("server certificate not accepted: ...",
 * "TLS failed: ..."): a static buffer, valid until the next call. */
const char *bench_tls_error(struct bench_conn *c);
/* Records the protocol and cipher of the first completed handshake. */
void bench_tls_note_established(struct bench_conn *c);
void bench_tls_detach(struct bench_conn *c);

#endif
