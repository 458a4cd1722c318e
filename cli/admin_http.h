/*
 * admin_http.h - the HTTP client of `petrel admin`: one request to
 * petreld's HTTP listener (http_listen) over libevent's evhttp, with TLS
 * through OpenSSL when asked, and the reply.
 */
#ifndef PETREL_CLI_ADMIN_HTTP_H
#define PETREL_CLI_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct admin_target {
    const char *host;     /* name or address */
    unsigned port;
    const char *token;    /* NULL: no Authorization header */
    bool tls;
    const char *cafile;   /* NULL: the system's CAs */
    bool insecure;        /* --insecure: no certificate check */
    int timeout_s;
};

struct admin_reply {
    int status;           /* HTTP status, 0 when there was none */
    char *body;           /* NUL-terminated, malloc'd (may be NULL) */
    size_t len;
    char error[512];      /* why there was no reply */
    bool timed_out;
};

/* Sends METHOD PATH (already percent-encoded) and waits for the reply.
 * Returns 0 with r filled (any status), or -1 with r->error set. */
int admin_request(const struct admin_target *t, const char *method, const char *path,
                  struct admin_reply *r);
void admin_reply_free(struct admin_reply *r);

#endif
