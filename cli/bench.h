/*
 * bench.h - the state of a `petrel bench` run, shared by its parts: the
 * command (cmd_bench.c: options, phases, exit status), the connection state
 * machine (bench_conn.c) and the report (bench_report.c).  One event_base,
 * one thread; every simulated client is a struct bench_conn on it.
 */
#ifndef PETREL_CLI_BENCH_H
#define PETREL_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <event2/event.h>
#include <event2/event_struct.h> /* events embedded in each connection */

#include "bench_hist.h"
#include "bench_track.h"

/* Every tracked payload starts with this header (host byte order: sender
 * and receiver are the same machine); the rest is filler. */
#define BENCH_MAGIC 0x31425450u /* "PTB1" */
struct bench_stamp {
    uint32_t magic;
    uint32_t stream;   /* publisher * topics + topic */
    uint32_t seq;      /* per stream, from 0 */
    uint32_t run;      /* random per run: tells this run's messages from
                          those an earlier run left queued in a session */
    uint64_t sent_ns;  /* CLOCK_MONOTONIC when written to the socket buffer;
                          with --rate, when it was due (its scheduled time) */
    uint32_t lag_ns;   /* --rate: written this long after it was due
                          (saturated); 0 otherwise */
    uint32_t reserved;
};
#define BENCH_STAMP_SIZE ((unsigned)sizeof(struct bench_stamp))

struct bench_options {
    const char *host;
    uint16_t port;
    bool tls;
    const char *cafile;
    const char *certfile;
    const char *keyfile;
    bool insecure;
    bool ws;                     /* MQTT over WebSocket (bench_ws.h) */
    const char *ws_path;
    const char *id_prefix;
    const char *username;
    const char *password;
    uint16_t keepalive;
    bool clean;
    const char *will_topic;
    const char *will_payload;
    uint8_t will_qos;
    bool will_retain;

    bool connect_only;
    unsigned long clients;       /* connect-only mode */
    unsigned long pubs;
    unsigned long subs;
    bool pubs_set, subs_set;
    unsigned long topics;        /* per publisher */
    const char *topic_tmpl;
    const char *filter_tmpl;
    uint8_t qos;
    uint8_t sub_qos;
    bool retain;
    unsigned long payload;
    double rate;                 /* all publishers together, msgs/s (open loop);
                                    0 = as fast as possible */
    bool rate_per_pub;           /* given as --rate-per-pub (for the report) */
    double sub_rate;             /* most msgs/s each subscriber reads while
                                    publishing lasts; 0 = no limit */
    bool persistent;             /* subscribers keep their sessions (clean 0) */
    double drain_timeout;        /* seconds without a delivery that end the drain */
    unsigned long inflight;      /* QoS 1/2 window per publisher */
    unsigned long backlog;       /* deliveries not yet received, all publishers
                                    together; 0 = no limit */
    unsigned long count;         /* messages per publisher (or per subscriber) */
    bool count_set;
    double duration;             /* seconds of publishing / holding */
    bool duration_set;
    unsigned long timeout;       /* connect, and no-progress, seconds */
    unsigned long parallel;      /* connection attempts at once */
    bool allow_loss;
    bool json;
    int progress;                /* -1 = when stderr is a terminal */
    bool debug;
    long broker_pid;             /* 0 = none */
    uint16_t sub_port;           /* subscribers connect here (0 = port): a
                                    cluster's other node */
};

enum bench_phase {
    PHASE_CONNECTING,  /* opening connections; nothing is published */
    PHASE_RUNNING,     /* publishing */
    PHASE_DRAINING,    /* publishing over; waiting for acks and deliveries */
    PHASE_CLOSING,     /* DISCONNECT sent, waiting for the broker to close */
    PHASE_DONE
};

enum bench_conn_role { ROLE_PUB, ROLE_SUB, ROLE_IDLE };

enum bench_conn_state {
    CS_WAITING,        /* not started yet */
    CS_TCP,            /* non-blocking connect in progress */
    CS_TLS,            /* TLS handshake in progress */
    CS_WS,             /* WebSocket upgrade request sent */
    CS_CONNACK,        /* CONNECT sent */
    CS_SUBACK,         /* SUBSCRIBE sent */
    CS_READY,
    CS_CLOSING,        /* DISCONNECT queued */
    CS_CLOSED,
    CS_FAILED
};

/* Why a connection failed, for the exit status. */
enum bench_conn_fail {
    FAIL_NONE,
    FAIL_REFUSED,      /* TCP refused, CONNACK 1-3 */
    FAIL_AUTH,         /* CONNACK 4-5, SUBACK 0x80 */
    FAIL_TIMEOUT,
    FAIL_LOST,         /* closed or broken after connecting */
    FAIL_PROTOCOL,
    FAIL_TLS,          /* TLS handshake or server certificate refused */
    FAIL_KINDS
};

/* QoS 1/2 window slot of a publisher. */
enum { SLOT_FREE, SLOT_ACK, SLOT_COMP };
struct pub_slot {
    uint16_t pid;
    uint8_t state;
    uint32_t stream;             /* which message: for the acknowledged set */
    uint32_t seq;
    uint64_t sent_ns;            /* written, or with --rate: due */
};

struct bench_pub {
    struct event pace;           /* fixed-rate timer */
    uint64_t t0;                 /* fixed rate: when message 0 is due */
    uint64_t sent;               /* messages written */
    uint64_t acked;              /* QoS 0: = sent */
    uint64_t outstanding;        /* deliveries of its messages not yet received */
    uint64_t limit;              /* its share of the backlog */
    bool blocked;                /* waiting for outstanding to fall */
    uint32_t next_topic;
    uint32_t in_window;
    uint16_t next_pid;
    uint16_t pid_limit;          /* largest multiple of the window <= 65535 */
    struct pub_slot *slots;      /* inflight entries; slot = (pid - 1) % inflight */
    struct bench_track acked_set; /* QoS 1/2: messages the broker acknowledged
                                    (PUBACK, or PUBREC at QoS 2) */
    bool finished;               /* sent all it should */
};

struct bench_sub {
    char *filter;
    struct bench_track track;
    uint64_t received;
    /* --sub-rate: a token bucket; when it is empty the socket is not read
     * (what was read and not yet handled waits in bench_conn.in). */
    struct event resume;
    double tokens;
    uint64_t t_tokens;
    bool paused;
};

struct bench;

struct bench_conn {
    struct bench *b;
    struct event rd;
    struct event wr;
    int fd;
    uint8_t role;
    uint8_t state;
    uint8_t fail;
    bool wr_added;
    bool ping_out;
    uint8_t tls_end;             /* TLS: 1 EOF, 2 error, met after data not yet handed over */
    bool tls_rd_wants_wr;        /* TLS: a read waits for the socket to be writable */
    uint32_t index;              /* within its role */
    uint8_t *in;                 /* a partial packet carried between reads */
    uint32_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t t_start;            /* connect() called */
    uint64_t last_tx, last_rx;
    struct bench_pub *pub;
    struct bench_sub *sub;
    struct ssl_st *ssl;          /* NULL: plain TCP */
    char *tls_err;               /* with tls_end 2: why */
    struct bench_ws *ws;         /* over WebSocket (bench_ws.c), once TCP is up */
};

/* One publisher topic: the PUBLISH header bytes before the payload,
 * encoded once by the codec; a message is a copy of it with the packet id
 * patched, then the payload. */
struct bench_stream {
    uint32_t prefix_off;         /* into bench.prefixes */
    uint16_t prefix_len;
    uint16_t topic_off;          /* topic name inside the prefix */
    uint16_t topic_len;
    uint32_t sent;
    uint32_t fanout;             /* subscribers whose filter matches */
};

struct bench {
    struct bench_options o;
    struct event_base *base;
    struct sockaddr_storage addr, sub_addr; /* sub_addr: --sub-port */
    socklen_t addr_len;
    enum bench_phase phase;
    bool started;                /* set up: there is something to report */

    struct bench_conn *conns;    /* subscribers, then publishers, then idle */
    size_t n_conns;
    size_t next_to_start;
    size_t connecting;           /* started, not yet ready */
    size_t ready;
    size_t failed;               /* every failure, before or after connecting */
    size_t connect_failed;       /* failures before becoming ready */
    size_t closed;

    struct bench_stream *streams;
    size_t n_streams;
    uint8_t *prefixes;
    uint8_t *payload;            /* template: filler, stamp written per message */
    uint32_t run_id;
    size_t pubs_finished;
    uint64_t in_window_total;    /* QoS 1/2 messages awaiting their ack */
    uint64_t sessions_present;   /* CONNACKs that resumed a session */

    uint8_t *rbuf;               /* shared read buffer */
    size_t rbuf_cap;
    uint8_t *ws_raw;             /* over WebSocket: the frames read, before
                                    they are decoded into rbuf */
    size_t ws_raw_cap;
    struct bench_conn **wake;    /* publishers the last read unblocked */
    size_t n_wake;

    struct event *tick;
    struct event *phase_timer;
    struct event *sig_int;
    struct event *sig_term;
    int interrupts;
    bool interrupted;

    /* Times, CLOCK_MONOTONIC ns. */
    uint64_t now;
    uint64_t t_begin;            /* first connect() */
    uint64_t t_last_ready;
    uint64_t t_all_ready;
    uint64_t t_run_start;        /* publishing began */
    uint64_t t_run_stop;         /* publishing ended (duration over, or all sent) */
    uint64_t t_last_pub;         /* last publication completed (ack, or written at QoS 0) */
    uint64_t t_first_rx, t_last_rx;
    uint64_t t_progress;         /* last time anything moved */
    uint64_t t_last_report;
    uint64_t t_end;

    /* Counters. */
    uint64_t published;          /* written */
    uint64_t completed;          /* acked (QoS 0: written) */
    uint64_t received;
    uint64_t unique;
    uint64_t dups;
    uint64_t foreign;            /* not ours, or unrecognised payload */
    uint64_t expected;           /* computed when publishing ends */
    uint64_t lost;
    uint64_t accepted;           /* QoS 1/2: PUBACK or PUBREC received */
    uint64_t acked_lost;         /* deliveries of accepted messages never received */
    uint64_t acked_at_stop;      /* completed when publishing ended */
    uint64_t due_at_stop;        /* --rate: messages due by the end of publishing */
    uint64_t unacked;
    uint64_t lost_conns;         /* connections that failed after connecting */
    uint64_t pings;
    uint64_t last_report_completed, last_report_received;
    bool stalled;                /* ended by the no-progress timeout */
    double stall_seconds;        /* which one: --timeout or --drain-timeout */

    struct bench_hist latency;   /* publish (with --rate: due) -> receive */
    struct bench_hist latency_sent; /* --rate: written -> receive */
    struct bench_hist ack_latency; /* publish -> PUBACK / PUBCOMP */
    struct bench_hist connect_latency; /* connect() -> CONNACK */
    struct bench_hist send_lag;  /* --rate: written - due */

    long rss_before_kib, rss_connected_kib, rss_peak_kib;
    unsigned fail_counts[FAIL_KINDS];
    unsigned errors_printed;

    /* TLS (bench_tls.c); tls_ctx NULL = plain TCP. */
    struct ssl_ctx_st *tls_ctx;
    bool tls_sni;                /* the host is a name, not an address */
    size_t tls_failed;           /* handshakes (or certificates) refused */
    char tls_first_error[512];
    char tls_version[32];
    char tls_cipher[64];
    struct bench_hist handshake_latency; /* connect() -> TLS established */
};

/* Largest payload of a PUBLISH with a one-byte topic and a packet id. */
#define MQTT_MAX_PAYLOAD (268435455ul - 5)

uint64_t bench_now(void);

/* bench_setup.c: connections, filters and PUBLISH headers; 0, -1 (out of
 * memory) or -2 (bad template; printed). */
int bench_setup(struct bench *b);
void bench_teardown(struct bench *b);

/* bench_conn.c */
int bench_conn_setup(struct bench *b, struct bench_conn *c);
void bench_conn_start(struct bench_conn *c);
/* Publishes what the rate, window and phase allow, then flushes. */
void bench_conn_pump(struct bench_conn *c);
/* --rate, as publishing ends: writes what fell due since the last timer
 * (and the window allows), so that the end of the run is not counted as
 * lateness. */
void bench_conn_catch_up(struct bench_conn *c);
/* Messages publisher c should have written by `now` at --rate (no count cap). */
uint64_t bench_conn_due(const struct bench_conn *c, uint64_t now);
/* Publishing is over: a subscriber paused by --sub-rate reads again. */
void bench_conn_unpause(struct bench_conn *c);
/* Sends PINGREQ if idle for a keep alive; fails it if stuck connecting. */
void bench_conn_tick(struct bench_conn *c);
/* Queues DISCONNECT; the connection closes when the broker does (or at
 * bench_conn_close). */
void bench_conn_disconnect(struct bench_conn *c);
void bench_conn_close(struct bench_conn *c);
void bench_conn_free(struct bench_conn *c);
/* For bench_ws.c: ends a broken connection (the reason printed), room for
 * n more output bytes (0, or -1: failed), the write event on or off. */
void bench_conn_fail(struct bench_conn *c, enum bench_conn_fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int bench_out_reserve(struct bench_conn *c, size_t n);
void bench_want_write(struct bench_conn *c, bool on);

/* cmd_bench.c: callbacks from connections. */
void bench_conn_ready(struct bench *b, struct bench_conn *c);
void bench_conn_failed(struct bench *b, struct bench_conn *c, bool was_ready);
void bench_conn_closed(struct bench *b, struct bench_conn *c);
void bench_check_done(struct bench *b);
void bench_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bench_report.c */
void bench_report_text(const struct bench *b, FILE *out);
void bench_report_json(const struct bench *b, int status, FILE *out);
void bench_progress(struct bench *b);
long bench_read_rss_kib(long pid, const char *field);

#endif
