/*
 * nats_probe.c - a native NATS client for the cluster tests (libnats), to
 * show that NATS applications read and write the data petreld nodes put
 * on NATS.
 *
 *   nats_probe URL sub SUBJECT COUNT TIMEOUT_MS
 *       subscribes, prints "ready", then one line per message:
 *       SUBJECT <tab> Nmqtt-Pub header (or -) <tab> data; exits 0 after
 *       COUNT messages, 1 when TIMEOUT_MS pass first.
 *   nats_probe URL pub SUBJECT DATA [KEY=VALUE]...
 *       publishes DATA with those headers, flushes, exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static int fail(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_probe: %s: %s\n", what, natsStatus_GetText(s));
    return 2;
}

static int sub(natsConnection *nc, const char *subject, int count, int timeout_ms)
{
    natsSubscription *sb = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sb, nc, subject);
    if (s == NATS_OK)
        s = natsConnection_Flush(nc);
    if (s != NATS_OK)
        return fail("subscribe", s);
    printf("ready\n");
    fflush(stdout);
    int64_t deadline = nats_Now() + timeout_ms;
    for (int got = 0; got < count;) {
        int64_t left = deadline - nats_Now();
        natsMsg *m = NULL;
        if (left <= 0 || natsSubscription_NextMsg(&m, sb, left) != NATS_OK)
            return 1;
        const char *qos = NULL;
        if (natsMsgHeader_Get(m, "Nmqtt-Pub", &qos) != NATS_OK)
            qos = "-";
        printf("%s\t%s\t%.*s\n", natsMsg_GetSubject(m), qos, natsMsg_GetDataLength(m),
               natsMsg_GetData(m));
        fflush(stdout);
        natsMsg_Destroy(m);
        got++;
    }
    natsSubscription_Destroy(sb);
    return 0;
}

static int pub(natsConnection *nc, const char *subject, const char *data, int nh, char **hdrs)
{
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)strlen(data));
    for (int i = 0; s == NATS_OK && i < nh; i++) {
        char *eq = strchr(hdrs[i], '=');
        if (!eq) {
            fprintf(stderr, "nats_probe: header %s: KEY=VALUE\n", hdrs[i]);
            return 2;
        }
        *eq = '\0';
        s = natsMsgHeader_Set(m, hdrs[i], eq + 1);
    }
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(nc, m);
    if (s == NATS_OK)
        s = natsConnection_Flush(nc);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : fail("publish", s);
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[2], "sub") == 0 && argc != 6)) {
        fprintf(stderr, "usage: nats_probe URL sub SUBJECT COUNT TIMEOUT_MS\n"
                        "       nats_probe URL pub SUBJECT DATA [KEY=VALUE]...\n");
        return 2;
    }
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
    if (s != NATS_OK)
        return fail(argv[1], s);
    int rc;
    if (strcmp(argv[2], "sub") == 0)
        rc = sub(nc, argv[3], atoi(argv[4]), atoi(argv[5]));
    else
        rc = pub(nc, argv[3], argv[4], argc - 5, argv + 5);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
