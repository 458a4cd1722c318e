/*
 * cmd_pub.c - `petrel pub`: publish one message (-m, -f, -s, -n) or one
 * message per line of stdin (-l), and exit 0 only when every message was
 * acknowledged at its QoS.  Runs libpetrel's asynchronous client so that a
 * long-lived `-l` pipe keeps its connection alive (pings, reconnects)
 * while stdin is quiet.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "cli_client.h"
#include "commands.h"
#include "conn_args.h"
#include "exit_codes.h"

/* Stop reading stdin while this many messages wait for the broker; the
 * library's own queue bound (1000) is never reached. */
#define PAUSE_AT 500
#define READ_CHUNK 65536

enum source { SRC_NONE, SRC_MESSAGE, SRC_FILE, SRC_STDIN, SRC_LINES, SRC_NULL };

struct pub {
    struct conn_args ca;
    const char *topic;
    unsigned long qos;
    bool retain;
    enum source src;
    const char *arg;          /* -m text or -f path */
    char *data;               /* the single message */
    size_t data_len;

    struct cli_client cc;     /* the timer: the acknowledgement watchdog */
    struct event *input;      /* stdin readable, or "read more" */
    bool input_pollable;
    bool input_eof;
    bool input_paused;
    struct evbuffer *lines;

    unsigned long published;
    unsigned long acked;
    unsigned long failed;
    bool connected_once;
    bool started;
    bool finishing;
    int status;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: petrel pub -t TOPIC {-m TEXT | -f FILE | -s | -l | -n} [OPTIONS]\n"
            "Publish a message (or one per line of stdin) to an MQTT broker.\n\n"
            "Message:\n"
            "  -t, --topic TOPIC        topic to publish to (required)\n"
            "  -m, --message TEXT       send TEXT\n"
            "  -f, --file FILE          send the contents of FILE\n"
            "  -s, --stdin-file         send all of stdin as one message\n"
            "  -l, --stdin-line         send each line of stdin as a message (blank lines\n"
            "                           are sent empty); stays connected until EOF\n"
            "  -n, --null-message       send an empty message\n"
            "  -q, --qos 0|1|2          quality of service (default 0)\n"
            "  -r, --retain             ask the broker to retain the message\n"
            "  -D publish NAME VALUE    an MQTT 5.0 property of the message (needs -V 5):\n"
            "                           message-expiry-interval, content-type,\n"
            "                           payload-format-indicator, response-topic,\n"
            "                           correlation-data, user-property NAME VALUE\n\n"
            "%s\n%s",
            CONN_ARGS_HELP, EXIT_CODES_HELP);
}

static void finish(struct pub *p, int status)
{
    if (p->status == CLI_EXIT_OK)
        p->status = status;
    event_base_loopbreak(p->cc.base);
}

/* Source exhausted and everything acknowledged: leave cleanly. */
static void maybe_done(struct pub *p)
{
    bool source_done = p->src == SRC_LINES ? p->input_eof && !evbuffer_get_length(p->lines)
                                           : p->published == 1;
    if (p->finishing || !source_done || petrel_pending(p->cc.c) > 0)
        return;
    p->finishing = true;
    petrel_disconnect(p->cc.c);
}

/* (Re)starts the acknowledgement timer: the broker gets --timeout seconds
 * to make progress on what is pending. */
static void watch(struct pub *p)
{
    if (petrel_pending(p->cc.c) == 0) {
        evtimer_del(p->cc.timer);
        return;
    }
    struct timeval tv = {(time_t)p->ca.timeout, 0};
    evtimer_add(p->cc.timer, &tv);
}

static int publish(struct pub *p, const void *data, size_t len)
{
    int rc = petrel_publish_props(p->cc.c, p->topic, data, len, (int)p->qos, p->retain,
                                  p->ca.props[PLACE_PUBLISH], NULL);
    if (rc != PETREL_OK) {
        cli_error("pub", "cannot publish to '%s': %s", p->topic, petrel_strerror(rc));
        finish(p, rc == PETREL_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE);
        return -1;
    }
    if (petrel_pending(p->cc.c) == 1)
        watch(p);
    p->published++;
    return 0;
}

/* ------------------------------------------------------------------------
 * stdin, one message per line
 */

static void schedule_input(struct pub *p)
{
    if (p->input_eof || p->input_paused)
        return;
    if (p->input_pollable) {
        event_add(p->input, NULL);
    } else {
        struct timeval zero = {0, 0};
        evtimer_add(p->input, &zero);
    }
}

/* Publishes the complete lines buffered so far, until the queue is deep
 * enough; at EOF a last line without a newline counts too. */
static void publish_lines(struct pub *p)
{
    while (!p->finishing) {
        if (petrel_pending(p->cc.c) >= PAUSE_AT) {
            if (!p->input_paused) {
                p->input_paused = true;
                event_del(p->input);
            }
            return;
        }
        size_t n;
        char *line = evbuffer_readln(p->lines, &n, EVBUFFER_EOL_LF);
        if (!line) {
            size_t rest = evbuffer_get_length(p->lines);
            if (!p->input_eof || rest == 0)
                break;
            line = malloc(rest + 1);
            if (!line) {
                finish(p, CLI_EXIT_FAILURE);
                return;
            }
            evbuffer_remove(p->lines, line, rest);
            n = rest;
        }
        int rc = publish(p, line, n);
        free(line);
        if (rc != 0)
            return;
    }
    if (p->input_paused) {
        p->input_paused = false;
        schedule_input(p);
    }
    maybe_done(p);
}

static void inputcb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pub *p = arg;
    char buf[READ_CHUNK];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            schedule_input(p);
            return;
        }
        cli_error("pub", "reading stdin: %s", strerror(errno));
        finish(p, CLI_EXIT_FAILURE);
        return;
    }
    if (n == 0) {
        p->input_eof = true;
        event_del(p->input);
    } else {
        evbuffer_add(p->lines, buf, (size_t)n);
        if (!p->input_pollable)
            schedule_input(p);
    }
    publish_lines(p);
}

/* Pipes, sockets and terminals can be watched by the event loop; regular
 * files and devices such as /dev/null cannot (epoll refuses them) but never
 * block, so they are read from a zero timer instead. */
static int start_input(struct pub *p)
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0) {
        cli_error("pub", "stdin: %s", strerror(errno));
        return -1;
    }
    p->input_pollable = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO);
    p->input = p->input_pollable
                   ? event_new(p->cc.base, STDIN_FILENO, EV_READ | EV_PERSIST, inputcb, p)
                   : evtimer_new(p->cc.base, inputcb, p);
    if (!p->input)
        return -1;
    schedule_input(p);
    return 0;
}

/* ------------------------------------------------------------------------
 * Client callbacks
 */

static void on_connected(petrel_client *c, bool session_present, void *arg)
{
    (void)c;
    (void)session_present;
    struct pub *p = arg;
    p->connected_once = true;
    if (p->started)
        return;
    p->started = true;
    if (p->src == SRC_LINES) {
        if (start_input(p) != 0)
            finish(p, CLI_EXIT_FAILURE);
        return;
    }
    publish(p, p->data ? p->data : "", p->data_len);
}

static void on_published(petrel_client *c, uint64_t id, int result, void *arg)
{
    (void)id;
    struct pub *p = arg;
    if (result == PETREL_OK) {
        p->acked++;
    } else {
        char why[300];
        p->failed++;
        cli_error("pub", "message not delivered: %s%s", petrel_strerror(result),
                  conn_args_reason(c, why, sizeof why));
        if (result == PETREL_EREJECTED && petrel_reason_code(c) == 0x87)
            p->status = CLI_EXIT_NOT_AUTHORIZED;
    }
    watch(p);
    if (p->src == SRC_LINES && p->input_paused)
        publish_lines(p);
    else
        maybe_done(p);
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    struct pub *p = arg;
    if (p->finishing && reason == PETREL_OK) {
        /* A single message interrupted before it was even published counts
         * as not acknowledged. */
        bool all = !p->failed && p->acked == p->published &&
                   (p->src == SRC_LINES || p->published == 1);
        finish(p, all ? CLI_EXIT_OK : CLI_EXIT_FAILURE);
        return;
    }
    int status = cli_connection_lost(&p->ca, c, reason, reconnecting, p->connected_once);
    if (status >= 0)
        finish(p, status);
}

static void watchdogcb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pub *p = arg;
    cli_error("pub", "timed out after %lu s waiting for the broker to acknowledge %zu message%s",
              p->ca.timeout, petrel_pending(p->cc.c), petrel_pending(p->cc.c) == 1 ? "" : "s");
    finish(p, CLI_EXIT_TIMEOUT);
}

static void signalcb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct pub *p = arg;
    if (p->finishing) {
        finish(p, CLI_EXIT_FAILURE);
        return;
    }
    /* Stop reading; leave with success only if nothing is left unsent. */
    p->input_eof = true;
    if (p->input)
        event_del(p->input);
    evbuffer_drain(p->lines, evbuffer_get_length(p->lines));
    p->finishing = true;
    petrel_disconnect(p->cc.c);
}

/* ------------------------------------------------------------------------
 * Arguments and main
 */

/* Reads all of `f` into p->data. */
static int slurp(struct pub *p, FILE *f, const char *what)
{
    size_t cap = 0, len = 0;
    char *buf = NULL;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                cli_error("pub", "%s: out of memory", what);
                return -1;
            }
            buf = b;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                cli_error("pub", "%s: %s", what, strerror(errno));
                free(buf);
                return -1;
            }
            break;
        }
    }
    p->data = buf;
    p->data_len = len;
    return 0;
}

/* The source that -m, -f, -s, -l or -n names. */
static enum source source_option(int opt)
{
    switch (opt) {
    case 'm':
        return SRC_MESSAGE;
    case 'f':
        return SRC_FILE;
    case 's':
        return SRC_STDIN;
    case 'l':
        return SRC_LINES;
    default:
        return SRC_NULL;
    }
}

static int set_source(struct pub *p, enum source s, const char *arg)
{
    if (p->src != SRC_NONE) {
        cli_error("pub", "give only one of -m, -f, -s, -l, -n");
        return -1;
    }
    p->src = s;
    p->arg = arg;
    return 0;
}

static int parse(struct pub *p, int argc, char **argv)
{
    static const struct option longopts[] = {
        CONN_LONG_OPTS,
        {"topic", required_argument, NULL, 't'},
        {"message", required_argument, NULL, 'm'},
        {"file", required_argument, NULL, 'f'},
        {"stdin-file", no_argument, NULL, 's'},
        {"stdin-line", no_argument, NULL, 'l'},
        {"null-message", no_argument, NULL, 'n'},
        {"qos", required_argument, NULL, 'q'},
        {"retain", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    p->ca.argc = argc;
    p->ca.argv = argv;
    p->ca.places = 1u << PLACE_CONNECT | 1u << PLACE_WILL | 1u << PLACE_PUBLISH;
    while ((opt = conn_args_next(&p->ca, ":" CONN_SHORT_OPTS "t:m:f:slnq:r", longopts)) != -1) {
        switch (opt) {
        case OPT_HELP:
            usage(stdout);
            return -1;
        case 't':
            p->topic = optarg;
            break;
        case 'm':
        case 'f':
        case 's':
        case 'l':
        case 'n':
            if (set_source(p, source_option(opt), opt == 'm' || opt == 'f' ? optarg : NULL) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'q':
            if (parse_number("pub", "-q", optarg, 0, 2, "0, 1 or 2", &p->qos) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'r':
            p->retain = true;
            break;
        default:   /* CONN_ARGS_BAD: told */
            return CLI_EXIT_USAGE;
        }
    }
    if (!p->topic) {
        cli_error("pub", "a topic is required (-t)");
        return CLI_EXIT_USAGE;
    }
    if (!petrel_topic_valid(p->topic)) {
        cli_error("pub", "'%s' is not a valid topic name (no + or #, not empty)", p->topic);
        return CLI_EXIT_USAGE;
    }
    if (p->src == SRC_NONE) {
        cli_error("pub", "say what to send: -m, -f, -s, -l or -n");
        return CLI_EXIT_USAGE;
    }
    if (conn_args_check(&p->ca) != 0)
        return CLI_EXIT_USAGE;
    return CLI_EXIT_OK;
}

static int load_message(struct pub *p)
{
    if (p->src == SRC_MESSAGE) {
        p->data_len = strlen(p->arg);
        p->data = malloc(p->data_len + 1);
        if (!p->data)
            return -1;
        memcpy(p->data, p->arg, p->data_len + 1);
    } else if (p->src == SRC_FILE) {
        FILE *f = fopen(p->arg, "rb");
        if (!f) {
            cli_error("pub", "%s: %s", p->arg, strerror(errno));
            return -1;
        }
        int rc = slurp(p, f, p->arg);
        fclose(f);
        return rc;
    } else if (p->src == SRC_STDIN) {
        return slurp(p, stdin, "stdin");
    }
    return 0;
}

int cmd_pub(int argc, char **argv)
{
    struct pub p;
    memset(&p, 0, sizeof p);
    conn_args_init(&p.ca, "pub");
    int rc = parse(&p, argc, argv);
    if (rc != CLI_EXIT_OK) {
        conn_args_free(&p.ca);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    if (load_message(&p) != 0) {
        free(p.data);
        conn_args_free(&p.ca);
        return CLI_EXIT_FAILURE;
    }

    petrel_options *o = conn_args_options(&p.ca);
    if (!o) {
        free(p.data);
        conn_args_free(&p.ca);
        return CLI_EXIT_USAGE;
    }
    p.lines = evbuffer_new();
    p.status = cli_client_start(&p.cc, "pub", o, p.lines != NULL, watchdogcb, signalcb, &p);
    if (p.status != CLI_EXIT_OK)
        goto out;
    conn_args_attach_debug(&p.ca, p.cc.c);
    petrel_on_connected(p.cc.c, on_connected, &p);
    petrel_on_published(p.cc.c, on_published, &p);
    petrel_on_disconnected(p.cc.c, on_disconnected, &p);

    rc = cli_client_run(&p.cc, "pub");
    if (rc != CLI_EXIT_OK)
        p.status = rc;

out:
    /* (freeing the client calls none of its callbacks, so the order of
     * these does not matter; the loop goes last) */
    if (p.input)
        event_free(p.input);
    if (p.lines)
        evbuffer_free(p.lines);
    cli_client_free(&p.cc);
    free(p.data);
    conn_args_free(&p.ca);
    return p.status;
}
