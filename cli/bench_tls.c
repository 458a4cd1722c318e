/*
 * bench_tls.c - OpenSSL for `petrel bench`.  The context is made once and
 * shared by every connection; each connection's SSL works straight on its
 * non-blocking socket (SSL_set_fd), so reads still land in the shared read
 * buffer and writes still come from the connection's output buffer: no
 * bufferevent layer, no extra copy.  Checks and messages follow libpetrel's
 * (client-lib/tls_client.c) so that bench, pub and sub say the same things.
 */
#include "bench_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bench.h"
#include "conn_args.h"
#include "openssl_shared.h"

/* The text of the last failure (single thread: one event loop). */
static char why_text[512];

/* "cannot start: TLS failed: WHAT PATH: reason", like petrel pub. */
static void file_error(const char *what, const char *path)
{
    char why[300];
    FILE *f = fopen(path, "r");
    if (!f) {
        /* OpenSSL's words for a missing or unreadable file are vague. */
        cli_error("bench", "cannot start: TLS failed: %s %s: %s", what, path, strerror(errno));
        ERR_clear_error();
        return;
    }
    fclose(f);
    openssl_error_reasons(why, sizeof why, NULL, NULL);
    cli_error("bench", "cannot start: TLS failed: %s %s: %s", what, path,
              why[0] ? why : "cannot be loaded");
}

static bool is_address(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int bench_tls_init(struct bench *b)
{
    const struct bench_options *o = &b->o;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        cli_error("bench", "cannot start: out of memory");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Brokers close without a close_notify (petreld does): an end of
     * connection like a TCP EOF; MQTT's framing catches truncation. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* A write may stop after any record and be resumed from wherever the
     * output buffer has moved to (it grows and compacts). */
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    /* Idle connections by the thousand: no 33 KiB of buffers each.  Busy
     * ones keep theirs rather than allocate per record. */
    if (o->connect_only)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
    SSL_CTX_set_default_passwd_cb(ctx, openssl_no_passphrase);
    if (o->cafile) {
        if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
            file_error("cafile", o->cafile);
            goto bad;
        }
    } else if (!o->insecure && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char why[300];
        openssl_error_reasons(why, sizeof why, NULL, NULL);
        cli_error("bench", "cannot start: TLS failed: the system's CA certificates cannot be "
                  "loaded: %s", why);
        goto bad;
    }
    if (o->certfile) {
        const char *key = o->keyfile ? o->keyfile : o->certfile;
        if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1) {
            file_error("certificate", o->certfile);
            goto bad;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                cli_error("bench", "cannot start: TLS failed: key %s does not belong to the "
                          "certificate %s", key, o->certfile);
                ERR_clear_error();
            } else {
                file_error("key", key);
            }
            goto bad;
        }
    }
    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        /* The name to check is the same for every connection: set once on
         * the context, which each SSL copies. */
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = is_address(o->host) ? X509_VERIFY_PARAM_set1_ip_asc(param, o->host)
                                     : X509_VERIFY_PARAM_set1_host(param, o->host, 0);
        if (ok != 1) {
            cli_error("bench", "cannot start: TLS failed: cannot check the name '%s'", o->host);
            goto bad;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    b->tls_sni = !is_address(o->host); /* SNI carries host names only (RFC 6066) */
    ERR_clear_error();
    b->tls_ctx = ctx;
    return 0;
bad:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return -1;
}

void bench_tls_free(struct bench *b)
{
    SSL_CTX_free(b->tls_ctx);
    b->tls_ctx = NULL;
}

int bench_tls_attach(struct bench_conn *c)
{
    struct bench *b = c->b;
    SSL *ssl = SSL_new(b->tls_ctx);
    if (!ssl)
        return -1;
    if ((b->tls_sni && SSL_set_tlsext_host_name(ssl, b->o.host) != 1) ||
        SSL_set_fd(ssl, c->fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return 0;
}

void bench_tls_detach(struct bench_conn *c)
{
    /* No close_notify: the MQTT DISCONNECT (or the failure) already ended
     * the session, and brokers do not wait for one. */
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->tls_err);
    c->tls_err = NULL;
    c->tls_end = 0;
}

/* The text for a failed handshake: a certificate the checks refused, or
 * whatever OpenSSL queued (the queue is emptied). */
static void handshake_failure(struct bench_conn *c, int err, int sys_errno)
{
    char why[300];
    openssl_error_reasons(why, sizeof why, NULL, NULL);
    long verify = SSL_get_verify_result(c->ssl);
    if (verify != X509_V_OK) {
        const char *what = X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(why_text, sizeof why_text,
                     "server certificate not accepted: %s (the certificate is not for '%s')",
                     what, c->b->o.host);
        else
            snprintf(why_text, sizeof why_text, "server certificate not accepted: %s", what);
        return;
    }
    if (!why[0] && err == SSL_ERROR_SYSCALL && sys_errno)
        snprintf(why, sizeof why, "%s", strerror(sys_errno));
    snprintf(why_text, sizeof why_text, "TLS failed: handshake failed: %s",
             why[0] ? why : "the server closed the connection");
}

/* TLS_WANT_READ or TLS_WANT_WRITE when OpenSSL's error only asks to wait
 * for the socket (a renegotiation can make a read wait for writability, and
 * the reverse); 0 for a real failure. */
static int tls_wants(int ssl_err)
{
    if (ssl_err == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (ssl_err == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    return 0;
}

int bench_tls_handshake(struct bench_conn *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1)
        return 1;
    int sys_errno = errno;
    int err = SSL_get_error(c->ssl, r);
    if (tls_wants(err))
        return tls_wants(err);
    handshake_failure(c, err, sys_errno);
    return TLS_FAILED;
}

/* Text for a failure after the handshake; sets why_text. */
static void broken(struct bench_conn *c, int err, int sys_errno)
{
    if (!SSL_is_init_finished(c->ssl)) {
        handshake_failure(c, err, sys_errno);
        return;
    }
    char why[300];
    openssl_error_reasons(why, sizeof why, NULL, NULL);
    if (err == SSL_ERROR_SYSCALL && sys_errno && c->state == CS_READY)
        snprintf(why_text, sizeof why_text, "%s", strerror(sys_errno));
    else if (err == SSL_ERROR_SYSCALL && sys_errno)
        /* Before CONNACK: typically a TLS 1.3 server refusing the client's
         * certificate, whose alert the reset overtook. */
        snprintf(why_text, sizeof why_text, "TLS failed: the server ended the TLS connection: %s",
                 why[0] ? why : strerror(sys_errno));
    else
        /* With TLS 1.3 a server that refuses the client's certificate
         * says so only after the client has finished its side. */
        snprintf(why_text, sizeof why_text, "TLS failed: the server ended the TLS connection: %s",
                 why[0] ? why : "protocol error");
}

ssize_t bench_tls_recv(struct bench_conn *c, void *buf, size_t len)
{
    if (c->tls_end) {
        /* The end met after the data returned last time. */
        if (c->tls_end == 1)
            return 0;
        snprintf(why_text, sizeof why_text, "%s", c->tls_err ? c->tls_err : "TLS failed");
        return TLS_FAILED;
    }
    size_t got = 0;
    while (got < len) {
        ERR_clear_error();
        errno = 0;
        int want = len - got > INT_MAX ? INT_MAX : (int)(len - got);
        int n = SSL_read(c->ssl, (char *)buf + got, want);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        int sys_errno = errno;
        if (tls_wants(err))
            return got ? (ssize_t)got : tls_wants(err);
        /* The end, cleanly or not (no close_notify, with older OpenSSL:
         * a SYSCALL error with no errno). */
        bool eof = err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !sys_errno &&
                                                    ERR_peek_error() == 0);
        if (!eof)
            broken(c, err, sys_errno);
        ERR_clear_error();
        if (!got)
            return eof ? 0 : TLS_FAILED;
        /* Hand over what came before; the end is reported next time. */
        c->tls_end = eof ? 1 : 2;
        if (!eof)
            c->tls_err = strdup(why_text);
        event_active(&c->rd, EV_READ, 1);
        return (ssize_t)got;
    }
    /* The buffer is full: more may wait inside OpenSSL, where the socket's
     * readiness does not show it. */
    if (SSL_has_pending(c->ssl))
        event_active(&c->rd, EV_READ, 1);
    return (ssize_t)got;
}

ssize_t bench_tls_send(struct bench_conn *c, const void *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int want = len > INT_MAX ? INT_MAX : (int)len;
    int n = SSL_write(c->ssl, buf, want);
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    if (tls_wants(err))
        return tls_wants(err);
    broken(c, err, errno);
    ERR_clear_error();
    return TLS_FAILED;
}

const char *bench_tls_error(struct bench_conn *c)
{
    (void)c;
    return why_text;
}

void bench_tls_note_established(struct bench_conn *c)
{
    struct bench *b = c->b;
    if (b->tls_version[0])
        return;
    snprintf(b->tls_version, sizeof b->tls_version, "%s", SSL_get_version(c->ssl));
    snprintf(b->tls_cipher, sizeof b->tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
}
