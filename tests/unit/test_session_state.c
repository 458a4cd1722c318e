/*
 * test_session_state.c - unit tests of session_state.c: a session's header
 * and deliveries turned into bytes and back, through the real session and
 * store modules with a store in a temporary directory.  Sessions stay
 * offline.  Covers the header round trip and its application, the
 * deliveries round trip (in flight, released QoS 2, queued ones only in
 * the store, several chunks) with the source left as it was and the import
 * surviving a reload, the import into a session with deliveries of its own
 * (queued after them, released ones dropped, skip()), and hostile bytes
 * (every truncation, corrupted fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "message.h"
#include "mqtt_codec.h"
#include "session.h"
#include "session_state.h"
#include "store.h"

static struct config cfg;
static char dir[256];

static void open_broker(void)
{
    char err[256] = "";
    assert_int_equal(broker_init(&cfg), 0);
    if (store_open(cfg.data_dir, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    assert_int_equal(store_load(), 0);
}

/* Commits what the turn wrote, closes and opens the store again: what is
 * in memory then is what the rows hold. */
static void reload(void)
{
    assert_int_equal(store_commit(), 0);
    broker_free();
    open_broker();
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/petrel-sstate-XXXXXX", tmp);
    if (!mkdtemp(dir))
        return -1;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    /* A few rows per window: a stored queue is read back in many. */
    cfg.max_queued_memory = 2000;
    open_broker();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    broker_free();
    static const char *const files[] = {"petrel.db", "petrel.db-wal", "petrel.db-shm"};
    char path[400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

static struct session *persistent(const char *id)
{
    struct session *s = session_create(id, strlen(id), true);
    assert_non_null(s);
    assert_true(s->db_id != 0);
    return s;
}

/* A message with forwarded properties (content type, a user property) and,
 * when expiry > 0, a Message Expiry Interval. */
static struct message *msg_props(const char *topic, const char *payload, uint8_t qos, bool retain,
                                 uint32_t expiry)
{
    uint8_t buf[128];
    struct mqtt_props_builder b;
    mqtt_pb_init(&b, buf, sizeof buf);
    mqtt_pb_bytes(&b, MQTT_PROP_CONTENT_TYPE, "text/plain", 10);
    mqtt_pb_pair(&b, MQTT_PROP_USER_PROPERTY, "k", 1, payload, strlen(payload));
    if (expiry)
        mqtt_pb_num(&b, MQTT_PROP_MESSAGE_EXPIRY, expiry);
    assert_false(b.overflow);
    struct mqtt_props p = mqtt_pb_props(&b);
    struct message *m = message_new_props(topic, strlen(topic), (const uint8_t *)payload,
                                          strlen(payload), qos, retain, &p);
    assert_non_null(m);
    return m;
}

static void sub(struct session *s, const char *filter, uint8_t options, uint32_t id)
{
    assert_true(session_subscribe(s, filter, strlen(filter), options, id) >= 0);
}

/* ---- the header ---- */

static const struct {
    const char *filter;
    uint8_t options;
    uint32_t id;
} subs[] = {
    {"a/b", 1, 0},
    {"a/+/c", 2 | MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RETAIN_AS_PUBLISHED, 5},
    {"x/#", 1 | (2 << 4), 268435455},
    {"$share/grp/job/+", 0 | (1 << 4), 7},
    {"+", 2 | MQTT_SUBOPT_RETAIN_AS_PUBLISHED, 0},
};
#define N_SUBS (sizeof subs / sizeof subs[0])
static const uint16_t qos2[] = {1, 300, 65535};

/* "hdr-src" with its will, and its header encoded (*buf, *len). */
static struct session *header_source(struct message **will, uint8_t **buf, size_t *len)
{
    struct session *s = persistent("hdr-src");
    session_set_expiry(s, true, 3600);
    for (size_t i = 0; i < N_SUBS; i++)
        sub(s, subs[i].filter, subs[i].options, subs[i].id);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(session_qos2_mark(s, qos2[i]), 0);
    *will = msg_props("will/t", "gone", 1, true, 60);
    *buf = session_state_header_encode(s, *will, 30, len);
    assert_non_null(*buf);
    return s;
}

static void test_header_round_trip(void **state)
{
    (void)state;
    struct message *will;
    uint8_t *buf;
    size_t len;
    struct session *s = header_source(&will, &buf, &len);
    struct session_state_header h;
    const char *why = NULL;
    if (session_state_header_decode(buf, len, &h, &why) != 0)
        fail_msg("decode: %s", why);
    assert_int_equal(h.id_len, 7);
    assert_string_equal(h.client_id, "hdr-src");
    assert_true(h.persistent);
    assert_true(h.expiry_set);
    assert_int_equal(h.expiry, 3600);
    assert_int_equal(h.n_subs, N_SUBS);
    for (size_t i = 0; i < N_SUBS; i++) { /* in the order they were made */
        assert_int_equal(h.subs[i].len, strlen(subs[i].filter));
        assert_string_equal(h.subs[i].filter, subs[i].filter);
        assert_int_equal(h.subs[i].options, subs[i].options);
        assert_int_equal(h.subs[i].id, subs[i].id);
    }
    assert_int_equal(h.n_qos2, 3);
    assert_memory_equal(h.qos2_ids, qos2, sizeof qos2);
    assert_non_null(h.will);
    assert_int_equal(h.will_delay, 30);
    assert_string_equal(h.will->topic, "will/t");
    assert_int_equal(h.will->payload_len, 4);
    assert_memory_equal(h.will->payload, "gone", 4);
    assert_int_equal(h.will->props_len, will->props_len);
    assert_memory_equal(h.will->props, will->props, will->props_len);
    assert_int_equal(h.will->qos, 1);
    assert_true(h.will->retain);
    assert_int_equal(h.will->expiry_interval, 60);
    assert_true(h.will->expires_at > 0 && llabs(h.will->expires_at - will->expires_at) < 2000);

    /* Applied to a fresh session: the same subscriptions, in the same
     * order, share group included; the same ids; stored. */
    struct session *t = session_create("hdr-dst", 7, false);
    assert_non_null(t);
    assert_int_equal(session_state_apply_header(t, &h), 0);
    assert_true(t->persistent);
    assert_true(t->db_id != 0);
    assert_true(t->expiry_set);
    assert_int_equal(t->expiry, 3600);
    assert_int_equal(t->n_subs, N_SUBS);
    for (size_t i = 0; i < N_SUBS; i++) {
        const struct subscription *a = session_subscription(t, subs[i].filter, strlen(subs[i].filter));
        assert_non_null(a);
        assert_int_equal(a->options, subs[i].options);
        assert_int_equal(a->id, subs[i].id);
        assert_int_equal(a->share != NULL, subs[i].filter[0] == '$');
    }
    const struct subscription *x = s->subs, *y = t->subs;
    for (; x && y; x = x->next, y = y->next)
        assert_string_equal(x->filter, y->filter);
    assert_null(x);
    assert_null(y);
    assert_int_equal(t->n_qos2_ids, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(session_qos2_pending(t, qos2[i]));
    assert_false(session_qos2_pending(t, 2));
    assert_null(t->will); /* the caller's to apply */

    /* No will, a 3.1.1 session: flags and delay say so. */
    session_state_header_free(&h);
    free(buf);
    struct session *c = persistent("plain");
    buf = session_state_header_encode(c, NULL, 0, &len);
    assert_non_null(buf);
    assert_int_equal(session_state_header_decode(buf, len, &h, &why), 0);
    assert_true(h.persistent);
    assert_false(h.expiry_set);
    assert_null(h.will);
    assert_int_equal(h.n_subs, 0);
    assert_int_equal(h.n_qos2, 0);
    session_state_header_free(&h);
    free(buf);
    message_unref(will);
}

/* ---- the deliveries ---- */

#define N_QUEUED 60
#define N_ALL (3 + N_QUEUED)

/* Rows of a session as the store holds them (store_load_deliveries into
 * this list, the session untouched). */
static struct delivery *rows[4 * N_ALL];
static size_t n_rows;

static void row(struct session *s, struct delivery *d)
{
    (void)s;
    assert_true(n_rows < sizeof rows / sizeof rows[0]);
    rows[n_rows++] = d;
}

static void rows_free(void)
{
    for (size_t i = 0; i < n_rows; i++) {
        message_unref(rows[i]->msg);
        free(rows[i]);
    }
    n_rows = 0;
}

/* Reads s's rows into out[] (n returned), owned by the caller. */
static size_t read_rows(struct session *s, struct delivery **out)
{
    n_rows = 0;
    assert_true(store_load_deliveries(s, 0, 10000, row) >= 0);
    memcpy(out, rows, n_rows * sizeof *out);
    size_t n = n_rows;
    n_rows = 0;
    return n;
}

static void free_rows(struct delivery **v, size_t n)
{
    memcpy(rows, v, n * sizeof *v);
    n_rows = n;
    rows_free();
}

/* The same delivery, seq aside; expires_at within what an export and an
 * import apart in time may differ. */
static void assert_same(const struct delivery *a, const struct delivery *b)
{
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->qos, b->qos);
    assert_int_equal(a->retain, b->retain);
    assert_int_equal(a->shared, b->shared);
    if (a->msg) /* a released one's size counts for nothing */
        assert_int_equal(a->size, b->size);
    if (a->state != DELIVERY_QUEUED)
        assert_int_equal(a->packet_id, b->packet_id);
    assert_int_equal(a->msg != NULL, b->msg != NULL);
    if (!a->msg)
        return;
    assert_string_equal(a->msg->topic, b->msg->topic);
    assert_int_equal(a->msg->payload_len, b->msg->payload_len);
    assert_memory_equal(a->msg->payload, b->msg->payload, a->msg->payload_len);
    assert_int_equal(a->msg->props_len, b->msg->props_len);
    if (a->msg->props_len)
        assert_memory_equal(a->msg->props, b->msg->props, a->msg->props_len);
    assert_int_equal(a->msg->qos, b->msg->qos);
    assert_int_equal(a->msg->retain, b->msg->retain);
    assert_int_equal(a->msg->expires_at != 0, b->msg->expires_at != 0);
    assert_true(llabs(a->msg->expires_at - b->msg->expires_at) < 2000);
}

static const struct {
    uint8_t state;
    uint16_t packet_id;
} inflight[3] = {
    {DELIVERY_WAIT_PUBACK, 11},
    {DELIVERY_WAIT_PUBREC, 12},
    {DELIVERY_WAIT_PUBCOMP, 13},
};

/* "src": 3 in flight (QoS 1 WAIT_PUBACK, QoS 2 WAIT_PUBREC and released
 * WAIT_PUBCOMP), then N_QUEUED queued, stored and read back after a
 * restart; the in-flight ones and 2 queued ones in memory (as a refill
 * leaves them), the rest only in the store. */
static struct session *delivery_source(void)
{
    struct session *s = persistent("src");
    char topic[32], payload[32];
    for (int i = 0; i < N_ALL; i++) {
        snprintf(topic, sizeof topic, "t/%d", i);
        snprintf(payload, sizeof payload, "payload-%d", i);
        uint8_t qos = i == 0 ? 1 : i < 3 ? 2 : (uint8_t)(1 + i % 2);
        struct message *m = msg_props(topic, payload, 2, i % 3 == 0, i % 4 == 0 ? 600 : 0);
        int rc = i % 5 == 0 ? session_deliver_shared(s, m, qos, i % 3 == 0)
                            : session_deliver(s, m, qos, i % 3 == 0);
        assert_int_equal(rc, SESSION_TAKEN);
        message_unref(m);
    }
    for (int i = 0; i < 3; i++) {
        struct delivery d = {.seq = i + 1, .state = inflight[i].state,
                             .packet_id = inflight[i].packet_id};
        assert_int_equal(store_delivery_state(s, &d), 0);
    }
    reload();
    s = session_find("src", 3);
    assert_non_null(s);
    assert_int_equal(s->backlog, N_ALL);
    assert_int_equal(s->n_queued, N_QUEUED);
    assert_int_equal(store_load_deliveries(s, 0, 3, session_loaded_delivery), 3);
    assert_int_equal(store_load_deliveries(s, 3, 2, session_loaded_delivery), 2);
    assert_int_equal(s->inflight.count, 3);
    assert_int_equal(s->queued.count, 2);
    assert_null(s->inflight.tail->msg); /* released */
    return s;
}

/* The chunks an export emitted. */
static uint8_t *chunks[64];
static size_t chunk_len[64];
static size_t n_chunks;

static int keep_chunk(const uint8_t *chunk, size_t len, void *arg)
{
    (void)arg;
    assert_true(n_chunks < 64);
    chunks[n_chunks] = malloc(len);
    assert_non_null(chunks[n_chunks]);
    memcpy(chunks[n_chunks], chunk, len);
    chunk_len[n_chunks++] = len;
    return 0;
}

static void chunks_free(void)
{
    for (size_t i = 0; i < n_chunks; i++)
        free(chunks[i]);
    n_chunks = 0;
}

static uint64_t xid_of(struct session *s, int64_t seq, void *arg)
{
    (void)s;
    (void)arg;
    return 1000 + (uint64_t)seq;
}

#define MAX_CHUNK 600

static void export_source(struct session *s)
{
    long n = session_state_export(s, 0, MAX_CHUNK, xid_of, keep_chunk, NULL);
    assert_int_equal(n, N_ALL);
    assert_true(n_chunks > 3);
    for (size_t i = 0; i < n_chunks; i++)
        assert_true(chunk_len[i] <= MAX_CHUNK);
}

/* Imports every chunk kept into s, then lets them go; the total imported. */
static long import_chunks(struct session *s, bool keep_inflight,
                          bool (*skip)(struct session *, uint64_t, void *))
{
    long total = 0;
    for (size_t i = 0; i < n_chunks; i++) {
        const char *why = NULL;
        long n = session_state_import(s, chunks[i], chunk_len[i], keep_inflight, skip, NULL, &why);
        if (n < 0)
            fail_msg("import of chunk %zu: %s", i, why);
        total += n;
    }
    chunks_free();
    return total;
}

struct counts {
    uint32_t inflight, queued, backlog, n_queued;
    uint64_t queued_mem, queued_bytes;
    int64_t loaded_seq, last_seq;
};

static struct counts counts_of(const struct session *s)
{
    return (struct counts){s->inflight.count, s->queued.count, s->backlog, s->n_queued,
                           s->queued_mem, s->queued_bytes, s->loaded_seq, s->last_seq};
}

static void test_deliveries_round_trip(void **state)
{
    (void)state;
    struct session *src = delivery_source();
    static struct delivery *before[N_ALL], *after[N_ALL], *got[N_ALL];
    assert_int_equal(read_rows(src, before), N_ALL);
    struct counts c0 = counts_of(src);
    export_source(src);

    /* The source is as it was, in memory and in rows. */
    struct counts c1 = counts_of(src);
    assert_memory_equal(&c0, &c1, sizeof c0);
    assert_int_equal(src->inflight.head->packet_id, 11);
    assert_int_equal(read_rows(src, after), N_ALL);
    for (size_t i = 0; i < N_ALL; i++) {
        assert_int_equal(before[i]->seq, after[i]->seq);
        assert_same(before[i], after[i]);
    }
    free_rows(after, N_ALL);

    struct session *dst = persistent("dst");
    long total = import_chunks(dst, true, NULL);
    assert_int_equal(total, N_ALL);
    /* In memory: the three in flight with their packet ids and states,
     * ready for session_attach; the queued ones in the store. */
    assert_int_equal(dst->inflight.count, 3);
    size_t i = 0;
    for (const struct delivery *d = dst->inflight.head; d; d = d->next, i++) {
        assert_int_equal(d->state, inflight[i].state);
        assert_int_equal(d->packet_id, inflight[i].packet_id);
        assert_int_equal(d->msg == NULL, d->state == DELIVERY_WAIT_PUBCOMP);
    }
    assert_int_equal(dst->n_queued, N_QUEUED);
    assert_int_equal(dst->backlog, N_QUEUED);
    assert_int_equal(dst->queued_bytes, src->queued_bytes);
    assert_int_equal(read_rows(dst, got), N_ALL);
    for (i = 0; i < N_ALL; i++)
        assert_same(before[i], got[i]);
    free_rows(got, N_ALL);

    /* Written: it survives a commit and a reload. */
    reload();
    dst = session_find("dst", 3);
    assert_non_null(dst);
    assert_int_equal(dst->backlog, N_ALL);
    assert_int_equal(dst->n_queued, N_QUEUED);
    assert_int_equal(read_rows(dst, got), N_ALL);
    for (i = 0; i < N_ALL; i++)
        assert_same(before[i], got[i]);
    /* after_seq: only the deliveries that follow it (the rest a node
     * handed over already, cluster_session.c). */
    chunks_free();
    assert_int_equal(session_state_export(dst, got[N_ALL - 11]->seq, MAX_CHUNK, NULL, keep_chunk,
                                          NULL),
                     10);
    chunks_free();
    free_rows(got, N_ALL);
    free_rows(before, N_ALL);
}

/* A session that is not stored keeps everything in memory: the in-flight
 * ones in their list, the queued ones queued after them, in order. */
static void test_import_into_memory(void **state)
{
    (void)state;
    struct session *src = delivery_source();
    static struct delivery *before[N_ALL];
    assert_int_equal(read_rows(src, before), N_ALL);
    export_source(src);
    struct session *dst = session_create("mem", 3, false);
    assert_non_null(dst);
    dst->persistent = true; /* offline and kept, but with no row */
    assert_int_equal(import_chunks(dst, true, NULL), N_ALL);
    assert_int_equal(dst->inflight.count, 3);
    assert_int_equal(dst->queued.count, N_QUEUED);
    assert_int_equal(dst->n_queued, N_QUEUED);
    assert_int_equal(dst->backlog, 0);
    assert_int_equal(dst->queued_bytes, src->queued_bytes);
    uint64_t mem = 0;
    size_t i = 0;
    for (const struct delivery *d = dst->inflight.head; d; d = d->next)
        assert_same(before[i++], d);
    for (const struct delivery *d = dst->queued.head; d; d = d->next) {
        assert_same(before[i++], d);
        mem += d->size + SESSION_DELIVERY_OVERHEAD;
    }
    assert_int_equal(dst->queued_mem, mem);
    /* And out of memory again, the same. */
    assert_int_equal(session_state_export(dst, 0, MAX_CHUNK, NULL, keep_chunk, NULL), N_ALL);
    struct session *back = persistent("back");
    assert_int_equal(import_chunks(back, true, NULL), N_ALL);
    static struct delivery *got[N_ALL];
    assert_int_equal(read_rows(back, got), N_ALL);
    for (i = 0; i < N_ALL; i++)
        assert_same(before[i], got[i]);
    /* after_seq: only the deliveries that follow it (the rest a node
     * handed over already, cluster_session.c). */
    chunks_free();
    assert_int_equal(session_state_export(back, got[N_ALL - 11]->seq, MAX_CHUNK, NULL, keep_chunk,
                                          NULL),
                     10);
    chunks_free();
    free_rows(got, N_ALL);
    free_rows(before, N_ALL);
}

static const uint64_t skipped[] = {1000 + 10, 1000 + 20};

static bool skip_named(struct session *s, uint64_t xid, void *arg)
{
    (void)s;
    (void)arg;
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        if (xid == skipped[i])
            return true;
    return false;
}

static void test_import_after_own(void **state)
{
    (void)state;
    struct session *src = delivery_source();
    static struct delivery *before[N_ALL], *got[N_ALL + 2];
    assert_int_equal(read_rows(src, before), N_ALL);
    export_source(src);

    struct session *dst = persistent("own");
    for (int i = 0; i < 2; i++) {
        struct message *m = message_new("own", 3, (const uint8_t *)(i ? "o2" : "o1"), 2, 1, false);
        assert_int_equal(session_deliver(dst, m, 1, false), SESSION_TAKEN);
        message_unref(m);
    }
    long total = import_chunks(dst, false, skip_named);
    /* The released one is dropped, the two skip() names too. */
    long expect = N_ALL - 1 - 2;
    assert_int_equal(total, expect);
    assert_int_equal(dst->inflight.count, 0);
    assert_int_equal(dst->n_queued, 2 + expect);
    size_t n = read_rows(dst, got);
    assert_int_equal(n, 2 + expect);
    assert_memory_equal(got[0]->msg->payload, "o1", 2);
    assert_memory_equal(got[1]->msg->payload, "o2", 2);
    size_t j = 2;
    for (size_t i = 0; i < N_ALL; i++) {
        int64_t seq = before[i]->seq;
        if (before[i]->state == DELIVERY_WAIT_PUBCOMP || seq == 10 || seq == 20)
            continue;
        assert_true(j < n);
        const struct delivery *d = got[j++];
        assert_int_equal(d->state, DELIVERY_QUEUED);
        assert_int_equal(d->packet_id, 0);
        assert_int_equal(d->qos, before[i]->qos);
        assert_int_equal(d->shared, before[i]->shared);
        assert_string_equal(d->msg->topic, before[i]->msg->topic);
        assert_memory_equal(d->msg->payload, before[i]->msg->payload, d->msg->payload_len);
    }
    assert_int_equal(j, n);
    free_rows(got, n);
    free_rows(before, N_ALL);
}

/* ---- hostile bytes ---- */

static void assert_header_refused(const uint8_t *buf, size_t len, const char *what)
{
    struct session_state_header h;
    const char *why = NULL;
    if (session_state_header_decode(buf, len, &h, &why) == 0) {
        session_state_header_free(&h);
        fail_msg("header accepted: %s", what);
    }
    assert_non_null(why);
    assert_null(h.subs);
    assert_null(h.client_id);
    assert_null(h.will);
}

/* A session's deliveries counted, to see that a refused chunk imported
 * nothing. */
static void assert_chunk_refused(struct session *s, const uint8_t *buf, size_t len,
                                 const char *what)
{
    struct counts c0 = counts_of(s);
    const char *why = NULL;
    if (session_state_import(s, buf, len, true, NULL, NULL, &why) >= 0)
        fail_msg("chunk accepted: %s", what);
    assert_non_null(why);
    struct counts c1 = counts_of(s);
    assert_memory_equal(&c0, &c1, sizeof c0);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A copy of buf with the first n bytes `from` replaced by the n of `to`. */
static uint8_t *replaced_n(const uint8_t *buf, size_t len, const char *from, const char *to,
                           size_t n)
{
    uint8_t *c = malloc(len);
    assert_non_null(c);
    memcpy(c, buf, len);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(c + i, from, n) == 0) {
            memcpy(c + i, to, n);
            return c;
        }
    fail_msg("'%s' not in the bytes", from);
    return c;
}

static uint8_t *replaced(const uint8_t *buf, size_t len, const char *from, const char *to)
{
    assert_int_equal(strlen(from), strlen(to));
    return replaced_n(buf, len, from, to, strlen(from));
}

/* One byte of valid bytes set to a value that makes them invalid. */
struct byte_case {
    size_t at;
    uint8_t value;
    const char *what;
};

static void test_hostile_header(void **state)
{
    (void)state;
    struct message *will;
    uint8_t *buf;
    size_t len;
    header_source(&will, &buf, &len);
    message_unref(will);
    for (size_t n = 0; n < len; n++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu", n, len);
        uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past */
        memcpy(copy, buf, n);
        assert_header_refused(copy, n, what);
        free(copy);
    }
    /* One byte more. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_header_refused(longer, len + 1, "a byte after the end");
    free(longer);

    uint8_t *c = replaced(buf, len, "a/+/c", "a/#/c");
    assert_header_refused(c, len, "'#' not last in a filter");
    free(c);
    c = replaced(buf, len, "$share/grp/", "$share/g+p/");
    assert_header_refused(c, len, "wildcard in a share name");
    free(c);
    c = replaced(buf, len, "will/t", "will/+");
    assert_header_refused(c, len, "a will topic with a wildcard");
    free(c);
    c = replaced_n(buf, len, "\x00\x01\x01\x2c\xff\xff", "\x01\x2c\x00\x01\xff\xff", 6);
    assert_header_refused(c, len, "QoS 2 ids out of order");
    free(c);
    c = replaced_n(buf, len, "\x00\x01\x01\x2c\xff\xff", "\x01\x2c\x01\x2c\xff\xff", 6);
    assert_header_refused(c, len, "a QoS 2 id twice");
    free(c);
    c = replaced_n(buf, len, "\x00\x01\x01\x2c\xff\xff", "\x00\x00\x01\x2c\xff\xff", 6);
    assert_header_refused(c, len, "QoS 2 id 0");
    free(c);
    c = replaced(buf, len, "text/plain", "text/\xc0\x80lai");
    assert_header_refused(c, len, "invalid UTF-8 in a will property");
    free(c);

    /* Fixed offsets: version, kind, id "hdr-src" (2 + 7), flags, expiry,
     * n_subs, then the first subscription "a/b" (2 + 3), its options. */
    size_t flags_at = 2 + 2 + 7, n_subs_at = flags_at + 1 + 4, opt_at = n_subs_at + 4 + 2 + 3;
    c = malloc(len);
    static const struct byte_case bytes[] = {
        {0, 2, "unknown version"},
        {1, 'D', "a chunk's kind"},
        {0, 0, "version 0"},
    };
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        memcpy(c, buf, len);
        c[bytes[i].at] = bytes[i].value;
        assert_header_refused(c, len, bytes[i].what);
    }
    memcpy(c, buf, len);
    c[flags_at] |= 0x08;
    assert_header_refused(c, len, "unknown flag");
    memcpy(c, buf, len);
    c[flags_at] &= (uint8_t)~0x01;
    assert_header_refused(c, len, "expiry 3600 but not persistent");
    static const uint8_t bad_options[] = {3, 0x40, 0x80, 0x30};
    for (size_t i = 0; i < sizeof bad_options; i++) {
        memcpy(c, buf, len);
        c[opt_at] = bad_options[i];
        assert_header_refused(c, len, "subscription options out of range");
    }
    memcpy(c, buf, len);
    put32(c + opt_at + 1, 268435456);
    assert_header_refused(c, len, "subscription id out of range");
    memcpy(c, buf, len);
    put32(c + n_subs_at, UINT32_MAX);
    assert_header_refused(c, len, "oversize subscription count");
    memcpy(c, buf, len);
    put32(c + n_subs_at, N_SUBS + 1);
    assert_header_refused(c, len, "one subscription more than there is");
    free(c);
    free(buf);
}

static void test_hostile_chunk(void **state)
{
    (void)state;
    struct session *s = persistent("one");
    struct message *m = msg_props("t/x", "pay", 2, false, 0);
    assert_int_equal(session_deliver(s, m, 2, false), SESSION_TAKEN);
    message_unref(m);
    long n = session_state_export(s, 0, 1 << 16, NULL, keep_chunk, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(n_chunks, 1);
    uint8_t *buf = chunks[0];
    size_t len = chunk_len[0];
    n_chunks = 0;

    struct session *dst = persistent("victim");
    for (size_t k = 0; k < len; k++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu", k, len);
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, buf, k);
        assert_chunk_refused(dst, copy, k, what);
        free(copy);
    }
    /* Offsets: version, kind, count (4); the delivery: state, qos, flags,
     * packet id (2), xid (8); its message: qos, retain, topic "t/x". */
    enum { state_at = 6, dqos_at, dflags_at, pid_at, mqos_at = 19, retain_at };
    static const struct byte_case bytes[] = {
        {0, 9, "unknown version"},
        {1, 'H', "a header's kind"},
        {state_at, 4, "state out of range"},
        {state_at, DELIVERY_WAIT_PUBACK, "WAIT_PUBACK at QoS 2"},
        {state_at, DELIVERY_WAIT_PUBCOMP, "released with a message"},
        {dqos_at, 3, "delivery QoS 3"},
        {dqos_at, 0, "delivery QoS 0"},
        {dflags_at, 0x08, "unknown delivery flag"},
        {dflags_at, 0, "no message flag on a queued one"},
        {pid_at + 1, 5, "a queued one with a packet id"},
        {mqos_at, 3, "message QoS 3"},
        {retain_at, 2, "retain 2"},
    };
    uint8_t *c = malloc(len + 1);
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        memcpy(c, buf, len);
        c[bytes[i].at] = bytes[i].value;
        assert_chunk_refused(dst, c, len, bytes[i].what);
    }
    memcpy(c, buf, len);
    put32(c + 2, UINT32_MAX);
    assert_chunk_refused(dst, c, len, "oversize count");
    memcpy(c, buf, len);
    put32(c + 2, 2);
    assert_chunk_refused(dst, c, len, "a count one more than there is");
    memcpy(c, buf, len);
    c[len] = 0;
    assert_chunk_refused(dst, c, len + 1, "a byte after the end");
    free(c);
    c = replaced(buf, len, "t/x", "t/+");
    assert_chunk_refused(dst, c, len, "a topic with a wildcard");
    free(c);
    c = replaced_n(buf, len, "t/x", "t\0x", 3);
    assert_chunk_refused(dst, c, len, "a topic with U+0000");
    free(c);
    /* A Topic Alias is one hop's, not a message's. */
    c = replaced_n(buf, len, "\x03\x00\x0atext/plain", "\x23\x00\x01\x03\x00\x07t/plain", 13);
    assert_chunk_refused(dst, c, len, "a property a server does not forward");
    free(c);

    /* The chunk itself is good. */
    const char *why = NULL;
    assert_int_equal(session_state_import(dst, buf, len, true, NULL, NULL, &why), 1);
    assert_int_equal(dst->n_queued, 1);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliveries_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_into_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_after_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_chunk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
