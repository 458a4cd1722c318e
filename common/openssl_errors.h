/*
 * openssl_errors.h - OpenSSL's queued error reasons as one line of text, for
 * the messages of petreld, libpetrel and petrel bench (each has its own
 * words around it; the reasons themselves are gathered the same way).
 */
#ifndef PETREL_OPENSSL_ERRORS_H
#define PETREL_OPENSSL_ERRORS_H

#include <stddef.h>

/*
 * Writes the reasons of the queued errors into buf[0..len) as
 * "reason; reason", leaving out repeats, and empties the queue.  `next`
 * yields the error codes (0 at the end); NULL means OpenSSL's thread queue
 * (ERR_get_error).  Codes of no library are skipped: libevent queues plain
 * SSL_get_error() values among the real reasons.  buf is "" when there was
 * nothing to say.
 */
void openssl_error_reasons(char *buf, size_t len, unsigned long (*next)(void *), void *arg);

#endif
