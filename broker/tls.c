/*
 * tls.c - OpenSSL for petreld: server contexts built from a listener's TLS
 * options, OpenSSL bufferevents for accepted sockets, and the facts about a
 * TLS connection that logs and use_identity_as_username need.  The rest of
 * the broker sees bufferevents only: what is read and written is plain MQTT.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>

#include "config.h"
#include "log.h"
#include "openssl_shared.h"

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define peer_certificate SSL_get1_peer_certificate
#else
#define peer_certificate SSL_get_peer_certificate
#endif

/* OpenSSL's reasons for what just failed, never empty. */
static void openssl_reasons(char *buf, size_t len)
{
    openssl_error_reasons(buf, len, NULL, NULL);
    if (buf[0] == '\0')
        snprintf(buf, len, "unknown OpenSSL error");
}

/* "what path: reason" with OpenSSL's reasons, for a failed step. */
static void fail(char *err, size_t errlen, const char *what, const char *path)
{
    char reasons[384] = "";
    openssl_reasons(reasons, sizeof reasons);
    snprintf(err, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "", reasons);
}

/* The files are opened by OpenSSL, whose message for a missing or
 * unreadable file is vague; the usual mistakes (wrong path, a file the
 * service user may not read) get the system's own words first. */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

struct ssl_ctx_st *tls_server_ctx_new(const struct listener_tls_conf *t, char *err,
                                      size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fail(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    int min = t->min_version == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1) {
        fail(err, errlen, "tls_version", NULL);
        goto bad;
    }
    /* Compression leaks plaintext lengths (CRIME); renegotiation is a
     * denial-of-service lever and nothing MQTT needs. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Clients that close without a close_notify (most do) end the
     * connection like a TCP EOF; MQTT's framing catches truncation. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* Idle connections are the norm for MQTT: give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, openssl_no_passphrase);

    if (readable("certfile", t->certfile, err, errlen) != 0)
        goto bad;
    if (SSL_CTX_use_certificate_chain_file(ctx, t->certfile) != 1) {
        fail(err, errlen, "certfile", t->certfile);
        goto bad;
    }
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (cert && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        log_warning("certfile %s: the certificate has expired: clients that check it will "
                    "refuse to connect", t->certfile);
    else if (cert && X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        log_warning("certfile %s: the certificate is not valid yet", t->certfile);
    if (readable("keyfile", t->keyfile, err, errlen) != 0)
        goto bad;
    /* OpenSSL checks the key against the certificate as it loads it; the
     * mismatch gets a message that says which two files disagree. */
    if (SSL_CTX_use_PrivateKey_file(ctx, t->keyfile, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        fail(err, errlen, "keyfile", t->keyfile);
        goto bad;
    }
    if (SSL_CTX_check_private_key(ctx) != 1 || ERR_peek_error() != 0) {
        char reasons[256] = "";
        openssl_reasons(reasons, sizeof reasons);
        snprintf(err, errlen, "keyfile %s does not belong to the certificate in certfile %s: %s",
                 t->keyfile, t->certfile, reasons);
        goto bad;
    }
    if (t->cafile[0]) {
        if (readable("cafile", t->cafile, err, errlen) != 0)
            goto bad;
        if (SSL_CTX_load_verify_locations(ctx, t->cafile, NULL) != 1) {
            fail(err, errlen, "cafile", t->cafile);
            goto bad;
        }
        /* Tells clients which CAs' certificates the server accepts. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->cafile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    if (t->require_certificate)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else if (t->use_identity_as_username)
        /* A certificate is asked for and checked if sent; a client
         * without one is refused at CONNECT (CONNACK 5), not here. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Session resumption with verified clients needs a context id. */
    static const unsigned char sid_ctx[] = "petreld";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);

    if (t->ciphers[0] && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        fail(err, errlen, "ciphers", t->ciphers);
        goto bad;
    }
    if (t->ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        fail(err, errlen, "ciphersuites", t->ciphersuites);
        goto bad;
    }
    return ctx;
bad:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

struct bufferevent *tls_accept_bufferevent(struct event_base *base, int fd,
                                           struct ssl_ctx_st *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        ERR_clear_error();
        evutil_closesocket(fd);
        return NULL;
    }
    /* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns both the SSL and the
     * socket, and frees them with itself.  Deferred callbacks: an OpenSSL
     * bufferevent reports the end of the connection before the read
     * callback for the bytes that came with it (a PUBLISH and a
     * DISCONNECT, then the close); deferred, the read callback runs
     * first. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        /* libevent freed the SSL and closed the socket if it got as far as
         * allocating the bufferevent; if the socket is still open it did
         * not, and both are ours to free (one thread opens sockets here,
         * so the number cannot have been reused meanwhile). */
        if (fcntl(fd, F_GETFD) != -1) {
            SSL_free(ssl);
            evutil_closesocket(fd);
        }
        return NULL;
    }
    /* Most MQTT clients just close the socket: that is an end, not an
     * attack (a truncated MQTT packet is caught by the framing anyway). */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The SSL of a TLS bufferevent, or of the one below a filter (wss: the
 * WebSocket layer sits on top of TLS); NULL for a plain socket. */
static SSL *ssl_of(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    struct bufferevent *under = ssl ? NULL : bufferevent_get_underlying(bev);
    return under ? bufferevent_openssl_get_ssl(under) : ssl;
}

/* SSL's application data: set once the handshake is done. */
static char handshake_done_mark;

void tls_handshake_done(struct bufferevent *bev, const char *peer)
{
    SSL *ssl = ssl_of(bev);
    if (!ssl)
        return;
    SSL_set_app_data(ssl, &handshake_done_mark);
    if (!log_enabled(LOG_DEBUG))
        return;
    X509 *cert = peer_certificate(ssl);
    char subject[256] = "no client certificate";
    if (cert) {
        snprintf(subject, sizeof subject, "client certificate ");
        X509_NAME_oneline(X509_get_subject_name(cert), subject + strlen(subject),
                          (int)(sizeof subject - strlen(subject)));
        X509_free(cert);
    }
    log_debug("connection from %s: TLS handshake done (%s, %s, %s)", peer, SSL_get_version(ssl),
              SSL_get_cipher_name(ssl), subject);
}

bool tls_error_reason(struct bufferevent *bev, short what, char *why, size_t len)
{
    SSL *ssl = ssl_of(bev);
    if (!ssl)
        return false;
    bool in_handshake = SSL_get_app_data(ssl) != &handshake_done_mark;
    char reasons[256] = "";
    size_t used = 0;
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        /* libevent also queues SSL_get_error() codes: not reasons */
        if (ERR_GET_LIB(e) == 0)
            continue;
        const char *r = ERR_reason_error_string(e);
        char one[128];
        if (r)
            snprintf(one, sizeof one, "%s", r);
        else
            ERR_error_string_n(e, one, sizeof one);
        if (strstr(reasons, one) || used >= sizeof reasons)
            continue;
        used += (size_t)snprintf(reasons + used, sizeof reasons - used, "%s%s",
                                 used ? "; " : "", one);
    }
    if (reasons[0]) {
        snprintf(why, len, "%s: %s", in_handshake ? "TLS handshake failed" : "TLS error",
                 reasons);
        return true;
    }
    if (in_handshake && (what & BEV_EVENT_EOF)) {
        snprintf(why, len, "connection closed during the TLS handshake");
        return true;
    }
    return false;
}

char *tls_peer_cn(struct bufferevent *bev, size_t *len)
{
    SSL *ssl = bev ? ssl_of(bev) : NULL;
    if (!ssl)
        return NULL;
    X509 *cert = peer_certificate(ssl);
    if (!cert)
        return NULL;
    char *out = NULL;
    /* X509_V_OK also when no certificate was sent: checked above. */
    if (SSL_get_verify_result(ssl) != X509_V_OK)
        goto done;
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    /* No CN, or two: no single user name to take. */
    if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        goto done;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n > 0 && n <= 65535 && memchr(utf8, '\0', (size_t)n) == NULL) {
        out = malloc((size_t)n + 1);
        if (out) {
            memcpy(out, utf8, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    OPENSSL_free(utf8);
done:
    X509_free(cert);
    return out;
}
