/*
 * http_tokens.c - the admin API's token table (see http_tokens.h).
 */
#include "http_tokens.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "array_grow.h"
#include "config.h"
#include "line_file.h"

struct token {
    char name[HTTP_TOKEN_NAME_MAX + 1];
    uint8_t role;
    size_t len;
    char value[HTTP_TOKEN_MAX];
};

struct http_tokens {
    struct token *v;
    size_t n, cap;
};

static struct http_tokens *in_force;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Next blank-separated word of *p, NUL-terminated in place; NULL at the end. */
static char *word(char **p)
{
    char *s = *p;
    while (is_blank(*s))
        s++;
    if (*s == '\0')
        return NULL;
    char *e = s;
    while (*e && !is_blank(*e))
        e++;
    if (*e)
        *e++ = '\0';
    *p = e;
    return s;
}

static int parse_line(char *line, size_t len, void *arg, char *why, size_t whylen)
{
    (void)len;
    struct http_tokens *t = arg;
    char *p = line;
    char *name = word(&p);
    if (!name || name[0] == '#')
        return 0;
    char *role = word(&p), *value = word(&p), *extra = word(&p);
    if (!role || !value || extra) {
        snprintf(why, whylen, "expected 'NAME ROLE TOKEN' (ROLE read or admin)");
        return -1;
    }
    struct token tk;
    memset(&tk, 0, sizeof tk);
    if (strlen(name) > HTTP_TOKEN_NAME_MAX) {
        snprintf(why, whylen, "name longer than %d bytes", HTTP_TOKEN_NAME_MAX);
        return -1;
    }
    for (const char *c = name; *c; c++) {
        /* names go into log lines: keep them plain */
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.' || *c == '@')) {
            snprintf(why, whylen, "name '%.64s': only letters, digits and - _ . @", name);
            return -1;
        }
    }
    if (strcmp(role, "read") == 0)
        tk.role = HTTP_ROLE_READ;
    else if (strcmp(role, "admin") == 0)
        tk.role = HTTP_ROLE_ADMIN;
    else {
        snprintf(why, whylen, "role '%.32s' is not read or admin", role);
        return -1;
    }
    size_t vlen = strlen(value);
    if (vlen < HTTP_TOKEN_MIN || vlen > HTTP_TOKEN_MAX) {
        snprintf(why, whylen, "token of %s is %zu bytes; it must have %d to %d (e.g. "
                 "openssl rand -hex 24)", name, vlen, HTTP_TOKEN_MIN, HTTP_TOKEN_MAX);
        return -1;
    }
    for (const char *c = value; *c; c++) {
        /* what an HTTP header can carry without quoting (RFC 6750 b64token) */
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            snprintf(why, whylen, "token of %s holds a byte that is not printable ASCII", name);
            return -1;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0) {
            snprintf(why, whylen, "name %s is listed twice", name);
            return -1;
        }
        if (t->v[i].len == vlen && memcmp(t->v[i].value, value, vlen) == 0) {
            snprintf(why, whylen, "%s has the same token as %s", name, t->v[i].name);
            return -1;
        }
    }
    memcpy(tk.name, name, strlen(name) + 1);
    memcpy(tk.value, value, vlen);
    tk.len = vlen;
    if (t->n == t->cap) {
        struct token *v = array_grow(t->v, &t->cap, t->n + 1, sizeof *v, 8);
        if (!v) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        t->v = v;
    }
    t->v[t->n++] = tk;
    return 0;
}

struct http_tokens *http_tokens_load(const char *path, char *err, size_t errlen)
{
    struct http_tokens *t = calloc(1, sizeof *t);
    if (line_file_load(path, t != NULL, parse_line, t, err, errlen) != 0) {
        http_tokens_free(t);
        return NULL;
    }
    return t;
}

void http_tokens_free(struct http_tokens *t)
{
    if (!t)
        return;
    OPENSSL_cleanse(t->v, t->cap * sizeof *t->v);
    free(t->v);
    free(t);
}

size_t http_tokens_count(const struct http_tokens *t)
{
    return t ? t->n : 0;
}

void http_tokens_set(struct http_tokens *t)
{
    http_tokens_free(in_force);
    in_force = t;
}

uint8_t http_tokens_check(const char *token, size_t len, const char **name)
{
    uint8_t role = HTTP_ROLE_NONE;
    if (!in_force || len == 0 || len > HTTP_TOKEN_MAX)
        return HTTP_ROLE_NONE;
    /* Compared against every entry, each over HTTP_TOKEN_MAX bytes, with no
     * early exit: neither where a guess went wrong nor which entry it came
     * near shows in the time. */
    char guess[HTTP_TOKEN_MAX];
    memset(guess, 0, sizeof guess);
    memcpy(guess, token, len);
    for (size_t i = 0; i < in_force->n; i++) {
        const struct token *tk = &in_force->v[i];
        char want[HTTP_TOKEN_MAX];
        memset(want, 0, sizeof want);
        memcpy(want, tk->value, tk->len);
        int same = CRYPTO_memcmp(guess, want, sizeof want) == 0 && tk->len == len;
        if (same) {
            role = tk->role;
            *name = tk->name;
        }
    }
    OPENSSL_cleanse(guess, sizeof guess);
    return role;
}
