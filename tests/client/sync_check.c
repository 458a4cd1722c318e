/*
 * sync_check.c - the blocking facade under load, run by test_lib.py
 * against a broker: messages to itself pile up past the receive queue's
 * bound while it publishes (reading pauses), a QoS 1 publish still gets
 * its acknowledgement, and every message is then received, in order.
 *
 *   sync_check PORT COUNT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "sync_check: %s: %s\n", what, petrel_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int count = atoi(argv[2]);
    petrel_options *o = petrel_options_new();
    petrel_options_set_server(o, "127.0.0.1", (uint16_t)atoi(argv[1]));
    petrel_options_set_keepalive(o, 5);
    int rc;
    petrel_sync *s = petrel_sync_connect(o, 5000, &rc);
    petrel_options_free(o);
    if (!s)
        return fail("connect", rc);
    int granted;
    if ((rc = petrel_sync_subscribe(s, "sync/check", 1, &granted, 5000)) != PETREL_OK)
        return fail("subscribe", rc);
    char text[32];
    for (int i = 0; i < count; i++) {
        int n = snprintf(text, sizeof text, "%d", i);
        if ((rc = petrel_sync_publish(s, "sync/check", text, (size_t)n, 0, false, 5000)) != 0)
            return fail("publish QoS 0", rc);
    }
    /* Its PUBACK is queued behind `count` messages nobody received yet. */
    if ((rc = petrel_sync_publish(s, "sync/check", "last", 4, 1, false, 5000)) != PETREL_OK)
        return fail("publish QoS 1", rc);
    for (int i = 0; i <= count; i++) {
        petrel_message *m;
        if ((rc = petrel_sync_receive(s, &m, 5000)) != PETREL_OK) {
            fprintf(stderr, "sync_check: message %d of %d: %s\n", i, count + 1,
                    petrel_strerror(rc));
            return 1;
        }
        int n = snprintf(text, sizeof text, "%d", i);
        const char *want = i < count ? text : "last";
        if (m->payload_len != strlen(want) || memcmp(m->payload, want, m->payload_len) != 0) {
            fprintf(stderr, "sync_check: message %d is '%s'\n", i, (const char *)m->payload);
            return 1;
        }
        (void)n;
        petrel_message_free(m);
    }
    petrel_message *m;
    if ((rc = petrel_sync_receive(s, &m, 100)) != PETREL_ETIMEDOUT)
        return fail("receive after the last", rc);
    if ((rc = petrel_sync_disconnect(s, 2000)) != PETREL_OK)
        return fail("disconnect", rc);
    printf("sync_check: %d messages\n", count + 1);
    return 0;
}
