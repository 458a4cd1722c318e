/*
 * exit_codes.h - the exit status of every petrel subcommand, and how
 * libpetrel errors map onto them.  Scripts depend on these numbers: they
 * are documented in --help and docs/client.md and must not change.
 */
#ifndef PETREL_CLI_EXIT_CODES_H
#define PETREL_CLI_EXIT_CODES_H

enum cli_exit {
    CLI_EXIT_OK = 0,             /* success */
    CLI_EXIT_FAILURE = 1,        /* connection lost for good, message not
                                    acknowledged, I/O error */
    CLI_EXIT_USAGE = 2,          /* bad arguments */
    CLI_EXIT_REFUSED = 3,        /* could not connect: TCP refused, unknown
                                    host, unreachable, TLS handshake or server
                                    certificate refused, CONNACK refusal 1-3,
                                    MQTT 5.0 refusals but 0x86/0x87 */
    CLI_EXIT_NOT_AUTHORIZED = 4, /* CONNACK 4 or 5 (5.0: 0x86, 0x87), every
                                    subscription refused, or (5.0) a
                                    publication refused as not authorized */
    CLI_EXIT_TIMEOUT = 5         /* no connection or acknowledgement in time */
};

/* The text block shown at the end of every --help. */
#define EXIT_CODES_HELP                                                         \
    "Exit status:\n"                                                            \
    "  0  success\n"                                                            \
    "  1  failure (connection lost for good, message not acknowledged, I/O)\n" \
    "  2  bad arguments\n"                                                      \
    "  3  connection refused (TCP refused, unknown host, TLS handshake or\n"    \
    "     server certificate refused, CONNACK 1-3; MQTT 5.0: any refusal\n"     \
    "     but 0x86 and 0x87)\n"                                                 \
    "  4  not authorized (CONNACK 4 or 5, 5.0 reason 0x86 or 0x87, every\n"     \
    "     subscription refused, 5.0 publication refused with 0x87)\n"           \
    "  5  timeout (connection or acknowledgement)\n"

/* Exit status for an error that ended a connection attempt, or an
 * established connection when `connected` is true. */
int exit_code_for(int petrel_err, int connected);

#endif
