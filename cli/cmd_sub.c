/*
 * cmd_sub.c - `petrel sub`: subscribe to one or more topic filters and
 * print messages as they arrive, until -C messages, -W seconds, or a
 * signal.  The library reconnects by itself (renewing the subscriptions if
 * the broker lost the session); only a failure of the first connection or
 * a refusal that retrying cannot fix ends the program early.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "cli_client.h"
#include "commands.h"
#include "conn_args.h"
#include "exit_codes.h"
#include "format.h"

enum {
    OPT_JSON = OPT_CMD_BASE,
    OPT_NO_LOCAL,
    OPT_RETAIN_AS_PUBLISHED,
    OPT_RETAIN_HANDLING,
    OPT_PROPERTIES,
};

struct sub {
    struct conn_args ca;
    const char **topics;
    size_t n_topics;
    unsigned long qos;
    enum out_format format;
    bool newline;
    bool skip_retained;
    bool show_props;          /* --properties */
    int sub_options;          /* MQTT 5.0 PETREL_SUB_* bits */
    unsigned long count;      /* -C; 0 = no limit */
    unsigned long wait;       /* -W seconds; 0 = no limit */

    struct cli_client cc;     /* the timer: -W */
    uint64_t sub_id;
    unsigned long received;
    bool connected_once;
    bool finishing;
    int status;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: petrel sub -t FILTER [-t FILTER...] [OPTIONS]\n"
            "Subscribe to topic filters and print messages as they arrive.\n\n"
            "Subscription and output:\n"
            "  -t, --topic FILTER       topic filter (+ and # wildcards); repeatable\n"
            "  -q, --qos 0|1|2          maximum QoS to receive (default 0)\n"
            "  -v, --verbose            print \"topic payload\"\n"
            "  -N                       no newline after each payload\n"
            "      --json               one JSON object per line: topic, payload (or\n"
            "                           payload_base64 if not UTF-8), qos, retain\n"
            "  -R, --no-retained        skip retained messages (old values sent on\n"
            "                           subscribing)\n"
            "  -C, --count N            exit after N messages\n"
            "  -W, --wait SECONDS       exit after SECONDS once connected (exit 5 if -C\n"
            "                           was given and fewer messages arrived)\n"
            "MQTT 5.0 (with -V 5):\n"
            "      --properties         after each message, one line per property:\n"
            "                           two spaces, NAME: VALUE (user-property: K=V);\n"
            "                           with --json, a \"properties\" member\n"
            "      --no-local           do not receive our own publications\n"
            "      --retain-as-published keep the retain flag as the publisher set it\n"
            "      --retain-handling 0|1|2  retained messages on subscribing: 0 always\n"
            "                           (default), 1 only for a new subscription, 2 never\n"
            "  -D subscribe NAME VALUE  subscription-identifier N, user-property K V\n\n"
            "%s\n%s",
            CONN_ARGS_HELP, EXIT_CODES_HELP);
}

static void finish(struct sub *s, int status)
{
    if (s->status == CLI_EXIT_OK)
        s->status = status;
    if (s->finishing) {
        event_base_loopbreak(s->cc.base);
        return;
    }
    s->finishing = true;
    /* A clean DISCONNECT, so the broker does not publish our will; the
     * disconnected callback then ends the loop. */
    petrel_disconnect(s->cc.c);
}

static void on_connected(petrel_client *c, bool session_present, void *arg)
{
    (void)c;
    (void)session_present;
    struct sub *s = arg;
    if (s->connected_once)
        return;
    s->connected_once = true;
    if (s->wait) {
        struct timeval tv = {(time_t)s->wait, 0};
        evtimer_add(s->cc.timer, &tv);
    }
}

static void on_subscribed(petrel_client *c, uint64_t id, size_t n, const int *granted, void *arg)
{
    (void)c;
    struct sub *s = arg;
    size_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        if (PETREL_SUBSCRIBE_REFUSED(granted[i])) {
            refused++;
            if (id == s->sub_id && i < s->n_topics && s->ca.protocol == PETREL_MQTT_5)
                cli_error("sub", "subscription to '%s' refused: %s (0x%02x)", s->topics[i],
                          petrel_reason_string(granted[i]), granted[i]);
            else if (id == s->sub_id && i < s->n_topics)
                cli_error("sub", "subscription to '%s' refused", s->topics[i]);
        }
    }
    if (s->ca.debug)
        cli_error("sub", "%s: %zu of %zu granted", id ? "subscribed" : "subscriptions renewed",
                  n - refused, n);
    if (refused == n) {
        cli_error("sub", "every subscription was refused");
        finish(s, CLI_EXIT_NOT_AUTHORIZED);
    }
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    (void)c;
    struct sub *s = arg;
    if (s->finishing || (s->skip_retained && m->retain))
        return;
    if (format_message(stdout, m, s->format, s->newline, s->show_props) != 0) {
        /* The reader went away (e.g. `| head`): nothing left to do. */
        finish(s, CLI_EXIT_FAILURE);
        return;
    }
    if (s->count && ++s->received >= s->count)
        finish(s, CLI_EXIT_OK);
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    struct sub *s = arg;
    if (s->finishing) {
        if (!reconnecting)
            event_base_loopbreak(s->cc.base);
        return;
    }
    int status = cli_connection_lost(&s->ca, c, reason, reconnecting, s->connected_once);
    if (status < 0)
        return;
    s->status = status;
    event_base_loopbreak(s->cc.base);
}

static void timercb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sub *s = arg;
    if (s->count && s->received < s->count) {
        cli_error("sub", "timed out after %lu s with %lu of %lu messages", s->wait, s->received,
                  s->count);
        finish(s, CLI_EXIT_TIMEOUT);
    } else {
        finish(s, CLI_EXIT_OK);
    }
}

static void signalcb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    finish(arg, CLI_EXIT_OK);
}

static int parse(struct sub *s, int argc, char **argv)
{
    static const struct option longopts[] = {
        CONN_LONG_OPTS,
        {"topic", required_argument, NULL, 't'},
        {"qos", required_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"json", no_argument, NULL, OPT_JSON},
        {"no-retained", no_argument, NULL, 'R'},
        {"count", required_argument, NULL, 'C'},
        {"wait", required_argument, NULL, 'W'},
        {"no-local", no_argument, NULL, OPT_NO_LOCAL},
        {"retain-as-published", no_argument, NULL, OPT_RETAIN_AS_PUBLISHED},
        {"retain-handling", required_argument, NULL, OPT_RETAIN_HANDLING},
        {"properties", no_argument, NULL, OPT_PROPERTIES},
        {NULL, 0, NULL, 0},
    };
    s->topics = calloc((size_t)argc, sizeof *s->topics);
    if (!s->topics)
        return CLI_EXIT_FAILURE;
    int opt;
    bool v5_only = false;
    const char *v5_flag = NULL;
    unsigned long rh;
    s->ca.argc = argc;
    s->ca.argv = argv;
    s->ca.places = 1u << PLACE_CONNECT | 1u << PLACE_WILL | 1u << PLACE_SUBSCRIBE;
    while ((opt = conn_args_next(&s->ca, ":" CONN_SHORT_OPTS "t:q:vNRC:W:", longopts)) != -1) {
        switch (opt) {
        case OPT_HELP:
            usage(stdout);
            return -1;
        case 't':
            if (!petrel_filter_valid(optarg)) {
                cli_error("sub", "'%s' is not a valid topic filter", optarg);
                return CLI_EXIT_USAGE;
            }
            s->topics[s->n_topics++] = optarg;
            break;
        case 'q':
            if (parse_number("sub", "-q", optarg, 0, 2, "0, 1 or 2", &s->qos) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'v':
            if (s->format != OUT_JSON)
                s->format = OUT_VERBOSE;
            break;
        case OPT_JSON:
            s->format = OUT_JSON;
            break;
        case OPT_NO_LOCAL:
            s->sub_options |= PETREL_SUB_NO_LOCAL;
            v5_only = true;
            v5_flag = "--no-local";
            break;
        case OPT_RETAIN_AS_PUBLISHED:
            s->sub_options |= PETREL_SUB_RETAIN_AS_PUBLISHED;
            v5_only = true;
            v5_flag = "--retain-as-published";
            break;
        case OPT_RETAIN_HANDLING:
            if (parse_number("sub", "--retain-handling", optarg, 0, 2, "0, 1 or 2", &rh) != 0)
                return CLI_EXIT_USAGE;
            s->sub_options = (s->sub_options & ~0x30) | (int)(rh << 4);
            v5_only = true;
            v5_flag = "--retain-handling";
            break;
        case OPT_PROPERTIES:
            s->show_props = true;
            break;
        case 'N':
            s->newline = false;
            break;
        case 'R':
            s->skip_retained = true;
            break;
        case 'C':
            if (parse_number("sub", "-C", optarg, 1, 1000000000ul,
                             "a positive count", &s->count) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'W':
            if (parse_number("sub", "-W", optarg, 1, 86400ul * 365,
                             "a positive number of seconds", &s->wait) != 0)
                return CLI_EXIT_USAGE;
            break;
        default:   /* CONN_ARGS_BAD: told */
            return CLI_EXIT_USAGE;
        }
    }
    if (s->n_topics == 0) {
        cli_error("sub", "at least one topic filter is required (-t)");
        return CLI_EXIT_USAGE;
    }
    if (conn_args_check(&s->ca) != 0)
        return CLI_EXIT_USAGE;
    if (v5_only && s->ca.protocol != PETREL_MQTT_5) {
        cli_error("sub", "%s needs MQTT 5.0 (-V 5)", v5_flag);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cmd_sub(int argc, char **argv)
{
    struct sub s;
    memset(&s, 0, sizeof s);
    s.newline = true;
    conn_args_init(&s.ca, "sub");
    int rc = parse(&s, argc, argv);
    if (rc != CLI_EXIT_OK) {
        conn_args_free(&s.ca);
        free(s.topics);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }

    petrel_options *o = conn_args_options(&s.ca);
    if (!o) {
        conn_args_free(&s.ca);
        free(s.topics);
        return CLI_EXIT_USAGE;
    }
    int *qos = calloc(s.n_topics, sizeof *qos);
    s.status = cli_client_start(&s.cc, "sub", o, qos != NULL, timercb, signalcb, &s);
    if (s.status != CLI_EXIT_OK)
        goto out;
    conn_args_attach_debug(&s.ca, s.cc.c);
    petrel_on_connected(s.cc.c, on_connected, &s);
    petrel_on_subscribed(s.cc.c, on_subscribed, &s);
    petrel_on_message(s.cc.c, on_message, &s);
    petrel_on_disconnected(s.cc.c, on_disconnected, &s);

    /* Subscribing before connecting: the request goes out right after the
     * CONNACK. */
    for (size_t i = 0; i < s.n_topics; i++)
        qos[i] = (int)s.qos | s.sub_options;
    rc = petrel_subscribe_props(s.cc.c, s.topics, qos, s.n_topics, s.ca.props[PLACE_SUBSCRIBE],
                                &s.sub_id);
    if (rc != PETREL_OK) {
        cli_error("sub", "cannot subscribe: %s", rc == PETREL_EINVAL
                                                     ? "invalid topic filter"
                                                     : petrel_strerror(rc));
        s.status = rc == PETREL_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        goto out;
    }
    rc = cli_client_run(&s.cc, "sub");
    if (rc != CLI_EXIT_OK)
        s.status = rc;

out:
    cli_client_free(&s.cc);
    free(qos);
    free(s.topics);
    conn_args_free(&s.ca);
    return s.status;
}
