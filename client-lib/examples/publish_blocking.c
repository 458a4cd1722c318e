/*
 * publish_blocking.c - libpetrel's blocking facade: connect, subscribe,
 * publish at QoS 2 and wait for the handshake, then receive the message
 * back with a timeout.  No event loop in sight.
 *
 *   example_publish_blocking [HOST [PORT [TOPIC]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <petrel.h>

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    uint16_t port = (uint16_t)(argc > 2 ? atoi(argv[2]) : 1883);
    const char *topic = argc > 3 ? argv[3] : "petrel/example/blocking";
    const char *text = "hello from the blocking facade";

    petrel_options *o = petrel_options_new();
    if (!o || petrel_options_set_server(o, host, port) != PETREL_OK)
        return 1;
    int err;
    petrel_sync *s = petrel_sync_connect(o, 5000, &err);
    petrel_options_free(o);
    if (!s) {
        fprintf(stderr, "connect: %s\n", petrel_strerror(err));
        return 1;
    }

    int granted;
    int rc = petrel_sync_subscribe(s, topic, 2, &granted, 5000);
    if (rc != PETREL_OK || granted == PETREL_SUBSCRIBE_FAILED) {
        fprintf(stderr, "subscribe: %s\n", petrel_strerror(rc));
        petrel_sync_disconnect(s, 1000);
        return 1;
    }
    rc = petrel_sync_publish(s, topic, text, strlen(text), 2, false, 5000);
    if (rc != PETREL_OK) {
        fprintf(stderr, "publish: %s\n", petrel_strerror(rc));
        petrel_sync_disconnect(s, 1000);
        return 1;
    }
    printf("published (QoS 2 handshake complete)\n");

    petrel_message *m;
    rc = petrel_sync_receive(s, &m, 5000);
    if (rc != PETREL_OK) {
        fprintf(stderr, "receive: %s\n", petrel_strerror(rc));
        petrel_sync_disconnect(s, 1000);
        return 1;
    }
    printf("received on %s (QoS %d): %s\n", m->topic, m->qos, (const char *)m->payload);
    int same = m->payload_len == strlen(text) && memcmp(m->payload, text, m->payload_len) == 0;
    petrel_message_free(m);
    petrel_sync_disconnect(s, 1000);
    return same ? 0 : 1;
}
