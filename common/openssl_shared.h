/*
 * openssl_shared.h - what petreld, libpetrel and petrel bench do with
 * OpenSSL the same way: the queued error reasons as one line of text (each
 * puts its own words around it), and refusing passphrase-protected keys.
 */
#ifndef PETREL_OPENSSL_SHARED_H
#define PETREL_OPENSSL_SHARED_H

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

/* A pem_password_cb that gives no passphrase: a key protected by one fails
 * to load instead of making OpenSSL prompt on a terminal that a daemon, a
 * library or a benchmark cannot use. */
int openssl_no_passphrase(char *buf, int size, int rwflag, void *arg);

#endif
