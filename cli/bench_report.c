/*
 * bench_report.c - what `petrel bench` prints: the human-readable report,
 * the --json object (the same figures, for scripts such as
 * tests/bench/compare.sh), the per-second progress line, and the broker's
 * memory read from /proc.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* Seconds between two monotonic times, 0 if either is unset. */
static double span(uint64_t from, uint64_t to)
{
    return from && to > from ? (double)(to - from) / 1e9 : 0.0;
}

static double per_sec(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : 0.0;
}

/* The windows the rates are measured over; see docs/benchmarks.md. */
static double connect_seconds(const struct bench *b)
{
    return span(b->t_begin, b->t_last_ready);
}

static double publish_seconds(const struct bench *b)
{
    uint64_t end = b->t_last_pub > b->t_run_stop ? b->t_last_pub : b->t_run_stop;
    return span(b->t_run_start, end);
}

/* Publishing proper: the schedule's window, without the drain. */
static double run_seconds(const struct bench *b)
{
    return span(b->t_run_start, b->t_run_stop);
}

static uint64_t behind(const struct bench *b)
{
    return b->due_at_stop > b->published ? b->due_at_stop - b->published : 0;
}

static double receive_seconds(const struct bench *b)
{
    /* Receive-only runs (draining a queue) count from the first connect:
     * the broker's work to resume the session is part of the drain. */
    uint64_t start = b->o.pubs == 0 ? b->t_begin : b->t_run_start;
    if (b->t_first_rx && (start == 0 || b->t_first_rx < start))
        start = b->t_first_rx;
    return span(start, b->t_last_rx);
}

static double mb(uint64_t msgs, unsigned long payload, double seconds)
{
    return seconds > 0 ? (double)msgs * (double)payload / seconds / 1e6 : 0.0;
}

long bench_read_rss_kib(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            if (sscanf(line + flen + 1, "%ld", &kib) != 1)
                kib = -1;
            break;
        }
    }
    fclose(f);
    return kib;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void print_hist_text(FILE *out, const char *label, const struct bench_hist *h)
{
    if (!h->count)
        return;
    fprintf(out,
            "%-13s p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms"
            "  (%llu samples)\n",
            label, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.9)),
            ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)), ms(h->max),
            (unsigned long long)h->count);
}

static const char *rate_text(const struct bench_options *o, char *buf, size_t cap)
{
    if (o->rate > 0 && o->pubs > 1)
        snprintf(buf, cap, "%g msg/s in all (%g per publisher), open loop", o->rate,
                 o->rate / (double)o->pubs);
    else if (o->rate > 0)
        snprintf(buf, cap, "%g msg/s, open loop", o->rate);
    else if (o->backlog == 0)
        snprintf(buf, cap, "as fast as possible, open loop (window %lu)", o->inflight);
    else
        snprintf(buf, cap, "as fast as possible");
    return buf;
}

void bench_report_text(const struct bench *b, FILE *out)
{
    const struct bench_options *o = &b->o;
    char rate[128];
    const char *tls = o->ws ? (o->tls ? " (WebSocket over TLS)" : " (WebSocket)")
                      : o->tls ? " (TLS)" : "";
    if (o->connect_only)
        fprintf(out, "petrel bench: %s:%u%s, %lu connections, keep alive %u s\n", o->host,
                (unsigned)o->port, tls, o->clients, (unsigned)o->keepalive);
    else
        fprintf(out,
                "petrel bench: %s:%u%s, %lu publisher(s) x %lu topic(s) -> %lu subscriber(s), "
                "QoS %u/%u, %lu B, %s, %s\n",
                o->host, (unsigned)o->port, tls, o->pubs, o->topics, o->subs, (unsigned)o->qos,
                (unsigned)o->sub_qos, o->payload, rate_text(o, rate, sizeof rate),
                !o->clean        ? "persistent sessions"
                : o->persistent ? "persistent subscribers"
                                : "clean sessions");
    if (o->sub_rate > 0 && !o->connect_only)
        fprintf(out, "              each subscriber reads at most %g msg/s while publishing\n",
                o->sub_rate);
    double cs = connect_seconds(b);
    fprintf(out, "connections   %zu of %zu in %.3f s (%.0f/s)", b->ready, b->n_conns, cs,
            per_sec(b->ready, cs));
    if (b->connect_failed)
        fprintf(out, ", %zu failed", b->connect_failed);
    if (b->lost_conns)
        fprintf(out, ", %llu lost during the run", (unsigned long long)b->lost_conns);
    if (b->sessions_present)
        fprintf(out, ", %llu sessions resumed", (unsigned long long)b->sessions_present);
    fputc('\n', out);
    print_hist_text(out, "  CONNACK", &b->connect_latency);
    if (o->tls) {
        fprintf(out, "TLS           %s%s%s, %s\n", b->tls_version[0] ? b->tls_version : "no handshake",
                b->tls_cipher[0] ? ", " : "", b->tls_cipher,
                o->insecure ? "server certificate NOT checked (--insecure)"
                            : "server certificate and name checked");
        print_hist_text(out, "  handshake", &b->handshake_latency);
        if (b->tls_failed)
            fprintf(out, "  failed      %zu handshake(s); the first: %s\n", b->tls_failed,
                    b->tls_first_error);
    }
    if (o->pubs > 0) {
        double ps = publish_seconds(b);
        fprintf(out, "published     %llu msgs in %.3f s: %.0f msg/s, %.2f MB/s",
                (unsigned long long)b->completed, ps, per_sec(b->completed, ps),
                mb(b->completed, o->payload, ps));
        if (o->qos > 0)
            fprintf(out, " (acknowledged; %llu sent, %llu unacknowledged)",
                    (unsigned long long)b->published, (unsigned long long)b->unacked);
        fputc('\n', out);
        /* While the schedule ran: a broker that slows its publishers shows
         * here, an acknowledged rate below the offered one. */
        double rn = run_seconds(b);
        fprintf(out, "  publishing  %.3f s: sent %.0f msg/s", rn, per_sec(b->published, rn));
        if (o->qos > 0)
            fprintf(out, ", acknowledged %.0f msg/s", per_sec(b->acked_at_stop, rn));
        if (o->rate > 0)
            fprintf(out, "; offered %g msg/s, %llu due, %llu behind schedule at the end",
                    o->rate, (unsigned long long)b->due_at_stop,
                    (unsigned long long)behind(b));
        fputc('\n', out);
        if (o->rate > 0)
            print_hist_text(out, "  send lag", &b->send_lag);
    }
    if (o->subs > 0) {
        double rs = receive_seconds(b);
        fprintf(out, "received      %llu msgs in %.3f s: %.0f msg/s, %.2f MB/s\n",
                (unsigned long long)b->received, rs, per_sec(b->received, rs),
                mb(b->received, o->payload, rs));
        if (o->pubs > 0 && o->qos > 0)
            fprintf(out,
                    "              expected %llu, delivered %llu, lost %llu (acknowledged but "
                    "never delivered %llu), duplicates %llu",
                    (unsigned long long)b->expected, (unsigned long long)b->unique,
                    (unsigned long long)b->lost, (unsigned long long)b->acked_lost,
                    (unsigned long long)b->dups);
        else if (o->pubs > 0 || o->count_set)
            fprintf(out, "              expected %llu, lost %llu, duplicates %llu",
                    (unsigned long long)b->expected, (unsigned long long)b->lost,
                    (unsigned long long)b->dups);
        else
            fprintf(out, "              duplicates %llu", (unsigned long long)b->dups);
        if (b->foreign)
            fprintf(out, ", not from this run %llu", (unsigned long long)b->foreign);
        fputc('\n', out);
    }
    print_hist_text(out, "latency", &b->latency);
    /* The same without our own lateness: what the broker and the network
     * added once a message was written. */
    print_hist_text(out, "  from send", &b->latency_sent);
    print_hist_text(out, "ack latency", &b->ack_latency);
    if (o->broker_pid) {
        fprintf(out, "broker RSS    before %.1f MiB, connected %.1f MiB, peak %.1f MiB",
                b->rss_before_kib / 1024.0, b->rss_connected_kib / 1024.0,
                b->rss_peak_kib / 1024.0);
        if (b->ready && b->rss_connected_kib > 0 && b->rss_before_kib >= 0)
            fprintf(out, " (%.0f B per connection)",
                    (double)(b->rss_connected_kib - b->rss_before_kib) * 1024.0 /
                        (double)b->ready);
        fputc('\n', out);
    }
    if (b->stalled)
        fprintf(out, "note          ended after %g s without progress\n", b->stall_seconds);
    if (b->acked_lost)
        fprintf(out, "LOSS          %llu deliveries of messages the broker acknowledged never "
                     "arrived\n",
                (unsigned long long)b->acked_lost);
    if (b->interrupted)
        fprintf(out, "note          interrupted\n");
}

static void json_hist(FILE *out, const char *name, const struct bench_hist *h)
{
    fprintf(out,
            "\"%s\":{\"count\":%llu,\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
            "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
            name, (unsigned long long)h->count, h->count ? (double)h->min / 1e3 : 0.0,
            hist_mean(h) / 1e3, (double)hist_quantile(h, 0.5) / 1e3,
            (double)hist_quantile(h, 0.9) / 1e3, (double)hist_quantile(h, 0.99) / 1e3,
            (double)hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3);
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

void bench_report_json(const struct bench *b, int status, FILE *out)
{
    const struct bench_options *o = &b->o;
    fputs("{\"broker\":", out);
    json_string(out, o->host);
    fprintf(out, ",\"port\":%u,\"websocket\":", (unsigned)o->port);
    if (o->ws)
        json_string(out, o->ws_path);
    else
        fputs("null", out);
    fprintf(out, ",\"tls\":{\"enabled\":%s,\"verified\":%s,\"version\":",
            o->tls ? "true" : "false", o->tls && !o->insecure ? "true" : "false");
    json_string(out, b->tls_version);
    fputs(",\"cipher\":", out);
    json_string(out, b->tls_cipher);
    fprintf(out, ",\"handshakes_failed\":%zu,\"first_error\":", b->tls_failed);
    json_string(out, b->tls_first_error);
    fputc(',', out);
    json_hist(out, "handshake_us", &b->handshake_latency);
    fprintf(out, "},\"config\":{\"connect_only\":%s,\"clients\":%lu,\"pubs\":%lu,"
                 "\"subs\":%lu,\"topics\":%lu,\"topic\":",
            o->connect_only ? "true" : "false", o->connect_only ? o->clients : 0,
            o->pubs, o->subs, o->topics);
    json_string(out, o->topic_tmpl);
    fputs(",\"sub_topic\":", out);
    json_string(out, o->filter_tmpl);
    fprintf(out,
            ",\"qos\":%u,\"sub_qos\":%u,\"payload\":%lu,\"rate\":%g,\"rate_per_pub\":%g,"
            "\"open_loop\":%s,\"inflight\":%lu,\"backlog\":%lu,\"sub_rate\":%g,"
            "\"persistent\":%s,\"drain_timeout\":%g,"
            "\"count\":%lu,\"duration\":%g,\"keepalive\":%u,\"clean\":%s},",
            (unsigned)o->qos, (unsigned)o->sub_qos, o->payload, o->rate,
            o->pubs ? o->rate / (double)o->pubs : 0.0,
            o->rate > 0 || o->backlog == 0 ? "true" : "false", o->inflight,
            o->rate > 0 ? 0 : o->backlog, o->sub_rate,
            o->persistent || !o->clean ? "true" : "false", o->drain_timeout,
            o->count_set ? o->count : 0, o->duration, (unsigned)o->keepalive,
            o->clean ? "true" : "false");
    double cs = connect_seconds(b);
    fprintf(out,
            "\"connections\":{\"total\":%zu,\"connected\":%zu,\"failed\":%zu,\"lost\":%llu,"
            "\"seconds\":%.6f,\"per_sec\":%.1f,\"sessions_present\":%llu,",
            b->n_conns, b->ready, b->connect_failed, (unsigned long long)b->lost_conns, cs,
            per_sec(b->ready, cs), (unsigned long long)b->sessions_present);
    json_hist(out, "connack_us", &b->connect_latency);
    double ps = publish_seconds(b), rs = receive_seconds(b);
    double rn = run_seconds(b);
    fprintf(out,
            "},\"published\":{\"sent\":%llu,\"acked\":%llu,\"unacked\":%llu,\"accepted\":%llu,"
            "\"seconds\":%.6f,\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f},",
            (unsigned long long)b->published, (unsigned long long)b->completed,
            (unsigned long long)b->unacked, (unsigned long long)b->accepted, ps,
            per_sec(b->completed, ps), mb(b->completed, o->payload, ps));
    fprintf(out,
            "\"schedule\":{\"seconds\":%.6f,\"offered_per_sec\":%g,\"due\":%llu,"
            "\"sent\":%llu,\"behind\":%llu,\"sent_per_sec\":%.1f,\"acked\":%llu,"
            "\"acked_per_sec\":%.1f,",
            rn, o->rate, (unsigned long long)b->due_at_stop, (unsigned long long)b->published,
            (unsigned long long)behind(b), per_sec(b->published, rn),
            (unsigned long long)b->acked_at_stop, per_sec(b->acked_at_stop, rn));
    json_hist(out, "lag_us", &b->send_lag);
    fprintf(out,
            "},\"delivery\":{\"qos\":%u,\"published\":%llu,\"acked\":%llu,\"expected\":%llu,"
            "\"delivered\":%llu,\"duplicates\":%llu,\"lost\":%llu,\"acked_lost\":%llu,"
            "\"unacked_lost\":%llu},",
            (unsigned)(o->pubs == 0 ? o->sub_qos : o->qos < o->sub_qos ? o->qos : o->sub_qos),
            (unsigned long long)b->published,
            (unsigned long long)(o->qos > 0 ? b->accepted : b->published),
            (unsigned long long)b->expected, (unsigned long long)b->unique,
            (unsigned long long)b->dups, (unsigned long long)b->lost,
            (unsigned long long)b->acked_lost,
            (unsigned long long)(b->lost > b->acked_lost ? b->lost - b->acked_lost : 0));
    fprintf(out,
            "\"received\":{\"messages\":%llu,\"unique\":%llu,\"expected\":%llu,\"lost\":%llu,"
            "\"acked_lost\":%llu,"
            "\"duplicates\":%llu,\"foreign\":%llu,\"seconds\":%.6f,\"msgs_per_sec\":%.1f,"
            "\"mb_per_sec\":%.3f},",
            (unsigned long long)b->received, (unsigned long long)b->unique,
            (unsigned long long)b->expected, (unsigned long long)b->lost,
            (unsigned long long)b->acked_lost,
            (unsigned long long)b->dups, (unsigned long long)b->foreign, rs,
            per_sec(b->received, rs), mb(b->received, o->payload, rs));
    json_hist(out, "latency_us", &b->latency);
    fputc(',', out);
    json_hist(out, "latency_from_send_us", &b->latency_sent);
    fputc(',', out);
    json_hist(out, "ack_latency_us", &b->ack_latency);
    if (o->broker_pid) {
        double per_conn = 0;
        if (b->ready && b->rss_connected_kib > 0 && b->rss_before_kib >= 0)
            per_conn = (double)(b->rss_connected_kib - b->rss_before_kib) * 1024.0 /
                       (double)b->ready;
        fprintf(out,
                ",\"broker_rss\":{\"pid\":%ld,\"before_kib\":%ld,\"connected_kib\":%ld,"
                "\"peak_kib\":%ld,\"bytes_per_connection\":%.1f}",
                o->broker_pid, b->rss_before_kib, b->rss_connected_kib, b->rss_peak_kib,
                per_conn);
    }
    fprintf(out,
            ",\"run_seconds\":%.6f,\"pings\":%llu,\"stalled\":%s,\"interrupted\":%s,"
            "\"exit_status\":%d}\n",
            span(b->t_begin, b->t_end), (unsigned long long)b->pings,
            b->stalled ? "true" : "false", b->interrupted ? "true" : "false", status);
}

void bench_progress(struct bench *b)
{
    double elapsed = span(b->t_begin, b->now);
    uint64_t dc = b->completed - b->last_report_completed;
    uint64_t dr = b->received - b->last_report_received;
    double dt = span(b->t_last_report, b->now);
    fprintf(stderr, "%7.1f s  connected %zu/%zu  published %.0f/s  received %.0f/s",
            elapsed, b->ready, b->n_conns, per_sec(dc, dt), per_sec(dr, dt));
    if (b->latency.count)
        fprintf(stderr, "  latency p99 so far %.3f ms", ms(hist_quantile(&b->latency, 0.99)));
    fputc('\n', stderr);
    b->last_report_completed = b->completed;
    b->last_report_received = b->received;
}
