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
 *          [--v5] [--cprop NAME VALUE] [--cuser K V] [--wprop NAME VALUE]
 *   (MQTT 5.0: --cprop/--wprop NAME is session-expiry, receive-max,
 *    alias-max, max-packet, will-delay, ct; connect/will properties)
 *
 * Commands: connect | disconnect | sub QOS FILTER | unsub FILTER |
 *           pub QOS RETAIN TOPIC [PAYLOAD...] | pubn QOS TOPIC PREFIX N |
 *           pending | quit |
 *           prop NAME VALUE (MQTT 5.0, for the next pub5/sub5: ct, rt, cd,
 *             pfi, exp, subid, or user K V) | pub5 QOS RETAIN TOPIC [PAYLOAD] |
 *           sub5 OPTIONS FILTER (OPTIONS = QoS | option bits, decimal)
 * Events:   ready | connected sp=B | disconnected reason=NAME retry=B t=MS |
 *           message topic=T qos=Q retain=B dup=B payload=P |
 *           published id=N rc=NAME | subscribed id=N granted=G[,G...] |
 *           unsubscribed id=N | ok CMD [id=N] | err CMD NAME | pending N |
 *           5.0, each just before the event it belongs to:
 *           msgprops LIST | reason code=0xNN [string=S] |
 *           connack LIST   (LIST: name=value pairs separated by spaces)
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
static petrel_properties *next_props; /* for the next pub5/sub5 */

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

/* Properties as "name=value" words in wire order; user properties as
 * up=K:V, subscription identifiers as sid=N. */
static void describe(const petrel_properties *p, char *buf, size_t cap)
{
    size_t cursor = 0, used = 0;
    petrel_property pr;
    buf[0] = '\0';
    while (petrel_properties_next(p, &cursor, &pr) && used < cap - 1) {
        int n;
        switch (pr.id) {
        case PETREL_PROP_USER_PROPERTY:
            n = snprintf(buf + used, cap - used, " up=%.*s:%.*s", (int)pr.len,
                         (const char *)pr.data, (int)pr.value_len, (const char *)pr.value_data);
            break;
        case PETREL_PROP_CONTENT_TYPE:
        case PETREL_PROP_RESPONSE_TOPIC:
        case PETREL_PROP_CORRELATION_DATA:
        case PETREL_PROP_ASSIGNED_CLIENT_ID:
        case PETREL_PROP_REASON_STRING:
            n = snprintf(buf + used, cap - used, " p%02x=%.*s", pr.id, (int)pr.len,
                         (const char *)pr.data);
            break;
        default:
            n = snprintf(buf + used, cap - used, " p%02x=%lu", pr.id, (unsigned long)pr.value);
            break;
        }
        if (n < 0)
            break;
        used += (size_t)n;
        if (used >= cap)
            used = cap - 1;
    }
}

static void emit_reason(petrel_client *c)
{
    int rc = petrel_reason_code(c);
    const void *text;
    size_t len;
    if (!rc)
        return;
    if (petrel_properties_get_bytes(petrel_reason_properties(c), PETREL_PROP_REASON_STRING, &text,
                                    &len))
        emit("reason code=0x%02x string=%.*s", rc, (int)len, (const char *)text);
    else
        emit("reason code=0x%02x", rc);
}

static void on_connected(petrel_client *c, bool sp, void *arg)
{
    (void)arg;
    const petrel_properties *cp = petrel_connack_properties(c);
    if (cp) {
        char buf[1024];
        describe(cp, buf, sizeof buf);
        emit("connack%s", buf);
    }
    emit("connected sp=%d", sp);
}

static void on_disconnected(petrel_client *c, int reason, bool retry, void *arg)
{
    (void)arg;
    emit_reason(c);
    emit("disconnected reason=%s retry=%d t=%lld", petrel_error_name(reason), retry, now_ms());
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    (void)c;
    (void)arg;
    if (m->props) {
        char buf[2048];
        describe(m->props, buf, sizeof buf);
        emit("msgprops%s", buf);
    }
    emit("message topic=%s qos=%d retain=%d dup=%d payload=%.*s", m->topic, m->qos, m->retain,
         m->dup, (int)m->payload_len, (const char *)m->payload);
}

static void on_published(petrel_client *c, uint64_t id, int rc, void *arg)
{
    (void)arg;
    emit_reason(c);
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
    } else if (strcmp(cmd, "pub") == 0 || strcmp(cmd, "pub5") == 0) {
        /* pub5: with the properties the "prop" commands gathered */
        bool v5 = strcmp(cmd, "pub5") == 0;
        char *q = word(&rest);
        char *r = word(&rest);
        char *topic = word(&rest);
        const char *payload = rest ? rest : "";
        int rc = v5 ? petrel_publish_props(client, topic ? topic : "", payload, strlen(payload),
                                           q ? atoi(q) : 0, r && atoi(r), next_props, &id)
                    : petrel_publish(client, topic ? topic : "", payload, strlen(payload),
                                     q ? atoi(q) : 0, r && atoi(r), &id);
        if (v5) {
            petrel_properties_free(next_props);
            next_props = NULL;
        }
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
    } else if (strcmp(cmd, "prop") == 0) {
        char *name = word(&rest);
        int rc = PETREL_EINVAL;
        if (!next_props)
            next_props = petrel_properties_new();
        if (name && strcmp(name, "user") == 0) {
            char *k = word(&rest);
            rc = petrel_properties_add_user(next_props, k ? k : "", rest ? rest : "");
        } else if (name && rest) {
            static const struct { const char *n; int id; bool num; } t[] = {
                {"ct", PETREL_PROP_CONTENT_TYPE, false}, {"rt", PETREL_PROP_RESPONSE_TOPIC, false},
                {"cd", PETREL_PROP_CORRELATION_DATA, false},
                {"pfi", PETREL_PROP_PAYLOAD_FORMAT, true}, {"exp", PETREL_PROP_MESSAGE_EXPIRY, true},
                {"subid", PETREL_PROP_SUBSCRIPTION_ID, true},
            };
            for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
                if (strcmp(name, t[i].n) == 0)
                    rc = t[i].num ? petrel_properties_add_int(next_props, t[i].id,
                                                              (uint32_t)strtoul(rest, NULL, 10))
                                  : petrel_properties_add_binary(next_props, t[i].id, rest,
                                                                 strlen(rest));
        }
        report(cmd, rc, 0);
    } else if (strcmp(cmd, "sub5") == 0) {
        char *o = word(&rest);
        int opt = o ? atoi(o) : 0;
        const char *f = rest ? rest : "";
        int rc = petrel_subscribe_props(client, &f, &opt, 1, next_props, &id);
        petrel_properties_free(next_props);
        next_props = NULL;
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
    petrel_properties *cprops = petrel_properties_new();
    petrel_properties *wprops = petrel_properties_new();
    bool have_cprops = false, have_wprops = false;
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
        else if (strcmp(a, "--v5") == 0)
            petrel_options_set_protocol(o, PETREL_MQTT_5);
        else if (strcmp(a, "--cuser") == 0 && i + 2 < argc) {
            petrel_properties_add_user(cprops, argv[i + 1], argv[i + 2]);
            i += 2;
            have_cprops = true;
        } else if ((strcmp(a, "--cprop") == 0 || strcmp(a, "--wprop") == 0) && i + 2 < argc) {
            static const struct { const char *n; int id; } t[] = {
                {"session-expiry", PETREL_PROP_SESSION_EXPIRY},
                {"receive-max", PETREL_PROP_RECEIVE_MAXIMUM},
                {"alias-max", PETREL_PROP_TOPIC_ALIAS_MAXIMUM},
                {"max-packet", PETREL_PROP_MAXIMUM_PACKET_SIZE},
                {"will-delay", PETREL_PROP_WILL_DELAY},
            };
            bool will = a[2] == 'w';
            const char *n = argv[++i], *v = argv[++i];
            int rc = PETREL_EINVAL;
            for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
                if (strcmp(n, t[k].n) == 0)
                    rc = petrel_properties_add_int(will ? wprops : cprops, t[k].id,
                                                   (uint32_t)strtoul(v, NULL, 10));
            if (strcmp(n, "ct") == 0)
                rc = petrel_properties_add_string(will ? wprops : cprops,
                                                  PETREL_PROP_CONTENT_TYPE, v);
            if (rc != PETREL_OK)
                return usage();
            if (will)
                have_wprops = true;
            else
                have_cprops = true;
        }
        else
            return usage();
    }
    if (port <= 0 || petrel_options_set_server(o, host, (uint16_t)port) != PETREL_OK)
        return usage();
    if (user)
        petrel_options_set_credentials(o, user, pass, pass ? strlen(pass) : 0);
    if ((have_cprops && petrel_options_set_connect_properties(o, cprops) != PETREL_OK) ||
        (have_wprops && petrel_options_set_will_properties(o, wprops) != PETREL_OK)) {
        fprintf(stderr, "driver: properties refused\n");
        return 2;
    }
    petrel_properties_free(cprops);
    petrel_properties_free(wprops);

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
    petrel_properties_free(next_props);
    evbuffer_free(input);
    event_base_free(base);
    return 0;
}
