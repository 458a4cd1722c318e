/*
 * test_client.c - unit tests of the public asynchronous client on a real
 * event loop: options and errors, then the client against a scripted
 * server in the same process (127.0.0.1, kernel-chosen port) that sends
 * what a real broker would not: bytes one at a time, garbage, oversized
 * packets, abrupt closes.  Every loop run is bounded by a timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mqtt_codec.h"
#include "petrel.h"
#include "test_loop.h"

/* ------------------------------------------------------------------------
 * Options and errors
 */

static void test_options_validation(void **state)
{
    (void)state;
    petrel_options *o = petrel_options_new();
    assert_non_null(o);
    assert_int_equal(petrel_options_set_server(o, "", 1883), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_server(o, NULL, 1883), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_server(o, "127.0.0.1", 0), PETREL_OK);
    assert_int_equal(petrel_options_set_client_id(o, "\xff"), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_client_id(o, NULL), PETREL_OK);
    assert_int_equal(petrel_options_set_protocol(o, PETREL_MQTT_5), PETREL_OK);
    assert_int_equal(petrel_options_set_protocol(o, 3), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_protocol(o, PETREL_MQTT_311), PETREL_OK);
    assert_int_equal(petrel_options_set_will(o, "a/+", "x", 1, 0, false), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_will(o, "a", "x", 1, 3, false), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_will(o, "a", "x", 1, 1, true), PETREL_OK);
    assert_int_equal(petrel_options_set_will(o, NULL, NULL, 0, 0, false), PETREL_OK);
    assert_int_equal(petrel_options_set_credentials(o, "u", NULL, 3), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_credentials(o, "u", "\0bin", 4), PETREL_OK);
    assert_int_equal(petrel_options_set_credentials(o, NULL, NULL, 0), PETREL_OK);
    assert_int_equal(petrel_options_set_reconnect(o, true, 0, 10), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_reconnect(o, true, 100, 10), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_reconnect(o, false, 0, 0), PETREL_OK);
    assert_int_equal(petrel_options_set_max_inflight(o, 0), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_max_inflight(o, 65001), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_queue_limits(o, 0, 10), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_max_packet_size(o, 3), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_connect_timeout(o, 0), PETREL_EINVAL);

    /* A persistent session needs a client id. */
    struct event_base *base = event_base_new();
    int err = 0;
    petrel_options_set_clean_session(o, false);
    assert_null(petrel_client_new(base, o, &err));
    assert_int_equal(err, PETREL_EINVAL);
    assert_null(petrel_client_new(NULL, o, &err));
    petrel_options_set_client_id(o, "me");
    petrel_client *c = petrel_client_new(base, o, &err);
    assert_non_null(c);
    petrel_options_free(o); /* the client has its own copy */
    assert_int_equal(petrel_connect(c), PETREL_OK);
    assert_int_equal(petrel_connect(c), PETREL_ESTATE);
    assert_int_equal(petrel_publish(c, "a/#", "x", 1, 0, false, NULL), PETREL_EINVAL);
    assert_int_equal(petrel_subscribe(c, "a/#/b", 0, NULL), PETREL_EINVAL);
    petrel_client_free(c);
    event_base_free(base);
}

/* A broker that hangs up while the client writes must not kill the
 * application with SIGPIPE; a handler the application installed stays. */
static void handler(int sig) { (void)sig; }

static void test_sigpipe_ignored_unless_handled(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    petrel_options *o = petrel_options_new();
    int err;

    signal(SIGPIPE, SIG_DFL);
    petrel_client *c = petrel_client_new(base, o, &err);
    assert_non_null(c);
    struct sigaction now;
    sigaction(SIGPIPE, NULL, &now);
    assert_true(now.sa_handler == SIG_IGN);
    petrel_client_free(c);

    signal(SIGPIPE, handler);
    c = petrel_client_new(base, o, &err);
    assert_non_null(c);
    sigaction(SIGPIPE, NULL, &now);
    assert_true(now.sa_handler == handler);
    petrel_client_free(c);

    signal(SIGPIPE, SIG_DFL);
    petrel_options_free(o);
    event_base_free(base);
}

static void test_error_strings(void **state)
{
    (void)state;
    for (int e = PETREL_ESTOPPED; e <= 0; e++) {
        assert_string_not_equal(petrel_strerror(e), "unknown error");
        assert_string_not_equal(petrel_error_name(e), "PETREL_E?");
        for (int f = PETREL_ESTOPPED; f < e; f++)
            assert_string_not_equal(petrel_strerror(e), petrel_strerror(f));
    }
    assert_string_equal(petrel_strerror(12345), "unknown error");
    assert_string_equal(petrel_error_name(PETREL_ECONNREFUSED), "PETREL_ECONNREFUSED");
    assert_string_equal(petrel_version(), PETREL_VERSION);
}

/* ------------------------------------------------------------------------
 * Scripted server
 */

enum script {
    SERVE_SLOWLY,     /* CONNACK and a QoS 1 PUBLISH, one byte per 1 ms */
    SERVE_GARBAGE,    /* random bytes after the CONNECT */
    SERVE_HUGE,       /* a PUBLISH header announcing 1 MiB */
    SERVE_CLOSE,      /* CONNACK, then close */
    SERVE_NORMAL      /* CONNACK, then answer PUBLISH QoS 0 by echoing it */
};

struct server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct bufferevent *bev;
    uint16_t port;
    enum script script;
    uint32_t seed;
    uint8_t out[64];
    size_t out_len, out_pos;
    struct event *drip;
    int accepted;
    bool got_puback;
    bool close_when_flushed;
};

static struct server S;

static uint32_t rnd(void)
{
    S.seed = S.seed * 1103515245u + 12345u;
    return S.seed >> 8;
}

static void dripcb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!S.bev || S.out_pos >= S.out_len)
        return;
    bufferevent_write(S.bev, S.out + S.out_pos++, 1);
    struct timeval ms = {0, 1000};
    evtimer_add(S.drip, &ms);
}

static void server_readcb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        uint8_t hdr[5];
        ev_ssize_t n = evbuffer_copyout(in, hdr, sizeof hdr);
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        if (n < 2 || mqtt_frame_header(hdr, (size_t)n, 0, &first, &rem, &hlen) != MQTT_OK ||
            evbuffer_get_length(in) < hlen + rem)
            return;
        uint8_t pkt[4096];
        size_t total = hlen + rem;
        assert_true(total <= sizeof pkt);
        evbuffer_remove(in, pkt, total);
        uint8_t type = first >> 4;
        if (type == MQTT_CONNECT) {
            static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
            switch (S.script) {
            case SERVE_SLOWLY: {
                /* CONNACK + PUBLISH q1 id 9 "s/t" "slow" */
                static const uint8_t script[] = {0x20, 0x02, 0x00, 0x00, 0x32, 0x0b, 0x00,
                                                 0x03, 's',  '/',  't',  0x00, 0x09, 's',
                                                 'l',  'o',  'w'};
                memcpy(S.out, script, sizeof script);
                S.out_len = sizeof script;
                S.out_pos = 0;
                dripcb(-1, 0, NULL);
                break;
            }
            case SERVE_GARBAGE: {
                uint8_t junk[48];
                size_t len = 1 + rnd() % sizeof junk;
                for (size_t i = 0; i < len; i++)
                    junk[i] = (uint8_t)rnd();
                /* Half the time behind a valid CONNACK, to reach the
                 * connected state's decoder too. */
                if (rnd() & 1)
                    bufferevent_write(bev, connack, sizeof connack);
                bufferevent_write(bev, junk, len);
                break;
            }
            case SERVE_HUGE: {
                static const uint8_t huge[] = {0x20, 0x02, 0x00, 0x00, 0x30, 0x80, 0x80, 0x40};
                bufferevent_write(bev, huge, sizeof huge);
                break;
            }
            case SERVE_CLOSE:
                bufferevent_write(bev, connack, sizeof connack);
                S.close_when_flushed = true;
                break;
            case SERVE_NORMAL:
                bufferevent_write(bev, connack, sizeof connack);
                break;
            }
        } else if (type == MQTT_PUBACK) {
            S.got_puback = true;
        } else if (type == MQTT_PUBLISH && S.script == SERVE_NORMAL) {
            bufferevent_write(bev, pkt, total);
        }
    }
}

static void server_writecb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (S.close_when_flushed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        S.close_when_flushed = false;
        bufferevent_free(bev);
        S.bev = NULL;
    }
}

static void server_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
        if (S.bev == bev)
            S.bev = NULL;
    }
}

static void acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                     void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    if (S.bev)
        bufferevent_free(S.bev);
    S.accepted++;
    S.bev = bufferevent_socket_new(S.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(S.bev, server_readcb, server_writecb, server_eventcb, NULL);
    bufferevent_enable(S.bev, EV_READ | EV_WRITE);
}

static void server_start(struct event_base *base, enum script script)
{
    memset(&S, 0, sizeof S);
    S.base = base;
    S.script = script;
    S.seed = 1;
    S.listener = listen_loopback(base, acceptcb, NULL, &S.port);
    S.drip = evtimer_new(base, dripcb, NULL);
}

static void server_stop(void)
{
    if (S.bev)
        bufferevent_free(S.bev);
    evconnlistener_free(S.listener);
    event_free(S.drip);
    S.bev = NULL;
}

/* ------------------------------------------------------------------------
 * The client side
 */

struct result {
    struct event_base *base;
    int connected;
    int disconnected;
    int reason;
    bool reconnecting;
    int messages;
    char payload[64];
    int published;
    bool in_api;              /* set around petrel_* calls */
    bool callback_in_api;     /* a callback ran inside one: a bug */
    bool free_in_message;
    bool stop_on_disconnect;  /* petrel_disconnect from the callback */
    bool break_on_disconnect;
    bool break_on_any_disconnect;
    int first_reason;
    int break_after_messages;
};

static struct result R;

static void on_connected(petrel_client *c, bool sp, void *arg)
{
    (void)c;
    (void)sp;
    (void)arg;
    R.callback_in_api |= R.in_api;
    R.connected++;
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    (void)arg;
    R.callback_in_api |= R.in_api;
    if (R.disconnected++ == 0)
        R.first_reason = reason;
    R.reason = reason;
    R.reconnecting = reconnecting;
    if (R.stop_on_disconnect && reconnecting)
        petrel_disconnect(c);
    if ((R.break_on_disconnect && !reconnecting) || R.break_on_any_disconnect)
        event_base_loopbreak(R.base);
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    (void)arg;
    R.callback_in_api |= R.in_api;
    R.messages++;
    assert_int_equal(m->topic[m->topic_len], '\0');
    snprintf(R.payload, sizeof R.payload, "%.*s", (int)m->payload_len, (const char *)m->payload);
    if (R.free_in_message) {
        petrel_client_free(c);
        event_base_loopbreak(R.base);
        return;
    }
    if (R.break_after_messages && R.messages >= R.break_after_messages)
        event_base_loopbreak(R.base);
}

static void on_published(petrel_client *c, uint64_t id, int result, void *arg)
{
    (void)c;
    (void)id;
    (void)arg;
    R.callback_in_api |= R.in_api;
    assert_int_equal(result, PETREL_OK);
    R.published++;
}

static petrel_client *new_client(struct event_base *base, uint16_t port, uint32_t max_packet)
{
    memset(&R, 0, sizeof R);
    R.base = base;
    petrel_options *o = petrel_options_new();
    assert_int_equal(petrel_options_set_server(o, "127.0.0.1", port), PETREL_OK);
    petrel_options_set_reconnect(o, true, 5, 20);
    petrel_options_set_connect_timeout(o, 2000);
    if (max_packet)
        petrel_options_set_max_packet_size(o, max_packet);
    int err;
    petrel_client *c = petrel_client_new(base, o, &err);
    petrel_options_free(o);
    assert_non_null(c);
    petrel_on_connected(c, on_connected, NULL);
    petrel_on_disconnected(c, on_disconnected, NULL);
    petrel_on_message(c, on_message, NULL);
    petrel_on_published(c, on_published, NULL);
    return c;
}

static int api_connect(petrel_client *c)
{
    R.in_api = true;
    int rc = petrel_connect(c);
    R.in_api = false;
    return rc;
}

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    petrel_client *c = new_client(base, closed_port(), 0);
    R.stop_on_disconnect = true;
    R.break_on_disconnect = true;
    assert_int_equal(api_connect(c), PETREL_OK);
    run_bounded(base, 5000);
    /* The refusal, then the stop requested from inside its callback. */
    assert_int_equal(R.disconnected, 2);
    assert_int_equal(R.reason, PETREL_OK);
    assert_false(R.callback_in_api);
    petrel_client_free(c);
    event_base_free(base);
}

static void test_unknown_host(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    memset(&R, 0, sizeof R);
    R.base = base;
    petrel_options *o = petrel_options_new();
    petrel_options_set_server(o, "no-such-host.invalid", 1883);
    petrel_options_set_reconnect(o, false, 0, 0);
    petrel_client *c = petrel_client_new(base, o, NULL);
    petrel_options_free(o);
    assert_non_null(c);
    petrel_on_disconnected(c, on_disconnected, NULL);
    R.break_on_disconnect = true;
    assert_int_equal(api_connect(c), PETREL_OK);
    run_bounded(base, 5000);
    assert_int_equal(R.disconnected, 1);
    assert_int_equal(R.reason, PETREL_ERESOLVE);
    assert_false(R.reconnecting);
    assert_false(R.callback_in_api); /* reported from the loop, not from connect */
    petrel_client_free(c);
    event_base_free(base);
}

static void test_bytes_one_at_a_time(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_SLOWLY);
    petrel_client *c = new_client(base, S.port, 0);
    R.break_after_messages = 1;
    assert_int_equal(api_connect(c), PETREL_OK);
    run_bounded(base, 5000);
    assert_int_equal(R.connected, 1);
    assert_int_equal(R.messages, 1);
    assert_string_equal(R.payload, "slow");
    /* Let the PUBACK reach the server. */
    for (int i = 0; i < 100 && !S.got_puback; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_true(S.got_puback);
    petrel_client_free(c);
    server_stop();
    event_base_free(base);
}

static void test_garbage_from_server(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_GARBAGE);
    /* PETREL_GARBAGE_SEEDS=N for a longer run by hand. */
    const char *env = getenv("PETREL_GARBAGE_SEEDS");
    uint32_t seeds = env ? (uint32_t)strtoul(env, NULL, 10) : 100;
    for (uint32_t seed = 1; seed <= seeds; seed++) {
        S.seed = seed;
        petrel_client *c = new_client(base, S.port, 0);
        R.break_on_any_disconnect = true;
        assert_int_equal(api_connect(c), PETREL_OK);
        /* Until the client drops this connection; junk that happens to be
         * the start of a valid packet just waits, so the time is bounded. */
        loop_for(base, 30);
        if (R.disconnected)
            assert_true(R.first_reason == PETREL_EPROTOCOL || R.first_reason == PETREL_ETOO_LARGE ||
                        R.first_reason == PETREL_ECONNLOST);
        petrel_client_free(c);
    }
    server_stop();
    event_base_free(base);
}

static void test_oversized_packet_refused_from_header(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_HUGE);
    petrel_client *c = new_client(base, S.port, 4096);
    R.stop_on_disconnect = true;
    R.break_on_disconnect = true;
    assert_int_equal(api_connect(c), PETREL_OK);
    run_bounded(base, 5000);
    assert_int_equal(R.connected, 1);
    assert_int_equal(R.disconnected, 2);
    assert_int_equal(R.first_reason, PETREL_ETOO_LARGE);
    petrel_client_free(c);
    server_stop();
    event_base_free(base);
}

static void test_server_closes_then_client_reconnects(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_CLOSE);
    petrel_client *c = new_client(base, S.port, 0);

    assert_int_equal(api_connect(c), PETREL_OK);
    for (int i = 0; i < 2000 && S.accepted < 3; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_true(S.accepted >= 3); /* reconnected by itself, twice */
    assert_true(R.connected >= 2);
    assert_int_equal(R.reason, PETREL_ECONNLOST);
    assert_true(R.reconnecting);
    petrel_client_free(c);
    server_stop();
    event_base_free(base);
}

static void test_callbacks_never_inside_api_calls(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_NORMAL);
    petrel_client *c = new_client(base, S.port, 0);
    R.break_after_messages = 3;
    assert_int_equal(api_connect(c), PETREL_OK);
    for (int i = 0; i < 1000 && !R.connected; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(R.connected, 1);
    for (int i = 0; i < 3; i++) {
        R.in_api = true;
        /* QoS 0 completes at once; the callback must still wait. */
        assert_int_equal(petrel_publish(c, "echo", "e", 1, 0, false, NULL), PETREL_OK);
        R.in_api = false;
    }
    assert_int_equal(R.published, 0);
    run_bounded(base, 5000);
    assert_int_equal(R.published, 3);
    assert_int_equal(R.messages, 3); /* echoed by the server */
    R.in_api = true;
    assert_int_equal(petrel_disconnect(c), PETREL_OK);
    R.in_api = false;
    R.break_on_disconnect = true;
    run_bounded(base, 5000);
    assert_int_equal(R.reason, PETREL_OK);
    assert_false(R.callback_in_api);
    petrel_client_free(c);
    server_stop();
    event_base_free(base);
}

static void test_free_inside_callback(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    server_start(base, SERVE_NORMAL);
    petrel_client *c = new_client(base, S.port, 0);
    R.free_in_message = true;
    assert_int_equal(api_connect(c), PETREL_OK);
    for (int i = 0; i < 1000 && !R.connected; i++)
        event_base_loop(base, EVLOOP_ONCE);
    /* Two messages in one read: the client is freed while handling the
     * first, and must not touch the second. */
    petrel_publish(c, "echo", "1", 1, 0, false, NULL);
    petrel_publish(c, "echo", "2", 1, 0, false, NULL);
    run_bounded(base, 5000);
    assert_int_equal(R.messages, 1);
    /* Nothing of the client may fire any more. */
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(R.messages, 1);
    server_stop();
    event_base_free(base);
}

/* The public MQTT 5.0 property list: adders check types, ranges and
 * repeats; getters and the walk give back what was added, in order; the
 * option setters accept only what may go in CONNECT / the will. */
static void test_properties_api(void **state)
{
    (void)state;
    petrel_properties *p = petrel_properties_new();
    assert_non_null(p);
    assert_int_equal(petrel_properties_add_user(p, "k1", "v1"), PETREL_OK);
    assert_int_equal(petrel_properties_add_string(p, PETREL_PROP_CONTENT_TYPE, "text/plain"),
                     PETREL_OK);
    assert_int_equal(petrel_properties_add_user(p, "k2", "v2"), PETREL_OK);
    assert_int_equal(petrel_properties_add_int(p, PETREL_PROP_MESSAGE_EXPIRY, 30), PETREL_OK);
    assert_int_equal(petrel_properties_add_binary(p, PETREL_PROP_CORRELATION_DATA, "\0\1", 2),
                     PETREL_OK);
    /* Wrong type, repeat of a single property, out of range, bad topic. */
    assert_int_equal(petrel_properties_add_int(p, PETREL_PROP_CONTENT_TYPE, 1), PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_int(p, PETREL_PROP_MESSAGE_EXPIRY, 1), PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_int(p, PETREL_PROP_PAYLOAD_FORMAT, 2), PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_string(p, PETREL_PROP_RESPONSE_TOPIC, "a/#"),
                     PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_string(p, PETREL_PROP_CONTENT_TYPE, "\xff"),
                     PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_int(p, 0x7F, 1), PETREL_EINVAL);
    uint32_t v = 0;
    assert_true(petrel_properties_get_int(p, PETREL_PROP_MESSAGE_EXPIRY, &v));
    assert_int_equal(v, 30);
    const void *d;
    size_t n;
    assert_true(petrel_properties_get_bytes(p, PETREL_PROP_CONTENT_TYPE, &d, &n));
    assert_int_equal(n, 10);
    assert_memory_equal(d, "text/plain", 10);
    assert_false(petrel_properties_get_int(p, PETREL_PROP_RECEIVE_MAXIMUM, &v));
    assert_false(petrel_properties_get_int(NULL, PETREL_PROP_RECEIVE_MAXIMUM, &v));
    assert_int_equal(petrel_properties_count(p, PETREL_PROP_USER_PROPERTY), 2);
    size_t cursor = 0, users = 0;
    petrel_property pr;
    while (petrel_properties_next(p, &cursor, &pr)) {
        if (pr.id == PETREL_PROP_USER_PROPERTY) {
            assert_int_equal(pr.len, 2);
            assert_memory_equal(pr.data, users ? "k2" : "k1", 2);
            assert_memory_equal(pr.value_data, users ? "v2" : "v1", 2);
            users++;
        }
    }
    assert_int_equal(users, 2);

    petrel_options *o = petrel_options_new();
    /* Publication properties are not CONNECT properties; they are will
     * properties. */
    assert_int_equal(petrel_options_set_connect_properties(o, p), PETREL_EINVAL);
    assert_int_equal(petrel_options_set_will_properties(o, p), PETREL_OK);
    petrel_properties *c = petrel_properties_new();
    assert_int_equal(petrel_properties_add_int(c, PETREL_PROP_SESSION_EXPIRY, 60), PETREL_OK);
    assert_int_equal(petrel_properties_add_int(c, PETREL_PROP_RECEIVE_MAXIMUM, 0), PETREL_EINVAL);
    assert_int_equal(petrel_properties_add_int(c, PETREL_PROP_RECEIVE_MAXIMUM, 5), PETREL_OK);
    assert_int_equal(petrel_options_set_connect_properties(o, c), PETREL_OK);
    assert_int_equal(petrel_options_set_connect_properties(o, NULL), PETREL_OK);
    assert_int_equal(petrel_properties_add_int(c, PETREL_PROP_SUBSCRIPTION_ID, 3), PETREL_OK);
    assert_int_equal(petrel_options_set_connect_properties(o, c), PETREL_EINVAL);
    assert_string_equal(petrel_reason_string(0x87), mqtt_reason_str(0x87));
    assert_string_equal(petrel_error_name(PETREL_EREJECTED), "PETREL_EREJECTED");
    petrel_options_free(o);
    petrel_properties_free(c);
    petrel_properties_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_validation),
        cmocka_unit_test(test_properties_api),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_sigpipe_ignored_unless_handled),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_unknown_host),
        cmocka_unit_test(test_bytes_one_at_a_time),
        cmocka_unit_test(test_garbage_from_server),
        cmocka_unit_test(test_oversized_packet_refused_from_header),
        cmocka_unit_test(test_server_closes_then_client_reconnects),
        cmocka_unit_test(test_callbacks_never_inside_api_calls),
        cmocka_unit_test(test_free_inside_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
