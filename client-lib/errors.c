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

static const struct error_entry errors[] = {
    {PETREL_OK, "PETREL_OK", "success"},
    {PETREL_EINVAL, "PETREL_EINVAL", "invalid argument"},
    {PETREL_ENOMEM, "PETREL_ENOMEM", "out of memory"},
    {PETREL_ESTATE, "PETREL_ESTATE", "not allowed in the client's current state"},
    {PETREL_EQUEUE_FULL, "PETREL_EQUEUE_FULL", "outgoing message queue is full"},
    {PETREL_ETIMEDOUT, "PETREL_ETIMEDOUT", "timed out"},
    {PETREL_ERESOLVE, "PETREL_ERESOLVE", "host name could not be resolved"},
    {PETREL_ECONNREFUSED, "PETREL_ECONNREFUSED", "connection refused"},
    {PETREL_ENETWORK, "PETREL_ENETWORK", "network error"},
    {PETREL_ECONNLOST, "PETREL_ECONNLOST", "connection closed by the server"},
    {PETREL_EKEEPALIVE, "PETREL_EKEEPALIVE", "dead link: no answer to the keep-alive ping"},
    {PETREL_EPROTOCOL, "PETREL_EPROTOCOL", "protocol error from the server"},
    {PETREL_EREFUSED_PROTOCOL, "PETREL_EREFUSED_PROTOCOL",
     "connection refused: protocol version not accepted"},
    {PETREL_EREFUSED_ID, "PETREL_EREFUSED_ID", "connection refused: client identifier rejected"},
    {PETREL_EUNAVAILABLE, "PETREL_EUNAVAILABLE", "connection refused: server unavailable"},
    {PETREL_EBAD_CREDENTIALS, "PETREL_EBAD_CREDENTIALS",
     "connection refused: bad user name or password"},
    {PETREL_ENOT_AUTHORIZED, "PETREL_ENOT_AUTHORIZED", "connection refused: not authorized"},
    {PETREL_ENOTSUP, "PETREL_ENOTSUP", "not supported"},
    {PETREL_ETOO_LARGE, "PETREL_ETOO_LARGE", "packet too large"},
    {PETREL_ESTOPPED, "PETREL_ESTOPPED", "client stopped"},
    {PETREL_ETLS, "PETREL_ETLS", "TLS failed"},
    {PETREL_ECERT, "PETREL_ECERT", "server certificate not accepted"},
    {PETREL_EREFUSED, "PETREL_EREFUSED", "connection refused by the server"},
    {PETREL_ESERVER_DISCONNECT, "PETREL_ESERVER_DISCONNECT",
     "the server ended the connection (DISCONNECT)"},
    {PETREL_EREJECTED, "PETREL_EREJECTED", "the server refused the message"},
};

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
