/*
 * openssl_shared.c - see openssl_shared.h.
 */
#include "openssl_shared.h"

#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

static unsigned long next_thread_error(void *arg)
{
    (void)arg;
    return ERR_get_error();
}

void openssl_error_reasons(char *buf, size_t len, unsigned long (*next)(void *), void *arg)
{
    size_t used = 0;
    unsigned long e;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (!next)
        next = next_thread_error;
    while ((e = next(arg)) != 0) {
        if (ERR_GET_LIB(e) == 0)
            continue;
        char one[256];
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(one, sizeof one, "%s", r);
        else
            ERR_error_string_n(e, one, sizeof one);
        /* Keep draining even when full: the caller expects an empty queue. */
        if (used >= len - 1 || strstr(buf, one))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
        if (n > 0)
            used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

int openssl_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}
