/*
 * pubsub_async.c - libpetrel's asynchronous API on the program's own
 * libevent loop: subscribe to a topic, publish a few QoS 1 messages to it,
 * print them as they come back, then disconnect cleanly.
 *
 *   example_pubsub_async [HOST [PORT [TOPIC]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <event2/event.h>
#include <petrel.h>

#define COUNT 5

struct app {
    struct event_base *base;
    const char *topic;
    int received;
    int acked;
    int status;
};

static void on_connected(petrel_client *c, bool session_present, void *arg)
{
    (void)c;
    (void)arg;
    /* The subscription made before petrel_connect goes out now; we publish
     * once it is granted (on_subscribed), so we see our own messages. */
    printf("connected (session present: %s)\n", session_present ? "yes" : "no");
}

static void on_subscribed(petrel_client *c, uint64_t id, size_t n, const int *granted, void *arg)
{
    struct app *app = arg;
    (void)id;
    if (n != 1 || granted[0] == PETREL_SUBSCRIBE_FAILED) {
        fprintf(stderr, "subscription refused\n");
        app->status = 1;
        petrel_disconnect(c);
        return;
    }
    printf("subscribed with QoS %d\n", granted[0]);
    for (int i = 0; i < COUNT; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "hello %d", i);
        int rc = petrel_publish(c, app->topic, text, (size_t)len, 1, false, NULL);
        if (rc != PETREL_OK)
            fprintf(stderr, "publish: %s\n", petrel_strerror(rc));
    }
}

static void on_message(petrel_client *c, const petrel_message *m, void *arg)
{
    struct app *app = arg;
    printf("message on %s: %.*s\n", m->topic, (int)m->payload_len, (const char *)m->payload);
    if (++app->received == COUNT && app->acked == COUNT)
        petrel_disconnect(c);
}

static void on_published(petrel_client *c, uint64_t id, int result, void *arg)
{
    struct app *app = arg;
    printf("message %llu acknowledged (%s)\n", (unsigned long long)id, petrel_strerror(result));
    if (++app->acked == COUNT && app->received == COUNT)
        petrel_disconnect(c);
}

static void on_disconnected(petrel_client *c, int reason, bool reconnecting, void *arg)
{
    struct app *app = arg;
    if (reason != PETREL_OK) {
        /* A real application would let the library reconnect; this one
         * gives up, so that a wrong address fails fast. */
        fprintf(stderr, "connection: %s\n", petrel_strerror(reason));
        app->status = 1;
        if (reconnecting)
            petrel_disconnect(c); /* reported again, with PETREL_OK */
        return;
    }
    printf("disconnected\n");
    event_base_loopbreak(app->base);
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    uint16_t port = (uint16_t)(argc > 2 ? atoi(argv[2]) : 1883);
    struct app app = {.topic = argc > 3 ? argv[3] : "petrel/example"};

    app.base = event_base_new();
    petrel_options *o = petrel_options_new();
    if (!app.base || !o || petrel_options_set_server(o, host, port) != PETREL_OK) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    petrel_options_set_keepalive(o, 10);
    int err;
    petrel_client *c = petrel_client_new(app.base, o, &err);
    petrel_options_free(o);
    if (!c) {
        fprintf(stderr, "petrel_client_new: %s\n", petrel_strerror(err));
        return 1;
    }
    petrel_on_connected(c, on_connected, &app);
    petrel_on_subscribed(c, on_subscribed, &app);
    petrel_on_message(c, on_message, &app);
    petrel_on_published(c, on_published, &app);
    petrel_on_disconnected(c, on_disconnected, &app);

    petrel_subscribe(c, app.topic, 1, NULL);
    petrel_connect(c);
    event_base_dispatch(app.base);

    petrel_client_free(c);
    event_base_free(app.base);
    return app.status;
}
