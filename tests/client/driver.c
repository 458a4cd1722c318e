/*
 * driver.c - a libpetrel client scripted over stdin, for the integration
 * tests: one command per line in, one event per line out (stdout, flushed
 * at once), so Python can drive the real library against a real broker and
 * assert on what the application would see.
 *
 *   driver --port P [--host H] [--id ID] [--persistent] [--keepalive S]
 *          [--reconnect MIN_MS MAX_MS | --no-reconnect] [--queue N]
 *          [--will TOPIC PAYLOAD QOS] [--user U] [--pass P]
 *          [--connect-timeout MS] [--inflight N]
 *
 * Commands: connect | disconnect | sub QOS FILTER | unsub FILTER |
 *           pub QOS RETAIN TOPIC [PAYLOAD...] | pubn QOS TOPIC PREFIX N |
 *           pending | quit
 * Events:   ready | connected sp=B | disconnected reason=NAME retry=B t=MS |
 *           message topic=T qos=Q retain=B dup=B payload=P |
 *           published id=N rc=NAME | subscribed id=N granted=G[,G...] |
 *           unsubscribed id=N | ok CMD [id=N] | err CMD NAME | pending N
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include <petrel.h>

static struct event_base *base;
static petrel_client *client;
static struct evbuffer *input;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void on_connected(petrel_client *c, bool sp, void *arg)
{
    (void)c;
    (void)arg;
    emit("connected sp=%d", sp);
}

static void on_disconnected(petrel_client *c, int reason, bool retry, void *arg)
{
    (void)c;
    (void)arg;
    emit("disconnected reason=%s retry=%d t=%lld", petrel_error_name(reason), retry, now_ms());
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    (void)c;
    (void)arg;
    emit("message topic=%s qos=%d retain=%d dup=%d payload=%.*s", m->topic, m->qos, m->retain,
         m->dup, (int)m->payload_len, (const char *)m->payload);
}

static void on_published(petrel_client *c, uint64_t id, int rc, void *arg)
{
    (void)c;
    (void)arg;
    emit("published id=%llu rc=%s", (unsigned long long)id, petrel_error_name(rc));
}

static void on_subscribed(petrel_client *c, uint64_t id, size_t n, const int *granted, void *arg)
{
    (void)c;
    (void)arg;
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list - 8; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", i ? "," : "",
                                 granted[i]);
    emit("subscribed id=%llu granted=%s", (unsigned long long)id, list);
}

static void on_unsubscribed(petrel_client *c, uint64_t id, void *arg)
{
    (void)c;
    (void)arg;
    emit("unsubscribed id=%llu", (unsigned long long)id);
}

static void report(const char *cmd, int rc, uint64_t id)
{
    if (rc == PETREL_OK)
        emit("ok %s id=%llu", cmd, (unsigned long long)id);
    else
        emit("err %s %s", cmd, petrel_error_name(rc));
}

/* Splits off the next space-separated word of *s. */
static char *word(char **s)
{
    char *w = *s;
    if (!w)
        return NULL;
    char *sp = strchr(w, ' ');
    if (sp) {
        *sp = '\0';
        *s = sp + 1;
    } else {
        *s = NULL;
    }
    return w;
}

static void command(char *line)
{
    char *rest = line;
    char *cmd = word(&rest);
    uint64_t id = 0;
    if (!cmd || !*cmd)
        return;
    if (strcmp(cmd, "connect") == 0) {
        report(cmd, petrel_connect(client), 0);
    } else if (strcmp(cmd, "disconnect") == 0) {
        report(cmd, petrel_disconnect(client), 0);
    } else if (strcmp(cmd, "sub") == 0) {
        char *q = word(&rest);
        int rc = petrel_subscribe(client, rest ? rest : "", q ? atoi(q) : 0, &id);
        report(cmd, rc, id);
    } else if (strcmp(cmd, "unsub") == 0) {
        int rc = petrel_unsubscribe(client, rest ? rest : "", &id);
        report(cmd, rc, id);
    } else if (strcmp(cmd, "pub") == 0) {
        char *q = word(&rest);
        char *r = word(&rest);
        char *topic = word(&rest);
        const char *payload = rest ? rest : "";
        int rc = petrel_publish(client, topic ? topic : "", payload, strlen(payload),
                                q ? atoi(q) : 0, r && atoi(r), &id);
        report(cmd, rc, id);
    } else if (strcmp(cmd, "pubn") == 0) {
        char *q = word(&rest);
        char *topic = word(&rest);
        char *prefix = word(&rest);
        char *n = word(&rest);
        int count = n ? atoi(n) : 0;
        int rc = PETREL_OK;
        for (int i = 0; i < count && rc == PETREL_OK; i++) {
            char payload[256];
            int len = snprintf(payload, sizeof payload, "%s%d", prefix ? prefix : "", i);
            rc = petrel_publish(client, topic ? topic : "", payload, (size_t)len, q ? atoi(q) : 0,
                                false, &id);
        }
        report(cmd, rc, id);
    } else if (strcmp(cmd, "pending") == 0) {
        emit("pending %zu", petrel_pending(client));
    } else if (strcmp(cmd, "quit") == 0) {
        event_base_loopbreak(base);
    } else {
        emit("err %s unknown-command", cmd);
    }
}

static void stdincb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        event_base_loopbreak(base); /* the test went away */
        return;
    }
    evbuffer_add(input, buf, (size_t)n);
    char *line;
    while ((line = evbuffer_readln(input, NULL, EVBUFFER_EOL_LF))) {
        command(line);
        free(line);
    }
}

static int usage(void)
{
    fprintf(stderr, "driver: bad arguments (see the comment at the top of driver.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    petrel_options *o = petrel_options_new();
    const char *host = "127.0.0.1";
    int port = 0;
    const char *user = NULL, *pass = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--host") == 0 && more)
            host = argv[++i];
        else if (strcmp(a, "--port") == 0 && more)
            port = atoi(argv[++i]);
        else if (strcmp(a, "--id") == 0 && more)
            petrel_options_set_client_id(o, argv[++i]);
        else if (strcmp(a, "--persistent") == 0)
            petrel_options_set_clean_session(o, false);
        else if (strcmp(a, "--keepalive") == 0 && more)
            petrel_options_set_keepalive(o, (uint16_t)atoi(argv[++i]));
        else if (strcmp(a, "--reconnect") == 0 && i + 2 < argc) {
            uint32_t lo = (uint32_t)atoi(argv[++i]);
            uint32_t hi = (uint32_t)atoi(argv[++i]);
            petrel_options_set_reconnect(o, true, lo, hi);
        } else if (strcmp(a, "--no-reconnect") == 0)
            petrel_options_set_reconnect(o, false, 0, 0);
        else if (strcmp(a, "--queue") == 0 && more)
            petrel_options_set_queue_limits(o, (size_t)atoi(argv[++i]), 1u << 30);
        else if (strcmp(a, "--inflight") == 0 && more)
            petrel_options_set_max_inflight(o, (uint32_t)atoi(argv[++i]));
        else if (strcmp(a, "--connect-timeout") == 0 && more)
            petrel_options_set_connect_timeout(o, (uint32_t)atoi(argv[++i]));
        else if (strcmp(a, "--will") == 0 && i + 3 < argc) {
            const char *t = argv[++i];
            const char *p = argv[++i];
            int q = atoi(argv[++i]);
            petrel_options_set_will(o, t, p, strlen(p), q, false);
        } else if (strcmp(a, "--user") == 0 && more)
            user = argv[++i];
        else if (strcmp(a, "--pass") == 0 && more)
            pass = argv[++i];
        else
            return usage();
    }
    if (port <= 0 || petrel_options_set_server(o, host, (uint16_t)port) != PETREL_OK)
        return usage();
    if (user)
        petrel_options_set_credentials(o, user, pass, pass ? strlen(pass) : 0);

    base = event_base_new();
    input = evbuffer_new();
    int err;
    client = petrel_client_new(base, o, &err);
    petrel_options_free(o);
    if (!client) {
        fprintf(stderr, "driver: %s\n", petrel_strerror(err));
        return 1;
    }
    petrel_on_connected(client, on_connected, NULL);
    petrel_on_disconnected(client, on_disconnected, NULL);
    petrel_on_message(client, on_message, NULL);
    petrel_on_published(client, on_published, NULL);
    petrel_on_subscribed(client, on_subscribed, NULL);
    petrel_on_unsubscribed(client, on_unsubscribed, NULL);
    struct event *in = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, stdincb, NULL);
    event_add(in, NULL);
    emit("ready");
    event_base_dispatch(base);
    event_free(in);
    petrel_client_free(client);
    evbuffer_free(input);
    event_base_free(base);
    return 0;
}
