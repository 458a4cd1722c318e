/*
 * cli_client.c - the event loop and client that `petrel pub` and `petrel
 * sub` share (see cli_client.h).
 */
#include "cli_client.h"

#include <signal.h>
#include <stdio.h>

#include "exit_codes.h"

int cli_client_start(struct cli_client *cc, const char *cmd, petrel_options *o,
                     bool have_memory, event_callback_fn timercb, event_callback_fn signalcb,
                     void *arg)
{
    int err = PETREL_ENOMEM;
    signal(SIGPIPE, SIG_IGN);
    cc->base = event_base_new();
    if (cc->base && have_memory)
        cc->c = petrel_client_new(cc->base, o, &err);
    petrel_options_free(o);
    if (cc->c) {
        cc->timer = evtimer_new(cc->base, timercb, arg);
        cc->sig_int = evsignal_new(cc->base, SIGINT, signalcb, arg);
        cc->sig_term = evsignal_new(cc->base, SIGTERM, signalcb, arg);
    }
    if (!cc->c || !cc->timer || !cc->sig_int || !cc->sig_term) {
        cli_error(cmd, "cannot start: %s", conn_error_text(err));
        /* a TLS file that cannot be used is a bad argument */
        return err == PETREL_ETLS ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    evsignal_add(cc->sig_int, NULL);
    evsignal_add(cc->sig_term, NULL);
    return CLI_EXIT_OK;
}

int cli_client_run(struct cli_client *cc, const char *cmd)
{
    int rc = petrel_connect(cc->c);
    if (rc != PETREL_OK) {
        cli_error(cmd, "cannot connect: %s", petrel_strerror(rc));
        return exit_code_for(rc, 0);
    }
    event_base_dispatch(cc->base);
    return CLI_EXIT_OK;
}

void cli_client_free(struct cli_client *cc)
{
    struct event *events[] = {cc->timer, cc->sig_int, cc->sig_term};
    petrel_client_free(cc->c);   /* (NULL is fine) */
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (events[i])
            event_free(events[i]);
    if (cc->base)
        event_base_free(cc->base);
}

int cli_connection_lost(const struct conn_args *ca, petrel_client *c, int reason,
                        bool reconnecting, bool connected_once)
{
    char why[300];
    conn_args_reason(c, why, sizeof why);
    if (!connected_once) {
        cli_error(ca->cmd, "cannot connect to %s port %lu: %s%s", ca->host, conn_args_port(ca),
                  conn_error_text(reason), why);
        return exit_code_for(reason, 0);
    }
    if (reconnecting) {
        if (ca->debug)
            cli_error(ca->cmd, "connection lost (%s%s); reconnecting", petrel_strerror(reason),
                      why);
        return -1;
    }
    cli_error(ca->cmd, "connection lost: %s%s", conn_error_text(reason), why);
    return exit_code_for(reason, 1);
}
