/*
 * exit_codes.c - maps libpetrel errors onto the documented exit statuses.
 */
#include "exit_codes.h"

#include <petrel.h>

int exit_code_for(int err, int connected)
{
    switch (err) {
    case PETREL_OK:
        return CLI_EXIT_OK;
    case PETREL_EINVAL:
        return CLI_EXIT_USAGE;
    case PETREL_EBAD_CREDENTIALS:
    case PETREL_ENOT_AUTHORIZED:
        return CLI_EXIT_NOT_AUTHORIZED;
    case PETREL_ETIMEDOUT:
    case PETREL_EKEEPALIVE:
        return CLI_EXIT_TIMEOUT;
    case PETREL_ECONNREFUSED:
    case PETREL_ERESOLVE:
    case PETREL_EREFUSED_PROTOCOL:
    case PETREL_EREFUSED_ID:
    case PETREL_EUNAVAILABLE:
    case PETREL_ECERT:
    case PETREL_EREFUSED: /* any other MQTT 5.0 CONNACK refusal */
        return CLI_EXIT_REFUSED;
    case PETREL_ETLS:
        /* A refused handshake: could not connect. */
        return connected ? CLI_EXIT_FAILURE : CLI_EXIT_REFUSED;
    case PETREL_ENETWORK:
        /* Unreachable before a connection: could not connect. */
        return connected ? CLI_EXIT_FAILURE : CLI_EXIT_REFUSED;
    default:
        return CLI_EXIT_FAILURE;
    }
}
