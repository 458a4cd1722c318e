/*
 * bench_setup.c - builds a `petrel bench` run before the event loop starts:
 * the connections, each subscriber's filter, and for each publisher topic
 * the PUBLISH header encoded once by the codec (messages copy it).
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "bench_topic.h"
#include "bench_ws.h"
#include "conn_args.h"
#include "mqtt_codec.h"

#define TOPIC_MAX 65535

static int build_streams(struct bench *b, uint8_t *scratch, size_t scratch_cap, char *topic)
{
    const struct bench_options *o = &b->o;
    b->n_streams = o->pubs * o->topics;
    b->streams = calloc(b->n_streams ? b->n_streams : 1, sizeof *b->streams);
    if (!b->streams)
        return -1;
    size_t cap = 0, used = 0;
    for (unsigned long p = 0; p < o->pubs; p++) {
        for (unsigned long t = 0; t < o->topics; t++) {
            int len = topic_expand(o->topic_tmpl, p, t, 0, topic, TOPIC_MAX + 1);
            if (len <= 0 || !mqtt_topic_name_valid((const uint8_t *)topic, (size_t)len)) {
                cli_error("bench", "-t: '%s' does not give a valid topic name%s%s",
                          o->topic_tmpl, len > 0 ? ": " : "", len > 0 ? topic : "");
                return -2;
            }
            struct mqtt_packet pk = {.type = MQTT_PUBLISH};
            struct mqtt_publish *m = &pk.u.publish;
            m->qos = o->qos;
            m->retain = o->retain;
            m->topic = (struct mqtt_bytes){(const uint8_t *)topic, (uint32_t)len};
            m->packet_id = o->qos ? 1 : 0;
            m->payload = (struct mqtt_bytes){b->payload, (uint32_t)o->payload};
            size_t n = mqtt_encode(MQTT_LEVEL_311, &pk, scratch, scratch_cap);
            if (n == 0 || n > scratch_cap) {
                cli_error("bench", "cannot encode a PUBLISH of %lu bytes to '%s'", o->payload,
                          topic);
                return -2;
            }
            size_t prefix = n - o->payload;
            if (used + prefix > cap) {
                cap = cap ? cap * 2 : 4096;
                while (cap < used + prefix)
                    cap *= 2;
                uint8_t *np = realloc(b->prefixes, cap);
                if (!np)
                    return -1;
                b->prefixes = np;
            }
            memcpy(b->prefixes + used, scratch, prefix);
            struct bench_stream *s = &b->streams[p * o->topics + t];
            s->prefix_off = (uint32_t)used;
            s->prefix_len = (uint16_t)prefix;
            s->topic_len = (uint16_t)len;
            s->topic_off = (uint16_t)(prefix - (o->qos ? 2 : 0) - (size_t)len);
            used += prefix;
        }
    }
    return 0;
}

int bench_setup(struct bench *b)
{
    const struct bench_options *o = &b->o;
    b->payload = malloc(o->payload ? o->payload : 1);
    b->rbuf_cap = 256 * 1024;
    b->rbuf = malloc(b->rbuf_cap);
    char *topic = malloc(TOPIC_MAX + 1);
    size_t scratch_cap = o->payload + TOPIC_MAX + 16;
    uint8_t *scratch = malloc(scratch_cap);
    int rc = -1;
    if (!b->payload || !b->rbuf || !topic || !scratch)
        goto out;
    /* Printable filler, so a human watching with `petrel sub` sees text
     * after the binary stamp. */
    for (unsigned long i = 0; i < o->payload; i++)
        b->payload[i] = (uint8_t)('a' + i % 26);
    if ((rc = build_streams(b, scratch, scratch_cap, topic)) != 0)
        goto out;

    b->n_conns = o->connect_only ? o->clients : o->subs + o->pubs;
    b->conns = calloc(b->n_conns ? b->n_conns : 1, sizeof *b->conns);
    rc = -1;
    if (!b->conns)
        goto out;
    for (size_t i = 0; i < b->n_conns; i++)
        b->conns[i].fd = -1; /* teardown may meet connections never set up */
    for (size_t i = 0; i < b->n_conns; i++) {
        struct bench_conn *c = &b->conns[i];
        if (o->connect_only) {
            c->role = ROLE_IDLE;
            c->index = (uint32_t)i;
        } else if (i < o->subs) {
            c->role = ROLE_SUB;
            c->index = (uint32_t)i;
        } else {
            c->role = ROLE_PUB;
            c->index = (uint32_t)(i - o->subs);
        }
        if (bench_conn_setup(b, c) != 0)
            goto out;
        if (c->role == ROLE_SUB) {
            int len = topic_expand(o->filter_tmpl, 0, 0, i, topic, TOPIC_MAX + 1);
            if (len <= 0 || !mqtt_topic_filter_valid((const uint8_t *)topic, (size_t)len)) {
                cli_error("bench", "-T: '%s' does not give a valid topic filter%s%s",
                          o->filter_tmpl, len > 0 ? ": " : "", len > 0 ? topic : "");
                rc = -2;
                goto out;
            }
            if (!(c->sub->filter = strdup(topic)))
                goto out;
        }
    }
    /* How many subscribers each message reaches, for the backlog. */
    for (size_t i = 0; i < b->n_streams; i++) {
        struct bench_stream *st = &b->streams[i];
        const char *name = (const char *)b->prefixes + st->prefix_off + st->topic_off;
        for (size_t k = 0; k < o->subs; k++)
            if (topic_matches(b->conns[k].sub->filter, name, st->topic_len))
                st->fanout++;
    }
    for (size_t i = o->subs; i < b->n_conns && !o->connect_only; i++) {
        struct bench_conn *c = &b->conns[i];
        uint64_t sum = 0;
        for (unsigned long t = 0; t < o->topics; t++)
            sum += b->streams[c->index * o->topics + t].fanout;
        uint64_t share = o->backlog / o->pubs;
        uint64_t one = (sum + o->topics - 1) / o->topics; /* a message's deliveries */
        c->pub->limit = share > one ? share : one;
    }
    b->wake = calloc(o->pubs ? o->pubs : 1, sizeof *b->wake);
    if (!b->wake)
        goto out;
    rc = 0;
out:
    free(topic);
    free(scratch);
    if (rc == -1)
        cli_error("bench", "out of memory");
    return rc;
}

void bench_teardown(struct bench *b)
{
    for (size_t i = 0; i < b->n_conns; i++)
        bench_conn_free(&b->conns[i]);
    free(b->conns);
    free(b->streams);
    free(b->prefixes);
    free(b->payload);
    free(b->rbuf);
    free(b->ws_raw);
    bench_ws_shutdown();
    free(b->wake);
}
