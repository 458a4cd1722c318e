/*
 * mqtt_bench.c - a minimal pipelined MQTT 3.1.1 client for the store figures
 * (tests/bench/store_figures.sh).  Independent of Petrel's own code, so it
 * measures any broker the same way.
 *
 *   mqtt_bench pub  PORT TOPIC COUNT [PAYLOAD_BYTES [WINDOW]]
 *       clean session; publishes COUNT QoS 1 messages, keeping up to WINDOW
 *       (default 20) unacknowledged; prints the time from the first PUBLISH
 *       sent to the last PUBACK received.
 *   mqtt_bench sub  PORT CLIENT_ID TOPIC COUNT
 *       persistent session (clean session 0); subscribes to TOPIC at QoS 1
 *       unless TOPIC is "-", then receives COUNT messages, acknowledging
 *       each; prints the time from CONNECT sent to the COUNT-th message.
 *       COUNT 0: subscribe and disconnect (creates the session).
 *
 * Output: one line "key=value ..." on stdout (t_start/t_end: CLOCK_MONOTONIC,
 * comparable between processes).  Exit 0 on success, 1 on
 * error or when nothing arrived for 60 s.  127.0.0.1 only.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static unsigned char in[1 << 20];
static size_t in_len;
static unsigned char out[1 << 20];
static size_t out_len;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "mqtt_bench: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static void flush_out(void)
{
    size_t off = 0;
    while (off < out_len) {
        ssize_t n = send(fd, out + off, out_len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        off += (size_t)n;
    }
    out_len = 0;
}

static void put(const void *p, size_t n)
{
    if (out_len + n > sizeof out)
        flush_out();
    memcpy(out + out_len, p, n);
    out_len += n;
}

static void put_u16(unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(b, 2);
}

static void put_header(unsigned char first, size_t len)
{
    unsigned char b[5];
    size_t n = 0;
    b[n++] = first;
    do {
        unsigned char d = len % 128;
        len /= 128;
        if (len)
            d |= 0x80;
        b[n++] = d;
    } while (len);
    put(b, n);
}

static void put_str(const char *s)
{
    size_t n = strlen(s);
    put_u16((unsigned)n);
    put(s, n);
}

/* Reads more bytes; returns 0 on timeout or EOF (with a message). */
static int fill(void)
{
    if (in_len == sizeof in)
        die("input buffer full");
    for (;;) {
        ssize_t n = recv(fd, in + in_len, sizeof in - in_len, 0);
        if (n > 0) {
            in_len += (size_t)n;
            return 1;
        }
        if (n == 0) {
            fprintf(stderr, "mqtt_bench: connection closed by the broker\n");
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            fprintf(stderr, "mqtt_bench: nothing received for 60 s\n");
            return 0;
        }
        die("recv");
    }
}

/* The next complete packet in `in` (type/flags byte, body, body length),
 * or 0 if incomplete.  *used is the packet's total size. */
static int next_packet(unsigned char *first, unsigned char **body, size_t *len, size_t *used)
{
    size_t mult = 1, l = 0, i = 1;
    if (in_len < 2)
        return 0;
    for (;;) {
        if (i >= in_len)
            return 0;
        unsigned char b = in[i++];
        l += (b & 127) * mult;
        mult *= 128;
        if (!(b & 128))
            break;
        if (i > 4)
            die("malformed remaining length");
    }
    if (in_len < i + l)
        return 0;
    *first = in[0];
    *body = in + i;
    *len = l;
    *used = i + l;
    return 1;
}

static void consume(size_t used)
{
    memmove(in, in + used, in_len - used);
    in_len -= used;
}

static void connect_broker(int port, const char *client_id, int clean)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    size_t len = 10 + 2 + strlen(client_id);
    put_header(0x10, len);
    put_str("MQTT");
    unsigned char lv[2] = {4, (unsigned char)(clean ? 2 : 0)};
    put(lv, 2);
    put_u16(60);
    put_str(client_id);
    flush_out();
}

static int wait_connack(int *session_present)
{
    unsigned char first, *body;
    size_t len, used;
    while (!next_packet(&first, &body, &len, &used))
        if (!fill())
            return -1;
    if ((first >> 4) != 2 || len != 2 || body[1] != 0) {
        fprintf(stderr, "mqtt_bench: CONNACK refused or unexpected packet\n");
        return -1;
    }
    *session_present = body[0] & 1;
    consume(used);
    return 0;
}

static int bench_pub(int port, const char *topic, long count, size_t size, int window)
{
    char cid[64];
    snprintf(cid, sizeof cid, "bench-pub-%d", (int)getpid());
    connect_broker(port, cid, 1);
    int sp;
    if (wait_connack(&sp) != 0)
        return 1;
    unsigned char *payload = malloc(size + 1);
    if (!payload)
        die("malloc");
    memset(payload, 'x', size);
    static unsigned char inflight[65536];
    long sent = 0, acked = 0;
    int n_inflight = 0;
    unsigned pid = 0;
    double t0 = 0, t1 = 0;
    size_t tlen = strlen(topic);
    while (acked < count) {
        while (n_inflight < window && sent < count) {
            do
                pid = pid % 65535 + 1;
            while (inflight[pid]);
            inflight[pid] = 1;
            n_inflight++;
            char num[16];
            int k = snprintf(num, sizeof num, "%08ld", sent);
            if ((size_t)k < size)
                memcpy(payload, num, (size_t)k);
            put_header(0x32, 2 + tlen + 2 + size);
            put_str(topic);
            put_u16(pid);
            put(payload, size);
            sent++;
        }
        if (out_len) {
            if (t0 == 0)
                t0 = now();
            flush_out();
        }
        if (!fill())
            return 1;
        unsigned char first, *body;
        size_t len, used;
        while (next_packet(&first, &body, &len, &used)) {
            if ((first >> 4) == 4 && len >= 2) {
                unsigned p = (unsigned)body[0] << 8 | body[1];
                if (inflight[p]) {
                    inflight[p] = 0;
                    n_inflight--;
                    acked++;
                }
            }
            consume(used);
        }
    }
    t1 = now();
    put_header(0xE0, 0);
    flush_out();
    close(fd);
    printf("mode=pub count=%ld acked=%ld payload=%zu window=%d seconds=%.6f rate=%.1f "
           "t_start=%.6f t_end=%.6f\n",
           count, acked, size, window, t1 - t0, acked / (t1 - t0), t0, t1);
    free(payload);
    return 0;
}

static int bench_sub(int port, const char *cid, const char *topic, long count)
{
    double t0 = now();
    connect_broker(port, cid, 0);
    int sp;
    if (wait_connack(&sp) != 0)
        return 1;
    double t_connack = now();
    if (strcmp(topic, "-") != 0) {
        put_header(0x82, 2 + 2 + strlen(topic) + 1);
        put_u16(1);
        put_str(topic);
        unsigned char q = 1;
        put(&q, 1);
        flush_out();
    }
    long got = 0, dups = 0;
    int subacked = strcmp(topic, "-") == 0;
    double t_first = 0;
    for (;;) {
        /* packets that came with the CONNACK are parsed before reading */
        unsigned char first, *body;
        size_t len, used;
        while (next_packet(&first, &body, &len, &used)) {
            int type = first >> 4;
            if (type == 9) {
                subacked = 1;
            } else if (type == 3) {
                int qos = (first >> 1) & 3;
                if (first & 8)
                    dups++;
                if (qos == 1 && len >= 2) {
                    size_t tl = (size_t)body[0] << 8 | body[1];
                    if (len >= 2 + tl + 2) {
                        unsigned char ack[4] = {0x40, 2, body[2 + tl], body[3 + tl]};
                        put(ack, 4);
                    }
                }
                if (got == 0)
                    t_first = now();
                got++;
            }
            consume(used);
        }
        flush_out();
        if (got >= count && subacked)
            break;
        if (!fill()) {
            fprintf(stderr, "mqtt_bench: %ld of %ld messages received\n", got, count);
            return 1;
        }
    }
    double t1 = now();
    put_header(0xE0, 0);
    flush_out();
    close(fd);
    printf("mode=sub count=%ld got=%ld dup=%ld session_present=%d connack_seconds=%.6f "
           "first_seconds=%.6f seconds=%.6f rate=%.1f t_start=%.6f t_end=%.6f\n",
           count, got, dups, sp, t_connack - t0, t_first ? t_first - t0 : 0.0, t1 - t0,
           count ? got / (t1 - t0) : 0.0, t0, t1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "pub") == 0)
        return bench_pub(atoi(argv[2]), argv[3], atol(argv[4]),
                         argc > 5 ? (size_t)atol(argv[5]) : 64, argc > 6 ? atoi(argv[6]) : 20);
    if (argc == 6 && strcmp(argv[1], "sub") == 0)
        return bench_sub(atoi(argv[2]), argv[3], argv[4], atol(argv[5]));
    fprintf(stderr, "usage: mqtt_bench pub PORT TOPIC COUNT [PAYLOAD_BYTES [WINDOW]]\n"
                    "       mqtt_bench sub PORT CLIENT_ID TOPIC|- COUNT\n");
    return 2;
}
