/*
 * tls_client.c - OpenSSL for libpetrel.  The TCP connection is made as for
 * plain MQTT (transport.c tries each address); once it is up, an OpenSSL
 * filter bufferevent is put over it and runs the handshake, checking the
 * server's certificate and name unless told not to.
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "openssl_shared.h"
#include "options.h"
#include "petrel.h"

/* Per thread, like errno: a client is used from one thread. */
static _Thread_local char detail[512];

void tlsc_set_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
}

const char *petrel_tls_error_detail(void)
{
    return detail;
}

static unsigned long next_bev(void *arg)
{
    return bufferevent_get_openssl_error(arg);
}

/* Records "what path: reason" and returns PETREL_ETLS. */
static int file_error(const char *what, const char *path)
{
    char why[300];
    /* Missing and unreadable files are the usual mistakes; OpenSSL's words
     * for them are vague. */
    FILE *f = fopen(path, "r");
    if (!f) {
        tlsc_set_detail("%s %s: %s", what, path, strerror(errno));
        ERR_clear_error();
        return PETREL_ETLS;
    }
    fclose(f);
    openssl_error_reasons(why, sizeof why, NULL, NULL);
    tlsc_set_detail("%s %s: %s", what, path, why[0] ? why : "cannot be loaded");
    return PETREL_ETLS;
}

struct ssl_ctx_st *tlsc_ctx_new(const struct petrel_options *o, int *err)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Brokers close without a close_notify (petreld does): an end of
     * connection like a TCP EOF; MQTT's framing catches truncation. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, openssl_no_passphrase);
    if (o->tls_cafile) {
        if (SSL_CTX_load_verify_locations(ctx, o->tls_cafile, NULL) != 1) {
            *err = file_error("cafile", o->tls_cafile);
            goto bad;
        }
    } else if (!o->tls_insecure && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char why[300];
        openssl_error_reasons(why, sizeof why, NULL, NULL);
        tlsc_set_detail("the system's CA certificates cannot be loaded: %s", why);
        *err = PETREL_ETLS;
        goto bad;
    }
    if (o->tls_certfile) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_certfile) != 1) {
            *err = file_error("certificate", o->tls_certfile);
            goto bad;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_keyfile, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                tlsc_set_detail("key %s does not belong to the certificate %s",
                                o->tls_keyfile, o->tls_certfile);
                *err = PETREL_ETLS;
            } else {
                *err = file_error("key", o->tls_keyfile);
            }
            goto bad;
        }
    }
    SSL_CTX_set_verify(ctx, o->tls_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    ERR_clear_error();
    return ctx;
bad:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

void tlsc_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

static bool is_address(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

struct bufferevent *tlsc_start(struct event_base *base, struct bufferevent *tcp,
                               struct ssl_ctx_st *ctx, const char *server_name, bool verify,
                               int *err)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    bool address = is_address(server_name);
    /* SNI carries host names only (RFC 6066). */
    if (!address && SSL_set_tlsext_host_name(ssl, server_name) != 1)
        goto bad;
    if (verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = address ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name)
                         : X509_VERIFY_PARAM_set1_host(param, server_name, 0);
        if (ok != 1)
            goto bad;
    }
    /* The filter owns the SSL and, with BEV_OPT_CLOSE_ON_FREE, frees the
     * TCP bufferevent with itself.  Deferred callbacks: an OpenSSL
     * bufferevent may report the end of the connection before the read
     * callback for the last bytes (a CONNACK refusal, then the close). */
    struct bufferevent *bev = bufferevent_openssl_filter_new(
        base, tcp, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        *err = PETREL_ENOMEM;
        return NULL;
    }
    /* Brokers close connections without a TLS close_notify; petreld does
     * too.  That is an end of connection like any other. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
bad:
    SSL_free(ssl);
    ERR_clear_error();
    *err = PETREL_ENOMEM;
    return NULL;
}

int tlsc_failure(struct bufferevent *bev, const char *server_name)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    char why[300];
    openssl_error_reasons(why, sizeof why, next_bev, bev);
    ERR_clear_error();
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        const char *what = X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
            tlsc_set_detail("%s (the certificate is not for '%s')", what, server_name);
        else
            tlsc_set_detail("%s", what);
        return PETREL_ECERT;
    }
    if (ssl && SSL_is_init_finished(ssl)) {
        tlsc_set_detail("%s", why[0] ? why : "connection closed");
        return PETREL_ETLS;
    }
    tlsc_set_detail("handshake failed: %s", why[0] ? why : "the server closed the connection");
    return PETREL_ETLS;
}

int tlsc_broken(struct bufferevent *bev)
{
    char why[300];
    openssl_error_reasons(why, sizeof why, next_bev, bev);
    ERR_clear_error();
    if (!why[0])
        return PETREL_OK;
    /* With TLS 1.3 a server that refuses the client's certificate says so
     * only after the client has finished its side of the handshake. */
    tlsc_set_detail("the server ended the TLS connection: %s", why);
    return PETREL_ETLS;
}

void tlsc_describe(struct bufferevent *bev, char *out, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl)
        snprintf(out, len, "%s, %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    else
        snprintf(out, len, "no TLS");
}
