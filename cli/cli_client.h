/*
 * cli_client.h - what `petrel pub` and `petrel sub` run on: one event
 * loop, one libpetrel client, a timer of the command's own (pub's
 * acknowledgement watchdog, sub's -W) and SIGINT/SIGTERM handlers; and the
 * way both report a connection that failed or was lost.
 */
#ifndef PETREL_CLI_CLIENT_H
#define PETREL_CLI_CLIENT_H

#include <stdbool.h>
#include <event2/event.h>

#include <petrel.h>

#include "conn_args.h"

struct cli_client {
    struct event_base *base;
    petrel_client *c;
    struct event *timer;      /* not added: the command arms it */
    struct event *sig_int;
    struct event *sig_term;
};

/* Ignores SIGPIPE and makes the loop, the client from `o` (freed here),
 * the timer and the two signal events (added), which call back with arg.
 * have_memory false: the caller's own allocations failed, so nothing is
 * made.  Returns CLI_EXIT_OK, or the exit status after telling why it
 * could not start (a TLS file that cannot be used is a usage error).
 * Whatever was made is released by cli_client_free(), either way. */
int cli_client_start(struct cli_client *cc, const char *cmd, petrel_options *o,
                     bool have_memory, event_callback_fn timercb, event_callback_fn signalcb,
                     void *arg);

/* Connects and runs the loop until the command breaks it.  Returns
 * CLI_EXIT_OK then, or the exit status if the connection could not even
 * be started (told on stderr). */
int cli_client_run(struct cli_client *cc, const char *cmd);

/* Frees the client, the events and, last, the loop. */
void cli_client_free(struct cli_client *cc);

/* Tells on stderr that the connection failed (never connected) or was
 * lost, with the broker's reason if it gave one.  Returns the exit status
 * to leave with, or -1 while the library reconnects (told with -d only). */
int cli_connection_lost(const struct conn_args *ca, petrel_client *c, int reason,
                        bool reconnecting, bool connected_once);

#endif
