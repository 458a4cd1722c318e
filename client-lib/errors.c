/*
 * errors.c - names and descriptions of libpetrel's error codes, and the
 * library version.  One table, so a new code cannot get a name without a
 * description.
 */
#include "petrel.h"

#include <stddef.h>

struct error_entry {
    int code;
    const char *name;
    const char *text;
};

/* ERR(PETREL_X, "text"): the code, its name spelt once, its description. */
#define ERR(code, text) {code, #code, text}

static const struct error_entry errors[] = {
    ERR(PETREL_OK, "success"),
    ERR(PETREL_EINVAL, "invalid argument"),
    ERR(PETREL_ENOMEM, "out of memory"),
    ERR(PETREL_ESTATE, "not allowed in the client's current state"),
    ERR(PETREL_EQUEUE_FULL, "outgoing message queue is full"),
    ERR(PETREL_ETIMEDOUT, "timed out"),
    ERR(PETREL_ERESOLVE, "host name could not be resolved"),
    ERR(PETREL_ECONNREFUSED, "connection refused"),
    ERR(PETREL_ENETWORK, "network error"),
    ERR(PETREL_ECONNLOST, "connection closed by the server"),
    ERR(PETREL_EKEEPALIVE, "dead link: no answer to the keep-alive ping"),
    ERR(PETREL_EPROTOCOL, "protocol error from the server"),
    ERR(PETREL_EREFUSED_PROTOCOL, "connection refused: protocol version not accepted"),
    ERR(PETREL_EREFUSED_ID, "connection refused: client identifier rejected"),
    ERR(PETREL_EUNAVAILABLE, "connection refused: server unavailable"),
    ERR(PETREL_EBAD_CREDENTIALS, "connection refused: bad user name or password"),
    ERR(PETREL_ENOT_AUTHORIZED, "connection refused: not authorized"),
    ERR(PETREL_ENOTSUP, "not supported"),
    ERR(PETREL_ETOO_LARGE, "packet too large"),
    ERR(PETREL_ESTOPPED, "client stopped"),
    ERR(PETREL_ETLS, "TLS failed"),
    ERR(PETREL_ECERT, "server certificate not accepted"),
    ERR(PETREL_EREFUSED, "connection refused by the server"),
    ERR(PETREL_ESERVER_DISCONNECT, "the server ended the connection (DISCONNECT)"),
    ERR(PETREL_EREJECTED, "the server refused the message"),
};
#undef ERR

static const struct error_entry *find(int err)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == err)
            return &errors[i];
    return NULL;
}

const char *petrel_strerror(int err)
{
    const struct error_entry *e = find(err);
    return e ? e->text : "unknown error";
}

const char *petrel_error_name(int err)
{
    const struct error_entry *e = find(err);
    return e ? e->name : "PETREL_E?";
}

const char *petrel_version(void)
{
    return PETREL_VERSION;
}
