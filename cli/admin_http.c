/*
 * admin_http.c - one HTTP request for `petrel admin` (see admin_http.h).
 * evhttp does the HTTP/1.1; a verifying OpenSSL bufferevent carries it
 * when the listener has TLS (certificate chain and host name checked, as
 * libpetrel does for MQTT).
 */
#include "admin_http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "openssl_shared.h"

#define MAX_REPLY (64 * 1024 * 1024)

struct pending {
    struct admin_reply *r;
    struct event_base *base;
    struct bufferevent *bev;
    bool done;
};

static void tls_reason(struct pending *p)
{
    unsigned long e = p->bev ? bufferevent_get_openssl_error(p->bev) : 0;
    if (e) {
        char why[256];
        ERR_error_string_n(e, why, sizeof why);
        snprintf(p->r->error, sizeof p->r->error, "TLS failed: %s", why);
    }
}

static void reply_cb(struct evhttp_request *req, void *arg)
{
    struct pending *p = arg;
    p->done = true;
    if (!req || evhttp_request_get_response_code(req) == 0) {
        if (!p->r->error[0])
            snprintf(p->r->error, sizeof p->r->error, "no reply (connection refused or closed)");
        tls_reason(p);
        event_base_loopexit(p->base, NULL);
        return;
    }
    p->r->status = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > MAX_REPLY)
        len = MAX_REPLY;
    p->r->body = malloc(len + 1);
    if (p->r->body) {
        evbuffer_remove(in, p->r->body, len);
        p->r->body[len] = '\0';
        p->r->len = len;
    }
    event_base_loopexit(p->base, NULL);
}

static void error_cb(enum evhttp_request_error err, void *arg)
{
    struct pending *p = arg;
    if (err == EVREQ_HTTP_TIMEOUT) {
        p->r->timed_out = true;
        snprintf(p->r->error, sizeof p->r->error, "no reply in time");
    } else if (err == EVREQ_HTTP_DATA_TOO_LONG) {
        snprintf(p->r->error, sizeof p->r->error, "reply too large");
    }
}

static SSL *new_ssl(const struct admin_target *t, SSL_CTX **ctx_out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (!t->insecure) {
        if (t->cafile ? SSL_CTX_load_verify_locations(ctx, t->cafile, NULL) != 1
                      : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            char why[256] = "";
            openssl_error_reasons(why, sizeof why, NULL, NULL);
            snprintf(err, errlen, "cafile %s: %s", t->cafile ? t->cafile : "(system)", why);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        SSL_CTX_free(ctx);
        goto fail;
    }
    unsigned char bin[16];
    bool is_ip = inet_pton(AF_INET, t->host, bin) == 1 || inet_pton(AF_INET6, t->host, bin) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, t->host);
    if (!t->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(vp, t->host);
        else
            X509_VERIFY_PARAM_set1_host(vp, t->host, 0);
    }
    *ctx_out = ctx;
    return ssl;
fail:
    snprintf(err, errlen, "cannot set up TLS");
    return NULL;
}

int admin_request(const struct admin_target *t, const char *method, const char *path,
                  struct admin_reply *r)
{
    memset(r, 0, sizeof *r);
    enum evhttp_cmd_type type = strcmp(method, "POST") == 0     ? EVHTTP_REQ_POST
                                : strcmp(method, "DELETE") == 0 ? EVHTTP_REQ_DELETE
                                                                : EVHTTP_REQ_GET;
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    SSL_CTX *ctx = NULL;
    struct bufferevent *bev = NULL;
    if (t->tls) {
        SSL *ssl = new_ssl(t, &ctx, r->error, sizeof r->error);
        if (!ssl) {
            event_base_free(base);
            return -1;
        }
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            SSL_CTX_free(ctx);
            event_base_free(base);
            snprintf(r->error, sizeof r->error, "out of memory");
            return -1;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    }
    struct pending p = {r, base, bev, false};
    struct evhttp_connection *evcon =
        evhttp_connection_base_bufferevent_new(base, NULL, bev, t->host, (unsigned short)t->port);
    struct evhttp_request *req = evcon ? evhttp_request_new(reply_cb, &p) : NULL;
    if (!req) {
        if (evcon)
            evhttp_connection_free(evcon);
        else if (bev)
            bufferevent_free(bev);
        SSL_CTX_free(ctx);
        event_base_free(base);
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    evhttp_connection_set_timeout(evcon, t->timeout_s);
    evhttp_connection_set_retries(evcon, 0);
    evhttp_request_set_error_cb(req, error_cb);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s%s%s:%u", strchr(t->host, ':') ? "[" : "", t->host,
             strchr(t->host, ':') ? "]" : "", t->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Accept", "application/json");
    evhttp_add_header(h, "User-Agent", "petrel-admin/" PETREL_VERSION);
    evhttp_add_header(h, "Connection", "close");
    if (t->token) {
        char auth[400];
        snprintf(auth, sizeof auth, "Bearer %s", t->token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (evhttp_make_request(evcon, req, type, path) != 0) {
        snprintf(r->error, sizeof r->error, "cannot send the request");
        evhttp_connection_free(evcon);
        SSL_CTX_free(ctx);
        event_base_free(base);
        return -1;
    }
    event_base_dispatch(base);
    evhttp_connection_free(evcon);
    SSL_CTX_free(ctx);
    event_base_free(base);
    if (!p.done && !r->error[0])
        snprintf(r->error, sizeof r->error, "no reply");
    return r->status ? 0 : -1;
}

void admin_reply_free(struct admin_reply *r)
{
    free(r->body);
    r->body = NULL;
}
