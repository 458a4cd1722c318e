/*
 * cmd_bench.c - `petrel bench`: an MQTT load generator for any broker.  It
 * parses the options, runs the phases of a run (connect everyone, publish
 * for a duration or a count, drain acks and deliveries, disconnect) on one
 * event loop, and turns the outcome into a report and an exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_tls.h"
#include "bench_topic.h"
#include "commands.h"
#include "conn_args.h"
#include "exit_codes.h"

/* How often connections are checked (keep alive, timeouts) and progress
 * is measured: fine enough for a keep alive of 1 s. */
#define TICK_MS 250
/* At QoS 0 a message the broker dropped never comes: after this much
 * silence the drain is over. */
#define QOS0_DRAIN_NS 1000000000ull

enum {
    OPT_PUBS = OPT_CMD_BASE,
    OPT_SUBS,
    OPT_TOPICS,
    OPT_SUB_QOS,
    OPT_RETAIN,
    OPT_CONNECT_ONLY,
    OPT_CLIENTS,
    OPT_PARALLEL,
    OPT_ALLOW_LOSS,
    OPT_JSON,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_BROKER_PID,
    OPT_SUB_PORT,
    OPT_BACKLOG,
    OPT_RATE_PER_PUB,
    OPT_SUB_RATE,
    OPT_PERSISTENT,
    OPT_DRAIN_TIMEOUT,
};

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: petrel bench [OPTIONS]\n"
        "Load an MQTT 3.1.1 broker with many simulated clients from one process and\n"
        "report throughput, latency, lost and duplicated messages, and connect rate.\n"
        "Works with any broker.  Subscribers connect and subscribe first; publishing\n"
        "starts once every client is ready.\n\n"
        "Clients:\n"
        "      --pubs N             publishers (default 1)\n"
        "      --subs N             subscribers (default 1)\n"
        "      --connect-only       only open --clients connections, hold them for -D\n"
        "                           seconds (default 0) and report the connect rate\n"
        "      --clients N          connections in --connect-only mode (default 1000)\n"
        "      --parallel N         connection attempts in progress at once\n"
        "                           (default 100)\n"
        "Messages:\n"
        "  -t, --topic TEMPLATE     publish topic; %%p = publisher, %%t = topic number\n"
        "                           of that publisher, %%%% = %% (default\n"
        "                           petrel-bench/%%p/%%t)\n"
        "      --topics N           topics per publisher, used in turn (default 1)\n"
        "  -T, --sub-topic TEMPLATE subscription filter; %%s = subscriber (default\n"
        "                           petrel-bench/#)\n"
        "  -q, --qos 0|1|2          publish QoS (default 0)\n"
        "      --sub-qos 0|1|2      subscription QoS (default: -q)\n"
        "  -s, --size BYTES         payload size (default 64).  The first %u bytes\n"
        "                           carry a stream id, a sequence number and a\n"
        "                           timestamp; smaller payloads are counted only\n"
        "  -r, --rate N             messages per second of all publishers together\n"
        "                           (decimals allowed), open loop: each publisher\n"
        "                           sends rate/pubs msg/s on a fixed schedule,\n"
        "                           whatever the acknowledgements; latency counts\n"
        "                           from when a message was due, and a full -w window\n"
        "                           makes the publisher fall behind (the report shows\n"
        "                           offered and achieved rates).  0 = as fast as the\n"
        "                           broker takes them (default)\n"
        "      --rate-per-pub N     the same, given per publisher (-r N x --pubs);\n"
        "                           (what -r meant in earlier versions)\n"
        "  -w, --inflight N         QoS 1/2 messages per publisher awaiting their\n"
        "                           acknowledgement (default 20)\n"
        "      --backlog N          closed loop for -r 0: deliveries published but\n"
        "                           not yet received, all publishers together (a\n"
        "                           message counts once per subscriber it should\n"
        "                           reach; each publisher gets an equal share, at\n"
        "                           least one message): keeps queues short so that\n"
        "                           -r 0 measures what the broker delivers, not what\n"
        "                           it buffers; 0 = no limit: open loop at full\n"
        "                           speed, held back only by -w (default 100000;\n"
        "                           not used with -r)\n"
        "  -n, --count N            messages per publisher; with --pubs 0, messages\n"
        "                           each subscriber must receive (0 = subscribe and\n"
        "                           leave: creates persistent sessions)\n"
        "  -D, --duration SECONDS   publish for SECONDS (default 10 unless -n)\n"
        "      --retain             publish retained messages\n"
        "      --persistent         subscribers keep their sessions (clean session\n"
        "                           0, client ids PREFIX-sN): what the broker\n"
        "                           acknowledged must reach them even when they are\n"
        "                           slow; the sessions stay on the broker after the\n"
        "                           run (-c makes publishers persistent too)\n"
        "      --sub-rate N         each subscriber handles at most N messages per\n"
        "                           second while publishing lasts, by not reading its\n"
        "                           socket in between (a slow consumer: the broker\n"
        "                           must queue, slow the publishers, or drop); the\n"
        "                           drain reads at full speed\n"
        "      --drain-timeout S    after publishing, wait at most S seconds without\n"
        "                           a delivery or acknowledgement for what is\n"
        "                           missing (default: --timeout)\n"
        "Outcome:\n"
        "      --allow-loss         exit 0 even if QoS 1/2 messages were lost\n"
        "      --json               print the results as one JSON object\n"
        "      --progress           a line per second on stderr (default when\n"
        "                           stderr is a terminal); --no-progress\n"
        "      --sub-port PORT      subscribers connect to PORT on the same host\n"
        "                           (another node of a cluster; default: -p)\n"
        "      --broker-pid PID     report that process's memory (VmRSS) before,\n"
        "                           with all clients connected, and its peak; with\n"
        "                           --connect-only, per connection\n\n"
        "-i gives the client id prefix (ids are PREFIX-pN, PREFIX-sN, PREFIX-cN;\n"
        "default petrel-bench-PID); -k applies to every client (default 60); -c makes\n"
        "every session persistent; --timeout is the limit for connecting and for a\n"
        "run that makes no progress (default 10).  With TLS (any TLS flag) every\n"
        "client makes its own handshake; the CA and certificate files are read once;\n"
        "the report says TLS was used and counts refused handshakes.\n\n"
        "%s\n"
        "At QoS 1/2 the report counts, per delivery (message x subscriber that\n"
        "should get it): published, acknowledged by the broker (PUBACK; PUBREC at\n"
        "QoS 2), delivered (distinct), duplicates, lost, and of the lost those the\n"
        "broker had acknowledged (\"acknowledged but never delivered\", acked_lost):\n"
        "a broken promise, not back pressure.\n\n"
        "Exit status:\n"
        "  0  the run completed (at QoS 0, lost messages are reported, not fatal)\n"
        "  1  QoS 1/2 messages lost (acknowledged or not) or left unacknowledged\n"
        "     (see --allow-loss), or a connection lost during the run\n"
        "  2  bad arguments\n"
        "  3  a client could not connect (TCP refused, TLS handshake or server\n"
        "     certificate refused, CONNACK 1-3, closed)\n"
        "  4  not authorized (CONNACK 4 or 5, subscription refused)\n"
        "  5  timeout while connecting\n",
        BENCH_STAMP_SIZE, CONN_ARGS_HELP_BASIC CONN_ARGS_HELP_REST);
}

uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_error(struct bench *b, const char *fmt, ...)
{
    /* Thousands of clients failing alike would drown the report. */
    if (b->errors_printed++ >= 5 && !b->o.debug) {
        if (b->errors_printed == 7)
            fprintf(stderr, "petrel bench: (further errors not shown; -d shows all)\n");
        return;
    }
    va_list ap;
    fputs("petrel bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void set_timer(struct event *ev, uint64_t ns)
{
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000)};
    evtimer_add(ev, &tv);
}

static void maybe_finish(struct bench *b)
{
    if (b->phase == PHASE_CLOSING && b->closed + b->failed >= b->n_conns) {
        b->phase = PHASE_DONE;
        b->t_end = bench_now();
        event_base_loopbreak(b->base);
    }
}

static void begin_closing(struct bench *b)
{
    if (b->phase >= PHASE_CLOSING)
        return;
    if (b->o.connect_only && b->o.broker_pid && b->ready == b->n_conns)
        b->rss_connected_kib = bench_read_rss_kib(b->o.broker_pid, "VmRSS");
    if (b->t_run_start && !b->t_run_stop)
        b->t_run_stop = bench_now();
    b->phase = PHASE_CLOSING;
    evtimer_del(b->phase_timer);
    for (size_t i = 0; i < b->n_conns; i++)
        bench_conn_disconnect(&b->conns[i]);
    maybe_finish(b);
}

/* Messages each subscriber should have received: the sum over the streams
 * its filter matches.  With lost != NULL, also counts the ones missing,
 * and in *acked_lost those of them the broker had acknowledged. */
static uint64_t count_expected(struct bench *b, uint64_t *lost, uint64_t *acked_lost)
{
    const struct bench_options *o = &b->o;
    uint64_t expected = 0, missing = 0, acked_missing = 0, acked_expected = 0;
    for (size_t i = 0; i < b->n_conns; i++) {
        struct bench_conn *c = &b->conns[i];
        if (!c->sub)
            continue;
        if (o->pubs == 0) {
            if (o->count_set) {
                uint64_t got = track_unique(&c->sub->track);
                expected += o->count;
                missing += got < o->count ? o->count - got : 0;
            }
            continue;
        }
        for (size_t s = 0; s < b->n_streams; s++) {
            const struct bench_stream *st = &b->streams[s];
            const char *topic = (const char *)b->prefixes + st->prefix_off + st->topic_off;
            if (!st->sent || !topic_matches(c->sub->filter, topic, st->topic_len))
                continue;
            expected += st->sent;
            if (!lost)
                continue;
            const struct bench_track *acked = &b->conns[o->subs + s / o->topics].pub->acked_set;
            if (o->payload >= BENCH_STAMP_SIZE) {
                missing += st->sent - track_unique_below(&c->sub->track, (uint32_t)s, st->sent);
                acked_missing += track_absent(acked, &c->sub->track, (uint32_t)s);
            } else {
                acked_expected += track_unique_below(acked, (uint32_t)s, TRACK_MAX_SEQ);
            }
        }
    }
    if (lost) {
        /* Untracked payloads: only the totals can be compared. */
        if (o->payload < BENCH_STAMP_SIZE && o->pubs > 0) {
            missing = expected > b->received ? expected - b->received : 0;
            acked_missing = acked_expected > b->received ? acked_expected - b->received : 0;
        }
        *lost = missing;
        *acked_lost = acked_missing;
    }
    return expected;
}

static void stop_publishing(struct bench *b)
{
    if (b->phase != PHASE_RUNNING)
        return;
    if (b->o.rate > 0)
        for (size_t i = 0; i < b->n_conns; i++)
            bench_conn_catch_up(&b->conns[i]);
    b->phase = PHASE_DRAINING;
    b->t_run_stop = b->t_progress = bench_now(); /* a short run stops in the turn it began */
    b->acked_at_stop = b->completed;
    evtimer_del(b->phase_timer);
    for (size_t i = 0; i < b->n_conns; i++) {
        struct bench_conn *c = &b->conns[i];
        if (c->pub) {
            evtimer_del(&c->pub->pace);
            /* What the schedule asked for, to compare with what went out. */
            uint64_t due = bench_conn_due(c, b->now);
            if (b->o.count_set && due > b->o.count)
                due = b->o.count;
            b->due_at_stop += due;
        }
        bench_conn_unpause(c); /* --sub-rate holds only while publishing */
    }
    if (b->o.pubs > 0)
        b->expected = count_expected(b, NULL, NULL);
    bench_check_done(b);
}

static bool tracked(const struct bench *b)
{
    return b->o.payload >= BENCH_STAMP_SIZE;
}

void bench_check_done(struct bench *b)
{
    if (b->phase == PHASE_RUNNING && b->o.pubs > 0 && b->pubs_finished == b->o.pubs)
        stop_publishing(b); /* calls us again */
    else if (b->phase == PHASE_DRAINING && b->in_window_total == 0 &&
             (tracked(b) ? b->unique : b->received) >= b->expected)
        begin_closing(b);
}

static void on_phase_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    b->now = bench_now();
    if (b->phase == PHASE_RUNNING && !b->o.connect_only && b->o.pubs > 0)
        stop_publishing(b);
    else
        begin_closing(b); /* end of a hold, or of a receive-only run */
}

static void start_run(struct bench *b)
{
    const struct bench_options *o = &b->o;
    b->phase = PHASE_RUNNING;
    b->t_run_start = b->t_progress = b->now;
    if (o->connect_only) {
        if (o->duration > 0)
            set_timer(b->phase_timer, (uint64_t)(o->duration * 1e9));
        else
            begin_closing(b);
        return;
    }
    if (o->pubs == 0) {
        if (o->count_set) {
            b->expected = o->subs * o->count;
            b->phase = PHASE_DRAINING; /* waiting for deliveries only */
            bench_check_done(b);
        } else {
            set_timer(b->phase_timer, (uint64_t)(o->duration * 1e9));
        }
        return;
    }
    if (o->duration_set || !o->count_set)
        set_timer(b->phase_timer, (uint64_t)(o->duration * 1e9));
    /* Fixed-rate publishers are spread evenly over one period rather than
     * all firing at once: together they send one message every 1/rate s. */
    double gap = o->rate > 0 ? 1e9 / o->rate : 0;
    for (size_t i = 0; i < b->n_conns && b->phase == PHASE_RUNNING; i++) {
        struct bench_conn *c = &b->conns[i];
        if (!c->pub || c->state != CS_READY)
            continue;
        c->pub->t0 = b->now + (uint64_t)(gap * (double)c->index);
        bench_conn_pump(c);
    }
}

static void start_more(struct bench *b)
{
    while (b->phase == PHASE_CONNECTING && b->failed == 0 &&
           b->connecting < b->o.parallel && b->next_to_start < b->n_conns) {
        struct bench_conn *c = &b->conns[b->next_to_start++];
        b->connecting++;
        if (!b->t_begin)
            b->t_begin = b->now;
        bench_conn_start(c);
    }
}

void bench_conn_ready(struct bench *b, struct bench_conn *c)
{
    (void)c;
    b->connecting--;
    b->ready++;
    b->t_last_ready = b->now;
    if (b->phase != PHASE_CONNECTING)
        return;
    if (b->ready < b->n_conns) {
        start_more(b);
        return;
    }
    b->t_all_ready = b->now;
    if (b->o.broker_pid && !b->o.connect_only)
        b->rss_connected_kib = bench_read_rss_kib(b->o.broker_pid, "VmRSS");
    start_run(b);
}

void bench_conn_failed(struct bench *b, struct bench_conn *c, bool was_ready)
{
    b->failed++;
    b->fail_counts[c->fail]++;
    if (was_ready) {
        b->lost_conns++;
    } else {
        b->connecting--;
        b->connect_failed++;
        /* A run with clients missing would measure something else. */
        if (b->phase == PHASE_CONNECTING)
            begin_closing(b);
    }
    if (b->phase == PHASE_RUNNING && b->o.pubs > 0 && b->pubs_finished == b->o.pubs)
        stop_publishing(b);
    bench_check_done(b);
    maybe_finish(b);
}

void bench_conn_closed(struct bench *b, struct bench_conn *c)
{
    (void)c;
    b->closed++;
    maybe_finish(b);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    b->now = bench_now();
    for (size_t i = 0; i < b->n_conns; i++)
        bench_conn_tick(&b->conns[i]);
    if (b->phase == PHASE_DONE)
        return;
    if (b->now - b->t_last_report >= 1000000000u) {
        if (b->o.progress)
            bench_progress(b);
        b->t_last_report = b->now;
    }
    /* A run that stopped moving ends, and says so, rather than hang. */
    uint64_t timeout = (uint64_t)b->o.timeout * 1000000000u;
    uint64_t drain_timeout = (uint64_t)(b->o.drain_timeout * 1e9);
    uint64_t quiet = b->now - b->t_progress;
    int eff_qos = b->o.qos < b->o.sub_qos ? b->o.qos : b->o.sub_qos;
    if (b->o.pubs == 0)
        eff_qos = b->o.sub_qos;
    if (b->phase == PHASE_DRAINING &&
        (quiet > drain_timeout ||
         (eff_qos == 0 && b->in_window_total == 0 && quiet > QOS0_DRAIN_NS && b->o.pubs > 0))) {
        b->stalled = quiet > drain_timeout;
        b->stall_seconds = b->o.drain_timeout;
        begin_closing(b);
    } else if (b->phase == PHASE_RUNNING && b->in_window_total > 0 && quiet > timeout) {
        b->stalled = true;
        b->stall_seconds = (double)b->o.timeout;
        stop_publishing(b);
        begin_closing(b);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct bench *b = arg;
    b->now = bench_now();
    b->interrupts++;
    if (b->interrupts >= 3 || b->phase >= PHASE_CLOSING) {
        event_base_loopbreak(b->base);
        return;
    }
    b->interrupted = true;
    /* First: stop publishing and let what is in flight arrive; then close. */
    if (b->phase == PHASE_RUNNING && b->o.pubs > 0 && b->interrupts == 1)
        stop_publishing(b);
    else
        begin_closing(b);
}

static int parse_double(const char *s, double max, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parses argv into *o.  0, or CLI_EXIT_USAGE (message printed), or -1
 * for --help (printed). */
static int parse_args(int argc, char **argv, struct bench_options *o, struct conn_args *ca)
{
    static const struct option longopts[] = {
        CONN_LONG_OPTS,
        {"pubs", required_argument, NULL, OPT_PUBS},
        {"subs", required_argument, NULL, OPT_SUBS},
        {"topic", required_argument, NULL, 't'},
        {"topics", required_argument, NULL, OPT_TOPICS},
        {"sub-topic", required_argument, NULL, 'T'},
        {"qos", required_argument, NULL, 'q'},
        {"sub-qos", required_argument, NULL, OPT_SUB_QOS},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"inflight", required_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'D'},
        {"retain", no_argument, NULL, OPT_RETAIN},
        {"connect-only", no_argument, NULL, OPT_CONNECT_ONLY},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"parallel", required_argument, NULL, OPT_PARALLEL},
        {"allow-loss", no_argument, NULL, OPT_ALLOW_LOSS},
        {"json", no_argument, NULL, OPT_JSON},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
        {"sub-port", required_argument, NULL, OPT_SUB_PORT},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"rate-per-pub", required_argument, NULL, OPT_RATE_PER_PUB},
        {"sub-rate", required_argument, NULL, OPT_SUB_RATE},
        {"persistent", no_argument, NULL, OPT_PERSISTENT},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    unsigned long v, sub_qos = 3;
    double per_pub = 0;
    bool rate_set = false, drain_set = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":" CONN_SHORT_OPTS "t:T:q:s:r:w:n:D:", longopts,
                              NULL)) != -1) {
        if (opt == 'V') {
            /* The load generator drives its own 3.1.1 codec paths; a 5.0
             * run would silently measure 3.1.1. */
            if (strcmp(optarg, "311") != 0 && strcmp(optarg, "mqttv311") != 0) {
                cli_error("bench", "-V: petrel bench speaks MQTT 3.1.1 only ('311')");
                return CLI_EXIT_USAGE;
            }
            continue;
        }
        /* -D is the run's duration here, not a pub/sub property. */
        int r = opt == 'D' ? 0 : conn_args_option(ca, opt, optarg);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case OPT_HELP:
            usage(stdout);
            return -1;
        case OPT_PUBS:
        case OPT_SUBS:
        case OPT_CLIENTS:
            if (parse_number("bench", "", optarg, 0, 1000000,
                             "a number of clients (0-1000000)", &v) != 0)
                return CLI_EXIT_USAGE;
            *(opt == OPT_PUBS ? &o->pubs : opt == OPT_SUBS ? &o->subs : &o->clients) = v;
            o->pubs_set |= opt == OPT_PUBS;
            o->subs_set |= opt == OPT_SUBS;
            break;
        case OPT_TOPICS:
            if (parse_number("bench", "--topics", optarg, 1, 1000000,
                             "a number (1-1000000)", &o->topics) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            o->topic_tmpl = optarg;
            break;
        case 'T':
            o->filter_tmpl = optarg;
            break;
        case 'q':
        case OPT_SUB_QOS:
            if (parse_number("bench", "", optarg, 0, 2, "a QoS (0, 1 or 2)", &v) != 0)
                return CLI_EXIT_USAGE;
            if (opt == 'q')
                o->qos = (uint8_t)v;
            else
                sub_qos = v;
            break;
        case 's':
            if (parse_number("bench", "-s", optarg, 0, MQTT_MAX_PAYLOAD,
                             "a payload size in bytes", &o->payload) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'r':
            if (parse_double(optarg, 1e9, &o->rate) != 0) {
                cli_error("bench", "-r: '%s' is not a rate in messages per second", optarg);
                return CLI_EXIT_USAGE;
            }
            rate_set = true;
            break;
        case OPT_RATE_PER_PUB:
            if (parse_double(optarg, 1e9, &per_pub) != 0) {
                cli_error("bench", "--rate-per-pub: '%s' is not a rate in messages per second",
                          optarg);
                return CLI_EXIT_USAGE;
            }
            o->rate_per_pub = true;
            break;
        case OPT_SUB_RATE:
            if (parse_double(optarg, 1e9, &o->sub_rate) != 0) {
                cli_error("bench", "--sub-rate: '%s' is not a rate in messages per second",
                          optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_PERSISTENT:
            o->persistent = true;
            break;
        case OPT_DRAIN_TIMEOUT:
            if (parse_double(optarg, 86400, &o->drain_timeout) != 0 || o->drain_timeout <= 0) {
                cli_error("bench", "--drain-timeout: '%s' is not a number of seconds", optarg);
                return CLI_EXIT_USAGE;
            }
            drain_set = true;
            break;
        case 'w':
            if (parse_number("bench", "-w", optarg, 1, 65535,
                             "a window (1-65535)", &o->inflight) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'n':
            if (parse_number("bench", "-n", optarg, 0, TRACK_MAX_SEQ - 1,
                             "a message count", &o->count) != 0)
                return CLI_EXIT_USAGE;
            o->count_set = true;
            break;
        case 'D':
            if (parse_double(optarg, 31536000, &o->duration) != 0) {
                cli_error("bench", "-D: '%s' is not a number of seconds", optarg);
                return CLI_EXIT_USAGE;
            }
            o->duration_set = true;
            break;
        case OPT_RETAIN:
            o->retain = true;
            break;
        case OPT_CONNECT_ONLY:
            o->connect_only = true;
            break;
        case OPT_PARALLEL:
            if (parse_number("bench", "--parallel", optarg, 1, 1000000,
                             "a number (1-1000000)", &o->parallel) != 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_BACKLOG:
            if (parse_number("bench", "--backlog", optarg, 0, 1000000000,
                             "a number of messages", &o->backlog) != 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_ALLOW_LOSS:
            o->allow_loss = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_PROGRESS:
            o->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            o->progress = 0;
            break;
        case OPT_BROKER_PID:
            if (parse_number("bench", "--broker-pid", optarg, 1, 4194304, "a process id", &v) != 0)
                return CLI_EXIT_USAGE;
            o->broker_pid = (long)v;
            break;
        case OPT_SUB_PORT:
            if (parse_number("bench", "--sub-port", optarg, 1, 65535, "a port", &v) != 0)
                return CLI_EXIT_USAGE;
            o->sub_port = (uint16_t)v;
            break;
        case ':':
            cli_error("bench", "option '%s' needs a value", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("bench", "unknown option '%s' (see petrel bench --help)",
                      argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("bench", "unexpected argument '%s'", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (conn_args_check(ca) != 0)
        return CLI_EXIT_USAGE;
    o->sub_qos = (uint8_t)(sub_qos <= 2 ? sub_qos : o->qos);
    const char *why;
    if ((why = topic_template_error(o->topic_tmpl, "pt"))) {
        cli_error("bench", "-t '%s': %s", o->topic_tmpl, why);
        return CLI_EXIT_USAGE;
    }
    if ((why = topic_template_error(o->filter_tmpl, "s"))) {
        cli_error("bench", "-T '%s': %s", o->filter_tmpl, why);
        return CLI_EXIT_USAGE;
    }
    if (o->connect_only && (o->pubs_set || o->subs_set)) {
        cli_error("bench", "--connect-only takes --clients, not --pubs/--subs");
        return CLI_EXIT_USAGE;
    }
    if (!o->connect_only && o->pubs == 0 && o->subs == 0) {
        cli_error("bench", "nothing to do: --pubs and --subs are both 0");
        return CLI_EXIT_USAGE;
    }
    if (rate_set && o->rate_per_pub) {
        cli_error("bench", "-r (all publishers) and --rate-per-pub: give one of them");
        return CLI_EXIT_USAGE;
    }
    if (o->rate_per_pub)
        o->rate = per_pub * (double)o->pubs;
    if (o->pubs * o->topics > UINT32_MAX / 2) {
        cli_error("bench", "--pubs x --topics is too large");
        return CLI_EXIT_USAGE;
    }
    if (!o->duration_set && !o->count_set && !o->connect_only)
        o->duration = 10;
    if (o->progress < 0)
        o->progress = isatty(STDERR_FILENO);

    o->host = ca->host;
    o->port = (uint16_t)conn_args_port(ca);
    o->tls = ca->tls;
    o->cafile = ca->cafile;
    o->certfile = ca->certfile;
    o->keyfile = ca->keyfile;
    o->insecure = ca->insecure;
    o->ws = ca->ws;
    o->ws_path = ca->ws_path ? ca->ws_path : "/mqtt";
    o->username = ca->username;
    o->password = ca->password;
    o->keepalive = (uint16_t)ca->keepalive;
    o->clean = ca->clean;
    o->will_topic = ca->will_topic;
    o->will_payload = ca->will_payload;
    o->will_qos = (uint8_t)ca->will_qos;
    o->will_retain = ca->will_retain;
    o->timeout = ca->timeout;
    if (!drain_set)
        o->drain_timeout = (double)o->timeout;
    o->debug = ca->debug;
    if (ca->client_id)
        o->id_prefix = ca->client_id;
    return 0;
}

/* Many connections need many descriptors: take all the hard limit allows. */
static int raise_fd_limit(size_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        cli_error("bench", "%zu connections need more file descriptors than the limit of %llu "
                           "(raise the hard limit: ulimit -Hn)",
                  need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

static int resolve(struct bench *b)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)b->o.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(b->o.host, port, &hints, &res);
    if (rc != 0) {
        cli_error("bench", "%s: %s", b->o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    memcpy(&b->sub_addr, &b->addr, sizeof b->addr);
    if (b->o.sub_port) {
        uint16_t be = htons(b->o.sub_port);
        if (b->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&b->sub_addr)->sin_port = be;
        else
            ((struct sockaddr_in6 *)&b->sub_addr)->sin6_port = be;
    }
    return 0;
}

static int exit_status(const struct bench *b)
{
    if (b->connect_failed) {
        if (b->fail_counts[FAIL_AUTH])
            return CLI_EXIT_NOT_AUTHORIZED;
        if (b->fail_counts[FAIL_TIMEOUT] && !b->fail_counts[FAIL_REFUSED] &&
            !b->fail_counts[FAIL_TLS])
            return CLI_EXIT_TIMEOUT;
        return CLI_EXIT_REFUSED;
    }
    if (b->lost_conns)
        return CLI_EXIT_FAILURE;
    int eff_qos = b->o.pubs == 0 ? b->o.sub_qos : b->o.qos < b->o.sub_qos ? b->o.qos : b->o.sub_qos;
    if (eff_qos > 0 && (b->lost || b->acked_lost || b->unacked) && !b->o.allow_loss)
        return CLI_EXIT_FAILURE;
    if (b->o.qos > 0 && b->unacked && !b->o.allow_loss)
        return CLI_EXIT_FAILURE;
    return CLI_EXIT_OK;
}

static int run(struct bench *b)
{
    struct event_config *cfg = event_config_new();
    if (cfg) {
        /* One thread: no locks. */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        /* A schedule or a read rate needs timers finer than epoll's
         * milliseconds: a message 0.9 ms late would be 0.9 ms of latency
         * the broker did not cause. */
        if (b->o.rate > 0 || b->o.sub_rate > 0) {
            event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
            /* Linux lets a timer fire up to 50 us late by default. */
            (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        }
        b->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!b->base) {
        cli_error("bench", "cannot create an event loop");
        return CLI_EXIT_FAILURE;
    }
    int rc = bench_setup(b);
    if (rc != 0)
        return rc == -2 ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    b->started = true;
    b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    b->phase_timer = evtimer_new(b->base, on_phase_timer, b);
    b->sig_int = evsignal_new(b->base, SIGINT, on_signal, b);
    b->sig_term = evsignal_new(b->base, SIGTERM, on_signal, b);
    if (!b->tick || !b->phase_timer || !b->sig_int || !b->sig_term) {
        cli_error("bench", "out of memory");
        return CLI_EXIT_FAILURE;
    }
    evsignal_add(b->sig_int, NULL);
    evsignal_add(b->sig_term, NULL);
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(b->tick, &tick);

    if (b->o.broker_pid) {
        b->rss_before_kib = bench_read_rss_kib(b->o.broker_pid, "VmRSS");
        if (b->rss_before_kib < 0)
            cli_error("bench", "--broker-pid %ld: cannot read /proc/%ld/status", b->o.broker_pid,
                      b->o.broker_pid);
    }
    b->now = b->t_last_report = bench_now();
    b->phase = PHASE_CONNECTING;
    if (b->n_conns == 0) {
        start_run(b);
        begin_closing(b);
    } else {
        start_more(b);
    }
    if (b->phase != PHASE_DONE)
        event_base_dispatch(b->base);
    b->now = bench_now();
    if (!b->t_end)
        b->t_end = b->now;

    if (b->o.broker_pid)
        b->rss_peak_kib = bench_read_rss_kib(b->o.broker_pid, "VmHWM");
    uint64_t lost = 0, acked_lost = 0;
    uint64_t expected = count_expected(b, &lost, &acked_lost);
    if (b->o.pubs > 0 || b->o.count_set)
        b->expected = expected;
    b->lost = lost;
    b->acked_lost = b->o.qos > 0 ? acked_lost : 0;
    b->unacked += b->in_window_total;
    b->dups = 0;
    for (size_t i = 0; i < b->n_conns; i++)
        if (b->conns[i].sub)
            b->dups += track_dups(&b->conns[i].sub->track);
    return exit_status(b);
}

int cmd_bench(int argc, char **argv)
{
    struct conn_args ca;
    conn_args_init(&ca, "bench");
    struct bench *b = calloc(1, sizeof *b);
    if (!b) {
        cli_error("bench", "out of memory");
        return CLI_EXIT_FAILURE;
    }
    struct bench_options *o = &b->o;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "petrel-bench-%ld", (long)getpid());
    o->id_prefix = prefix;
    o->pubs = 1;
    o->subs = 1;
    o->clients = 1000;
    o->topics = 1;
    o->topic_tmpl = "petrel-bench/%p/%t";
    o->filter_tmpl = "petrel-bench/#";
    o->payload = 64;
    o->inflight = 20;
    o->backlog = 100000;
    o->parallel = 100;
    o->progress = -1;

    int status = parse_args(argc, argv, o, &ca);
    if (status != 0) {
        free(b);
        return status < 0 ? CLI_EXIT_OK : status;
    }
    if (o->connect_only) {
        o->pubs = 0;
        o->subs = 0;
    }
    hist_init(&b->latency);
    hist_init(&b->ack_latency);
    hist_init(&b->connect_latency);
    hist_init(&b->handshake_latency);
    hist_init(&b->send_lag);
    hist_init(&b->latency_sent);
    /* Tells this run's messages from those an earlier run left queued. */
    b->run_id = (uint32_t)(bench_now() ^ ((uint64_t)getpid() << 16));

    size_t need = (o->connect_only ? o->clients : o->pubs + o->subs) + 32;
    if (raise_fd_limit(need) != 0) {
        free(b);
        return CLI_EXIT_USAGE;
    }
    /* One context for every connection: the CAs and the client
     * certificate are read once.  A file that cannot be used is a bad
     * argument, as for pub and sub. */
    if (o->tls && bench_tls_init(b) != 0) {
        free(b);
        return CLI_EXIT_USAGE;
    }
    if (resolve(b) != 0) {
        bench_tls_free(b);
        free(b);
        return CLI_EXIT_REFUSED;
    }
    signal(SIGPIPE, SIG_IGN);
    status = run(b);
    if (b->started) {
        if (o->json)
            bench_report_json(b, status, stdout);
        else
            bench_report_text(b, stdout);
        fflush(stdout);
    }
    bench_teardown(b);
    if (b->tick)
        event_free(b->tick);
    if (b->phase_timer)
        event_free(b->phase_timer);
    if (b->sig_int)
        event_free(b->sig_int);
    if (b->sig_term)
        event_free(b->sig_term);
    if (b->base)
        event_base_free(b->base);
    bench_tls_free(b);
    free(b);
    return status;
}
