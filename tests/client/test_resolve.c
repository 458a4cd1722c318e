/*
 * test_resolve.c - host names in the asynchronous client: /etc/hosts,
 * a nameserver of the test's own on 127.0.0.1 (it answers, says no such
 * name, answers late, or never answers), and a client closed or freed while
 * its lookup runs.  The client reads a resolv.conf written here
 * (client_set_resolv_conf), so no real DNS server is involved.  Every loop
 * run is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "client.h"
#include "petrel.h"
#include "test_loop.h"

/* ------------------------------------------------------------------------
 * A nameserver on 127.0.0.1 (UDP, kernel-chosen port)
 */

enum dns_mode {
    DNS_ANSWER,   /* A: 127.0.0.1; AAAA: no records */
    DNS_NXDOMAIN, /* no such name */
    DNS_LATE,     /* as DNS_ANSWER, 300 ms late */
    DNS_SILENT    /* reads every query, never answers */
};

#define LATE_MS 300
#define MAX_LATE 16

struct late_reply {
    struct event *ev;
    uint8_t buf[512];
    size_t len;
    struct sockaddr_storage to;
    socklen_t tolen;
};

static struct {
    int fd;
    struct event *ev;
    enum dns_mode mode;
    int queries;
    struct late_reply late[MAX_LATE];
    int n_late;
    char conf[64]; /* the resolv.conf naming it */
} D;

/* The reply to one query: the question copied (its letters as sent: evdns
 * varies their case and checks it), then at most one A record. */
static size_t dns_reply(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
    if (qlen < 12 + 5 || qlen > cap - 16)
        return 0;
    size_t end = 12;
    while (end < qlen && q[end] != 0)
        end += 1 + q[end];
    end += 1 + 4; /* the root label, type, class */
    if (end > qlen)
        return 0;
    uint16_t qtype = (uint16_t)(q[end - 4] << 8 | q[end - 3]);
    bool nx = D.mode == DNS_NXDOMAIN;
    bool a = !nx && qtype == 1;
    memcpy(out, q, end);
    out[2] = 0x81;                  /* QR, RD */
    out[3] = nx ? 0x83 : 0x80;      /* RA, rcode 3 = NXDOMAIN */
    memset(out + 6, 0, 6);
    out[7] = a;                     /* ANCOUNT */
    size_t n = end;
    if (a) {
        static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
        memcpy(out + n, rr, sizeof rr);
        n += sizeof rr;
    }
    return n;
}

static void late_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct late_reply *l = arg;
    sendto(D.fd, l->buf, l->len, 0, (struct sockaddr *)&l->to, l->tolen);
}

static void dns_readcb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint8_t q[512], out[512];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &fromlen);
    if (n <= 0)
        return;
    D.queries++;
    if (D.mode == DNS_SILENT)
        return;
    size_t len = dns_reply(q, (size_t)n, out, sizeof out);
    if (!len)
        return;
    if (D.mode != DNS_LATE) {
        sendto(fd, out, len, 0, (struct sockaddr *)&from, fromlen);
        return;
    }
    assert_true(D.n_late < MAX_LATE);
    struct late_reply *l = &D.late[D.n_late++];
    memcpy(l->buf, out, len);
    l->len = len;
    l->to = from;
    l->tolen = fromlen;
    l->ev = evtimer_new(event_get_base(D.ev), late_cb, l);
    struct timeval tv = {0, LATE_MS * 1000};
    evtimer_add(l->ev, &tv);
}

/* A UDP socket on 127.0.0.1 (non-blocking); *port is where. */
static int udp_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Starts the nameserver and writes a resolv.conf that names it. */
static void dns_start(struct event_base *base, enum dns_mode mode)
{
    memset(&D, 0, sizeof D);
    D.mode = mode;
    uint16_t port;
    D.fd = udp_loopback(&port);
    D.ev = event_new(base, D.fd, EV_READ | EV_PERSIST, dns_readcb, NULL);
    event_add(D.ev, NULL);
    snprintf(D.conf, sizeof D.conf, "/tmp/petrel-resolv-XXXXXX");
    int cfd = mkstemp(D.conf);
    assert_true(cfd >= 0);
    char line[64];
    int n = snprintf(line, sizeof line, "nameserver 127.0.0.1:%u\n", port);
    assert_int_equal(write(cfd, line, (size_t)n), n);
    close(cfd);
}

static void dns_stop(void)
{
    for (int i = 0; i < D.n_late; i++)
        event_free(D.late[i].ev);
    event_free(D.ev);
    close(D.fd);
    unlink(D.conf);
}

/* ------------------------------------------------------------------------
 * An MQTT server that accepts and answers CONNECT with CONNACK (3.1.1)
 */

static struct {
    struct evconnlistener *l;
    struct bufferevent *bev;
    uint16_t port;
    int accepted;
} S;

static void server_readcb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) == 0)
        return;
    evbuffer_drain(in, evbuffer_get_length(in));
    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    bufferevent_write(bev, connack, sizeof connack);
}

static void acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                     void *arg)
{
    (void)sa;
    (void)len;
    (void)arg;
    S.accepted++;
    if (S.bev)
        bufferevent_free(S.bev);
    S.bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(S.bev, server_readcb, NULL, NULL, NULL);
    bufferevent_enable(S.bev, EV_READ);
}

static void server_start(struct event_base *base)
{
    memset(&S, 0, sizeof S);
    S.l = listen_loopback(base, acceptcb, NULL, &S.port);
}

static void server_stop(void)
{
    if (S.bev)
        bufferevent_free(S.bev);
    evconnlistener_free(S.l);
}

/* ------------------------------------------------------------------------
 * The client
 */

static struct {
    struct event_base *base;
    int connected, disconnected, reason;
    bool in_api, callback_in_api;
    int ticks;
} R;

static void on_connected(petrel_client *c, bool sp, void *arg)
{
    (void)c;
    (void)sp;
    (void)arg;
    R.callback_in_api |= R.in_api;
    R.connected++;
    event_base_loopbreak(R.base);
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    (void)c;
    (void)reconnecting;
    (void)arg;
    R.callback_in_api |= R.in_api;
    R.disconnected++;
    R.reason = reason;
    event_base_loopbreak(R.base);
}

static void tickcb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    R.ticks++;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The connect timeout of the next new_client (0: the default). */
static uint32_t next_connect_timeout;

/* A client of `host`, with the resolv.conf at `conf` (NULL: the system's),
 * not reconnecting. */
static petrel_client *new_client(struct event_base *base, const char *host, uint16_t port,
                                 const char *conf)
{
    memset(&R, 0, sizeof R);
    R.base = base;
    petrel_options *o = petrel_options_new();
    assert_int_equal(petrel_options_set_server(o, host, port), PETREL_OK);
    petrel_options_set_reconnect(o, false, 0, 0);
    if (next_connect_timeout)
        petrel_options_set_connect_timeout(o, next_connect_timeout);
    next_connect_timeout = 0;
    int err;
    petrel_client *c = petrel_client_new(base, o, &err);
    petrel_options_free(o);
    assert_non_null(c);
    if (conf)
        assert_int_equal(client_set_resolv_conf(c, conf), 0);
    petrel_on_connected(c, on_connected, NULL);
    petrel_on_disconnected(c, on_disconnected, NULL);
    return c;
}

static void api_connect(petrel_client *c)
{
    R.in_api = true;
    assert_int_equal(petrel_connect(c), PETREL_OK);
    R.in_api = false;
}

/* ------------------------------------------------------------------------
 * Tests
 */

/* localhost is in /etc/hosts: no nameserver is asked. */
static void test_localhost_from_hosts(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base);
    dns_start(base, DNS_SILENT);
    petrel_client *c = new_client(base, "localhost", S.port, D.conf);
    api_connect(c);
    run_bounded(base, 5000);
    assert_int_equal(R.connected, 1);
    assert_int_equal(R.disconnected, 0);
    assert_int_equal(D.queries, 0);
    assert_false(R.callback_in_api);
    petrel_client_free(c);
    dns_stop();
    server_stop();
    event_base_free(base);
}

/* No resolv.conf, or one that names no nameserver: /etc/hosts still
 * answers, and another name fails in bounded time (127.0.0.1 is then the
 * nameserver, as with glibc: nothing, or a local resolver, answers). */
static void test_hosts_without_resolv_conf(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base);
    char empty[] = "/tmp/petrel-resolv-empty-XXXXXX";
    int fd = mkstemp(empty);
    assert_true(fd >= 0);
    close(fd);
    const char *confs[] = {"/nonexistent/resolv.conf", empty};
    for (int i = 0; i < 2; i++) {
        petrel_client *c = new_client(base, "localhost", S.port, confs[i]);
        api_connect(c);
        run_bounded(base, 5000);
        assert_int_equal(R.connected, 1);
        petrel_client_free(c);
    }
    petrel_client *c = new_client(base, "no-such-host.invalid", S.port, confs[0]);
    int64_t t0 = now_ms();
    api_connect(c);
    run_bounded(base, 5000);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_ERESOLVE);
    assert_true(now_ms() - t0 < 5000);
    petrel_client_free(c);
    unlink(empty);
    server_stop();
    event_base_free(base);
}

/* A name only the nameserver knows: the answer comes from the loop, and the
 * client connects to it. */
static void test_name_from_nameserver(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base);
    dns_start(base, DNS_ANSWER);
    petrel_client *c = new_client(base, "broker.petrel-test", S.port, D.conf);
    api_connect(c);
    assert_int_equal(S.accepted, 0); /* not before the answer */
    run_bounded(base, 5000);
    assert_int_equal(R.connected, 1);
    assert_int_equal(S.accepted, 1);
    assert_true(D.queries >= 1);
    assert_false(R.callback_in_api);
    petrel_client_free(c);
    dns_stop();
    server_stop();
    event_base_free(base);
}

/* No such name: PETREL_ERESOLVE from the loop, not from petrel_connect. */
static void test_no_such_name(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    dns_start(base, DNS_NXDOMAIN);
    petrel_client *c = new_client(base, "no-such-host.invalid", 1883, D.conf);
    api_connect(c);
    assert_int_equal(R.disconnected, 0);
    int64_t t0 = now_ms();
    run_bounded(base, 5000);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_ERESOLVE);
    assert_false(R.callback_in_api);
    assert_true(now_ms() - t0 < 1000); /* an answer, not a timeout */
    petrel_client_free(c);
    dns_stop();
    event_base_free(base);
}

/* A nameserver that never answers: the loop keeps running meanwhile (a
 * timer fires every 20 ms), and the lookup gives up within seconds with
 * PETREL_ERESOLVE. */
static void test_silent_nameserver_does_not_block(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    dns_start(base, DNS_SILENT);
    petrel_client *c = new_client(base, "silent.petrel-test", 1883, D.conf);
    struct event *tick = event_new(base, -1, EV_PERSIST, tickcb, NULL);
    struct timeval every = {0, 20 * 1000};
    event_add(tick, &every);
    int64_t t0 = now_ms();
    api_connect(c);
    assert_true(now_ms() - t0 < 100); /* petrel_connect returned at once */
    run_for(base, 500);
    assert_true(D.queries >= 1);
    assert_int_equal(R.disconnected, 0); /* still waiting for the nameserver */
    assert_true(R.ticks >= 10);
    int ticks = R.ticks;
    run_bounded(base, 6000);
    int64_t took = now_ms() - t0;
    print_message("silent nameserver: PETREL_ERESOLVE after %lld ms, %d queries, %d ticks\n",
                  (long long)took, D.queries, R.ticks);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_ERESOLVE);
    assert_true(took < 5000);
    assert_true(R.ticks > ticks + 20);
    /* Idle again, the client holds nothing on the loop: a loop with only
     * it runs dry. */
    event_free(tick);
    event_del(D.ev);
    assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
    event_add(D.ev, NULL);
    petrel_client_free(c);
    dns_stop();
    event_base_free(base);
}

/* Freed while the lookup runs: no callback, nothing leaks (ASan), and the
 * evdns machinery finishes the next time the loop runs. */
static void test_free_during_lookup(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    dns_start(base, DNS_SILENT);
    petrel_client *c = new_client(base, "silent.petrel-test", 1883, D.conf);
    api_connect(c);
    run_for(base, 200);
    assert_true(D.queries >= 1);
    petrel_client_free(c);
    run_for(base, 100);
    assert_int_equal(R.disconnected, 0);
    assert_int_equal(R.connected, 0);
    dns_stop();
    event_base_free(base);
}

/* petrel_disconnect while the lookup runs: disconnected(PETREL_OK), and
 * the late answer is ignored (no connection is made).  Then the same with
 * petrel_client_free just after the answer arrives. */
static void test_disconnect_during_lookup(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base);
    dns_start(base, DNS_LATE);
    petrel_client *c = new_client(base, "late.petrel-test", S.port, D.conf);
    api_connect(c);
    run_for(base, 100);
    assert_true(D.queries >= 1);
    R.in_api = true;
    assert_int_equal(petrel_disconnect(c), PETREL_OK);
    R.in_api = false;
    run_for(base, LATE_MS + 200);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_OK);
    assert_int_equal(R.connected, 0);
    assert_int_equal(S.accepted, 0);
    assert_false(R.callback_in_api);

    /* Connecting again looks the name up again, and works. */
    api_connect(c);
    run_bounded(base, 5000);
    assert_int_equal(R.connected, 1);
    assert_int_equal(S.accepted, 1);
    petrel_client_free(c);
    dns_stop();
    server_stop();
    event_base_free(base);
}

/* The connect timeout covers the lookup: it ends the attempt, and the
 * answer that comes after is ignored. */
static void test_connect_timeout_during_lookup(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base);
    dns_start(base, DNS_LATE);
    next_connect_timeout = LATE_MS / 3;
    petrel_client *c = new_client(base, "late.petrel-test", S.port, D.conf);
    api_connect(c);
    run_bounded(base, 5000);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_ETIMEDOUT);
    run_for(base, LATE_MS + 100);
    assert_true(D.queries >= 1);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.connected, 0);
    assert_int_equal(S.accepted, 0);
    petrel_client_free(c);
    dns_stop();
    server_stop();
    event_base_free(base);
}

/* resolv.conf is read again by the next lookup: after the file names
 * another nameserver, the queries go there. */
static void test_resolv_conf_read_again(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    dns_start(base, DNS_NXDOMAIN);
    petrel_client *c = new_client(base, "moved.petrel-test", 1883, D.conf);
    api_connect(c);
    run_bounded(base, 5000);
    assert_int_equal(R.reason, PETREL_ERESOLVE);
    int before = D.queries;
    assert_true(before >= 1);

    uint16_t port;
    int other = udp_loopback(&port);
    FILE *f = fopen(D.conf, "w");
    assert_non_null(f);
    fprintf(f, "nameserver 127.0.0.1:%u\n", port);
    fclose(f);
    api_connect(c);
    run_for(base, 300);
    uint8_t buf[512];
    assert_true(recv(other, buf, sizeof buf, 0) > 0);
    assert_int_equal(D.queries, before);
    petrel_client_free(c);
    run_for(base, 50);
    close(other);
    dns_stop();
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost_from_hosts),
        cmocka_unit_test(test_hosts_without_resolv_conf),
        cmocka_unit_test(test_name_from_nameserver),
        cmocka_unit_test(test_no_such_name),
        cmocka_unit_test(test_silent_nameserver_does_not_block),
        cmocka_unit_test(test_free_during_lookup),
        cmocka_unit_test(test_disconnect_during_lookup),
        cmocka_unit_test(test_connect_timeout_during_lookup),
        cmocka_unit_test(test_resolv_conf_read_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
